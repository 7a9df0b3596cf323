"""No secret in a stack that CI runs (docs/safety.md, "Secrets"): the deploy key and the test
credential come from files on the machine that runs `up`, never through Pulumi; in CI, `up`, `key` and every read of a
stack's secret refuse a stack that holds one, in words, before the engine or any host is asked anything.
The same through the real engine and a lab host: tests/lab/test_relay.py."""

from __future__ import annotations

import gzip
import json
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pulumi
import pytest
import yaml

from smtps_iredmail.core import cli, credentials, engine, stacks
from tests.lab import test_postgres_backend
from tests.test_components import KEY, Mocks

STACK_FILE = {"config": {
    "smtps-iredmail:hosts": [{"name": "mx1", "address": "10.0.0.1", "hostKey": KEY}],
    "smtps-iredmail:sshPrivateKey": {"secure": "v1:AAAA"},
    "smtps-iredmail:testCredential": {"username": "probe@example.org", "password": {"secure": "v1:BBBB"}},
}}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "Pulumi.yaml").write_text("name: smtps-iredmail\n")
    (tmp_path / "stacks" / "Pulumi.dc1.yaml").write_text(yaml.safe_dump(STACK_FILE))
    monkeypatch.setenv("SMTPS_PROJECT_DIR", str(tmp_path))
    for name in ("CI", "GITHUB_ACTIONS", credentials.CREDENTIAL_FILE_ENV, credentials.SSH_KEY_FILE_ENV):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def no_engine(*_args, **_kwargs):
    raise AssertionError("the engine was asked, after a refusal")


@pytest.mark.parametrize(("env", "expected"), [
    ({}, False), ({"CI": "true"}, True), ({"CI": "1"}, True), ({"CI": "TRUE"}, True), ({"CI": "false"}, False),
    ({"CI": ""}, False), ({"GITHUB_ACTIONS": "true"}, True), ({"GITHUB_ACTIONS": "false"}, False),
])
def test_what_counts_as_ci(env, expected, monkeypatch):
    for name in ("CI", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert credentials.in_ci() is expected


def test_the_secret_keys_of_a_stack_file_are_found_without_decrypting(project: Path):
    assert stacks.stored_secrets(project, "dc1") == ["smtps-iredmail:sshPrivateKey", "smtps-iredmail:testCredential"]
    assert stacks.stored_secrets(project, "nosuchstack") == []


@pytest.mark.parametrize("variable", ["CI", "GITHUB_ACTIONS"])
def test_in_ci_up_refuses_a_stack_that_holds_secrets_before_the_engine_is_asked(project, monkeypatch, capsys,
                                                                                variable):
    monkeypatch.setenv(variable, "true")
    monkeypatch.setattr(engine, "stack", no_engine)
    assert cli.main(["up", "-s", "dc1", "--yes"]) == 2
    said = capsys.readouterr().err
    assert "stack dc1: its stack file holds secrets (smtps-iredmail:sshPrivateKey, smtps-iredmail:testCredential): " \
           "refused in CI" in said
    assert "SMTPS_SSH_KEY_FILE" in said and "SMTPS_TEST_CREDENTIAL_FILE" in said and "config rm -s dc1" in said


@pytest.mark.parametrize("command", ["up", "refresh", "destroy"])
def test_in_ci_a_state_that_holds_an_encrypted_value_is_refused_from_one_export(command, project, monkeypatch,
                                                                                capsys):
    (project / "stacks" / "Pulumi.dc1.yaml").write_text(yaml.safe_dump(
        {"config": {"smtps-iredmail:hosts": STACK_FILE["config"]["smtps-iredmail:hosts"]}}))
    secret = {credentials.SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:CCCC"}
    provider = "urn:pulumi:dc1::smtps-iredmail::pulumi:providers:pulumi-python::ssh-3"
    deployment = {"resources": [{"urn": provider, "inputs": {"smtps-iredmail:sshPrivateKey": secret}},
                                {"urn": "urn:other", "inputs": {"plain": "value"}, "outputs": {"list": ["a"]}}]}
    exports = []

    class Stack:
        def export_stack(self):
            exports.append(1)
            return type("Export", (), {"deployment": deployment})()

        def __getattr__(self, name):
            raise AssertionError(f"{name} ran on a state that holds a secret")

    monkeypatch.setattr(engine, "stack", lambda _name: Stack())
    monkeypatch.setenv("CI", "true")
    assert cli.main([command, "-s", "dc1", "--yes"]) == 2
    assert f"stack dc1: its state holds secrets ({provider} inputs.smtps-iredmail:sshPrivateKey): refused in CI" in \
        capsys.readouterr().err
    # Each export is a run of the engine's CLI: the checks of one command share one, refused or not.
    assert len(exports) == 1
    del deployment["resources"][0]
    exports.clear()

    class Reached(Exception):
        pass

    def engine_runs(self, name):
        raise Reached(name)

    monkeypatch.setattr(Stack, "__getattr__", engine_runs)
    with pytest.raises(Reached):
        cli.main([command, "-s", "dc1", "--yes", *(["--no-canary"] if command == "up" else [])])
    assert len(exports) == 1


def test_a_long_list_of_encrypted_values_is_cut_short():
    said = credentials.refusal("dc1", [f"urn:r{i} inputs.x" for i in range(20)], credentials.STATE)
    assert "(urn:r0 inputs.x, urn:r1 inputs.x, urn:r2 inputs.x, urn:r3 inputs.x, and 16 more)" in said
    assert "stack export -s dc1" in said and "config rm" not in said


def test_outside_ci_the_single_operators_stack_secret_is_not_refused(project, monkeypatch):
    asked = []
    monkeypatch.setattr(engine, "stack", lambda name: asked.append(name) or no_engine())
    with pytest.raises(AssertionError, match="the engine was asked"):
        cli.main(["up", "-s", "dc1", "--yes"])
    assert asked == ["dc1"]


def test_in_ci_key_is_refused_and_outside_it_says_it_is_for_one_operators_machine(project, monkeypatch, capsys,
                                                                                tmp_path):
    keyfile = tmp_path / "deploy"
    keyfile.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n")
    monkeypatch.setattr(engine, "stack", no_engine)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert cli.main(["key", "-s", "dc1", "--file", str(keyfile)]) == 2
    assert "stack dc1: `key` is refused in CI" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["key", "--help"])
    assert "single operator's machine only" in " ".join(capsys.readouterr().out.split())


def test_in_ci_a_stack_secret_is_never_decrypted(project, monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(engine.subprocess, "run", no_engine)
    with pytest.raises(SystemExit, match=r"stack dc1: its stack file holds secrets \(smtps-iredmail:testCredential\)"):
        engine.stack_secret("dc1", "testCredential")
    # A secret the stack does not hold is simply unset: nothing to decrypt, no Pulumi call.
    assert engine.stack_secret("dc1", "otherSecret") is None


@pytest.mark.parametrize(("text", "message"), [
    ('{"username": "u@example.org", "password": "p w"}', None),
    ("u@example.org:pw", "not JSON"),
    ('{"username": "u@example.org"}', "exactly"),
    ('{"username": "u@example.org", "password": ""}', "non-empty"),
    ('{"username": "u", "password": 5}', "non-empty"),
    ('{"username": "u", "password": "p", "extra": 1}', "exactly"),
    ('["u", "p"]', "exactly"),
])
def test_the_credential_file_is_a_credential_or_a_named_error(text, message, tmp_path, monkeypatch):
    path = tmp_path / "credential.json"
    path.write_text(text)
    monkeypatch.setenv(credentials.CREDENTIAL_FILE_ENV, str(path))
    if message is None:
        assert credentials.credential_from_file("dc1") == ("u@example.org", "p w")
    else:
        with pytest.raises(credentials.CredentialError, match=message) as raised:
            credentials.credential_from_file("dc1")
        assert str(raised.value).startswith(f"stack dc1: SMTPS_TEST_CREDENTIAL_FILE={path}: ")
        assert "p w" not in str(raised.value)


def test_an_unreadable_credential_file_is_named_and_an_unset_one_is_none(tmp_path, monkeypatch):
    monkeypatch.delenv(credentials.CREDENTIAL_FILE_ENV, raising=False)
    assert credentials.credential_from_file("dc1") is None
    monkeypatch.setenv(credentials.CREDENTIAL_FILE_ENV, str(tmp_path / "missing"))
    with pytest.raises(credentials.CredentialError, match="cannot be read: No such file or directory"):
        credentials.credential_from_file("dc1")


def _program_with(config: dict, secret_keys: list[str]) -> Mocks:
    the_mocks = Mocks()
    hosts = json.dumps([{"name": "mail1", "address": "10.0.0.1", "hostKey": KEY}])
    pulumi.runtime.set_all_config({"smtps-iredmail:hosts": hosts, **config}, secret_keys)
    pulumi.runtime.set_mocks(the_mocks, project="smtps-iredmail", stack="dc1", preview=False)
    return the_mocks


@pytest.fixture
def files(tmp_path, monkeypatch):
    key, credential = tmp_path / "deploy", tmp_path / "credential.json"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nkeyline\n")
    credential.write_text('{"username": "u@example.org", "password": "file-password"}')
    monkeypatch.setenv(credentials.SSH_KEY_FILE_ENV, str(key))
    monkeypatch.setenv(credentials.CREDENTIAL_FILE_ENV, str(credential))
    yield credential
    pulumi.runtime.set_all_config({})


@pulumi.runtime.test
def test_with_both_files_the_providers_get_neither_value(files):
    from smtps_iredmail.program import program

    mocks = _program_with({"smtps-iredmail:testCredential": '{"username": "s", "password": "stack-password"}'},
                          ["smtps-iredmail:testCredential"])
    hosts = program()

    def check(_):
        providers = [r for r in mocks.resources if r.typ.startswith("pulumi:providers:")]
        # The file wins over the stack's secret, and its value is read by the provider processes, not passed.
        assert providers and all(p.inputs == {} for p in providers)
        assert "file-password" not in str([r.inputs for r in mocks.resources])

    return pulumi.Output.all(*[h.verification.id for h in hosts.values()]).apply(check)


def test_a_bad_credential_file_fails_the_program_before_any_resource(files):
    from smtps_iredmail.program import program

    files.write_text("not json")
    mocks = _program_with({}, [])
    with pytest.raises(pulumi.RunError, match=r"stack dc1: SMTPS_TEST_CREDENTIAL_FILE=.*: not JSON"):
        program()
    assert mocks.resources == []


@pytest.mark.engine
def test_in_ci_a_file_backend_whose_history_keeps_an_old_secret_is_refused_until_purged(tmp_path):
    """The real engine and file backend: a stack that held a secret (written gzipped, as
    PULUMI_SELF_MANAGED_STATE_GZIP writes), then `config rm` and an `up`, has a stack file and a state without one,
    but its history and backups keep the ciphertext that the preview's passphrase opens. CI refuses it, naming the
    folders and the way out; once they are removed, CI goes on."""
    from tests.enginekit import Project

    project = Project.create(tmp_path / "project", SMTPS_PROGRAM="tests.engine_fixture:secret_while_set")
    project.pulumi("stack", "init", "t1", "--secrets-provider", "passphrase")
    project.pulumi("config", "set", "-s", "t1", "--secret", "fileSecret", "OLD-DEPLOY-KEY")
    project.env["PULUMI_SELF_MANAGED_STATE_GZIP"] = "true"
    project.smtps("up", "-s", "t1", "--yes")
    project.pulumi("config", "rm", "-s", "t1", "fileSecret")
    del project.env["PULUMI_SELF_MANAGED_STATE_GZIP"]
    project.smtps("up", "-s", "t1", "--yes")
    # What CI checked so far sees nothing: no secret in the stack file, no ciphertext in the state.
    assert stacks.stored_secrets(project.folder, "t1") == []
    assert "ciphertext" not in project.pulumi("stack", "export", "-s", "t1").stdout
    backend = project.folder / engine.STATE
    old = credentials.secrets_in_history(backend, stacks.PROJECT, "t1")
    for folder, ending in (("history", ".history.json.gz"), ("history", ".checkpoint.json.gz"),
                           ("backups", ".json.gz"), ("stacks", "t1.json.gz.bak")):
        assert any(name.startswith(f".pulumi/{folder}/") and name.endswith(ending) for name in old), (ending, old)

    project.env["CI"] = "true"
    refused = project.smtps("up", "-s", "t1", "--yes", check=False)
    history = backend / ".pulumi" / "history" / stacks.PROJECT / "t1"
    assert refused.returncode == 2, refused.stdout + refused.stderr
    said = " ".join(refused.stderr.split())
    assert f"stack t1: the file backend {backend} keeps secrets in the stack's history and backups" in said
    assert str(history) in said and "new deploy key" in said and "change-secrets-provider passphrase" in said
    assert project.smtps("refresh", "-s", "t1", "--yes", check=False).returncode == 2
    assert project.smtps("destroy", "-s", "t1", "--yes", check=False).returncode == 2

    # The way out the message gives, its last step: the stack's history, backups and `.bak` go.
    for part in ("history", "backups"):
        shutil.rmtree(backend / ".pulumi" / part / stacks.PROJECT / "t1", ignore_errors=True)
    for bak in (backend / ".pulumi" / "stacks" / stacks.PROJECT).glob("t1.json*.bak"):
        bak.unlink()
    assert credentials.secrets_in_history(backend, stacks.PROJECT, "t1") == []
    allowed = project.smtps("up", "-s", "t1", "--yes", check=False)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


@pytest.mark.parametrize(("url", "expected"), [
    ("file:///srv/state", "/srv/state"), ("file:///srv/state?no_tmp_dir=true", "/srv/state"),
    ("file://~/state", "HOME/state"), ("file://~", "HOME"), ("file://./state", "PROJECT/state"),
    ("file://", "PROJECT"), ("postgres://u@db/pulumi", None), ("s3://bucket", None), ("https://api.pulumi.com", None),
])
def test_which_backends_are_file_backends_and_where(url, expected, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    found = credentials.file_backend(url, tmp_path / "project")
    assert found == (None if expected is None else Path(
        expected.replace("HOME", str(tmp_path / "home")).replace("PROJECT", str(tmp_path / "project"))))


def test_history_lookup_refuses_a_stack_name_that_leaves_its_folder(tmp_path):
    for name in ("..", "a/..", "x y", "../../etc", "o/../s", "", "a/b"):
        with pytest.raises(credentials.CredentialError, match="not a stack name"):
            credentials.old_copies(tmp_path, stacks.PROJECT, name)


def test_a_secret_in_pulumi_yaml_project_config_counts_for_every_stack(project, monkeypatch, capsys):
    (project / "stacks" / "Pulumi.dc1.yaml").write_text(yaml.safe_dump(
        {"config": {"smtps-iredmail:hosts": STACK_FILE["config"]["smtps-iredmail:hosts"]}}))
    assert stacks.stored_secrets(project, "dc1") == []
    (project / "Pulumi.yaml").write_text(yaml.safe_dump({"name": "smtps-iredmail", "config": {
        "smtps-iredmail:sshPrivateKey": {"value": {"secure": "v1:AAAA"}}, "testCredential": {"secure": "v1:BBBB"},
        "plain": {"value": "x"}}}))
    assert stacks.stored_secrets(project, "dc1") == ["smtps-iredmail:sshPrivateKey", "smtps-iredmail:testCredential"]
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(engine, "stack", no_engine)
    assert cli.main(["up", "-s", "dc1", "--yes"]) == 2
    said = capsys.readouterr().err
    assert "stack dc1: its stack file or Pulumi.yaml's project-level config holds secrets" in said
    assert "delete them from Pulumi.yaml's project-level `config:`" in said


def test_the_older_unscoped_layout_and_gzip_by_content(tmp_path):
    """A backend without meta.yaml's `version: 1` keeps each stack directly in history/ and backups/; a gzipped
    file is found by its bytes whatever its name; a file with a marker that cannot be parsed counts, a clean one and
    another stack's do not."""
    root = tmp_path / ".pulumi"
    for folder in ("history/dc1", "backups/dc1", "stacks", "history/dc2"):
        (root / folder).mkdir(parents=True)
    (root / "history/dc1/dc1-1.history.json").write_text('{"config": {"smtps-iredmail:hosts": "[]"}}')
    (root / "backups/dc1/dc1.1.json").write_bytes(gzip.compress(json.dumps({"checkpoint": {"latest": {"resources": [
        {"outputs": {"k": {credentials.SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:x"}}}]}}})
        .encode()))
    (root / "stacks/dc1.json.bak").write_text('{"secure" cut short')
    (root / "history/dc2/dc2-1.history.json").write_text('{"config": {"k": {"secure": "v1:x"}}}')
    assert credentials.secrets_in_history(tmp_path, stacks.PROJECT, "dc1") == [
        ".pulumi/backups/dc1/dc1.1.json",
        ".pulumi/stacks/dc1.json.bak (cannot be read: Expecting ':' delimiter: line 1 column 11 (char 10))"]
    said = credentials.history_refusal("dc1", tmp_path, stacks.PROJECT, ["f"])
    assert f"rm -r {root}/history/dc1 {root}/backups/dc1, and any dc1.json*.bak in {root}/stacks " in said
    (root / "meta.yaml").write_text("version: 1\n")  # now the stacks would be under the project's name
    assert credentials.secrets_in_history(tmp_path, stacks.PROJECT, "dc1") == []


# A PostgreSQL cluster of this module's own (tests/lab/test_postgres_backend.py's: no lab host needed).
postgres_cluster = test_postgres_backend.postgres


def documented_read_only_role() -> list[str]:
    """The SQL of the preview's read-only role as docs/fleet-and-ci.md gives it ("Shared state"), as its `psql -c`
    arguments."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "fleet-and-ci.md").read_text()
    block = next(b for b in doc.split("```sh")[1:] if "CREATE VIEW" in b.split("```")[0]).split("```")[0]
    return [" ".join(sql.split()) for sql in re.findall(r'-c "(.*?)"', block, re.S)]


@pytest.mark.engine
def test_the_previews_read_only_postgres_role_reads_the_current_state_and_no_history(postgres_cluster, tmp_path):
    """The documented read-only role, run on a private PostgreSQL cluster: a stack that held a secret (its history
    and backups rows keep it), then the role and view made by the document's own lines. With that role the preview
    works and sees no change, its view shows no history or backup row, the table itself is refused, and `up` cannot
    write."""
    from tests.enginekit import Project

    postgres = postgres_cluster
    url = f"postgres://smtps@127.0.0.1:{postgres.port}/pulumi?sslmode=disable"
    project = Project.create(tmp_path / "project", SMTPS_PROGRAM="tests.engine_fixture:secret_while_set",
                             PULUMI_BACKEND_URL=url, PGPASSWORD=postgres.password)
    project.pulumi("stack", "init", "t1", "--secrets-provider", "passphrase")
    project.pulumi("config", "set", "-s", "t1", "--secret", "fileSecret", "OLD-DEPLOY-KEY")
    project.smtps("up", "-s", "t1", "--yes")
    project.pulumi("config", "rm", "-s", "t1", "fileSecret")
    project.smtps("up", "-s", "t1", "--yes")
    assert any("/history/" in key for key in postgres.keys())

    role, *owner = documented_read_only_role()
    assert role.startswith("CREATE ROLE smtps_preview LOGIN PASSWORD '…'") and owner
    password = secrets.token_urlsafe(16)
    postgres.psql(role.replace("…", password), "pulumi")
    for sql in owner:
        postgres.psql(sql, "pulumi", "smtps")

    def as_preview(sql: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(postgres.bin_dir / "psql"), "-X", "-A", "-t", "-h", "127.0.0.1", "-p",
                               str(postgres.port), "-U", "smtps_preview", "-d", "pulumi", "-c", sql],
                              capture_output=True, text=True, env={**os.environ, "PGPASSWORD": password})

    seen = as_preview("SELECT key FROM pulumi_state_current ORDER BY key").stdout.split()
    assert seen == ["pulumi/.pulumi/meta.yaml", "pulumi/.pulumi/stacks/smtps-iredmail/t1.json"], seen
    refused = as_preview("SELECT count(*) FROM pulumi_state")
    assert refused.returncode != 0 and "permission denied" in refused.stderr, refused.stderr

    preview_url = url.replace("smtps@", "smtps_preview@").replace("?", "?table=pulumi_state_current&")
    preview = Project(project.folder, {**project.env, "PULUMI_BACKEND_URL": preview_url, "PGPASSWORD": password,
                                       "CI": "true"})
    done = preview.smtps("preview", "-s", "t1", "--expect-no-changes", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    up = Project(project.folder, {**preview.env, "CI": ""}).smtps("up", "-s", "t1", "--yes", check=False)
    assert up.returncode != 0 and "permission denied" in up.stdout + up.stderr, up.stdout + up.stderr
