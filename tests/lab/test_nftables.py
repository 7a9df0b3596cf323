"""Debian/Ubuntu iRedMail hosts (nftables) in the same stack as firewalld ones, through the real engine: the rule
accepting 465 goes into the live chain and /etc/nftables.conf without loading the file (fail2ban's table and its ban
stay), an iRedMail 1.5 host is left as found, hand edits are seen and repaired, faults leave the host as it was,
a failed check rolls the rule back, and destroy leaves every file byte for byte as iRedMail wrote it."""

from __future__ import annotations

import json
import os
import random
import shlex
import time

import pytest

from lab.render import FILES
from smtps_iredmail.core import master_service, nft_rule, nftables_rule, rollback
from smtps_iredmail.core.templating import Action
from tests.enginekit import Project
from tests.lab.faultkit import failing_tool, kill_remote, start_script, wait_gone
from tests.lab.labkit import TEST_PREFIX, Lab, running_lab
from tests.lab.smtpskit import settings_for, snapshot, ssh_counts
from tests.lab.test_kill_points import KILL_POINTS, run_whole

pytestmark = [pytest.mark.lab, pytest.mark.engine]
STACK = "nft"
CONF = "/etc/nftables.conf"
VARIANTS = "mail1=iredmail-debian,mail2=iredmail-debian-1.5,mail4=iredmail-debian"
BAN = "elements = { 203.0.113.7 }"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory, "nft", "--hosts", "4", "--variants", VARIANTS) as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def project(lab: Lab, tmp_path_factory):
    project = Project.for_lab(tmp_path_factory.mktemp("nft") / "smtps", lab, STACK)
    project.keep_hosts(STACK, ["mail1", "mail2", "mail3"])  # mail4 joins later, for its first converge
    yield project
    project.pulumi("destroy", "-s", STACK, "--yes", check=False)


@pytest.fixture(scope="module")
def found(lab: Lab) -> dict[str, dict[str, str]]:
    """Each host as the lab made it, before this module's first run."""
    return {h["name"]: nft_state(lab, h["name"]) for h in lab.hosts()}


def nft_state(lab: Lab, name: str) -> dict[str, str]:
    """What a run may change on an nftables host (the ruleset without its counters, the file, this tool's state);
    on a firewalld host, its files."""
    if name == "mail3":
        return snapshot(lab, name)
    # Table by table, in name order (a table loaded again, as one test does, is listed last).
    tables = sorted("table " + block for block in lab.sh(name, "nft -s list ruleset").stdout.split("table ")[1:])
    return {"ruleset": "".join(tables), "conf": lab.sh(name, f"cat {CONF}").stdout,
            "state": lab.sh(name, "ls -R /var/lib/smtps-iredmail 2>/dev/null || true").stdout,
            "master.cf": lab.sh(name, "sha256sum /etc/postfix/master.cf").stdout}


def chain(lab: Lab, name: str) -> str:
    return lab.sh(name, "nft -s list chain inet filter input").stdout


def drift_rows(project: Project) -> list[tuple[str, str, str]]:
    result = project.smtps("drift", "-s", STACK, "--json", check=False)
    return sorted((row["host"], row["resource"], row["field"]) for row in json.loads(result.stdout))


def outputs(project: Project) -> dict:
    return json.loads(project.pulumi("stack", "output", "-s", STACK, "--json", "hosts").stdout)


def test_a_mixed_stack_converges_each_host_with_its_own_firewall(lab: Lab, project: Project, found):
    # mail1 and mail3 at the default, auto; mail2 says nftables.
    project.pulumi("config", "set", "-s", STACK, "--path", "hosts[1].firewall", "nftables")
    preview = project.smtps("preview", "-s", STACK)
    assert "mail1: firewall: auto (found at its first apply)" in preview.stdout, preview.stdout
    project.smtps("up", "-s", STACK, "--yes")
    # What auto found, recorded, and in the stack's outputs (and so in every later preview).
    assert {name: host["firewall"] for name, host in outputs(project).items()} == {
        "mail1": "nftables", "mail2": "nftables", "mail3": "firewalld"}
    preview = project.smtps("preview", "-s", STACK)
    assert "mail1: firewall: auto, found nftables" in preview.stdout, preview.stdout
    assert "mail3: firewall: auto, found firewalld" in preview.stdout, preview.stdout
    # mail1 (before 1.5): one rule of ours, live and in the file, right before the chain's final drop.
    lines = [line.strip() for line in chain(lab, "mail1").splitlines()]
    assert lines[lines.index('tcp dport 465 accept comment "smtps-iredmail"') + 1] == "counter drop"
    conf = lab.sh("mail1", f"cat {CONF}").stdout
    assert conf.replace('        tcp dport 465 accept comment "smtps-iredmail"\n', "") == found["mail1"]["conf"]
    # mail2 (iRedMail 1.5): 465 accepted already, by iRedMail's own rule: left exactly as found.
    assert lab.sh("mail2", f"cat {CONF}").stdout == (FILES / "nftables.conf-1.5.0").read_text()
    assert "smtps-iredmail" not in lab.sh("mail2", "nft list ruleset").stdout
    # fail2ban's table and its ban, untouched on both.
    for name in ("mail1", "mail2"):
        assert BAN in lab.sh(name, "nft list table inet f2b-table").stdout
    # mail3 (firewalld) converged as ever.
    assert "smtps" in lab.sh("mail3", "firewall-cmd --zone=iredmail --list-services").stdout
    rows = json.loads(project.smtps("verify", "-s", STACK, "--json").stdout)
    assert all(rows[name]["ok"] for name in ("mail1", "mail2", "mail3")), rows
    # A no-op: no SSH session on any host, no change.
    before = {name: ssh_counts(lab, name) for name in ("mail1", "mail2", "mail3")}
    project.smtps("up", "-s", STACK, "--yes")
    project.smtps("preview", "-s", STACK, "--expect-no-changes")
    assert {name: ssh_counts(lab, name) for name in ("mail1", "mail2", "mail3")} == before
    assert drift_rows(project) == []


def test_a_changed_option_on_an_nftables_host_changes_only_master_cf(lab: Lab, project: Project):
    ruleset = lab.sh("mail1", "nft -s list ruleset").stdout
    project.pulumi("config", "set", "-s", STACK, "--path", "hosts[0].options.syslog_name", "postfix/smtps-debian")
    up = project.smtps("up", "-s", STACK, "--yes")
    assert "mail1-master updated" in up.stdout and "mail1-nftables" not in up.stdout
    assert "465/inet/syslog_name = postfix/smtps-debian" in lab.sh("mail1", "postconf -P 465/inet").stdout
    assert lab.sh("mail1", "nft -s list ruleset").stdout == ruleset
    project.pulumi("config", "rm", "-s", STACK, "--path", "hosts[0].options.syslog_name")
    project.smtps("up", "-s", STACK, "--yes")


DELETE_LIVE = ("h=$(nft -a list chain inet filter input | sed -n 's/.*smtps-iredmail.*# handle //p'); "
               "nft delete rule inet filter input handle $h")
DELETE_LINE = f"sed -i '/smtps-iredmail/d' {CONF}"


@pytest.mark.parametrize(("edit", "fields"), [
    (DELETE_LIVE, ["runtime"]), (DELETE_LINE, ["persistent"]), (f"{DELETE_LIVE}; {DELETE_LINE}",
                                                                ["persistent", "runtime"]),
], ids=["live rule deleted", "file line deleted", "both"])
def test_a_hand_edit_of_the_rule_is_seen_and_repaired(lab: Lab, project: Project, edit, fields):
    lab.sh("mail1", edit)
    assert drift_rows(project) == [("mail1", "nftables rule", field) for field in fields]
    seen = project.smtps("refresh", "-s", STACK, "--preview-only", "--diff").stdout
    assert all(f"~ {field}" in seen for field in fields), seen
    project.smtps("up", "-s", STACK, "--yes", "--refresh")
    assert drift_rows(project) == []
    assert chain(lab, "mail1").count("smtps-iredmail") == 1
    assert lab.sh("mail1", f"grep -c smtps-iredmail {CONF}").stdout.strip() == "1"
    assert BAN in lab.sh("mail1", "nft list table inet f2b-table").stdout


def test_the_file_is_read_as_nft_reads_it_on_the_host(lab: Lab, project: Project):
    """A `{` in a string of input and a `}` in one of forward: the rule still goes into input, and nft takes the file.
    An include: the run refuses, naming the file and line, and changes nothing. The host then goes back as it was."""
    lab.sh("mail1", "tar -C / -cf /root/nft-case.tar etc/nftables.conf var/lib/smtps-iredmail")
    ruleset = lab.sh("mail1", "nft -s list ruleset").stdout
    try:
        text = lab.sh("mail1", f"cat {CONF}").stdout.replace(f"        {nft_rule.RULE}\n", "")
        text = text.replace("        tcp dport 22 accept\n", '        tcp dport 22 accept comment "{"\n').replace(
            "        policy drop;\n", '        policy drop;\n        ct state invalid drop comment "}"\n')
        lab.sh("mail1", f"printf %s {shlex.quote(text)} > {CONF}")
        assert drift_rows(project) == [("mail1", "nftables rule", "persistent")]
        project.smtps("up", "-s", STACK, "--yes", "--refresh")
        at = text.index("        counter drop\n")
        assert lab.sh("mail1", f"cat {CONF}").stdout == text[:at] + f"        {nft_rule.RULE}\n" + text[at:]
        lab.sh("mail1", f"nft -c -f {CONF}")
        assert drift_rows(project) == [] and lab.sh("mail1", "nft -s list ruleset").stdout == ruleset
        # Whatever an include loads could add to the chain or take it away: refused, before any change.
        lab.sh("mail1", f"{DELETE_LINE}; echo 'include \"/etc/nftables.d/*.nft\"' >> {CONF}")
        before, lines = nft_state(lab, "mail1"), lab.sh("mail1", f"wc -l < {CONF}").stdout.strip()
        up = project.smtps("up", "-s", STACK, "--yes", "--refresh", check=False)
        assert up.returncode != 0 and f"{CONF} line {lines}: an include" in up.stderr, up.stderr
        assert nft_state(lab, "mail1") == before
        # drift says why the file is not read, by file and line (not "cannot be read").
        rows = json.loads(project.smtps("drift", "-s", STACK, "--json", check=False).stdout)
        live = {row["field"]: row["live"] for row in rows if row["host"] == "mail1"}
        assert str(live.get("nftables", "")).startswith(f"not read: {CONF} line {lines}: an include"), rows
    finally:
        lab.sh("mail1", "rm -rf /var/lib/smtps-iredmail && tar -C / -xf /root/nft-case.tar && rm /root/nft-case.tar")
    assert drift_rows(project) == []


def test_a_chain_that_is_not_loaded_is_reported_and_the_file_is_never_loaded(lab: Lab, project: Project):
    # What stopping the nftables service would leave of iRedMail's table (fail2ban's stays, as its own service).
    lab.sh("mail1", "nft delete table inet filter")
    before = lab.sh("mail1", f"cat {CONF}").stdout
    rows = json.loads(project.smtps("drift", "-s", STACK, "--json", check=False).stdout)
    row = next(r for r in rows if r["field"] == "nftables")
    assert row["live"] == "chain missing" and "never loads /etc/nftables.conf" in row["note"], rows
    up = project.smtps("up", "-s", STACK, "--yes", "--refresh", check=False)
    assert up.returncode != 0 and "mail1: nftables rule: update: there is no nftables chain inet filter input in " \
        "the live ruleset: this tool never loads /etc/nftables.conf" in up.stderr, up.stderr
    assert lab.sh("mail1", f"cat {CONF}").stdout == before
    assert BAN in lab.sh("mail1", "nft list table inet f2b-table").stdout
    lab.sh("mail1", f"sed '/^flush ruleset/d' {CONF} | nft -f -")  # the table back, as the boot would load it
    project.smtps("up", "-s", STACK, "--yes", "--refresh")
    assert drift_rows(project) == []


def test_nft_failing_mid_apply_leaves_the_host_as_it_was(lab: Lab, project: Project):
    lab.sh("mail1", f"{DELETE_LIVE}; {DELETE_LINE}")
    before = nft_state(lab, "mail1")
    with failing_tool(lab, "mail1", "/usr/sbin/nft", "*insert*|*' add rule '*"):
        up = project.smtps("up", "-s", STACK, "--yes", "--refresh", check=False)
    assert up.returncode != 0 and "mail1: nftables rule: update: cannot add the rule to the live nftables chain" \
        in up.stderr and "nft: fault injected" in up.stderr, up.stderr
    assert nft_state(lab, "mail1") == before  # the file edit before the failure is undone
    project.smtps("up", "-s", STACK, "--yes", "--refresh")
    assert drift_rows(project) == []


def test_auto_refuses_a_host_where_it_finds_neither_firewall_before_any_change(lab: Lab, project: Project, found):
    """A Debian-style host without /etc/nftables.conf, where firewall-cmd is installed but firewalld is not running
    (as on every lab host that is not a firewalld one): auto does not guess."""
    project.run_module("lab", "stack", "-s", STACK)  # all four hosts now, each at auto
    lab.sh("mail4", f"mv {CONF} {CONF}.away")
    try:
        up = project.smtps("up", "-s", STACK, "--yes", check=False)
        assert up.returncode != 0 and ("mail4: master.cf service: create: firewall: auto: firewalld is installed but "
                                       "not running, and there is no /etc/nftables.conf") in up.stderr \
            and "nothing was changed" in up.stderr, up.stderr
        assert ("mail4", "firewall", "firewall") in drift_rows(project)
    finally:
        lab.sh("mail4", f"mv {CONF}.away {CONF}")
    assert nft_state(lab, "mail4") == found["mail4"]


def test_a_new_nftables_host_that_fails_its_check_is_rolled_back_as_found(lab: Lab, project: Project, found):
    project.run_module("lab", "stack", "-s", STACK)  # all four hosts now
    project.pulumi("config", "set", "-s", STACK, "--path", "hosts[3].tlsName", "mail9.lab")
    project.pulumi("config", "set", "-s", STACK, "--path", "hosts[3].caBundle", "/etc/ssl/certs/ca-certificates.crt")
    up = project.smtps("up", "-s", STACK, "--yes", check=False)
    assert up.returncode != 0 and "mail4: verification: create: verification failed:" in up.stderr \
        and "rolled back" in up.stderr, up.stderr
    assert nft_state(lab, "mail4") == found["mail4"]
    for key in ("tlsName", "caBundle"):
        project.pulumi("config", "rm", "-s", STACK, "--path", f"hosts[3].{key}")
    project.smtps("up", "-s", STACK, "--yes")
    assert chain(lab, "mail4").count("smtps-iredmail") == 1


def test_remove_refuses_when_this_connection_came_in_on_465_or_cannot_tell(lab: Lab, project: Project):
    """The rule accepts 465 only: taking it out can cut only a connection on 465. Judged on this connection."""
    from smtps_iredmail.core import nftables_rule
    from smtps_iredmail.core.nftables_rule import NftablesSettings
    from smtps_iredmail.core.templating import Action

    remove = nftables_rule.MODEL.script("mail1", NftablesSettings("inet", "filter", "input"), Action.REMOVE)
    before = nft_state(lab, "mail1")
    for env, words in (("", "SSH_CONNECTION is not set"),
                       (f"SSH_CONNECTION='{TEST_PREFIX}1 40000 {TEST_PREFIX}2 465' ", "came in on port 465")):
        refused = lab.sh("mail1", f"{env}sh -c {shlex.quote(remove)}", check=False)
        assert refused.returncode != 0 and words in refused.stderr, refused.stderr
        assert nft_state(lab, "mail1") == before


NFT_INSPECT = f"""sha256sum < {CONF} | cut -c1-16
sha256sum < /etc/postfix/master.cf | cut -c1-16
nft -c -f {CONF} >/dev/null 2>&1 && echo "nft ok" || echo "nft FAILED"
postfix check >/dev/null 2>&1 && echo "postfix ok" || echo "postfix FAILED"
nft list chain inet filter input | grep -c smtps-iredmail || true
nft list table inet f2b-table | grep -c '{BAN}' || true
ls -d {CONF}.smtps-tmp /etc/postfix/.smtps-work /var/lib/smtps-iredmail/*.new /var/lib/smtps-iredmail/*.gone \
    2>/dev/null || true
"""


def test_interrupted_nftables_runs_leave_old_or_new_and_the_next_run_converges(lab: Lab, project: Project):
    """Kill points on an nftables host: the remote script killed, or its session dropped, at random moments."""
    rng = random.Random(int(os.environ.get("SMTPS_KILL_SEED", "465")))
    host = next(h for h in lab.hosts() if h["name"] == "mail1")
    settings = settings_for(lab, "mail1", firewall="nftables")

    def steps(action: Action) -> list[str]:
        snapshot_id = rollback.new_snapshot_id()
        both = [master_service.MODEL.script("mail1", (settings.master, settings.tls), action, None, snapshot_id),
                nftables_rule.MODEL.script("mail1", settings.nftables, action, None, snapshot_id)]
        return both if action is Action.APPLY else both[::-1]

    def inspect() -> list[str]:
        return lab.sh("mail1", NFT_INSPECT).stdout.split()

    for script in steps(Action.REMOVE):
        run_whole(lab, host, script)
    pristine = inspect()
    for script in steps(Action.APPLY):  # converged from here, as the scripts write it (postconf's formatting)
        run_whole(lab, host, script)
    converged = inspect()
    for script in steps(Action.REMOVE):
        run_whole(lab, host, script)
    # digests of the file and master.cf, "nft ok", "postfix ok", this tool's rules live, the ban, leftovers
    assert pristine[6] == "0" and converged[6] == "1" and pristine[7] == converged[7] == "1" and len(pristine) == 8
    state = Action.REMOVE
    for point in range(max(4, KILL_POINTS // 2)):
        action = Action.APPLY if state is Action.REMOVE else Action.REMOVE
        scripts = steps(action)
        victim = rng.randrange(len(scripts))
        for script in scripts[:victim]:
            run_whole(lab, host, script)
        marker = scripts[victim].splitlines()[1][:40]
        proc = start_script(lab, host, scripts[victim])
        time.sleep(rng.uniform(0.05, 0.8))
        if proc.poll() is None:
            if rng.random() < 0.5:
                proc.kill()
            else:
                kill_remote(lab, "mail1", marker)
        proc.wait(timeout=60)
        wait_gone(lab, "mail1", marker)
        seen, where = inspect(), f"kill point {point} ({action.value})"
        assert seen[0] in (pristine[0], converged[0]) and seen[1] in (pristine[1], converged[1]), where
        assert seen[2:6] == ["nft", "ok", "postfix", "ok"], f"{where}: {seen}"
        assert seen[6] in ("0", "1") and seen[7] == "1", f"{where}: {seen}"  # never two rules; the ban stays
        for script in scripts[victim:]:
            run_whole(lab, host, script)
        assert inspect() == (converged if action is Action.APPLY else pristine), where
        state = action
    if state is Action.REMOVE:
        for script in steps(Action.APPLY):
            run_whole(lab, host, script)
    project.smtps("preview", "-s", STACK, "--refresh", "--expect-no-changes")


def test_destroy_leaves_every_host_as_iredmail_wrote_it(lab: Lab, project: Project, found):
    project.smtps("destroy", "-s", STACK, "--yes")
    assert lab.sh("mail1", f"cat {CONF}").stdout == (FILES / "nftables.conf-pre-1.5").read_text()
    assert lab.sh("mail2", f"cat {CONF}").stdout == (FILES / "nftables.conf-1.5.0").read_text()
    for name in ("mail1", "mail2", "mail4"):
        assert nft_state(lab, name) == found[name], name
        assert BAN in lab.sh(name, "nft list table inet f2b-table").stdout
    assert snapshot(lab, "mail3") == found["mail3"]


def test_a_host_rebuilt_with_the_other_firewall_is_found_again(lab: Lab, project: Project):
    """mail3, a firewalld host, is rebuilt at the same address as a Debian-style one (a new host key): auto finds
    nftables on the new machine. Its firewalld kinds go idle without touching it, the rule goes in, and destroy then
    leaves the new machine as iRedMail wrote it."""
    project.smtps("up", "-s", STACK, "--yes")
    assert outputs(project)["mail3"]["firewall"] == "firewalld"
    lab.cli("down")
    lab.cli("up", "--hosts", "4", "--variants", VARIANTS + ",mail3=iredmail-debian")
    project.run_module("lab", "stack", "-s", STACK)  # the new host keys
    project.pulumi("config", "set", "-s", STACK, "--path", "hosts[1].firewall", "nftables")
    fresh = nft_state(lab, "mail3")
    up = project.smtps("up", "-s", STACK, "--yes")
    assert {name: host["firewall"] for name, host in outputs(project).items()} == {
        "mail1": "nftables", "mail2": "nftables", "mail3": "nftables", "mail4": "nftables"}, up.stdout
    assert chain(lab, "mail3").count("smtps-iredmail") == 1
    rows = json.loads(project.smtps("verify", "-s", STACK, "--json").stdout)
    assert all(row["ok"] for row in rows.values()), rows
    project.smtps("preview", "-s", STACK, "--expect-no-changes")
    assert drift_rows(project) == []
    project.smtps("destroy", "-s", STACK, "--yes")
    assert nft_state(lab, "mail3") == fresh
    assert lab.sh("mail3", f"cat {CONF}").stdout == (FILES / "nftables.conf-pre-1.5").read_text()
