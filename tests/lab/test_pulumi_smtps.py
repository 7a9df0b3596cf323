"""The product, end to end: `smtps` and plain `pulumi` with the real engine against three lab hosts (mail1
and mail2 like iRedMail 1.4, mail3 like iRedMail 1.5). The tests run in order on one stack, as an operator would:
up, a no-op, a changed option, a hand edit, a bad cert path, destroy. Each checks the hosts themselves."""

from __future__ import annotations

import json
import re
import socket

import pytest
import yaml

from lab import probe
from smtps_iredmail.core import verify
from smtps_iredmail.host import provider_slot
from tests.enginekit import Project
from tests.lab.labkit import Lab, running_lab
from tests.lab.smtpskit import (
    as_found_except_edited_zone,
    mark_runtime,
    postfix_reloads,
    runtime_mark_survived,
    snapshot,
    ssh_counts,
    submit_on_465,
    wait_delivered,
    zone_listing,
)

pytestmark = [pytest.mark.lab, pytest.mark.engine]
STACK = "labtest"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory, "pulumi", "--hosts", "3", "--variants", "mail3=iredmail-1.5") as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def project(lab: Lab, tmp_path_factory):
    project = Project.for_lab(tmp_path_factory.mktemp("project") / "smtps", lab, STACK)
    yield project
    project.pulumi("cancel", "-s", STACK, "--yes", check=False)
    project.pulumi("destroy", "-s", STACK, "--yes", check=False)


@pytest.fixture(scope="module")
def before(lab: Lab, project, zones_before):  # zones_before: taken at the same moment, before any change
    return {h["name"]: snapshot(lab, h["name"]) for h in lab.hosts()}


@pytest.fixture(scope="module")
def zones_before(lab: Lab, project):
    return {h["name"]: zone_listing(lab, h["name"]) for h in lab.hosts()}


def said(project: Project, result) -> str:
    text = result.stdout + result.stderr
    project.transcript.append(text)
    return text


def test_up_converges_every_host_with_tls_and_auth_on_465(lab: Lab, project: Project, before):
    counts = {h["name"]: ssh_counts(lab, h["name"]) for h in lab.hosts()}
    said(project, project.smtps("up", "-s", STACK, "--yes"))
    for host in lab.hosts():
        seen = verify.verify(host["address"])
        assert seen.ok and seen.tls_version in ("TLSv1.2", "TLSv1.3") and "PLAIN" in seen.auth.split(), seen
        # One pooled connection per host with one session per resource (3), plus one fresh login (its own
        # connection and session) that confirms the firewalld reload.
        connections, sessions = ssh_counts(lab, host["name"])
        assert connections - counts[host["name"]][0] == 2
        assert sessions - counts[host["name"]][1] <= 4
    outputs = json.loads(project.pulumi("stack", "output", "-s", STACK, "--json", "hosts").stdout)
    assert sorted(outputs) == ["mail1", "mail2", "mail3"]
    assert outputs["mail1"]["certSubject"] == "CN=mail1.lab" and outputs["mail1"]["tlsVersion"].startswith("TLSv1")
    assert outputs["mail2"]["auth"] == "PLAIN LOGIN" and outputs["mail3"]["certNotAfter"].endswith("GMT")
    # The 1.5 host already had iRedMail's stanza and the raw port (existingPortPolicy keep): master.cf and the zone
    # stay as found and Postfix is not reloaded; only the service file is written.
    after = snapshot(lab, "mail3")
    assert after.pop("firewalld/services/smtps.xml") and after == before["mail3"]
    assert postfix_reloads(lab, "mail3") == 0


def test_mail_submitted_with_auth_on_465_reaches_the_content_filter_hop(lab: Lab, project: Project):
    for host in lab.hosts():
        marker = submit_on_465(lab, host["address"])
        assert wait_delivered(lab, host["name"], marker)
        assert lab.sh(host["name"], f"grep -l {marker} /var/lib/amavis-standin/*-10026.eml").stdout.strip()


def test_a_second_up_changes_nothing_reloads_nothing_and_opens_no_ssh_session(lab: Lab, project: Project):
    said(project, project.smtps("preview", "-s", STACK, "--expect-no-changes"))
    states = {}
    for host in lab.hosts():
        mark_runtime(lab, host["name"])
        states[host["name"]] = (snapshot(lab, host["name"]), postfix_reloads(lab, host["name"]),
                                ssh_counts(lab, host["name"]))
    up = said(project, project.smtps("up", "-s", STACK, "--yes"))
    # 3 hosts: 4 kinds each (firewall: auto declares the nftables rule too, idle on firewalld hosts), the check, the
    # component, plus the providers the hosts share (one per slot in use) and the stack.
    hosts = [host["name"] for host in lab.hosts()]
    resources = len(hosts) * 6 + len({provider_slot(name) for name in hosts}) + 1
    assert re.search(rf"\b{resources} unchanged", up) and "updated" not in up and "created" not in up
    for host in lab.hosts():
        name = host["name"]
        assert (snapshot(lab, name), postfix_reloads(lab, name), ssh_counts(lab, name)) == states[name]
        assert runtime_mark_survived(lab, name), f"{name}: firewalld was reloaded"
        lab.sh(name, "firewall-cmd --zone=iredmail --remove-icmp-block=timestamp-request >/dev/null")


def test_one_changed_option_shows_in_the_diff_and_converges_in_place(lab: Lab, project: Project):
    project.pulumi("config", "set", "-s", STACK, "--path", "defaults.options.syslog_name", "postfix/submissions")
    diff = said(project, project.smtps("preview", "-s", STACK, "--diff"))
    assert '~ syslog_name              : "postfix/smtps" => "postfix/submissions"' in diff, diff
    said(project, project.smtps("up", "-s", STACK, "--yes"))
    for host in lab.hosts():
        entry = lab.sh(host["name"], "postconf -P 465/inet").stdout
        assert "465/inet/syslog_name = postfix/submissions" in entry
        assert "465/inet/smtpd_tls_wrappermode = yes" in entry
        assert verify.verify(host["address"]).ok


def test_hand_edits_show_in_refresh_and_drift_and_up_refresh_repairs_them(lab: Lab, project: Project):
    lab.sh("mail1", "postconf -MX 465/inet && postfix reload >/dev/null 2>&1 && "
                    "firewall-cmd --permanent --zone=iredmail --remove-service=smtps >/dev/null && "
                    "firewall-cmd --zone=iredmail --remove-service=smtps >/dev/null")
    refresh = said(project, project.pulumi("refresh", "-s", STACK, "--preview-only", "--diff"))
    # Pulumi pads each name to the longest input's: match the values, whatever the padding.
    assert re.search(r'- serviceKey *: "465"', refresh) and re.search(r"~ permanent *: true => false", refresh)
    assert re.search(r"~ runtime *: true => false", refresh)
    drift = project.smtps("drift", "-s", STACK, "--json", check=False)
    assert drift.returncode == 1
    rows = {(r["host"], r["resource"], r["field"]) for r in json.loads(drift.stdout)}
    # The same fields as the refresh: the entry's key, columns and options gone, both layers of the zone.
    assert {("mail1", "master.cf service", "serviceKey"), ("mail1", "master.cf service", "chroot"),
            ("mail1", "master.cf service", "options.smtpd_tls_wrappermode"), ("mail1", "zone membership", "permanent"),
            ("mail1", "zone membership", "runtime")} <= rows
    assert {host for host, _, _ in rows} == {"mail1"}
    table = project.smtps("drift", "-s", STACK, check=False)
    assert table.returncode == 1 and "mail1" in table.stdout
    assert f"smtps up -s {STACK} --refresh" in table.stdout
    said(project, project.smtps("up", "-s", STACK, "--yes", "--refresh"))
    assert project.smtps("drift", "-s", STACK).returncode == 0
    assert verify.verify(lab.hosts()[0]["address"]).ok


def test_a_wrong_cert_path_fails_that_host_only_and_leaves_it_serving(lab: Lab, project: Project):
    mail2 = lab.hosts()[1]
    master_before = snapshot(lab, "mail2")["postfix/master.cf"]
    project.pulumi("config", "set", "-s", STACK, "--path", "hosts[1].tlsCert", "/etc/pki/tls/certs/missing.crt")
    project.pulumi("config", "set", "-s", STACK, "--path", "defaults.options.syslog_name", "postfix/smtps")
    up = project.smtps("up", "-s", STACK, "--yes", check=False)
    said(project, up)
    assert up.returncode != 0
    assert "mail2: TLS certificate /etc/pki/tls/certs/missing.crt does not exist" in up.stdout + up.stderr
    assert snapshot(lab, "mail2")["postfix/master.cf"] == master_before
    for port in (25, 587):
        with socket.create_connection((mail2["address"], port), timeout=5) as conn:
            assert conn.recv(100).startswith(b"220 ")
    # The others converged the option change.
    for name in ("mail1", "mail3"):
        assert "465/inet/syslog_name = postfix/smtps" in lab.sh(name, "postconf -P 465/inet").stdout
    project.pulumi("config", "rm", "-s", STACK, "--path", "hosts[1].tlsCert")
    said(project, project.smtps("up", "-s", STACK, "--yes"))
    assert "465/inet/syslog_name = postfix/smtps" in lab.sh("mail2", "postconf -P 465/inet").stdout


def test_a_host_whose_key_is_not_the_pinned_one_is_refused_before_anything_runs(lab: Lab, project: Project):
    mail1, mail2 = lab.hosts()[:2]
    project.run_module("lab", "stack", "-s", "badkey")
    path = project.folder / "stacks" / "Pulumi.badkey.yaml"
    stack_file = yaml.safe_load(path.read_text())
    # mail1's address, pinned to mail2's host key.
    stack_file["config"]["smtps-iredmail:hosts"] = [
        {"name": "mail1", "address": mail1["address"], "hostKey": mail2["host_key"]}]
    path.write_text(yaml.safe_dump(stack_file))
    sessions = ssh_counts(lab, "mail1")[1]
    up = project.smtps("up", "-s", "badkey", "--yes", check=False)
    said(project, up)
    assert up.returncode != 0
    assert re.search(r"mail1 \(root@[0-9.]+:22\): host key ssh-ed25519 \S+ is not the pinned hostKey \S+: "
                     r"refused, nothing was run", up.stdout), up.stdout
    assert ssh_counts(lab, "mail1")[1] == sessions
    project.pulumi("destroy", "-s", "badkey", "--yes")
    project.pulumi("stack", "rm", "-s", "badkey", "--yes")


def test_verbose_up_preview_and_refresh_log_without_the_key(lab: Lab, project: Project):
    # Verbose to stderr through the front end, and to Pulumi's log files (TMPDIR is in the project) for the rest.
    said(project, project.smtps("up", "-s", STACK, "--yes", "-v", "9"))
    said(project, project.smtps("preview", "-s", STACK, "--diff", "-v", "9"))
    said(project, project.pulumi("refresh", "-s", STACK, "--yes", "-v=9", "--logflow"))
    said(project, project.pulumi("refresh", "-s", STACK, "--yes", "-v=9", "--logtostderr", "--logflow"))
    # Verbose output was made (JSON log lines), so the leak check below reads real logs.
    assert any('"level":"INFO"' in t for t in project.transcript)


def test_destroy_leaves_each_host_as_it_was(lab: Lab, project: Project, before, zones_before):
    said(project, project.pulumi("destroy", "-s", STACK, "--yes", "-v=9", "--logflow"))
    for host in lab.hosts():
        if host["name"] == "mail1":  # its zone was edited by hand through firewalld (the hand-edit test)
            as_found_except_edited_zone(lab, "mail1", before["mail1"], zones_before["mail1"])
        else:
            assert snapshot(lab, host["name"]) == before[host["name"]], host["name"]
        assert lab.sh(host["name"], "test -e /var/lib/smtps-iredmail", check=False).returncode != 0
    for host in lab.hosts()[:2]:
        assert probe.smtps(host["address"]).state != "tls"
    assert verify.verify(lab.hosts()[2]["address"]).ok  # the 1.5 host serves 465 as it did before


def test_neither_the_private_key_nor_the_passphrase_shows_anywhere(lab: Lab, project: Project):
    """After up, preview --diff, refresh and destroy, verbose: not in the state, Pulumi's output, or its logs."""
    key_lines = [line for line in open(lab.inventory["private_key_path"]).read().splitlines()
                 if line and not line.startswith("-----")]
    passphrase = (project.folder / ".pulumi-passphrase").read_text().strip()
    said(project, project.pulumi("stack", "export", "-s", STACK))
    everything = "\n".join(project.transcript) + project.secrets_everywhere()
    # Pulumi's log files: glog's in TMPDIR and its own under PULUMI_HOME/logs, both inside the project here.
    assert list((project.folder / "tmp").glob("pulumi*")) and list((project.folder / ".pulumi-home" / "logs").iterdir())
    for line in key_lines:
        assert line not in everything
    assert passphrase not in everything
    assert "sshPrivateKey" in everything  # the config key is there, encrypted
