"""A mixed lab: mail1 like iRedMail 1.4 (no 465), mail2 like iRedMail 1.5 (iRedMail's own 465 stanza and port)."""

from __future__ import annotations

import pytest

from lab import probe
from tests.lab.labkit import leftovers, running_lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory, "lab15", "--hosts", "2", "--variants", "mail2=iredmail-1.5") as the_lab:
        yield the_lab


def test_variants_are_recorded(lab):
    assert [h["variant"] for h in lab.hosts()] == ["iredmail-1.4", "iredmail-1.5"]


def test_iredmail15_host_has_iredmails_own_465_entry_and_port(lab):
    entry = lab.sh("mail2", "postconf -M 465/inet").stdout
    assert entry.split()[:8] == ["465", "inet", "n", "-", "n", "-", "-", "smtpd"]
    options = lab.sh("mail2", "postconf -P 465/inet").stdout.splitlines()
    assert "465/inet/smtpd_tls_wrappermode = yes" in options
    assert "465/inet/content_filter = smtp-amavis:[127.0.0.1]:10026" in options
    zone = lab.sh("mail2", "cat /etc/firewalld/zones/iredmail.xml").stdout
    assert '<port port="465" protocol="tcp"/>' in zone and 'name="smtps"' not in zone
    assert lab.sh("mail2", "firewall-cmd --zone=iredmail --query-port=465/tcp").stdout.strip() == "yes"


def test_iredmail15_host_answers_tls_on_465_and_the_14_host_does_not(lab):
    mail1, mail2 = lab.hosts()
    seen = probe.smtps(mail2["address"])
    assert seen.state == "tls" and "PLAIN" in seen.auth.split(), seen
    assert probe.tcp(mail1["address"], 465, read_banner=False).state == "rejected"


def test_zz_down(lab):
    lab.cli("down")
    assert leftovers(lab) == []
