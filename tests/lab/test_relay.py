"""Not an open relay, shown from outside on a lab host through the real engine: the check from outside asks 465 to
relay without logging in (refused with 5xx) and, with the stack's test credential, after logging in (accepted); swaks,
a client nobody here wrote, says the same, and a submission with AUTH reaches the content filter (the lab's Amavisd
stand-in on 10026). An open-relay option, allowed on purpose, fails the host's check. Last, the CI path
(docs/safety.md, "Secrets"): the key and the credential from files, and nothing in the stack or its state that the
preview job's passphrase opens."""

from __future__ import annotations

import json
import smtplib
import ssl
import subprocess
import time

import pytest
import yaml

from smtps_iredmail.core import credentials
from tests.conftest import require
from tests.enginekit import Project
from tests.lab.labkit import Lab, running_lab
from tests.lab.smtpskit import postfix_reloads, ssh_counts

pytestmark = [pytest.mark.lab, pytest.mark.engine]
STACK = "relay"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    require(subprocess.run(["sh", "-c", "command -v swaks"], capture_output=True).returncode == 0,
            "swaks is not installed: run `make system-deps`")
    with running_lab(tmp_path_factory, "relay", "--hosts", "1") as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def project(lab: Lab, tmp_path_factory):
    project = Project.for_lab(tmp_path_factory.mktemp("relay") / "smtps", lab, STACK)
    yield project
    project.pulumi("destroy", "-s", STACK, "--yes", check=False)


def swaks(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    host = lab.hosts()[0]
    return subprocess.run(["swaks", "--server", host["address"], "--port", "465", "--tls-on-connect",
                           "--timeout", "10", "--helo", "swaks.invalid", *args],
                          capture_output=True, text=True, timeout=60)


def outputs(project: Project) -> dict:
    return json.loads(project.pulumi("stack", "output", "-s", STACK, "--json", "hosts").stdout)["mail1"]


def test_without_logging_in_465_refuses_to_relay(lab: Lab, project: Project):
    project.smtps("up", "-s", STACK, "--yes")
    assert outputs(project)["relayWithoutLogin"].startswith("554 5.7.1")
    seen = swaks(lab, "--from", "someone@example.org", "--to", "relay-probe@example.net", "--quit-after", "RCPT")
    # swaks marks a refusal `<~*` under TLS.
    assert seen.returncode != 0 and "<~* 554 5.7.1" in seen.stdout, seen.stdout


def test_with_the_test_credential_relaying_is_accepted_and_a_submission_reaches_the_content_filter(lab: Lab,
                                                                                                   project: Project):
    sasl = lab.inventory["sasl"]
    project.pulumi("config", "set", "-s", STACK, "--secret", "--path", "testCredential.username", sasl["username"])
    # After `--`: a generated password may start with a dash.
    project.pulumi("config", "set", "-s", STACK, "--secret", "--path", "--", "testCredential.password",
                   sasl["password"])
    project.pulumi("config", "set", "-s", STACK, "--path", "defaults.certMinDays", "13")  # the check runs again
    project.smtps("up", "-s", STACK, "--yes")
    state = json.loads(project.pulumi("stack", "export", "-s", STACK).stdout)
    check = next(r for r in state["deployment"]["resources"] if r["urn"].endswith("::mail1-verify"))
    assert check["outputs"]["relayAuthenticated"].startswith("250")
    assert sasl["password"] not in json.dumps(state)  # the credential is kept encrypted
    marker = f"smtps-relay-test-{time.time_ns()}"
    # Python's smtplib, not swaks: swaks reads an argument that starts with a dash as an option however it is given
    # (`--auth-password=-x`, its SWAKS_OPT_ variables), and a generated password may start with one.
    host = lab.hosts()[0]
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the lab's own certificate
    with smtplib.SMTP_SSL(host["address"], 465, local_hostname="smtps-test.invalid", context=context,
                          timeout=10) as client:
        client.login(sasl["username"], sasl["password"])
        refused = client.sendmail(sasl["username"], [f"postmaster@{lab.inventory['mail_domain']}"],
                                  f"From: {sasl['username']}\r\nSubject: {marker}\r\n\r\nrelay test\r\n")
    assert refused == {}
    deadline = time.monotonic() + 20
    while not lab.sh("mail1", f"grep -l {marker} /var/lib/amavis-standin/*-10026.eml 2>/dev/null || true").stdout:
        assert time.monotonic() < deadline, "the submission did not reach the content filter on 10026"
        time.sleep(0.2)


# An open relay Postfix accepts: every client counts as "my network", and main.cf's permit_mynetworks comes first.
# (Relay restrictions with only a `permit` and nothing working after it make smtpd refuse to start instead.)
OPEN = {"mynetworks": "0.0.0.0/0", "smtpd_client_restrictions": "permit"}


def test_an_open_relay_option_allowed_on_purpose_fails_the_check(lab: Lab, project: Project):
    for option, value in OPEN.items():
        project.pulumi("config", "set", "-s", STACK, "--path", f"defaults.options.{option}", value)
    refused = project.smtps("preview", "-s", STACK, check=False)
    assert refused.returncode != 0 and "setting options.mynetworks: '0.0.0.0/0': lets every client in 0.0.0.0/0 " \
        "relay without logging in" in refused.stdout + refused.stderr
    project.pulumi("config", "set", "-s", STACK, "--path", "defaults.allowOptions[0]", "mynetworks")
    project.pulumi("config", "set", "-s", STACK, "--path", "defaults.allowOptions[1]", "smtpd_client_restrictions")
    up = project.smtps("up", "-s", STACK, "--yes", check=False)
    assert up.returncode != 0
    assert "mail1: verification: update:" in up.stderr and "OPEN RELAY: without logging in, RCPT TO " \
        "relay-probe@example.net was accepted (250" in up.stderr, up.stderr
    project.pulumi("config", "rm", "-s", STACK, "--path", "defaults.allowOptions")
    for option in OPEN:
        project.pulumi("config", "rm", "-s", STACK, "--path", f"defaults.options.{option}")
    project.smtps("up", "-s", STACK, "--yes")
    assert outputs(project)["relayWithoutLogin"].startswith("554")


def test_a_content_filter_only_the_host_can_judge_is_refused_there_before_any_change(lab: Lab, project: Project):
    """The settings accept `smtp:[127.0.0.1]:587`; only the host knows that 587 is Postfix itself (submission, no
    filter after it). The apply refuses it in the settings' words before it changes anything."""
    master_cf = lab.sh("mail1", "sha256sum /etc/postfix/master.cf").stdout
    reloads = postfix_reloads(lab, "mail1")
    project.pulumi("config", "set", "-s", STACK, "--path", "defaults.options.content_filter", "smtp:[127.0.0.1]:587")
    try:
        up = project.smtps("up", "-s", STACK, "--yes", check=False)
        assert up.returncode != 0
        assert ("mail1: master.cf service: update: setting options.content_filter: 'smtp:[127.0.0.1]:587': port 587 "
                "is a Postfix listener of this host's master.cf, not a content filter: mail sent there would be "
                "delivered without one; refused (to allow it on purpose: allowOptions: [content_filter]); nothing was "
                "changed") in up.stderr, up.stderr
        assert lab.sh("mail1", "sha256sum /etc/postfix/master.cf").stdout == master_cf
        assert postfix_reloads(lab, "mail1") == reloads
    finally:
        project.pulumi("config", "rm", "-s", STACK, "--path", "defaults.options.content_filter")
        project.smtps("up", "-s", STACK, "--yes")


def test_a_change_that_silences_another_mail_port_fails_the_check(lab: Lab, project: Project):
    # Someone left a master.cf edit pending (the port 25 service commented out, Postfix not reloaded). This run's
    # change of the 465 entry reloads Postfix, which loads it too: port 25 goes quiet, and the check says so. (The same
    # with a pending firewalld edit is refused before the reload by the lockout guard: tests/lab/test_safety.py.)
    lab.sh("mail1", "cp -p /etc/postfix/master.cf /root/master.cf.relay-test && postconf -M# smtp/inet")
    project.pulumi("config", "set", "-s", STACK, "--path", "defaults.options.syslog_name", "postfix/smtps-reloaded")
    try:
        up = project.smtps("up", "-s", STACK, "--yes", check=False)
        assert up.returncode != 0
        assert "mail1: verification: update:" in up.stderr and "ports that answered before this run changed the " \
            "host no longer do: 25" in up.stderr, up.stderr
    finally:
        lab.sh("mail1", "cp -p /root/master.cf.relay-test /etc/postfix/master.cf && rm /root/master.cf.relay-test && "
                        "postfix reload >/dev/null 2>&1")
        project.pulumi("config", "rm", "-s", STACK, "--path", "defaults.options.syslog_name")
    project.smtps("up", "-s", STACK, "--yes", "--refresh")
    found = outputs(project)
    assert 25 in found["portsAfter"] and 465 in found["portsAfter"]


def sshd_connections(lab: Lab, name: str) -> int:
    """TCP connections the host's sshd has seen so far (LogLevel VERBOSE), logged in or not."""
    return int(lab.sh(name, "grep -c 'Connection from' /run/lab/log/sshd.log || true").stdout.split()[0])


# --- the CI path (docs/safety.md): no secret in the stack or its state; CI refuses a stack that holds one ---------
def test_zz_the_ci_path_keeps_the_key_and_the_credential_out_of_the_stack_and_its_state(lab: Lab, project: Project,
                                                                                       tmp_path):
    sasl, host = lab.inventory["sasl"], lab.hosts()[0]["name"]
    in_ci = {"CI": "true", "GITHUB_ACTIONS": "true"}
    # This module's stack holds the deploy key and the test credential as secrets (as a single operator may): under
    # CI, `up` is refused before the engine runs, so no host sees even a connection.
    project.pulumi("config", "set", "-s", STACK, "--secret", "--path", "testCredential.username", sasl["username"])
    logins, connections = ssh_counts(lab, host)[0], sshd_connections(lab, host)
    refused = Project(project.folder, {**project.env, **in_ci}).smtps("up", "-s", STACK, "--yes", check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"stack {STACK}: its stack file holds secrets (smtps-iredmail:sshPrivateKey, " \
           "smtps-iredmail:testCredential): refused in CI" in refused.stderr
    assert (ssh_counts(lab, host)[0], sshd_connections(lab, host)) == (logins, connections)

    # The same hosts in a stack set up the CI way (docs/safety.md): settings only; the key and the credential as 0600
    # files on the machine that runs `up`, and a passphrase that protects nothing (the same for `up` and the preview).
    project.pulumi("destroy", "-s", STACK, "--yes")
    relay = yaml.safe_load((project.folder / "stacks" / f"Pulumi.{STACK}.yaml").read_text())["config"]
    settings = {key: value for key, value in relay.items() if key.split(":")[1] in ("hosts", "defaults", "bastions")}
    (project.folder / "stacks" / "Pulumi.ci.yaml").write_text(yaml.safe_dump({"config": settings}))
    credential = tmp_path / "credential.json"
    credential.touch(mode=0o600)
    credential.write_text(json.dumps({"username": sasl["username"], "password": sasl["password"]}))
    passphrase = {"PULUMI_CONFIG_PASSPHRASE": "protects-nothing"}
    runner = Project(project.folder, {**project.env, **in_ci, **passphrase,
                                      "SMTPS_SSH_KEY_FILE": lab.inventory["private_key_path"],
                                      "SMTPS_TEST_CREDENTIAL_FILE": str(credential)})
    destroyed = False
    try:
        runner.smtps("up", "-s", "ci", "--yes")
        state = json.loads(runner.pulumi("stack", "export", "-s", "ci").stdout)
        check = next(r for r in state["deployment"]["resources"] if r["urn"].endswith(f"::{host}-verify"))
        assert check["outputs"]["relayAuthenticated"].startswith("250"), check  # logged in with the file's credential

        # What the preview job gets: the passphrase and the backend, no file, no key, no credential.
        preview_job = Project(project.folder, {**project.env, **in_ci, **passphrase,
                                               "PULUMI_BACKEND_URL": f"file://{project.folder / '.pulumi-state'}"})
        shown = preview_job.pulumi("stack", "export", "-s", "ci", "--show-secrets").stdout
        key_lines = [line for line in open(lab.inventory["private_key_path"]).read().splitlines()
                     if line and not line.startswith("-----")]
        assert json.loads(shown)["deployment"]["resources"]  # a real state, decrypted as far as it can be
        assert not [line for line in key_lines if line in shown] and sasl["password"] not in shown
        assert credentials.SECRET_SIG not in preview_job.pulumi("stack", "export", "-s", "ci").stdout
        assert "secure" not in (project.folder / "stacks" / "Pulumi.ci.yaml").read_text()
        logins = ssh_counts(lab, host)[0]
        preview_job.smtps("preview", "-s", "ci", "--expect-no-changes")
        assert ssh_counts(lab, host)[0] == logins
        # Under CI, destroy checks the state as up does: a state this path wrote passes.
        destroyed = runner.smtps("destroy", "-s", "ci", "--yes").returncode == 0
    finally:
        if not destroyed:
            runner.smtps("destroy", "-s", "ci", "--yes", check=False)
