"""The host-side SMTPS scripts on real lab hosts, run over SSH as one SSH command string (as the providers run
them). Hosts: mail1 and mail2 like iRedMail 1.4, mail3 like iRedMail 1.5.

These check the scripts alone. The Pulumi components that will run them are not built yet (the command provider
cannot be built here: see docs/how-it-works.md), so nothing here goes through the Pulumi engine.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from lab import probe
from smtps_iredmail.core import drift, facts, firewalld_service, master_service, verify, zone_membership
from smtps_iredmail.core.hosts import HostSettings
from smtps_iredmail.core.settings import PortPolicy
from smtps_iredmail.core.templating import Action
from tests.lab.labkit import Lab, running_lab
from tests.lab.smtpskit import (
    as_found_except_edited_zone,
    converge,
    destroy,
    mark_runtime,
    postfix_reloads,
    run,
    runtime_mark_survived,
    settings_for,
    snapshot,
    submit_on_465,
    wait_delivered,
    zone_listing,
)

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory, "smtps", "--hosts", "3", "--variants", "mail3=iredmail-1.5") as the_lab:
        yield the_lab


def live_drift(lab: Lab, settings: HostSettings) -> list[str]:
    result = run(lab, settings, drift.read_host_script(settings))
    assert result.returncode == 0, result.stderr
    return [str(d) for d in drift.compare(settings, facts.parse(result.stdout))]


@pytest.fixture(scope="module")
def before(lab, zones_before):  # zones_before: taken at the same moment, before any change
    return {h["name"]: snapshot(lab, h["name"]) for h in lab.hosts()}


@pytest.fixture(scope="module")
def zones_before(lab):
    return {h["name"]: zone_listing(lab, h["name"]) for h in lab.hosts()}


def test_converge_opens_465_with_tls_and_auth_everywhere(lab, before):
    for name in ("mail1", "mail2", "mail3"):
        converge(lab, settings_for(lab, name))
    for host in lab.hosts():
        seen = verify.verify(host["address"])
        assert seen.ok, (host["name"], seen)
        assert seen.tls_version in ("TLSv1.2", "TLSv1.3") and "PLAIN" in seen.auth.split()
        assert seen.cert_subject == f"CN={host['fqdn']}" and seen.cert_not_after.endswith("GMT")
    entry = lab.sh("mail1", "postconf -M 465/inet").stdout
    assert "smtpd_tls_wrappermode=yes" in entry
    assert lab.sh("mail1", "firewall-cmd --zone=iredmail --query-service=smtps").stdout.strip() == "yes"
    assert lab.sh("mail1", "firewall-cmd --permanent --zone=iredmail --query-service=smtps").stdout.strip() == "yes"


def test_mail_submitted_on_465_reaches_the_content_filter(lab, before):
    host = lab.hosts()[0]
    marker = submit_on_465(lab, host["address"])
    assert wait_delivered(lab, host["name"], marker)
    assert lab.sh(host["name"], f"grep -l {marker} /var/lib/amavis-standin/*-10026.eml").stdout.strip()


def test_iredmail15_host_is_converged_in_place_and_its_port_kept(lab, before):
    entries = lab.sh("mail3", "postconf -M").stdout
    assert sum(1 for line in entries.splitlines() if line.split()[:2] in (["465", "inet"], ["smtps", "inet"],
                                                                          ["submissions", "inet"])) == 1
    # existingPortPolicy=keep: the raw port stays, no service is added beside it.
    assert lab.sh("mail3", "firewall-cmd --zone=iredmail --query-port=465/tcp").stdout.strip() == "yes"
    assert lab.sh("mail3", "firewall-cmd --zone=iredmail --query-service=smtps", check=False).stdout.strip() == "no"
    assert snapshot(lab, "mail3")["postfix/master.cf"] == before["mail3"]["postfix/master.cf"]


def test_second_converge_changes_nothing_and_reloads_nothing(lab, before):
    states = {}
    for host in lab.hosts():
        name = host["name"]
        mark_runtime(lab, name)
        states[name] = (snapshot(lab, name), postfix_reloads(lab, name))
    for host in lab.hosts():
        outputs = converge(lab, settings_for(lab, host["name"]))
        assert all("up to date" in out or "kept as found" in out for out in outputs), outputs
    for host in lab.hosts():
        name = host["name"]
        assert (snapshot(lab, name), postfix_reloads(lab, name)) == states[name]
        assert runtime_mark_survived(lab, name), f"{name}: firewalld was reloaded"
        lab.sh(name, "firewall-cmd --zone=iredmail --remove-icmp-block=timestamp-request >/dev/null")


def test_changing_one_option_converges_in_place(lab, before):
    restrictions = "permit_sasl_authenticated,reject_unauth_pipelining,reject"
    changed = settings_for(lab, "mail2", options={"smtpd_client_restrictions": restrictions})
    outputs = converge(lab, changed)
    assert "written" in outputs[0] and "up to date" in outputs[1] and "up to date" in outputs[2]
    options = lab.sh("mail2", "postconf -P 465/inet").stdout
    assert f"465/inet/smtpd_client_restrictions = {restrictions}" in options
    assert probe.smtps(lab.hosts()[1]["address"]).state == "tls"
    converge(lab, settings_for(lab, "mail2"))


REFUSED = "; refused (to allow it on purpose: allowOptions: [content_filter]); nothing was changed"


@pytest.mark.parametrize(("content_filter", "words"), [
    ("smtp-nowhere:[127.0.0.1]:10026", "transport smtp-nowhere is not a master.cf unix service whose command is smtp"),
    ("discard:[127.0.0.1]:10026", "transport discard is not a master.cf unix service whose command is smtp"),
    ("smtp:[127.0.0.1]:587", "port 587 is a Postfix listener of this host's master.cf"),  # `submission`, by name
    ("smtp-amavis:[127.0.0.1]:25", "port 25 is a Postfix listener of this host's master.cf"),  # `smtp`
])
def test_the_host_refuses_a_content_filter_only_it_can_judge_before_any_change(lab, before, content_filter, words):
    """What the settings cannot know (smtps/option_rules.py): the transport is master.cf's SMTP client, and the port
    is none of Postfix's own listeners. Refused in the settings' words, and master.cf is left as it was."""
    files, reloads = snapshot(lab, "mail2"), postfix_reloads(lab, "mail2")
    settings = settings_for(lab, "mail2", options={"content_filter": content_filter})
    result = run(lab, settings, master_service.MODEL.script("mail2", (settings.master, settings.tls), Action.APPLY))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"smtps: mail2: setting options.content_filter: '{content_filter}': {words}" in result.stderr, result.stderr
    assert result.stderr.strip().endswith(REFUSED), result.stderr
    assert (snapshot(lab, "mail2"), postfix_reloads(lab, "mail2")) == (files, reloads)


def test_changing_the_service_key_replaces_the_entry_never_duplicates_it(lab, before):
    renamed = settings_for(lab, "mail2", serviceKey="submissions")
    outputs = converge(lab, renamed)
    assert "replaced 465" in outputs[0]
    keys = [line.split()[0] for line in lab.sh("mail2", "postconf -M").stdout.splitlines()]
    assert "submissions" in keys and "465" not in keys
    assert probe.smtps(lab.hosts()[1]["address"]).state == "tls"
    outputs = converge(lab, settings_for(lab, "mail2"))
    assert "replaced submissions" in outputs[0]


def test_no_drift_after_converge(lab, before):
    for host in lab.hosts():
        assert live_drift(lab, settings_for(lab, host["name"])) == []


def test_hand_edits_show_as_drift_by_host_and_field_and_converging_repairs_them(lab, before):
    settings = settings_for(lab, "mail1")
    lab.sh("mail1", "postconf -MX 465/inet && postfix reload >/dev/null 2>&1")
    lab.sh("mail1", "firewall-cmd --permanent --zone=iredmail --remove-service=smtps >/dev/null && "
                    "firewall-cmd --zone=iredmail --remove-service=smtps >/dev/null")
    assert probe.tcp(lab.hosts()[0]["address"], 465, read_banner=False).state == "rejected"
    found = live_drift(lab, settings)
    assert found[0] == "mail1: master.cf service: serviceKey: want '465', found '(none)'"
    assert "mail1: master.cf service: chroot: want 'n', found '(none)'" in found
    assert found[-2:] == ["mail1: zone membership: permanent: want 'true', found 'false'",
                          "mail1: zone membership: runtime: want 'true', found 'false'"]
    # Runtime only, and one option: each is its own field.
    converge(lab, settings)
    lab.sh("mail1", "postconf -P 465/inet/syslog_name=postfix/handmade && postfix reload >/dev/null 2>&1")
    lab.sh("mail1", "firewall-cmd --zone=iredmail --remove-service=smtps >/dev/null")
    assert live_drift(lab, settings) == [
        "mail1: master.cf service: options.syslog_name: want 'postfix/smtps', found 'postfix/handmade'",
        "mail1: zone membership: runtime: want 'true', found 'false'",
    ]
    converge(lab, settings)
    assert live_drift(lab, settings) == []
    assert probe.smtps(lab.hosts()[0]["address"]).state == "tls"


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"tlsCert": "/etc/pki/tls/certs/missing.crt"}, "TLS certificate /etc/pki/tls/certs/missing.crt does not exist"),
    ({"tlsKey": "/etc/ssh/sshd_config"}, "TLS key /etc/ssh/sshd_config is not a readable private key"),
])
def test_a_bad_tls_setting_fails_before_anything_changes(lab, before, overrides, reason):
    current = snapshot(lab, "mail1")
    reloads = postfix_reloads(lab, "mail1")
    settings = settings_for(lab, "mail1", options={"syslog_name": "postfix/changed"}, **overrides)
    result = run(lab, settings, master_service.MODEL.script("mail1", (settings.master, settings.tls), Action.APPLY))
    assert result.returncode != 0
    assert f"smtps: mail1: {reason}" in result.stderr
    assert snapshot(lab, "mail1") == current and postfix_reloads(lab, "mail1") == reloads
    for port in (25, 587):
        assert probe.tcp(lab.hosts()[0]["address"], port).banner.startswith("220 ")


def test_a_key_that_does_not_match_the_cert_is_refused(lab, before):
    lab.sh("mail1", "openssl genpkey -algorithm ed25519 -out /etc/pki/tls/private/other.key 2>/dev/null")
    settings = settings_for(lab, "mail1", tlsKey="/etc/pki/tls/private/other.key")
    result = run(lab, settings, master_service.MODEL.script("mail1", (settings.master, settings.tls), Action.APPLY))
    assert result.returncode != 0 and "does not belong to certificate" in result.stderr
    lab.sh("mail1", "rm /etc/pki/tls/private/other.key")


def test_replace_policy_swaps_the_raw_port_for_the_service_and_back(lab, before):
    settings = settings_for(lab, "mail3", existingPortPolicy=PortPolicy.REPLACE.value, firewall="firewalld")
    converge(lab, settings)
    assert lab.sh("mail3", "firewall-cmd --zone=iredmail --query-service=smtps").stdout.strip() == "yes"
    assert lab.sh("mail3", "firewall-cmd --permanent --zone=iredmail --query-port=465/tcp",
                  check=False).stdout.strip() == "no"
    assert probe.smtps(lab.hosts()[2]["address"]).state == "tls"
    run(lab, settings, zone_membership.MODEL.script("mail3", settings.zone, Action.REMOVE))
    assert snapshot(lab, "mail3")["firewalld/zones/iredmail.xml"] == before["mail3"]["firewalld/zones/iredmail.xml"]
    assert lab.sh("mail3", "firewall-cmd --zone=iredmail --query-port=465/tcp").stdout.strip() == "yes"


def _firewalld_pid(lab: Lab, name: str) -> int:
    netns = next(h["netns"] for h in lab.hosts() if h["name"] == name)
    for pid in subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split():
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"/firewalld") for part in cmdline[:2]):
            return int(pid)
    raise AssertionError(f"{name}: no firewalld process")


def test_stopped_daemons_are_reported_not_worked_around(lab, before):
    settings = settings_for(lab, "mail2")
    current = snapshot(lab, "mail2")
    os.kill(_firewalld_pid(lab, "mail2"), signal.SIGTERM)  # by PID, inside this lab host only
    lab.sh("mail2", "while firewall-cmd --state >/dev/null 2>&1; do sleep 0.1; done")
    try:
        for script in (firewalld_service.MODEL.script("mail2", settings.service, Action.APPLY),
                       zone_membership.MODEL.script("mail2", settings.zone, Action.REMOVE)):
            result = run(lab, settings, script)
            assert result.returncode != 0 and "smtps: mail2: firewalld is not running" in result.stderr
    finally:
        lab.sh("mail2", "firewalld --nofork --nopid --log-target console >/dev/null 2>&1 &")
        lab.sh("mail2", "until firewall-cmd --state >/dev/null 2>&1; do sleep 0.1; done")
    lab.sh("mail2", "postfix stop >/dev/null 2>&1")
    try:
        result = run(lab, settings, master_service.MODEL.script("mail2", (settings.master, settings.tls), Action.APPLY))
        assert result.returncode != 0 and "smtps: mail2: postfix is not running" in result.stderr
    finally:
        lab.sh("mail2", "postfix start >/dev/null 2>&1")
    assert snapshot(lab, "mail2") == current


def test_zz_destroy_leaves_every_host_as_it_was_found(lab, before, zones_before):
    for host in lab.hosts():
        destroy(lab, settings_for(lab, host["name"]))
    for host in lab.hosts():
        name, after = host["name"], snapshot(lab, host["name"])
        if name == "mail1":  # its zone was edited by hand through firewalld (the hand-edit test)
            as_found_except_edited_zone(lab, name, before[name], zones_before[name])
        else:
            assert after == before[name], name
        assert lab.sh(host["name"], "test -e /var/lib/smtps-iredmail", check=False).returncode == 1
    assert probe.tcp(lab.hosts()[0]["address"], 465, read_banner=False).state == "rejected"
    closed = verify.verify(lab.hosts()[1]["address"])
    assert not closed.ok and closed.problem.startswith("cannot connect to 465")
    assert verify.verify(lab.hosts()[2]["address"]).ok  # iRedMail 1.5 had 465 before: it keeps it
    # Destroying again finds nothing of its own to undo.
    for host in lab.hosts():
        destroy(lab, settings_for(lab, host["name"]))

