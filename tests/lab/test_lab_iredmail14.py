"""A lab of 3 iredmail-1.4 hosts, seen from outside and from inside; then opened by hand; then taken down."""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import subprocess
import time

import pytest

from lab import probe
from tests.lab.labkit import Lab, leftovers, running_lab

pytestmark = pytest.mark.lab

# The manual procedure this project replaces (README, first paragraph), as an operator types it: append the stanza to
# master.cf, write the service file, add it to the zone file, reload everything.
SEED_OPEN_465 = r"""
set -e
cat >> /etc/postfix/master.cf <<'EOF'
465 inet n - n - - smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o content_filter=smtp-amavis:[127.0.0.1]:10026
EOF
cat > /etc/firewalld/services/smtps.xml <<'EOF'
<?xml version="1.0" encoding="utf-8"?>
<service>
  <short>Enable SMTPS</short>
  <description>Enable SMTPS.</description>
  <port protocol="tcp" port="465"/>
</service>
EOF
sed -i 's|^    <service name="smtp"/>$|&\n    <service name="smtps"/>|' /etc/firewalld/zones/iredmail.xml
firewall-cmd --complete-reload
postfix reload
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory, "lab14", "--hosts", "3") as the_lab:
        yield the_lab


def _names(lab: Lab) -> list[str]:
    return [h["name"] for h in lab.hosts()]


def test_inventory_describes_three_hosts(lab):
    inventory = lab.inventory
    assert [h["variant"] for h in inventory["hosts"]] == ["iredmail-1.4"] * 3
    assert len({h["address"] for h in inventory["hosts"]}) == 3
    for host in inventory["hosts"]:
        assert host["host_key"].startswith("ssh-ed25519 ")
        assert host["user"] == "root" and host["port"] == 22
    # The inventory names the key; the key itself is a separate file, readable by root only.
    key = inventory["private_key_path"]
    assert "PRIVATE KEY" not in (lab.state_dir / "inventory.json").read_text()
    assert os.stat(key).st_mode & 0o777 == 0o600


def test_ssh_with_deploy_key_and_pinned_host_key(lab):
    for host in lab.hosts():
        result = lab.ssh(host, "hostname; firewall-cmd --state")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [f"{host['name']}.lab", "running"]


def test_sftp_subsystem_copies_files(lab, tmp_path):
    host = lab.hosts()[1]
    pinned = tmp_path / "pinned"
    pinned.write_text(f"{host['address']} {host['host_key']}\n")
    payload = tmp_path / "payload.txt"
    payload.write_text("copied over sftp\n")
    result = subprocess.run(
        ["sftp", "-i", lab.inventory["private_key_path"], "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={pinned}", "-b", "-", f"root@{host['address']}"],
        input=f"put {payload} /root/sftp-test.txt\n", capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert lab.sh(host["name"], "cat /root/sftp-test.txt").stdout == "copied over sftp\n"
    # The host's /root is its own, not the machine's.
    assert not os.path.exists("/root/sftp-test.txt")


def test_ssh_refuses_a_host_whose_key_differs(lab, tmp_path):
    first, second = lab.hosts()[0], lab.hosts()[1]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{first['address']} {second['host_key']}\n")
    result = lab.ssh(first, "true", known_hosts=wrong)
    assert result.returncode != 0
    assert "host key" in result.stderr.lower()


def test_ssh_refuses_password_and_unknown_keys(lab, tmp_path):
    host = lab.hosts()[0]
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    pinned = tmp_path / "pinned"
    pinned.write_text(f"{host['address']} {host['host_key']}\n")
    result = subprocess.run(
        ["ssh", "-i", str(stranger), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={pinned}", "-o", "IdentitiesOnly=yes", f"root@{host['address']}", "true"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert "Permission denied (publickey)" in result.stderr


def test_465_is_rejected_by_the_firewall_from_outside(lab):
    for host in lab.hosts():
        seen = probe.tcp(host["address"], 465, read_banner=False)
        assert seen.state == "rejected", (host["name"], seen)


def test_25_and_587_answer_with_an_smtp_banner(lab):
    for host in lab.hosts():
        for port in (25, 587):
            seen = probe.tcp(host["address"], port)
            assert seen.state == "open", (host["name"], port, seen)
            assert seen.banner.startswith(f"220 {host['fqdn']} ESMTP"), (host["name"], port, seen.banner)


def test_inside_each_host(lab):
    for name in _names(lab):
        assert lab.sh(name, "firewall-cmd --get-default-zone").stdout.strip() == "iredmail"
        assert lab.sh(name, "firewall-cmd --get-zone-of-interface=eth0").stdout.strip() == "iredmail"
        lab.sh(name, "postfix check")
        entries = lab.sh(name, "postconf -M").stdout
        keys = {line.split()[0] + "/" + line.split()[1] for line in entries.splitlines() if line.strip()}
        assert "submission/inet" in keys
        assert "smtp-amavis/unix" in keys and "127.0.0.1:10025/inet" in keys
        assert not keys & {"465/inet", "smtps/inet", "submissions/inet"}, keys
        zone = lab.sh(name, "firewall-cmd --permanent --zone=iredmail --list-all").stdout
        assert "465" not in zone and "smtps" not in zone


def test_hosts_do_not_share_files(lab):
    first, second = _names(lab)[:2]
    for folder in ("/root", "/tmp", "/etc", "/var/lib"):
        lab.sh(first, f"echo mine > {folder}/lab-isolation-test")
        assert lab.sh(second, f"test -e {folder}/lab-isolation-test", check=False).returncode == 1, folder
        assert not os.path.exists(f"{folder}/lab-isolation-test"), folder
    lab.sh(first, "postconf -e smtpd_banner='$myhostname ESMTP changed-here'")
    try:
        assert "changed-here" not in lab.sh(second, "postconf -h smtpd_banner").stdout
        assert "changed-here" not in open("/etc/postfix/main.cf").read()
    finally:
        lab.sh(first, "postconf -e smtpd_banner='$myhostname ESMTP'")


def test_status_reports_every_host(lab):
    lines = lab.cli("status").stdout.splitlines()
    assert len(lines) == 1 + 3 and lines[0].split()[:3] == ["host", "address", "variant"]
    for line, host in zip(lines[1:], lab.hosts(), strict=True):
        assert line.split() == [host["name"], host["address"], "iredmail-1.4", "yes", "yes", "yes", "rejected"]
    rows = json.loads(lab.cli("status", "--json").stdout)
    assert [r["name"] for r in rows] == _names(lab)
    for row in rows:
        assert row["running"] and row["sshd"] and row["firewalld"] and row["postfix"], row
        assert row["smtps"]["state"] == "rejected", row


def test_opening_465_the_seed_way_gives_tls_and_auth(lab):
    host = lab.hosts()[0]
    lab.sh(host["name"], SEED_OPEN_465)
    seen = probe.smtps(host["address"])
    assert seen.state == "tls", seen
    assert seen.tls_version in ("TLSv1.2", "TLSv1.3")
    assert "PLAIN" in seen.auth.split()
    # The other hosts were not touched.
    for other in lab.hosts()[1:]:
        assert probe.tcp(other["address"], 465, read_banner=False).state == "rejected"


def test_mail_submitted_on_465_passes_the_content_filter_and_is_delivered(lab):
    """iRedMail's content_filter sends it to 10026 (the Amavisd stand-in), which re-injects it on 10025."""
    host = lab.hosts()[0]
    if probe.smtps(host["address"]).state != "tls":
        lab.sh(host["name"], SEED_OPEN_465)
    sasl = lab.inventory["sasl"]
    marker = f"lab-test-{time.time_ns()}"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP_SSL(host["address"], 465, context=context, timeout=10) as client:
        client.ehlo("client.lab")
        # Without AUTH, smtpd_client_restrictions=permit_sasl_authenticated,reject turns the client away.
        client.login(sasl["username"], sasl["password"])
        refused = client.sendmail(sasl["username"], [f"postmaster@{lab.inventory['mail_domain']}"],
                                  f"Subject: {marker}\r\n\r\nhello\r\n")
    assert refused == {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        delivered = lab.sh(host["name"], f"grep -rl {marker} /var/vmail || true").stdout.strip()
        if delivered:
            break
        time.sleep(0.2)
    assert delivered, lab.sh(host["name"], "tail -n 30 /var/log/mail.log").stdout
    recorded = lab.sh(host["name"], f"grep -l {marker} /var/lib/amavis-standin/*.eml").stdout.strip()
    assert recorded.endswith("-10026.eml"), recorded
    assert "Mail queue is empty" in lab.sh(host["name"], "postqueue -p").stdout


def test_465_without_auth_is_turned_away(lab):
    host = lab.hosts()[0]
    if probe.smtps(host["address"]).state != "tls":
        lab.sh(host["name"], SEED_OPEN_465)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP_SSL(host["address"], 465, context=context, timeout=10) as client:
        client.ehlo("client.lab")
        with pytest.raises(smtplib.SMTPException):
            client.sendmail("someone@example.org", ["postmaster@example.lab"], "Subject: x\r\n\r\nx\r\n")


def test_up_again_keeps_running_hosts(lab):
    before = {h["name"]: h["host_key"] for h in lab.hosts()}
    out = lab.cli("up", "--hosts", "3").stdout
    assert out.count("already running") == 3, out
    assert {h["name"]: h["host_key"] for h in lab.hosts()} == before


def test_zz_down_leaves_nothing_and_twice_is_harmless(lab):
    assert len(lab.recorded_netns) == 3  # so that the process check below has namespaces to look for
    lab.cli("down")
    # No probe of the old addresses here: with the lab's routes gone they would leave the machine.
    assert leftovers(lab) == []
    second = lab.cli("down")
    assert "0 namespace(s)" in second.stdout
    assert leftovers(lab) == []
