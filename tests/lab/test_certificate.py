"""The certificate 465 serves, through the real engine on two lab hosts: the entry serves exactly the files the stack
names (else main.cf's), the check from outside compares the served certificate's SHA-256 with the file's as the
apply read it, refuses one that expires within certMinDays, and in strict mode verifies chain and name."""

from __future__ import annotations

import json
import re

import pytest

from tests.enginekit import Project
from tests.lab.labkit import Lab, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.engine]
STACK = "certs"
MAIN_CERT = "/etc/pki/tls/certs/iRedMail.crt"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory, "certs", "--hosts", "2") as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def project(lab: Lab, tmp_path_factory):
    project = Project.for_lab(tmp_path_factory.mktemp("certs") / "smtps", lab, STACK)
    yield project
    project.pulumi("destroy", "-s", STACK, "--yes", check=False)


def sha256_of(lab: Lab, host: str, path: str) -> str:
    out = lab.sh(host, f"openssl x509 -in {path} -noout -fingerprint -sha256").stdout
    return out.split("=", 1)[1].strip().replace(":", "").lower()


def outputs(project: Project) -> dict:
    return json.loads(project.pulumi("stack", "output", "-s", STACK, "--json", "hosts").stdout)


def set_host(project: Project, index: int, key: str, value: str | None) -> None:
    if value is None:
        project.pulumi("config", "rm", "-s", STACK, "--path", f"hosts[{index}].{key}")
    else:
        project.pulumi("config", "set", "-s", STACK, "--path", f"hosts[{index}].{key}", value)


def test_without_tls_settings_465_serves_main_cfs_certificate_and_the_check_compares_it(lab: Lab, project: Project):
    project.smtps("up", "-s", STACK, "--yes")
    found = outputs(project)
    for host in ("mail1", "mail2"):
        assert found[host]["certSha256"] == sha256_of(lab, host, MAIN_CERT)
        assert 360 <= found[host]["certDaysLeft"] <= 366
    # The entry names no certificate: Postfix serves main.cf's.
    assert "smtpd_tls_cert_file" not in lab.sh("mail1", "postconf -P 465/inet").stdout


def test_a_named_certificate_is_served_by_the_entry_and_one_about_to_expire_fails_the_check(lab: Lab,
                                                                                              project: Project):
    # A second certificate on mail2, valid for 5 days: the stack names it.
    lab.sh("mail2", "openssl req -x509 -newkey rsa:2048 -nodes -days 5 -subj /CN=mail2.lab "
                    "-keyout /etc/pki/tls/private/short.key -out /etc/pki/tls/certs/short.crt 2>/dev/null")
    set_host(project, 1, "tlsCert", "/etc/pki/tls/certs/short.crt")
    set_host(project, 1, "tlsKey", "/etc/pki/tls/private/short.key")
    up = project.smtps("up", "-s", STACK, "--yes", check=False)
    assert up.returncode != 0
    assert re.search(r"mail2: verification: update: .*the certificate expires in [45] day\(s\) .* less than "
                     r"certMinDays 14; rolled back", up.stderr), up.stderr
    # Rolled back: the entry serves main.cf's certificate again (tests/lab/test_rollback.py shows the whole host).
    assert "smtpd_tls_cert_file" not in lab.sh("mail2", "postconf -P 465/inet").stdout
    set_host(project, 1, "certMinDays", "3")
    project.smtps("up", "-s", STACK, "--yes")
    entry = lab.sh("mail2", "postconf -P 465/inet").stdout
    assert "465/inet/smtpd_tls_cert_file = /etc/pki/tls/certs/short.crt" in entry
    found = outputs(project)
    assert found["mail2"]["certSha256"] == sha256_of(lab, "mail2", "/etc/pki/tls/certs/short.crt")
    assert found["mail2"]["certDaysLeft"] in (4, 5)
    assert found["mail1"]["certSha256"] == sha256_of(lab, "mail1", MAIN_CERT)  # mail1 untouched


def test_a_certificate_replaced_without_a_reload_is_not_what_465_serves(lab: Lab, project: Project):
    # The file renewed (same key), Postfix not told: it still serves the old one. The next apply reads the new file,
    # and the check from outside finds 465 serving another certificate.
    lab.sh("mail2", "openssl req -x509 -new -key /etc/pki/tls/private/short.key -days 30 -subj /CN=mail2.lab "
                    "-out /etc/pki/tls/certs/short.crt.new && mv /etc/pki/tls/certs/short.crt.new "
                    "/etc/pki/tls/certs/short.crt")
    # A change that runs the master.cf apply without changing the entry (so without a reload): it reads the file.
    set_host(project, 1, "allowOptions[0]", "mynetworks")
    up = project.smtps("up", "-s", STACK, "--yes", check=False)
    assert up.returncode != 0
    assert "mail2: verification: update:" in up.stderr and "not the file's" in up.stderr, up.stderr
    # The entry did not change in this run (no reload): there is nothing of this run to roll back.
    assert "this run changed nothing on it, so nothing was rolled back" in up.stderr, up.stderr
    assert "reading it back into the state" not in up.stderr  # nothing to read back
    # The monitor sees the same: served is not the file (exit 1), on mail2 only.
    seen = project.smtps("verify", "-s", STACK, "--json", check=False)
    assert seen.returncode == 1
    rows = json.loads(seen.stdout)
    assert rows["mail2"]["fingerprint_match"] is False and rows["mail2"]["ok"] is False
    assert rows["mail1"]["fingerprint_match"] is True and rows["mail1"]["ok"] is True
    lab.sh("mail2", "postfix reload >/dev/null 2>&1")
    project.smtps("up", "-s", STACK, "--yes")
    assert outputs(project)["mail2"]["certSha256"] == sha256_of(lab, "mail2", "/etc/pki/tls/certs/short.crt")
    for key in ("tlsCert", "tlsKey", "certMinDays", "allowOptions"):
        set_host(project, 1, key, None)
    project.smtps("up", "-s", STACK, "--yes")


def test_strict_mode_verifies_the_chain_and_the_name(lab: Lab, project: Project, tmp_path):
    bundle = tmp_path / "lab-ca.pem"  # the lab's self-signed certificate is its own trust anchor
    bundle.write_text(lab.sh("mail1", f"cat {MAIN_CERT}").stdout)
    set_host(project, 0, "caBundle", str(bundle))
    set_host(project, 0, "tlsName", "mail1.lab")
    project.smtps("up", "-s", STACK, "--yes")
    set_host(project, 0, "tlsName", "mail9.lab")
    up = project.smtps("up", "-s", STACK, "--yes", check=False)
    assert up.returncode != 0
    assert re.search(r"mail1: verification: update: verification failed: the certificate does not verify against "
                     r".* for mail9\.lab: Hostname mismatch",
                     up.stderr), up.stderr
    for key in ("caBundle", "tlsName"):
        set_host(project, 0, key, None)
    project.smtps("up", "-s", STACK, "--yes")


def test_verify_shows_each_check_per_host_and_warn_days_makes_expiry_a_warning(lab: Lab, project: Project):
    rows = json.loads(project.smtps("verify", "-s", STACK, "--json").stdout)
    for name in ("mail1", "mail2"):
        row = rows[name]
        assert row["ok"] and row["fingerprint_match"] and 360 <= row["days_left"] <= 366, row
        assert row["relay_anonymous"].startswith("554") and {25, 465}.issubset(row["ports_answering"]), row
    table = project.smtps("verify", "-s", STACK).stdout
    assert "served = file" in table and "relay without login" in table
    # A certificate inside the warning window: exit 0, said as a warning; without the flag, certMinDays fails it.
    warned = project.smtps("verify", "-s", STACK, "--json", "--warn-days", "400")
    assert all(row["ok"] and "expires in" in row["warning"] for row in json.loads(warned.stdout).values())
    project.pulumi("config", "set", "-s", STACK, "--path", "defaults.certMinDays", "400")
    failed = project.smtps("verify", "-s", STACK, "--json", check=False)
    assert failed.returncode == 1 and "less than certMinDays 400" in json.loads(failed.stdout)["mail1"]["problem"]
    project.pulumi("config", "rm", "-s", STACK, "--path", "defaults.certMinDays")
