"""Jump hosts and non-root deploy users, end to end with the real engine on a lab in which mail3 and mail4 have no
route from this machine: they are reached only through mail1, the stack's bastion.

Stack `hidden` (root): up, verify from outside through the bastion, a hand edit seen by drift and repaired, destroy.
Stack `sudo` (user deploy, passwordless sudo; mail3 also through the bastion): a whole up and destroy.
Stack `nosudo` (user mailops, no sudo): refused with a message that says root is needed; nothing changes.
Every host has Python modules planted in root's and deploy's login folders and user sites: no run imports one."""

from __future__ import annotations

import errno
import json
import shlex
import socket

import pytest
import yaml

from tests.enginekit import Project
from tests.lab.labkit import Lab, running_lab
from tests.lab.smtpskit import as_found_except_edited_zone, snapshot, zone_listing

pytestmark = [pytest.mark.lab, pytest.mark.engine]
HIDDEN = ("mail3", "mail4")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory, "bastion", "--hosts", "4", "--variants", "mail4=iredmail-1.5",
                     "--behind", "mail3=mail1,mail4=mail1") as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def project(lab: Lab, tmp_path_factory):
    project = Project.for_lab(tmp_path_factory.mktemp("bastion") / "smtps", lab, "hidden", "sudo", "nosudo")
    set_defaults(project, "sudo", {"user": "deploy"})
    project.keep_hosts("sudo", ["mail1", "mail2", "mail3"])
    set_defaults(project, "nosudo", {"user": "mailops"})
    project.keep_hosts("nosudo", ["mail2"])
    yield project
    for stack in ("hidden", "sudo", "nosudo"):
        project.pulumi("destroy", "-s", stack, "--yes", check=False)


# Modules a hostile (or careless) login folder may hold, each noting in the host's PLANT_LOG that it was imported,
# then handing over to the real module, so a run that imports one goes on and the test names what was imported.
PLANT_LOG = "/run/smtps-plant.log"
# The tests' own commands on the hosts (lab.sh, with this process's HOME=/root) carry HARNESS and are not noted.
HARNESS = "SMTPS_TEST_PLANT_HARNESS"
PLANT = f"""import os, sys
if not os.environ.get({HARNESS!r}):
    with open({PLANT_LOG!r}, "a") as log:
        log.write(__file__ + " " + " ".join(sys.argv) + "\\n")
if __name__ in ("json", "os"):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    del sys.modules[__name__]
    sys.modules[__name__] = __import__(__name__)
"""
PLANTED = ("json.py", "os.py", "sitecustomize.py", "usercustomize.py")
# A .pth line that starts with `import` is run.
PTH = f"import os; os.environ.get({HARNESS!r}) or open({PLANT_LOG!r}, 'a').write('pth\\n')"
# Each login's folder (root's home; the deploy user's home is /tmp, which sudo keeps as the current folder) and its
# user site folder, which Python reads at start unless told not to.
HOMES = {"root": ("/root", "0:0"), "deploy": ("/tmp", "1990:1990")}
PYTHON = "PATH=/usr/local/bin:/usr/bin python3"  # python3 as the scripts find it


@pytest.fixture(scope="module", autouse=True)
def planted(lab: Lab):
    """The traps on every host, and the proof they work: Python started plainly in those folders imports them."""
    harness = pytest.MonkeyPatch()
    for host in lab.hosts():
        name = host["name"]
        for home, owner in HOMES.values():
            site = lab.sh(name, f"HOME={home} {PYTHON} -c 'import site; print(site.getusersitepackages())'").stdout
            site = site.strip()
            files = [f"{home}/{module}" for module in PLANTED] + [f"{site}/usercustomize.py"]
            lab.sh(name, f"mkdir -p {site} && for f in {' '.join(files)}; do printf '%s' {shlex.quote(PLANT)} > $f; "
                         f"done && printf '%s\\n' {shlex.quote(PTH)} > {site}/smtps-plant.pth && "
                         f"chown -R {owner} {home}/.local {' '.join(files)}")
        control = lab.sh(name, f"cd /tmp && HOME=/root {PYTHON} -c 'import json; print(json.dumps(1))' && "
                               f"cat {PLANT_LOG} && rm {PLANT_LOG}").stdout.splitlines()
        assert control[0] == "1" and "pth" in control, control
        assert any(line.startswith("/tmp/json.py ") for line in control), control
        assert any(line.startswith(("/root/.local/", "/tmp/.local/")) for line in control), control
    # And through sshd, as the scripts used to be run (in the login's folder, with its environment): imported.
    mail2 = next(h for h in lab.hosts() if h["name"] == "mail2")
    lab.ssh(mail2, "exec /bin/sh -c \"echo 'import json' | python3 -\"")
    seen = lab.sh("mail2", f"cat {PLANT_LOG} && rm {PLANT_LOG}").stdout.splitlines()
    assert any(line.startswith("/root/json.py ") for line in seen) and "pth" in seen, seen
    harness.setenv(HARNESS, "1")
    yield
    harness.undo()
    for host in lab.hosts():
        lab.sh(host["name"], f"rm -rf /root/.local /tmp/.local {PLANT_LOG} " +
               " ".join(f"{home}/{module}" for home, _ in HOMES.values() for module in PLANTED), check=False)


@pytest.fixture(scope="module")
def before(lab: Lab, zones_before):  # zones_before: taken at the same moment, before any change
    return {h["name"]: snapshot(lab, h["name"]) for h in lab.hosts()}


@pytest.fixture(scope="module")
def zones_before(lab: Lab):
    return {h["name"]: zone_listing(lab, h["name"]) for h in lab.hosts()}


def set_defaults(project: Project, stack: str, defaults: dict) -> None:
    path = project.folder / "stacks" / f"Pulumi.{stack}.yaml"
    data = yaml.safe_load(path.read_text())
    data["config"]["smtps-iredmail:defaults"] = defaults
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def sshd_log(lab: Lab, name: str) -> str:
    return lab.sh(name, "cat /run/lab/log/sshd.log").stdout


def bastion_side(lab: Lab, name: str) -> str:
    """The address mail1 uses on the link to a host behind it: the only place that host's SSH can come from."""
    host = next(h for h in lab.hosts() if h["name"] == name)
    return host["address"].rsplit(".", 1)[0] + "." + str(int(host["address"].rsplit(".", 1)[1]) - 1)


def test_the_hidden_hosts_have_no_route_from_this_machine(lab: Lab, project: Project, before):
    for name in HIDDEN:
        host = next(h for h in lab.hosts() if h["name"] == name)
        assert host["jump"] == "mail1"
        with pytest.raises(OSError) as caught:
            socket.create_connection((host["address"], 22), timeout=3)
        assert caught.value.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH), caught.value
    stack = yaml.safe_load((project.folder / "stacks" / "Pulumi.hidden.yaml").read_text())["config"]
    assert [b["name"] for b in stack["smtps-iredmail:bastions"]] == ["mail1"]
    # The lab sees them from inside the bastion: up, sshd answering, 465 still closed.
    status = {row["name"]: row for row in json.loads(lab.cli("status", "--json").stdout)}
    for name in HIDDEN:
        assert status[name]["sshd"] and status[name]["firewalld"] and status[name]["postfix"], status[name]
    assert status["mail3"]["smtps"]["state"] == "rejected", status["mail3"]


def test_up_through_the_bastion_converges_and_verifies_the_hidden_hosts(lab: Lab, project: Project, before):
    result = project.smtps("up", "-s", "hidden", "--yes")
    assert "error" not in result.stderr.lower(), result.stderr
    outputs = json.loads(project.pulumi("stack", "output", "-s", "hidden", "--json").stdout)["hosts"]
    assert {name: o["tlsVersion"] for name, o in outputs.items()} == dict.fromkeys(
        ("mail1", "mail2", "mail3", "mail4"), "TLSv1.3")
    for name in HIDDEN:
        # Every SSH connection the hidden host saw came from the bastion's side of its link.
        accepted = [line for line in sshd_log(lab, name).splitlines() if "Accepted publickey for root" in line]
        assert accepted and all(f"from {bastion_side(lab, name)} " in line for line in accepted), accepted
    # The check from outside, on demand: through the bastion for mail3 and mail4, directly for the others.
    table = json.loads(project.smtps("verify", "-s", "hidden", "--json").stdout)
    assert {name: row["ok"] for name, row in table.items()} == dict.fromkeys(outputs, True), table
    assert project.smtps("preview", "-s", "hidden", "--expect-no-changes").returncode == 0


def test_drift_on_a_hidden_host_is_seen_and_repaired_through_the_bastion(lab: Lab, project: Project):
    lab.sh("mail3", "firewall-cmd -q --permanent --zone=iredmail --remove-service=smtps && firewall-cmd -q --reload")
    drift = project.smtps("drift", "-s", "hidden", "--json", check=False)
    assert drift.returncode == 1, drift.stdout + drift.stderr
    rows = {(r["host"], r["resource"], r["field"]) for r in json.loads(drift.stdout)}
    assert rows and {host for host, _, _ in rows} == {"mail3"}, rows
    project.smtps("up", "-s", "hidden", "--yes", "--refresh")
    assert project.smtps("drift", "-s", "hidden").returncode == 0


def test_destroy_through_the_bastion_leaves_every_host_as_it_was(lab: Lab, project: Project, before, zones_before):
    project.pulumi("destroy", "-s", "hidden", "--yes")
    for name in ("mail1", "mail2", "mail4"):
        assert snapshot(lab, name) == before[name], name
    # mail3's zone was edited by hand through firewalld (the drift test): that edit stays.
    as_found_except_edited_zone(lab, "mail3", before["mail3"], zones_before["mail3"])


def test_a_deploy_user_with_sudo_runs_a_whole_up_and_destroy(lab: Lab, project: Project):
    before = {h["name"]: snapshot(lab, h["name"]) for h in lab.hosts()}
    roots_before = {name: sshd_log(lab, name).count("Accepted publickey for root") for name in ("mail1", "mail2")}
    project.smtps("up", "-s", "sudo", "--yes")
    outputs = json.loads(project.pulumi("stack", "output", "-s", "sudo", "--json").stdout)["hosts"]
    assert {name: o["tlsVersion"] for name, o in outputs.items()} == dict.fromkeys(
        ("mail1", "mail2", "mail3"), "TLSv1.3")
    for name in ("mail1", "mail2", "mail3"):
        log = sshd_log(lab, name)
        assert "Accepted publickey for deploy" in log
        # The scripts ran as root through sudo: master.cf is root's, as before.
        assert lab.sh(name, "stat -c %U /etc/postfix/master.cf").stdout.strip() == "root"
    # No root login on the mail hosts themselves (mail1's bastion connection for mail3 is the stack's own
    # bastion entry, user root, and is counted apart: it opens channels, never sessions).
    assert sshd_log(lab, "mail2").count("Accepted publickey for root") == roots_before["mail2"]
    project.pulumi("destroy", "-s", "sudo", "--yes")
    assert {h["name"]: snapshot(lab, h["name"]) for h in lab.hosts()} == before


def test_a_deploy_user_without_sudo_is_told_root_is_needed_and_nothing_changes(lab: Lab, project: Project,
                                                                               before):
    result = project.smtps("up", "-s", "nosudo", "--yes", check=False)
    text = result.stdout + result.stderr
    assert result.returncode == 1
    assert "mail2 (mailops@" in text and "mailops cannot become root with `sudo -n` (a password is required)" in text
    assert "Root is needed to edit master.cf and firewalld's files" in text, text
    assert snapshot(lab, "mail2") == before["mail2"]


def test_no_host_program_imported_anything_from_a_login_folder(lab: Lab, project: Project):
    """Converge, drift and destroy above ran as root (stack hidden) and as deploy through sudo (stack sudo), with
    json.py, os.py, sitecustomize.py and usercustomize.py in both logins' folders and user sites: none was imported."""
    for host in lab.hosts():
        name = host["name"]
        assert "Accepted publickey for root" in sshd_log(lab, name)
        imported = lab.sh(name, f"cat {PLANT_LOG} 2>/dev/null || true").stdout
        assert imported == "", f"{name} imported: {imported}"
    assert all("Accepted publickey for deploy" in sshd_log(lab, name) for name in ("mail1", "mail2", "mail3"))
