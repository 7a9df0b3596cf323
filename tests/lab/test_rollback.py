"""Verified or rolled back, through the real engine on three lab hosts: a host this run changed that then fails the
check from outside (a wrong certificate, one about to expire, an open relay allowed on purpose, another certificate
served than the file's, which also keeps the test credential unsent) is put back as it was
before the run, files, state folder and both firewall layers; the run fails naming host and reason; the other hosts
converge; 25 and 587 answer throughout. `--no-rollback` keeps the failed state."""

from __future__ import annotations

import datetime
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import yaml

from smtps_iredmail.core import firewalld_service, master_service, rollback, stacks
from smtps_iredmail.core.templating import Action
from tests.enginekit import Project
from tests.lab.labkit import Lab, running_lab
from tests.lab.smtpskit import mark_runtime, runtime_mark_survived, settings_for, snapshot
from tests.lab.smtpskit import run as run_script

pytestmark = [pytest.mark.lab, pytest.mark.engine]
STACK = "rollback"
CERTS, KEYS = "/etc/pki/tls/certs", "/etc/pki/tls/private"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory, "rollback", "--hosts", "3") as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def project(lab: Lab, tmp_path_factory):
    project = Project.for_lab(tmp_path_factory.mktemp("rollback") / "smtps", lab, STACK)
    yield project
    project.pulumi("destroy", "-s", STACK, "--yes", check=False)


def host_state(lab: Lab, name: str) -> dict[str, object]:
    """Everything a run may change on a host: the files, this tool's state folder, both zone layers, the entry
    Postfix runs with."""
    state = lab.sh(name, "cd /var/lib && { find smtps-iredmail -type f -exec sha256sum {} + 2>/dev/null | sort -k2; "
                         "find smtps-iredmail 2>/dev/null | sort; } || true").stdout
    return {"files": snapshot(lab, name), "state": state,
            "permanent": lab.sh(name, "firewall-cmd --permanent --zone=iredmail --list-all").stdout,
            "runtime": lab.sh(name, "firewall-cmd --zone=iredmail --list-all").stdout,
            "entry": lab.sh(name, "postconf -M 465/inet 2>/dev/null; postconf -P 465/inet 2>/dev/null").stdout}


@contextmanager
def mail_ports_watched(lab: Lab, name: str) -> Iterator[list[str]]:
    """Connect to 25 and 587 of the host every quarter second while the block runs: every answer must be a 220
    banner. Yields the list of failures (empty when both answered throughout)."""
    address = next(h["address"] for h in lab.hosts() if h["name"] == name)
    failures: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for port in (25, 587):
                try:
                    with socket.create_connection((address, port), timeout=5) as conn:
                        conn.settimeout(5)
                        banner = conn.recv(64)
                    if not banner.startswith(b"220"):
                        failures.append(f"{port}: {banner!r}")
                except OSError as err:
                    failures.append(f"{port}: {err}")
            done.wait(0.25)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield failures
    finally:
        done.set()
        thread.join()


def set_host(project: Project, index: int, key: str, value: str | None) -> None:
    if value is None:
        project.pulumi("config", "rm", "-s", STACK, "--path", f"hosts[{index}].{key}")
    else:
        project.pulumi("config", "set", "-s", STACK, "--path", f"hosts[{index}].{key}", value)


def certificate(lab: Lab, host: str, name: str, cn: str, days: int) -> None:
    """A self-signed certificate and its key on the host, valid for `days` (negative: expired that long ago)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=max(1, 1 - days)))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    pem_cert = cert.public_bytes(serialization.Encoding.PEM).decode()
    lab.sh(host, f"cat > {KEYS}/{name}.key <<'EOF'\n{pem_key}EOF\nchmod 600 {KEYS}/{name}.key\n"
                 f"cat > {CERTS}/{name}.crt <<'EOF'\n{pem_cert}EOF\n")


def test_a_new_host_that_fails_its_first_check_is_left_exactly_as_found(lab: Lab, project: Project, tmp_path):
    # mail3 names a certificate for another name, in strict mode: the check from outside refuses it.
    certificate(lab, "mail3", "other", "other.example", 90)
    bundle = tmp_path / "other.pem"
    bundle.write_text(lab.sh("mail3", f"cat {CERTS}/other.crt").stdout)
    for key, value in (("tlsCert", f"{CERTS}/other.crt"), ("tlsKey", f"{KEYS}/other.key"),
                       ("tlsName", "mail3.lab"), ("caBundle", str(bundle))):
        set_host(project, 2, key, value)
    before = host_state(lab, "mail3")
    assert before["state"] == ""  # never touched
    with mail_ports_watched(lab, "mail3") as failures:
        up = project.smtps("up", "-s", STACK, "--yes", check=False)
    assert up.returncode != 0
    assert "mail3: verification: create: verification failed:" in up.stderr and "Hostname mismatch" in up.stderr \
        and "rolled back: this run's changes on it are undone" in up.stderr, up.stderr
    assert "smtps: mail3 rolled back: reading it back into the state" in up.stderr
    assert host_state(lab, "mail3") == before
    assert failures == []
    # The other hosts converged and passed.
    rows = json.loads(project.smtps("verify", "-s", STACK, "--json", check=False).stdout)
    assert rows["mail1"]["ok"] and rows["mail2"]["ok"] and not rows["mail3"]["ok"], rows
    # Read back into the state: the next preview shows mail3's change again.
    preview = project.smtps("preview", "-s", STACK, "--expect-no-changes", check=False)
    assert preview.returncode != 0 and "mail3" in preview.stdout and "mail1-" not in preview.stdout, preview.stdout
    for key in ("tlsCert", "tlsKey", "tlsName", "caBundle"):
        set_host(project, 2, key, None)
    project.smtps("up", "-s", STACK, "--yes")
    project.smtps("preview", "-s", STACK, "--expect-no-changes")


def test_an_expired_certificate_is_refused_before_a_change_and_one_about_to_expire_is_rolled_back(lab: Lab,
                                                                                                  project: Project):
    before = host_state(lab, "mail1")
    certificate(lab, "mail1", "expired", "mail1.lab", -3)
    set_host(project, 0, "tlsCert", f"{CERTS}/expired.crt")
    set_host(project, 0, "tlsKey", f"{KEYS}/expired.key")
    with mail_ports_watched(lab, "mail1") as failures:
        up = project.smtps("up", "-s", STACK, "--yes", check=False)
    assert up.returncode != 0 and f"mail1: master.cf service: update: TLS certificate {CERTS}/expired.crt has " \
        "expired" in up.stderr, up.stderr
    assert host_state(lab, "mail1") == before
    assert failures == []
    # Valid for 5 days: the apply takes it, the check (certMinDays 14) does not. mail2 changes too, and passes.
    certificate(lab, "mail1", "short", "mail1.lab", 5)
    set_host(project, 0, "tlsCert", f"{CERTS}/short.crt")
    set_host(project, 0, "tlsKey", f"{KEYS}/short.key")
    set_host(project, 1, "serviceDescription", "SMTPS for mail2, changed.")
    with mail_ports_watched(lab, "mail1") as failures:
        up = project.smtps("up", "-s", STACK, "--yes", check=False)
    assert up.returncode != 0
    assert "mail1: verification: update: verification failed: the certificate expires in" in up.stderr \
        and "rolled back" in up.stderr, up.stderr
    assert "mail2:" not in up.stderr.split("failure(s):", 1)[1], up.stderr
    assert host_state(lab, "mail1") == before
    assert failures == []
    assert "SMTPS for mail2, changed." in lab.sh("mail2", "cat /etc/firewalld/services/smtps.xml").stdout
    rows = json.loads(project.smtps("verify", "-s", STACK, "--json", check=False).stdout)
    assert rows["mail2"]["ok"] and rows["mail1"]["fingerprint_match"] is False  # mail1 serves main.cf's again
    for key in ("tlsCert", "tlsKey"):
        set_host(project, 0, key, None)
    project.smtps("up", "-s", STACK, "--yes")


OPEN = {"mynetworks": "0.0.0.0/0", "smtpd_client_restrictions": "permit"}


def open_relay(project: Project, index: int, on: bool) -> None:
    for option, value in OPEN.items():
        set_host(project, index, f"options.{option}", value if on else None)
    if on:
        set_host(project, index, "allowOptions[0]", "mynetworks")
        set_host(project, index, "allowOptions[1]", "smtpd_client_restrictions")
    else:
        set_host(project, index, "allowOptions", None)


def test_an_open_relay_allowed_on_purpose_is_rolled_back_with_the_firewalld_change_of_the_same_run(lab: Lab,
                                                                                                    project: Project):
    before = host_state(lab, "mail1")
    open_relay(project, 0, True)
    set_host(project, 0, "serviceDescription", "SMTPS, reloaded and rolled back.")  # a firewalld reload too
    with mail_ports_watched(lab, "mail1") as failures:
        up = project.smtps("up", "-s", STACK, "--yes", check=False)
    assert up.returncode != 0
    assert "mail1: verification: update:" in up.stderr and "OPEN RELAY" in up.stderr and "rolled back" in up.stderr
    assert host_state(lab, "mail1") == before
    assert failures == []
    assert not lab.sh("mail1", "test -e /run/smtps-iredmail/confirm", check=False).returncode == 0  # confirmed


def test_no_rollback_keeps_the_failed_state_for_debugging(lab: Lab, project: Project):
    up = project.smtps("up", "-s", STACK, "--yes", "--no-rollback", check=False)
    assert up.returncode != 0
    assert "OPEN RELAY" in up.stderr and "kept as it is for debugging" in up.stderr, up.stderr
    assert "465/inet/mynetworks = 0.0.0.0/0" in lab.sh("mail1", "postconf -P 465/inet").stdout
    open_relay(project, 0, False)
    set_host(project, 0, "serviceDescription", None)
    project.smtps("up", "-s", STACK, "--yes")
    assert json.loads(project.smtps("verify", "-s", STACK, "--json").stdout)["mail1"]["ok"]


def test_a_zone_repaired_in_place_is_undone_in_place_without_a_firewalld_reload(lab: Lab, project: Project):
    # Someone took the service out of the zone (both layers); this run puts it back (in place, no reload) and opens
    # a relay: rolled back, the zone is as they left it, and a runtime-only setting shows no reload happened.
    lab.sh("mail2", "firewall-cmd --permanent --zone=iredmail --remove-service=smtps >/dev/null && "
                    "firewall-cmd --zone=iredmail --remove-service=smtps >/dev/null")
    mark_runtime(lab, "mail2")
    before = host_state(lab, "mail2")
    open_relay(project, 1, True)
    with mail_ports_watched(lab, "mail2") as failures:
        up = project.smtps("up", "-s", STACK, "--yes", "--refresh", check=False)
    assert up.returncode != 0 and "mail2: verification: update:" in up.stderr and "rolled back" in up.stderr
    assert host_state(lab, "mail2") == before
    assert runtime_mark_survived(lab, "mail2")
    assert failures == []
    open_relay(project, 1, False)
    project.smtps("up", "-s", STACK, "--yes", "--refresh")
    project.smtps("preview", "-s", STACK, "--expect-no-changes")
    assert all(row["ok"] for row in json.loads(project.smtps("verify", "-s", STACK, "--json").stdout).values())


def sha256_of_file(lab: Lab, host: str, path: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return x509.load_pem_x509_certificate(lab.sh(host, f"cat {path}").stdout.encode()).fingerprint(
        hashes.SHA256()).hex()


def smtps_sessions(lab: Lab, host: str, since: int) -> list[str]:
    """Postfix's own account of each session on 465 since line `since` of its log: `disconnect from ...` with the
    commands the client sent (`ehlo=1 auth=1 ... commands=N`)."""
    log = lab.sh(host, f"tail -n +{since + 1} /var/log/mail.log").stdout
    return [line for line in log.splitlines() if "postfix/smtps/smtpd" in line and " disconnect from " in line]


def test_a_host_serving_another_certificate_hears_no_command_and_no_credential_and_is_rolled_back(lab: Lab,
                                                                                                 project: Project):
    """465 on mail1 serves another certificate than its file (main.cf's smtpd_tls_chain_files, which Postfix prefers
    to the file the stack names, stands in for anything answering in the host's place), with the stack's test
    credential set. The check closes the connection before EHLO: Postfix logs no command at all for it, no AUTH;
    the failure names both fingerprints; the host is rolled back. `smtps verify` does the same."""
    sasl = lab.inventory["sasl"]
    project.pulumi("config", "set", "-s", STACK, "--secret", "--path", "testCredential.username", sasl["username"])
    project.pulumi("config", "set", "-s", STACK, "--secret", "--path", "--", "testCredential.password",
                   sasl["password"])
    project.smtps("up", "-s", STACK, "--yes")  # converged (nothing to do after the tests above)
    certificate(lab, "mail1", "intruder", "mail1.lab", 90)
    lab.sh("mail1", f"postconf -e smtpd_tls_chain_files={KEYS}/intruder.key,{CERTS}/intruder.crt && "
                    "postfix reload >/dev/null 2>&1")
    served = sha256_of_file(lab, "mail1", f"{CERTS}/intruder.crt")
    file_sha = sha256_of_file(lab, "mail1", lab.sh("mail1", "postconf -h smtpd_tls_cert_file").stdout.strip())
    assert served != file_sha
    before = host_state(lab, "mail1")
    since = int(lab.sh("mail1", "wc -l < /var/log/mail.log").stdout)
    set_host(project, 0, "serviceDescription", "SMTPS, to be rolled back.")
    with mail_ports_watched(lab, "mail1") as failures:
        up = project.smtps("up", "-s", STACK, "--yes", check=False)
    assert up.returncode != 0
    assert f"mail1: verification: update: verification failed: serves a certificate with SHA-256 {served}, not " \
        f"the file's {file_sha}: the connection was closed before EHLO" in up.stderr, up.stderr
    assert "rolled back: this run's changes on it are undone" in up.stderr, up.stderr
    assert host_state(lab, "mail1") == before
    assert failures == []
    rows = json.loads(project.smtps("verify", "-s", STACK, "--json", check=False).stdout)
    assert not rows["mail1"]["ok"] and f"SHA-256 {served}, not the file's {file_sha}" in rows["mail1"]["problem"]
    assert not rows["mail1"]["relay_authenticated"] and rows["mail2"]["relay_authenticated"].startswith("250")
    # Postfix's log: the check's session and verify's said nothing (the port probes' plain connects neither).
    sessions = smtps_sessions(lab, "mail1", since)
    assert len(sessions) >= 2, sessions
    assert all(line.endswith(" commands=0/0") for line in sessions), sessions
    assert "sasl_username" not in lab.sh("mail1", f"tail -n +{since + 1} /var/log/mail.log").stdout
    # The same log does show the login once 465 serves the file's certificate again: `smtps verify` logs in.
    lab.sh("mail1", "postconf -X smtpd_tls_chain_files && postfix reload >/dev/null 2>&1")
    since = int(lab.sh("mail1", "wc -l < /var/log/mail.log").stdout)
    rows = json.loads(project.smtps("verify", "-s", STACK, "--json").stdout)
    assert rows["mail1"]["ok"] and rows["mail1"]["relay_authenticated"].startswith("250"), rows["mail1"]
    assert any(" auth=1 " in line for line in smtps_sessions(lab, "mail1", since)), smtps_sessions(lab, "mail1",
                                                                                                    since)
    set_host(project, 0, "serviceDescription", None)
    project.pulumi("config", "rm", "-s", STACK, "testCredential")
    project.smtps("up", "-s", STACK, "--yes")
    assert host_state(lab, "mail1")["files"] == before["files"]


# 465 dropped on the host for a while, before firewalld's own rules: a check from outside meanwhile cannot connect,
# and tries again (a transient failure), so a test can hold it back. Nothing of firewalld's is touched.
HOLD_465 = ("nft add table inet smtps_test_hold && nft add chain inet smtps_test_hold input "
            "'{ type filter hook input priority -300; }' && nft add rule inet smtps_test_hold input tcp dport 465 drop")


def wait_until(what: str, condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.5)


def test_a_second_stack_changing_the_host_during_the_first_runs_check_leaves_that_runs_rollback_whole(
        lab: Lab, project: Project):
    """Two stacks name mail1. The first `up` opens a relay there (its check will fail); the second starts while that
    check still runs (held back by 465 dropped for a while) and changes mail1's service file. Each run keeps its own
    snapshot: the first's rollback puts back exactly what it changed, the second's what it changed, and mail1 ends
    byte for byte as before both."""
    project.smtps("up", "-s", STACK, "--yes")  # converged, whatever ran before
    other = f"{STACK}-second"
    project.run_module("lab", "stack", "-s", other)
    path = project.folder / "stacks" / f"Pulumi.{other}.yaml"
    doc = yaml.safe_load(path.read_text())
    hosts = f"{stacks.PROJECT}:hosts"
    # mail1 only, with the first stack's relay (so master.cf is already as it wants), and its own description.
    doc["config"][hosts] = [{**doc["config"][hosts][0], "options": dict(OPEN),
                             "allowOptions": ["mynetworks", "smtpd_client_restrictions"],
                             "serviceDescription": "SMTPS, as a second stack has it."}]
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=200))
    before = host_state(lab, "mail1")
    outcome: dict[str, object] = {}

    def up(stack: str) -> None:
        outcome[stack] = project.smtps("up", "-s", stack, "--yes", check=False)

    open_relay(project, 0, True)
    lab.sh("mail1", HOLD_465)
    runs = [threading.Thread(target=up, args=(STACK,))]
    try:
        runs[0].start()
        wait_until("the first run changes master.cf", lambda: "465/inet/mynetworks = 0.0.0.0/0" in
                   lab.sh("mail1", "postconf -P 465/inet").stdout, 300)
        runs.append(threading.Thread(target=up, args=(other,)))
        runs[1].start()
        wait_until("the second run changes the service file", lambda: "as a second stack has it" in
                   lab.sh("mail1", "cat /etc/firewalld/services/smtps.xml").stdout, 70)
        assert runs[0].is_alive(), "the first run's check ended before the second run changed the host"
    finally:
        lab.sh("mail1", "nft delete table inet smtps_test_hold", check=False)
        for run in runs:
            run.join()
        open_relay(project, 0, False)
        project.pulumi("stack", "rm", "-s", other, "--force", "--yes", check=False)
    first, second = outcome[STACK], outcome[other]
    for result in (first, second):
        assert result.returncode != 0 and "OPEN RELAY" in result.stderr, result.stderr
        assert "rolled back: this run's changes on it are undone" in result.stderr, result.stderr
    assert "this run changed nothing" not in first.stderr
    assert host_state(lab, "mail1") == before
    project.smtps("up", "-s", STACK, "--yes", "--refresh")
    project.smtps("preview", "-s", STACK, "--expect-no-changes")


def test_a_tampered_snapshot_is_data_and_is_refused(lab: Lab):
    """What a run kept on the host is read back as data, and checked whole before the rollback changes anything: a
    target that is no file of this tool's, a journal line that is no change this tool makes, a link anywhere in the
    snapshot, a binding its reload did not drop. Each is refused, and the host is unchanged."""
    snapshot_id, settings = rollback.new_snapshot_id(), settings_for(lab, "mail3")
    snap = f"/run/smtps-iredmail/runs/{snapshot_id}"
    zone_file = "/etc/firewalld/zones/iredmail.xml"
    undo = rollback.script("mail3", snapshot_id, zone="iredmail", service="smtps")
    watched = ("sha256sum /etc/shadow; firewall-cmd --permanent --zone=public --list-all; "
               "firewall-cmd --zone=public --list-all; firewall-cmd --zone=trusted --list-all; "
               "firewall-cmd --get-active-zones")
    before, others = host_state(lab, "mail3"), lab.sh("mail3", watched).stdout

    def refused(setup: str, message: str) -> None:
        lab.sh("mail3", f"rm -rf {snap} && mkdir -p -m 700 {snap} && echo {snapshot_id} > {snap}/id && "
                        f"cp -p {zone_file} {snap}/0 && echo {zone_file} > {snap}/targets && {setup}")
        result = run_script(lab, settings, undo)
        assert result.returncode != 0 and message in result.stderr, (setup, result.stderr)
        assert "nothing was rolled back" in result.stderr
        assert lab.sh("mail3", "test -e /tmp/pwned", check=False).returncode != 0
        assert host_state(lab, "mail3") == before, setup
        assert lab.sh("mail3", watched).stdout == others, setup

    refused(f"echo /etc/shadow > {snap}/targets", "names /etc/shadow, which is not a file this tool changes")
    refused(f"echo /etc/firewalld/zones/trusted.xml > {snap}/targets",
            "names /etc/firewalld/zones/trusted.xml, which is not a file this tool changes")
    for line in ("runtime remove service smtps;touch${IFS}/tmp/pwned iredmail",
                 "permanent add port 1-65535/tcp public",
                 "permanent add port 1-65535/tcp iredmail",
                 "runtime add service ssh iredmail",
                 "runtime remove service smtps iredmail extra",
                 "nft add inet firewalld filter_INPUT"):  # a firewalld host: no nftables line is this tool's
        refused(f"printf '%s\\n' '{line}' > {snap}/journal", "holds a journal line that is no change of this tool's")
    # Links: a copy that is a link to a file elsewhere, a state folder that holds one, a second name of a file.
    refused(f"rm {snap}/0 && ln -s /etc/shadow {snap}/0", f"holds {snap}/0, which is not a plain file or folder")
    refused(f"mkdir -p {snap}/state/master && ln -s /etc/shadow {snap}/state/master/orig",
            f"holds {snap}/state/master/orig, which is not a plain file or folder")
    refused(f"rm {snap}/0 && ln /etc/shadow {snap}/0 2>/dev/null || ln {snap}/id {snap}/0",
            "which is not a plain file or folder")
    # Bindings: every address (spelt as firewalld reads it; tests/test_rollback_rules.py has the other spellings),
    # an ipset, every interface, and an interface the reload never dropped.
    for kind, name in (("source", "0.0.0.0/000"), ("source", "0.0.0.0/0.0.0.0"), ("source", "ipset:all"),
                       ("interface", "eth+")):
        refused(f": > {snap}/reloaded && printf 'public\\n  {kind}s: {name}\\n' > {snap}/bindings && "
                f"echo 'public {kind} {name}' > {snap}/dropped", f"{name}")
    refused(f": > {snap}/reloaded && : > {snap}/bindings && echo 'trusted interface eth0' > {snap}/dropped",
            "holds a binding its reload did not drop, or that this tool never makes (trusted interface eth0)")
    lab.sh("mail3", f"rm -rf {snap}")


def test_an_edit_made_after_the_run_wrote_a_file_is_left_to_its_author(lab: Lab):
    """Between this run's change and the failed check someone edits master.cf: the rollback puts back the service
    file this run changed, leaves master.cf with their edit, and says so."""
    snapshot_id = rollback.new_snapshot_id()
    settings = settings_for(lab, "mail3", serviceDescription="Changed by this run.",
                            options={"syslog_name": "postfix/smtps-run"})
    before = snapshot(lab, "mail3")
    for script in (master_service.MODEL.script("mail3", (settings.master, settings.tls), Action.APPLY, None,
                                               snapshot_id),
                   firewalld_service.MODEL.script("mail3", settings.service, Action.APPLY, None, snapshot_id)):
        assert run_script(lab, settings, script).returncode == 0
    lab.sh("mail3", "echo '# an admin was here' >> /etc/postfix/master.cf")
    edited = lab.sh("mail3", "cat /etc/postfix/master.cf").stdout
    result = run_script(lab, settings, rollback.script("mail3", snapshot_id, zone="iredmail", service="smtps"))
    assert result.returncode == 0, result.stderr
    assert rollback.result(result.stdout) == "partial: /etc/postfix/master.cf", result.stdout
    after = snapshot(lab, "mail3")
    assert after["firewalld/services/smtps.xml"] == before["firewalld/services/smtps.xml"]
    assert lab.sh("mail3", "cat /etc/postfix/master.cf").stdout == edited
    # Put mail3 back for the module's destroy: the admin's line out, this tool's entry as the stack says.
    lab.sh("mail3", "sed -i '/^# an admin was here$/d' /etc/postfix/master.cf")
    plain = settings_for(lab, "mail3")
    again = master_service.MODEL.script("mail3", (plain.master, plain.tls), Action.APPLY)
    assert run_script(lab, plain, again).returncode == 0
