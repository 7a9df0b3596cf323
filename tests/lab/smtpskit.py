"""Running the host-side SMTPS scripts on lab hosts over SSH, through the providers' own remote layer
(smtps/remote.py): one SSH command string, and a firewalld reload confirmed over a fresh login."""

from __future__ import annotations

import smtplib
import ssl
import subprocess
import time

from smtps_iredmail.core import firewalld_service, master_service, remote, zone_membership
from smtps_iredmail.core.hosts import HostSettings, parse_host
from smtps_iredmail.core.settings import Connection
from smtps_iredmail.core.templating import Action
from tests.lab.labkit import Lab


def settings_for(lab: Lab, name: str, **overrides) -> HostSettings:
    host = next(h for h in lab.hosts() if h["name"] == name)
    raw = {"name": name, "address": host["address"], "hostKey": host["host_key"], **overrides}
    return parse_host("lab", {}, raw)


def _pool(lab: Lab) -> remote.Pool:
    """A pool of the lab's deploy key: the providers' own connection (the host key pinned), new for each use here."""
    with open(lab.inventory["private_key_path"]) as key:
        return remote.Pool(key.read())


def run(lab: Lab, settings: HostSettings, script: str) -> subprocess.CompletedProcess[str]:
    """Run a script as the providers do (smtps/remote.py): where it reloaded firewalld and asks for a confirmation,
    confirm it over a fresh login (a new connection and authentication), or the host reverts the change by itself."""
    pool = _pool(lab)
    try:
        result = pool.run(settings.name, settings.connection, script)
        if result.status == 0 and (token := remote.confirm_token(result.stdout)):
            remote.confirm_fresh(pool, settings.name, settings.connection, token, "confirm")
    finally:
        pool.close()
    return subprocess.CompletedProcess(script, result.status, result.stdout, result.stderr)


def confirm_pending(lab: Lab, host: dict, token: str | None = None) -> None:
    """Confirm the host's pending firewalld change (the one with `token`, or whichever is pending) over a fresh
    login, as the controller does after a reload (smtps/remote.py: HostFailure where no login confirms it)."""
    if token is None:
        token = lab.sh(host["name"], "cat /run/smtps-iredmail/confirm/token 2>/dev/null || true").stdout.strip()
    if token:
        connection = Connection(host["address"], host["port"], host["user"], host["host_key"])
        pool = _pool(lab)
        try:
            remote.confirm_fresh(pool, host["name"], connection, token, "confirm")
        finally:
            pool.close()


def converge(lab: Lab, settings: HostSettings) -> list[str]:
    """Postfix listens before the port opens: master.cf first, then the service file, then the zone."""
    outputs = []
    for script in (master_service.MODEL.script(settings.name, (settings.master, settings.tls), Action.APPLY),
                   firewalld_service.MODEL.script(settings.name, settings.service, Action.APPLY),
                   zone_membership.MODEL.script(settings.name, settings.zone, Action.APPLY)):
        result = run(lab, settings, script)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout.strip())
    return outputs


def destroy(lab: Lab, settings: HostSettings) -> None:
    """The reverse order: close the port first, then remove the service file and the master.cf entry."""
    for script in (zone_membership.MODEL.script(settings.name, settings.zone, Action.REMOVE),
                   firewalld_service.MODEL.script(settings.name, settings.service, Action.REMOVE),
                   master_service.MODEL.script(settings.name, (settings.master, settings.tls), Action.REMOVE)):
        result = run(lab, settings, script)
        assert result.returncode == 0, result.stderr


def snapshot(lab: Lab, name: str) -> dict[str, str]:
    """Digests of every file the scripts may touch."""
    out = lab.sh(name, "cd /etc && find postfix/master.cf firewalld/zones firewalld/services -type f "
                       "-exec sha256sum {} + | sort -k2").stdout
    return {path: digest for digest, path in (line.split() for line in out.splitlines())}


def zone_listing(lab: Lab, name: str) -> str:
    """What the permanent zone says (services, ports, ...), whatever the file's formatting."""
    return lab.sh(name, "firewall-cmd --permanent --zone=iredmail --list-all").stdout


def as_found_except_edited_zone(lab: Lab, name: str, before: dict[str, str], listing_before: str) -> None:
    """After destroy on a host whose zone someone edited through firewalld (which rewrote the file in its own
    format and left a .old copy): that edit is theirs and stays, so the zone file is not byte for byte as found,
    but it says exactly what it said; every other file is byte for byte as it was."""
    zone = "firewalld/zones/iredmail.xml"
    assert zone_listing(lab, name) == listing_before, name
    after = {f: d for f, d in snapshot(lab, name).items() if not f.startswith(zone)}
    assert after == {f: d for f, d in before.items() if f != zone}, name


def postfix_reloads(lab: Lab, name: str) -> int:
    """How often Postfix's master has reloaded: it logs each reload."""
    return int(lab.sh(name, "grep -c 'reload -- version' /var/log/mail.log || true").stdout.strip())


def mark_runtime(lab: Lab, name: str) -> None:
    """A runtime-only setting: any firewall-cmd --reload wipes it, so its survival proves no reload happened."""
    lab.sh(name, "firewall-cmd --zone=iredmail --add-icmp-block=timestamp-request >/dev/null")


def runtime_mark_survived(lab: Lab, name: str) -> bool:
    return lab.sh(name, "firewall-cmd --zone=iredmail --query-icmp-block=timestamp-request",
                  check=False).stdout.strip() == "yes"


def submit_on_465(lab: Lab, address: str) -> str:
    sasl = lab.inventory["sasl"]
    marker = f"smtps-test-{time.time_ns()}"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP_SSL(address, 465, context=context, timeout=10) as client:
        client.login(sasl["username"], sasl["password"])
        client.sendmail(sasl["username"], [f"postmaster@{lab.inventory['mail_domain']}"],
                        f"Subject: {marker}\r\n\r\nvia 465\r\n")
    return marker


def wait_delivered(lab: Lab, name: str, marker: str) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if lab.sh(name, f"grep -rl {marker} /var/vmail || true").stdout.strip():
            return True
        time.sleep(0.2)
    return False


def ssh_counts(lab: Lab, name: str) -> tuple[int, int]:
    """(connections, sessions) the host's sshd has accepted so far, from its own log (LogLevel VERBOSE)."""
    out = lab.sh(name, "grep -c 'Accepted publickey' /run/lab/log/sshd.log || true; "
                       "grep -c 'Starting session' /run/lab/log/sshd.log || true").stdout.split()
    return int(out[0]), int(out[1])
