"""Jump hosts and non-root deploy users, end to end with the real engine on a lab in which mail3 and mail4 have no
route from this machine: they are reached only through mail1, the stack's bastion.

Stack `hidden` (root): up, verify from outside through the bastion, a hand edit seen by drift and repaired, destroy.
Stack `sudo` (user deploy, passwordless sudo; mail3 also through the bastion): a whole up and destroy.
Stack `nosudo` (user mailops, no sudo): refused with a message that says root is needed; nothing changes."""

from __future__ import annotations

import errno
import json
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
