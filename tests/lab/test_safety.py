"""Safety, through the real engine on three lab hosts: no setting, stale state, lost connection or someone else's
change can cut SSH, lose a change or run code. Each test leaves the stack converged (or destroyed, as it says)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import yaml

from lab import probe
from smtps_iredmail.core import master_service
from smtps_iredmail.core.templating import Action
from tests.enginekit import Project
from tests.lab.faultkit import FAULTS, failing_tool, host_pids, start_script, wait_gone, wrapped_tool
from tests.lab.labkit import TEST_SUBNET, Lab, running_lab
from tests.lab.smtpskit import settings_for, snapshot, ssh_counts

pytestmark = [pytest.mark.lab, pytest.mark.engine]
STACK = "safety"
CONFIRM = 20  # confirmSeconds of the host whose reloads go unconfirmed: the shortest a test can wait for


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory, "safety", "--hosts", "3") as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def project(lab: Lab, tmp_path_factory):
    project = Project.for_lab(tmp_path_factory.mktemp("safety") / "smtps", lab, STACK)
    yield project
    project.pulumi("cancel", "-s", STACK, "--yes", check=False)
    project.pulumi("destroy", "-s", STACK, "--yes", check=False)


def host(lab: Lab, name: str) -> dict:
    return next(h for h in lab.hosts() if h["name"] == name)


def set_host(project: Project, name: str, **settings) -> None:
    """Set (or, with None, remove) settings of one host in the stack file."""
    path = project.folder / "stacks" / f"Pulumi.{STACK}.yaml"
    data = yaml.safe_load(path.read_text())
    for entry in data["config"]["smtps-iredmail:hosts"]:
        if entry["name"] == name:
            for key, value in settings.items():
                if value is None:
                    entry.pop(key, None)
                else:
                    entry[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=200))


def ssh_answers(lab: Lab, name: str) -> bool:
    """A fresh SSH login from the machine (new TCP connection, new authentication) runs a command."""
    return lab.ssh(host(lab, name), "true").returncode == 0


def text_of(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def firewalld_files(lab: Lab, name: str) -> dict[str, str]:
    """Digests of every file under /etc/firewalld (zones in sub-folders, ipsets, direct.xml, firewalld.conf)."""
    out = lab.sh(name, "cd /etc && find firewalld -type f -exec sha256sum {} + | sort -k2").stdout
    return {path: digest for digest, path in (line.split() for line in out.splitlines())}


# --- 1. no name shadows another service --------------------------------------------------------------------------
@pytest.mark.parametrize(("service", "port"), [("ssh", 22), ("smtp", 25)])
def test_firewalds_own_service_names_are_refused_before_any_change(lab: Lab, project: Project, service, port):
    address = host(lab, "mail1")["address"]
    counts = {h["name"]: ssh_counts(lab, h["name"]) for h in lab.hosts()}
    files = snapshot(lab, "mail1")
    set_host(project, "mail1", firewalldService=service)
    try:
        for command in (("preview",), ("up", "--yes")):
            result = project.smtps(*command, "-s", STACK, check=False)
            assert result.returncode != 0
            assert (f"stack {STACK}, host mail1, setting firewalldService: {service} is firewalld's own service for "
                    f"{port}/tcp") in text_of(result), text_of(result)
            assert probe.tcp(address, 22).banner.startswith("SSH-") and probe.tcp(address, 25).banner.startswith("220")
    finally:
        set_host(project, "mail1", firewalldService=None)
    assert {h["name"]: ssh_counts(lab, h["name"]) for h in lab.hosts()} == counts  # no host was contacted
    assert snapshot(lab, "mail1") == files


def test_a_service_the_host_itself_defines_for_other_ports_is_refused_on_the_host(lab: Lab, project: Project):
    """A name the controller cannot know (this host's own service for port 22) is refused by the host script."""
    lab.sh("mail1", "printf '%s\\n' '<?xml version=\"1.0\" encoding=\"utf-8\"?>' '<service><short>ops</short>' "
                    "'<port protocol=\"tcp\" port=\"22\"/></service>' > /etc/firewalld/services/mailops.xml")
    before = firewalld_files(lab, "mail1")
    set_host(project, "mail1", firewalldService="mailops")
    try:
        result = project.smtps("up", "-s", STACK, "--yes", check=False)
        assert result.returncode != 0
        assert ("mail1: firewalld service mailops is already defined in /etc/firewalld/services/mailops.xml for "
                "22/tcp") in text_of(result), text_of(result)
        assert firewalld_files(lab, "mail1") == before
        assert ssh_answers(lab, "mail1")
    finally:
        set_host(project, "mail1", firewalldService=None)
        lab.sh("mail1", "rm -f /etc/firewalld/services/mailops.xml")
    project.smtps("up", "-s", STACK, "--yes")


# --- 2. the guard judges the configuration the reload will load, and fails closed --------------------------------
SUBNET = TEST_SUBNET  # the test lab's subnet: the machine's own end of every host link is in it
GUARD_CASES = {
    "ssh removed permanently, not yet reloaded": (
        "firewall-cmd --permanent --zone=iredmail --remove-service=ssh",
        "a firewalld reload would cut SSH: this connection"),
    "a new zone with the controller's network as a source": (
        f"firewall-cmd --permanent --new-zone=mgmt && firewall-cmd --permanent --zone=mgmt --add-source={SUBNET}",
        f"comes in through zone mgmt (its source {SUBNET})"),
    "a new zone with an ipset of the controller's network as a source": (
        "firewall-cmd --permanent --new-ipset=admins --type=hash:net && "
        f"firewall-cmd --permanent --ipset=admins --add-entry={SUBNET} && "
        "firewall-cmd --permanent --new-zone=mgmt && firewall-cmd --permanent --zone=mgmt --add-source=ipset:admins",
        "comes in through zone mgmt (its source ipset:admins)"),
    "a rich rule that rejects the controller's SSH": (
        "firewall-cmd --permanent --zone=iredmail --add-rich-rule="
        + shlex.quote(f'rule family="ipv4" source address="{SUBNET}" service name="ssh" reject'),
        "would reject this SSH connection"),
    "the ingress interface bound to zone drop": (
        "firewall-cmd --permanent --zone=drop --add-interface=eth0",
        "comes in through zone drop (interface eth0)"),
    "a direct rule": (
        "firewall-cmd --permanent --direct --add-rule ipv4 filter INPUT 0 -p tcp --dport 22 -j DROP",
        "direct rule(s), which the guard does not evaluate"),
}


@contextlib.contextmanager
def permanent_edit(lab: Lab, name: str, command: str):
    """A permanent firewalld edit left pending (not reloaded), as an admin might leave one; afterwards the files
    go back and firewalld reads them again."""
    lab.sh(name, "rm -rf /run/lab/fw-saved && cp -a /etc/firewalld /run/lab/fw-saved")
    lab.sh(name, command + " >/dev/null")
    try:
        yield
    finally:
        lab.sh(name, "rm -rf /etc/firewalld && cp -a /run/lab/fw-saved /etc/firewalld && "
                     "firewall-cmd --reload >/dev/null && rm -rf /run/lab/fw-saved")


@pytest.mark.parametrize("case", list(GUARD_CASES))
def test_the_guard_refuses_a_reload_that_would_cut_ssh(lab: Lab, project: Project, case):
    setup, refusal = GUARD_CASES[case]
    project.pulumi("destroy", "-s", STACK, "--yes")  # the service file's apply then ends in a reload
    with permanent_edit(lab, "mail2", setup):
        before = firewalld_files(lab, "mail2")
        result = project.smtps("up", "-s", STACK, "--yes", check=False)
        text = text_of(result)
        assert result.returncode != 0 and "mail2" in text and refusal in text, text
        assert "firewalld was not reloaded" in text and "what this run changed is undone" in text, text
        assert firewalld_files(lab, "mail2") == before
        assert ssh_answers(lab, "mail2")
        assert probe.tcp(host(lab, "mail2")["address"], 25).banner.startswith("220")
    project.smtps("up", "-s", STACK, "--yes")


# Admin edits left pending on a converged mail1, each refused when an `up` then changes only serviceDescription (its
# service file is rewritten, so firewalld would be reloaded): the first is the case tried on the lab when the guard
# judged eth+ to "survive" for eth0; that reload cut SSH.
PENDING_CASES = {
    "a wildcard interface bound to zone drop": (
        "firewall-cmd --permanent --zone=drop --add-interface=eth+",
        "comes in through zone drop (interface eth+)"),
    # firewalld combines the files of a sub-folder of zones/ into one zone named after the folder.
    "a zone in a sub-folder of zones/ binding the ingress interface": (
        "mkdir /etc/firewalld/zones/ops && { printf '%s\\n' '<?xml version=\"1.0\" encoding=\"utf-8\"?>' "
        "'<zone target=\"DROP\"><interface name=\"eth0\"/></zone>' > /etc/firewalld/zones/ops/lockdown.xml; }",
        "comes in through zone ops (interface eth0)"),
    # Harmless to SSH, but not this run's: a reload must not be the moment they go live (or go) unseen.
    "a permanent edit and a runtime-only one, both leaving SSH alone": (
        "firewall-cmd --permanent --zone=iredmail --add-port=8080/tcp && "
        "firewall-cmd --zone=iredmail --add-port=9090/tcp",
        "differs from the running one in what this run did not write, and a reload would make that live unseen: "
        "zone iredmail, ports: 8080 tcp pending (permanent only), 9090 tcp running only"),
    # A reload re-reads firewalld.conf: a setting the daemon shows as it runs it is compared by value ...
    "LogDenied edited in firewalld.conf": (
        "sed -i 's/^LogDenied=.*/LogDenied=all/' /etc/firewalld/firewalld.conf",
        "firewalld.conf, LogDenied: all pending (running: off)"),
    # ... one it hides by the file's time against the daemon's start.
    "FlushAllOnReload edited in firewalld.conf": (
        "sed -i 's/^FlushAllOnReload=.*/FlushAllOnReload=no/' /etc/firewalld/firewalld.conf",
        "/etc/firewalld/firewalld.conf was changed at "),
}


@pytest.mark.parametrize("case", list(PENDING_CASES))
def test_a_reload_that_would_make_a_pending_edit_live_is_refused_before_it(lab: Lab, project: Project, case):
    setup, refusal = PENDING_CASES[case]
    with permanent_edit(lab, "mail1", setup):
        before = firewalld_files(lab, "mail1")
        runtime = lab.sh("mail1", "firewall-cmd --list-all-zones").stdout
        set_host(project, "mail1", serviceDescription=f"SMTP over implicit TLS ({case}).")
        try:
            result = project.smtps("up", "-s", STACK, "--yes", check=False)
        finally:
            set_host(project, "mail1", serviceDescription=None)
        text = text_of(result)
        assert result.returncode != 0 and "mail1" in text, text
        assert refusal in text and "firewalld was not reloaded" in text, text
        assert firewalld_files(lab, "mail1") == before
        assert lab.sh("mail1", "firewall-cmd --list-all-zones").stdout == runtime  # no reload: still pending
        assert ssh_answers(lab, "mail1") and probe.tcp(host(lab, "mail1")["address"], 22).banner.startswith("SSH-")
    project.smtps("up", "-s", STACK, "--yes")


# A ban as fail2ban's firewallcmd-rich-rules action adds it (its actionban): at runtime only, so any reload drops it.
F2B_BAN = ('rule family="ipv4" source address="192.0.2.7" port port="465" protocol="tcp" '
           'reject type="icmp-port-unreachable"')


def test_a_runtime_only_ban_is_refused_by_default_and_dropped_by_the_reload_with_firewalld_pending(lab: Lab,
                                                                                                   project: Project):
    rich = "firewall-cmd --zone=iredmail --list-rich-rules"
    lab.sh("mail1", f"firewall-cmd --zone=iredmail --add-rich-rule={shlex.quote(F2B_BAN)} >/dev/null")
    try:
        before = firewalld_files(lab, "mail1")
        set_host(project, "mail1", serviceDescription="SMTP over implicit TLS (a fail2ban ban).")
        result = project.smtps("up", "-s", STACK, "--yes", check=False)
        text = text_of(result)
        assert result.returncode != 0 and "mail1" in text, text
        assert 'zone iredmail, rich rules: rule family="ipv4" source address="192.0.2.7"' in text, text
        assert "running only" in text and "firewalldPending: drop-runtime-only" in text, text
        assert "firewalld was not reloaded" in text and firewalld_files(lab, "mail1") == before
        assert "192.0.2.7" in lab.sh("mail1", rich).stdout  # no reload: the ban is still there
        set_host(project, "mail1", firewalldPending="drop-runtime-only")
        project.smtps("up", "-s", STACK, "--yes")
        assert "192.0.2.7" not in lab.sh("mail1", rich).stdout  # the reload dropped it, as any reload would
        assert "SMTP over implicit TLS (a fail2ban ban)." in lab.sh(
            "mail1", "cat /etc/firewalld/services/smtps.xml").stdout
        assert ssh_answers(lab, "mail1") and probe.tcp(host(lab, "mail1")["address"], 22).banner.startswith("SSH-")
    finally:
        set_host(project, "mail1", serviceDescription=None, firewalldPending=None)
        lab.sh("mail1", f"firewall-cmd --zone=iredmail --remove-rich-rule={shlex.quote(F2B_BAN)} >/dev/null 2>&1 "
                        "|| true")
    project.smtps("up", "-s", STACK, "--yes")


def test_the_guard_refuses_when_it_cannot_tell_which_connection_to_protect(lab: Lab, project: Project):
    """Run without SSH_CONNECTION (here: from a shell inside the host), the guard does not guess."""
    project.pulumi("destroy", "-s", STACK, "--yes")
    from smtps_iredmail.core import firewalld_service

    s = settings_for(lab, "mail2")
    result = lab.sh("mail2", firewalld_service.MODEL.script("mail2", s.service, Action.APPLY), check=False)
    assert result.returncode != 0 and "SSH_CONNECTION is not set" in result.stderr, result.stderr
    assert lab.sh("mail2", "test ! -e /etc/firewalld/services/smtps.xml", check=False).returncode == 0
    project.smtps("up", "-s", STACK, "--yes")


# --- 3. commit-confirmed reloads ----------------------------------------------------------------------------------
@contextlib.contextmanager
def lockout_after_reload(lab: Lab, name: str):
    """The first firewalld reload on the host also drops every new SSH connection, from inside firewalld's own
    table (so the next reload takes it away again): a lockout no guard can see. Every reload's time is logged. A
    reload is asked of firewalld with dbus-send (the scripts) or firewall-cmd (the watcher, or a host without
    dbus-send): both are wrapped."""
    log, flag = f"{FAULTS}/reloads", f"{FAULTS}/locked-once"
    tools = (("/usr/bin/firewall-cmd", "*' --reload '*"), ("/usr/bin/dbus-send", "*'.FirewallD1.reload '*"))
    for tool, when in tools:
        name_of = tool.rsplit("/", 1)[1]
        real = f"{FAULTS}/{name_of}.real"
        wrapper = f"""#!/bin/sh
case " $* " in {when})
    {real} "$@"; rc=$?
    date +%s.%N >> {log}
    if [ ! -e {flag} ]; then
        : > {flag}
        nft insert rule inet firewalld filter_INPUT tcp dport 22 ct state new drop
    fi
    exit $rc;;
esac
exec {real} "$@"
"""
        lab.sh(name, f"mkdir -p {FAULTS} && rm -f {log} {flag} && cp -p {tool} {real} && "
                     f"printf '%s' {shlex.quote(wrapper)} > {FAULTS}/{name_of} && chmod 755 {FAULTS}/{name_of} && "
                     f"mount --bind {FAULTS}/{name_of} {tool}")
    try:
        yield lambda: [float(t) for t in lab.sh(name, f"cat {log} 2>/dev/null || true").stdout.split()]
    finally:
        for tool, _ in tools:
            lab.sh(name, f"umount {tool}", check=False)


def wait_for(condition, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return condition()


def test_a_reload_that_locks_ssh_out_is_reverted_by_the_host_itself(lab: Lab, project: Project):
    project.pulumi("destroy", "-s", STACK, "--yes")
    before = firewalld_files(lab, "mail2")
    set_host(project, "mail2", confirmSeconds=CONFIRM)
    try:
        with lockout_after_reload(lab, "mail2") as reloads:
            started = time.monotonic()
            result = project.smtps("up", "-s", STACK, "--yes", check=False)
            took = time.monotonic() - started
            text = text_of(result)
            assert result.returncode != 0, text
            assert "mail2: firewalld service: no fresh SSH login after the firewalld reload" in text, text
            assert "it has put back its previous firewall configuration, and SSH answers again" in text, text
            times = reloads()
            assert len(times) == 2, times  # this run's reload, then the host's own revert
            revert = times[1] - times[0]
            print(f"mail2 reverted by itself {revert:.1f} s after the unconfirmed reload (confirmSeconds {CONFIRM}); "
                  f"the run took {took:.1f} s")
            # The watcher's deadline is whole seconds from when it was armed, just before the reload: the revert
            # can come up to a second early, plus the time the reload took to start on a busy host.
            assert CONFIRM - 2 <= revert <= CONFIRM + 5
        assert firewalld_files(lab, "mail2") == before
        assert lab.sh("mail2", "test ! -e /run/smtps-iredmail/confirm", check=False).returncode == 0
        assert ssh_answers(lab, "mail2")
        for other in ("mail1", "mail3"):  # the others converged
            assert lab.sh(other, "firewall-cmd --zone=iredmail --query-service=smtps || "
                                 "firewall-cmd --zone=iredmail --query-port=465/tcp", check=False).returncode == 0
    finally:
        set_host(project, "mail2", confirmSeconds=None)
    project.smtps("up", "-s", STACK, "--yes")
    assert probe.smtps(host(lab, "mail2")["address"]).state == "tls"


def test_a_controller_killed_before_it_confirms_leaves_a_host_that_reverts_by_itself(lab: Lab, project: Project):
    project.pulumi("destroy", "-s", STACK, "--yes")
    before = firewalld_files(lab, "mail2")
    set_host(project, "mail2", confirmSeconds=CONFIRM)
    try:
        with lockout_after_reload(lab, "mail2") as reloads:
            up = subprocess.Popen([sys.executable, "-m", "smtps_iredmail", "up", "-s", STACK, "--yes"],
                                  cwd=project.folder,
                                  env=project.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
            try:
                assert wait_for(lambda: len(reloads()) >= 1, 120), "mail2 was never reloaded"
                time.sleep(1)  # the controller is now trying to log in afresh
            finally:
                # The whole controller: front end, CLI and the providers (which the CLI starts in process groups of
                # their own, so they are found as its descendants).
                for pid in [up.pid, *descendants(up.pid)]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                up.wait(timeout=30)
            killed = time.monotonic()
            assert wait_for(lambda: len(reloads()) >= 2, CONFIRM + 15), "mail2 did not revert by itself"
            times = reloads()
            print(f"controller killed; mail2 reverted by itself {times[1] - times[0]:.1f} s after the reload, "
                  f"{time.monotonic() - killed:.1f} s after the kill")
        assert firewalld_files(lab, "mail2") == before
        assert ssh_answers(lab, "mail2")
    finally:
        set_host(project, "mail2", confirmSeconds=None)
    # The killed run left the stack locked and an operation pending: what an operator does next.
    project.pulumi("cancel", "-s", STACK, "--yes", check=False)
    unlock_and_clear(project)
    project.smtps("up", "-s", STACK, "--yes", "--refresh")
    assert project.smtps("drift", "-s", STACK).returncode == 0


def descendants(root: int) -> list[int]:
    """Every process below `root`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    found, queue = [], [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def unlock_and_clear(project: Project) -> None:
    """After a killed `up`: the file backend's lock goes, and pending operations are cleared by a refresh."""
    locks = project.folder / ".pulumi-state" / ".pulumi" / "locks"
    if locks.exists():
        for lock in locks.rglob("*.json"):
            lock.unlink()
    project.pulumi("refresh", "-s", STACK, "--yes", "--clear-pending-creates", check=False)


# --- 4. remove undoes only this tool's own change -----------------------------------------------------------------
def test_destroy_after_a_reapply_keeps_what_an_admin_added(lab: Lab, project: Project):
    project.smtps("up", "-s", STACK, "--yes")
    # An admin adds a master.cf entry and a zone port (both layers) on mail1 ...
    lab.sh("mail1", "postconf -M '10027/inet=10027 inet n - n - - smtpd' && postfix reload >/dev/null 2>&1 && "
                    "firewall-cmd --permanent --zone=iredmail --add-port=8443/tcp >/dev/null && "
                    "firewall-cmd --zone=iredmail --add-port=8443/tcp >/dev/null")
    # ... and on mail2 takes the smtps service out of the zone, adding a port of their own.
    lab.sh("mail2", "for layer in --permanent ''; do firewall-cmd $layer --zone=iredmail --remove-service=smtps "
                    ">/dev/null && firewall-cmd $layer --zone=iredmail --add-port=8443/tcp >/dev/null; done")
    zone_as_admin_left_it = lab.sh("mail2", "cat /etc/firewalld/zones/iredmail.xml").stdout
    # Then an up that re-applies on both: a changed option (master.cf), and the zone repaired after a refresh.
    lab.sh("mail1", "firewall-cmd --zone=iredmail --remove-service=smtps >/dev/null")
    set_host(project, "mail1", options={"syslog_name": "postfix/submissions"})
    try:
        up = project.smtps("up", "-s", STACK, "--yes", "--refresh")
        assert "mail1" in up.stdout
        assert lab.sh("mail1", "firewall-cmd --zone=iredmail --query-service=smtps").stdout.strip() == "yes"
        assert lab.sh("mail2", "firewall-cmd --permanent --zone=iredmail --query-service=smtps").stdout.strip() == "yes"
        project.pulumi("destroy", "-s", STACK, "--yes")
    finally:
        set_host(project, "mail1", options=None)
    # SMTPS is gone, and every change of the admin's is still there.
    for name in ("mail1", "mail2"):
        assert lab.sh(name, "postconf -M 465/inet").stdout.strip() == ""
        for layer in ("--permanent ", ""):
            assert lab.sh(name, f"firewall-cmd {layer}--zone=iredmail --query-service=smtps",
                          check=False).stdout.strip() == "no"
            assert lab.sh(name, f"firewall-cmd {layer}--zone=iredmail --query-port=8443/tcp").stdout.strip() == "yes"
        assert lab.sh(name, "test ! -e /etc/firewalld/services/smtps.xml && test ! -e /var/lib/smtps-iredmail",
                      check=False).returncode == 0
    assert lab.sh("mail1", "postconf -M 10027/inet").stdout.split()[:2] == ["10027", "inet"]
    # mail2's zone file started this run changed by someone else, without the service: it is the new "as found".
    assert lab.sh("mail2", "cat /etc/firewalld/zones/iredmail.xml").stdout == zone_as_admin_left_it
    lab.sh("mail1", "postconf -MX 10027/inet && postfix reload >/dev/null 2>&1")
    for name in ("mail1", "mail2"):
        lab.sh(name, "firewall-cmd --permanent --zone=iredmail --remove-port=8443/tcp >/dev/null && "
                     "firewall-cmd --zone=iredmail --remove-port=8443/tcp >/dev/null")
    project.smtps("up", "-s", STACK, "--yes")


# --- 5. state is data, never code ---------------------------------------------------------------------------------
def tamper(project: Project, change) -> dict:
    """Export the stack's state, change every resource of mail1 with `change(props)`, import it; returns the
    original export (to put back)."""
    original = json.loads(project.pulumi("stack", "export", "-s", STACK).stdout)
    edited = json.loads(json.dumps(original))
    for resource in edited["deployment"]["resources"]:
        if resource.get("type", "").startswith("pulumi-python:dynamic") and \
                (resource.get("outputs") or {}).get("host") == "mail1" and "revision" in resource["outputs"]:
            change(resource["inputs"])
            change(resource["outputs"])
    path = project.folder / "tampered.json"
    path.write_text(json.dumps(edited))
    project.pulumi("stack", "import", "-s", STACK, "--file", str(path))
    return original


@pytest.mark.parametrize(("label", "change", "refusal"), [
    ("host label", lambda props: props.__setitem__("host", "mail1\ntouch /tmp/PWNED #"),
     "setting host: 'mail1\\ntouch /tmp/PWNED #' is not a host name"),
    ("applied service name", lambda props: "firewalldService" in props.get("applied", {}) and props["applied"]
     .__setitem__("firewalldService", "smtps;touch /tmp/PWNED"),
     "setting firewalldService: 'smtps;touch /tmp/PWNED' is not a firewalld service name"),
])
def test_a_tampered_state_runs_nothing(lab: Lab, project: Project, label, change, refusal):
    project.smtps("up", "-s", STACK, "--yes")
    counts = ssh_counts(lab, "mail1")
    original = tamper(project, change)
    try:
        result = project.pulumi("refresh", "-s", STACK, "--yes", check=False)
        text = text_of(result)
        assert result.returncode != 0 and refusal in text, text
        assert lab.sh("mail1", "test ! -e /tmp/PWNED", check=False).returncode == 0
        # A tampered resource is refused before any SSH session: nothing runs for it, not even the read. (With
        # only the service name tampered, mail1's master.cf resource is intact and its read runs: one session.)
        assert ssh_counts(lab, "mail1")[1] - counts[1] == (0 if label == "host label" else 1), label
    finally:
        path = project.folder / "original.json"
        path.write_text(json.dumps(original))
        project.pulumi("stack", "import", "-s", STACK, "--file", str(path))
    project.smtps("preview", "-s", STACK, "--expect-no-changes")


# --- 6. a host in any state refreshes, and up --refresh repairs it ------------------------------------------------
def test_a_refresh_of_a_broken_host_works_and_up_refresh_repairs_after_an_interrupted_update(lab: Lab,
                                                                                            project: Project):
    project.smtps("up", "-s", STACK, "--yes")
    lab.sh("mail1", "rm /etc/firewalld/services/smtps.xml && postconf -MX 465/inet")
    refreshed = project.pulumi("refresh", "-s", STACK, "--yes")
    assert "mail1" in text_of(refreshed)
    # An update that fails half-way (the service file written, its check failing): the state still holds the
    # refresh's empty live values.
    with failing_tool(lab, "mail1", "/usr/bin/dbus-send", "*'.FirewallD1.checkPermanentConfig '*"):
        failed = project.smtps("up", "-s", STACK, "--yes", check=False)
        assert failed.returncode != 0 and "firewall-cmd --check-config failed" in text_of(failed)
    # firewalld stopped is reported as found, not a failed refresh.
    with stopped_firewalld(lab, "mail2"):
        project.pulumi("refresh", "-s", STACK, "--yes")
    project.smtps("up", "-s", STACK, "--yes", "--refresh")
    assert project.smtps("drift", "-s", STACK).returncode == 0
    project.smtps("preview", "-s", STACK, "--expect-no-changes")
    assert probe.smtps(host(lab, "mail1")["address"]).state == "tls"


@contextlib.contextmanager
def stopped_firewalld(lab: Lab, name: str):
    from tests.lab.faultkit import daemon_down

    with daemon_down(lab, name, "firewalld"):
        yield


# --- 7. scripts: one run at a time; SIGPIPE cannot skip the undo --------------------------------------------------
def test_a_second_run_on_a_host_waits_for_the_first(lab: Lab, project: Project):
    project.pulumi("destroy", "-s", STACK, "--yes")
    s = settings_for(lab, "mail3")
    script = master_service.MODEL.script("mail3", (s.master, s.tls), Action.APPLY)
    target = host(lab, "mail3")
    with wrapped_tool(lab, "mail3", "/usr/sbin/postconf", "*' -M '*=*", "sleep 3"):
        first = start_script(lab, target, script)
        time.sleep(1)
        second = start_script(lab, target, script)
        out1, err1 = first.communicate(timeout=120)
        out2, err2 = second.communicate(timeout=120)
    assert first.returncode == 0 and "written" in out1, err1
    assert second.returncode == 0 and "up to date" in out2, err2  # it waited, then found the work done
    assert lab.sh("mail3", "ls /etc/postfix/.smtps-work 2>/dev/null || true").stdout.strip() == ""
    project.smtps("up", "-s", STACK, "--yes", "--refresh")


def test_a_failure_after_the_connection_dropped_still_undoes(lab: Lab, project: Project):
    """The SSH session is gone (stdout and stderr closed) when the script fails: it still undoes its change."""
    project.pulumi("destroy", "-s", STACK, "--yes")
    before = snapshot(lab, "mail3")
    s = settings_for(lab, "mail3")
    script = master_service.MODEL.script("mail3", (s.master, s.tls), Action.APPLY)
    # The first `postfix reload` fails (slowly); the undo's own reload then works.
    once = f"{FAULTS}/reload-failed-once"
    lab.sh("mail3", f"rm -f {once}")
    with wrapped_tool(lab, "mail3", "/usr/sbin/postfix", "*' reload '*",
                      f"[ -e {once} ] || {{ : > {once}; sleep 3; echo reload-failed >&2; exit 1; }}"):
        proc = start_script(lab, host(lab, "mail3"), script)
        assert wait_for(lambda: host_pids(lab, "mail3", "sleep\x003"), 30)
        proc.kill()  # the controller's end of the session goes away
        proc.wait(timeout=30)
        wait_gone(lab, "mail3", "# 'master.cf service' on mail3: apply")  # the script ran on, to its end
    assert snapshot(lab, "mail3") == before
    assert lab.sh("mail3", "test ! -e /var/lib/smtps-iredmail", check=False).returncode == 0
    project.smtps("up", "-s", STACK, "--yes")


# --- 9. the deploy key from a file: nothing that reads or decrypts the stack can get it ---------------------------
def test_zz_a_stack_without_the_key_previews_and_converges_with_the_key_from_a_file(lab: Lab, project: Project):
    project.pulumi("destroy", "-s", STACK, "--yes")
    project.run_module("lab", "stack", "-s", "keyfile")
    project.pulumi("config", "rm", "-s", "keyfile", "sshPrivateKey")
    assert "sshPrivateKey" not in (project.folder / "stacks" / "Pulumi.keyfile.yaml").read_text()
    project.smtps("preview", "-s", "keyfile")  # a pull request's preview: no key anywhere
    refused = project.smtps("up", "-s", "keyfile", "--yes", check=False)
    assert refused.returncode != 0
    assert "stack keyfile: no deploy key: store it in the stack with `smtps key -s keyfile" in \
        text_of(refused)
    keyed = Project(project.folder, {**project.env, "SMTPS_SSH_KEY_FILE": lab.inventory["private_key_path"]})
    try:
        keyed.smtps("up", "-s", "keyfile", "--yes")
        assert all(probe.smtps(h["address"]).state == "tls" for h in lab.hosts())
        state = keyed.pulumi("stack", "export", "-s", "keyfile", "--show-secrets").stdout
        key_line = open(lab.inventory["private_key_path"]).read().splitlines()[1]
        assert key_line not in state and "sshPrivateKey" not in state
        assert keyed.smtps("drift", "-s", "keyfile").returncode == 0
    finally:
        keyed.pulumi("destroy", "-s", "keyfile", "--yes", check=False)
