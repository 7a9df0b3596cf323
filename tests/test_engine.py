"""The real Pulumi engine on this machine: a throwaway stack with a small dynamic resource that writes a file,
driven through `smtps` (the Automation API) and the plain `pulumi` CLI, on a temporary backend."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from smtps_iredmail.core import engine
from tests.enginekit import PULUMI, Project, require_engine

pytestmark = pytest.mark.engine
SECRET = "fixture-secret-8f3a1c-DO-NOT-LEAK"  # noqa: S105 - the value whose leak the test looks for


@pytest.fixture
def project(tmp_path):
    project = Project.create(tmp_path / "project", SMTPS_PROGRAM="tests.engine_fixture:program")
    yield project
    project.pulumi("cancel", "-s", "t1", "--yes", check=False)


def test_the_engine_is_the_pinned_build_or_an_installed_v3():
    require_engine()
    version = subprocess.run([str(PULUMI), "version"], capture_output=True, text=True, check=True).stdout.strip()
    # `make tools` builds v3.274.1 into its cache (a folder named after the version); a user's own install may be
    # any v3.176 or newer.
    if PULUMI.resolve().parent.name == "pulumi-v3.274.1":
        assert version == "v3.274.1"
    else:
        assert version.startswith("v3."), version


def test_a_throwaway_stack_through_the_front_end_and_the_plain_cli(project, tmp_path):
    target = tmp_path / "greeting.txt"
    project.pulumi("stack", "init", "t1", "--secrets-provider", "passphrase")
    project.pulumi("config", "set", "-s", "t1", "path", str(target))
    project.pulumi("config", "set", "-s", "t1", "content", "hello")
    project.pulumi("config", "set", "-s", "t1", "--secret", "fileSecret", SECRET)
    outputs = []

    preview = project.smtps("preview", "-s", "t1")
    outputs.append(preview.stdout + preview.stderr)
    # The stack, the explicit provider and the file.
    assert "+ 3 to create" in preview.stdout and "greeting" in preview.stdout and not target.exists()

    up = project.smtps("up", "-s", "t1", "--yes")
    outputs.append(up.stdout + up.stderr)
    # A provider's warning (a host script's `warning:` line) is in the run's output; its other lines are not.
    assert "smtps: greeting: warning: wrote hello" in up.stdout + up.stderr
    assert "smtps: greeting: quiet" not in up.stdout + up.stderr
    lines = target.read_text().splitlines()
    assert lines[0] == "hello"
    # The provider saw the secret through `configure` (its digest is in the file), never as an input.
    assert lines[1] == f"secret-digest {hashlib.sha256(SECRET.encode()).hexdigest()[:16]}"

    project.pulumi("config", "set", "-s", "t1", "content", "world")
    diff = project.smtps("preview", "-s", "t1", "--diff")
    outputs.append(diff.stdout + diff.stderr)
    assert '~ content: "hello" => "world"' in diff.stdout

    up = project.smtps("up", "-s", "t1", "--yes")
    outputs.append(up.stdout + up.stderr)
    assert "1 updated" in up.stdout and target.read_text().startswith("world\n")

    target.write_text("edited by hand\n")
    refresh = project.pulumi("refresh", "-s", "t1", "--preview-only", "--diff")
    outputs.append(refresh.stdout + refresh.stderr)
    assert '- content: "world"' in refresh.stdout or '~ content: "world" => "edited by hand"' in refresh.stdout

    export = project.pulumi("stack", "export", "-s", "t1")
    outputs.append(export.stdout)
    destroy = project.pulumi("destroy", "-s", "t1", "--yes")
    outputs.append(destroy.stdout + destroy.stderr)
    assert not target.exists()

    everything = "\n".join(outputs) + project.secrets_everywhere()
    assert SECRET not in everything
    project.pulumi("stack", "rm", "-s", "t1", "--yes")
    # The stack is gone: from the backend's list, its state and its config file. (Pulumi's file backend keeps
    # backups of a removed stack's state under .pulumi/backups, on purpose, for recovery; checked above for the
    # secret with everything else.)
    assert "t1" not in project.pulumi("stack", "ls").stdout
    assert not (project.folder / ".pulumi-state" / ".pulumi" / "stacks" / "smtps-iredmail" / "t1.json").exists()
    assert not (project.folder / "stacks" / "Pulumi.t1.yaml").exists()
    print(f"engine timings: {project.timings}")


def test_the_state_is_written_once_per_run_unless_the_user_says_otherwise(monkeypatch, tmp_path):
    require_engine()
    monkeypatch.delenv("PULUMI_SKIP_CHECKPOINTS", raising=False)
    assert engine.environment(tmp_path)["PULUMI_SKIP_CHECKPOINTS"] == "true"
    monkeypatch.setenv("PULUMI_SKIP_CHECKPOINTS", "false")
    assert engine.environment(tmp_path)["PULUMI_SKIP_CHECKPOINTS"] == "false"


def test_the_engines_stack_runs_no_cli_after_an_operation_for_results_nobody_reads(project, tmp_path, monkeypatch):
    # The Automation API's Stack ran `stack output` twice and `stack history` after each up (history after refresh
    # and destroy): three CLI starts. The project's stack runs the operation alone, and makes the summary it returns
    # from the operation's own events; asked by themselves, outputs and history still come from the CLI.
    from smtps_iredmail.core import engine

    project.pulumi("stack", "init", "t1", "--secrets-provider", "passphrase")
    project.pulumi("config", "set", "-s", "t1", "path", str(tmp_path / "greeting.txt"))
    project.pulumi("config", "set", "-s", "t1", "content", "hello")
    project.pulumi("config", "set", "-s", "t1", "--secret", "fileSecret", SECRET)
    for name in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("SMTPS_PROJECT_DIR", "PULUMI_HOME", "TMPDIR", "SMTPS_PROGRAM", "PYTHONPATH"):
        monkeypatch.setenv(name, project.env[name])
    stack = engine.stack("t1")
    assert str(stack.workspace.pulumi_command.version).startswith("3.")
    ran: list[str] = []
    run = stack.workspace.pulumi_command.run
    monkeypatch.setattr(stack.workspace.pulumi_command, "run",
                        lambda args, *rest, **kw: ran.append(" ".join(a for a in args[:3] if a[0] != "-")) or
                        run(args, *rest, **kw))
    summaries = []
    up = stack.up(on_event=lambda event: event.summary_event and summaries.append(event.summary_event))
    assert ran == ["up"]
    assert up.outputs == {} and up.summary.kind == "update" and up.summary.result == "succeeded"
    assert up.summary.resource_changes == summaries[-1].resource_changes and up.summary.resource_changes["create"]
    assert stack.refresh().summary.kind == "refresh" and ran == ["up", "refresh"]
    assert stack.outputs()["path"].value and stack.info().kind == "refresh"
    assert ran[2:] == ["stack output", "stack output", "stack history"]
    assert stack.destroy().summary.resource_changes["delete"] == 3
    assert ran[5:] == ["destroy"]


def test_a_stack_the_file_backend_holds_is_not_selected_again(project, monkeypatch):
    # `pulumi stack select` is a CLI start that only makes sure the stack exists: every operation names its stack.
    # A stack this project's file backend holds is taken as it is; one it does not hold is made (and selected), and
    # another backend is asked.
    from pulumi import automation as auto

    from smtps_iredmail.core import engine

    project.pulumi("stack", "init", "t1", "--secrets-provider", "passphrase")
    for name in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("SMTPS_PROJECT_DIR", "PULUMI_HOME", "TMPDIR", "SMTPS_PROGRAM", "PYTHONPATH"):
        monkeypatch.setenv(name, project.env[name])
    asked: list[str] = []
    for method in ("select_stack", "create_stack"):
        original = getattr(auto.LocalWorkspace, method)
        monkeypatch.setattr(auto.LocalWorkspace, method,
                            lambda self, name, *rest, _m=method, _o=original: asked.append(f"{_m} {name}") or
                            _o(self, name, *rest))
    held = engine.stack("t1")
    assert asked == [] and held.name == "t1" and isinstance(held, auto.Stack)
    held.set_config("content", auto.ConfigValue("named"))  # the stack is named to the CLI
    assert project.pulumi("config", "get", "-s", "t1", "content").stdout.strip() == "named"
    made = engine.stack("t2")
    assert asked == ["select_stack t2", "create_stack t2"] and made.name == "t2"
    assert engine.stack("t2").name == "t2" and asked[2:] == []
    monkeypatch.setenv("PULUMI_BACKEND_URL", engine.backend_url(project.folder))
    engine.stack("t1")
    assert asked[2:] == ["select_stack t1"]


def test_one_provider_process_serves_many_calls_at_once(tmp_path):
    # The SDK's provider process serves 4 calls at once; this project's modules, loaded in it, raise that to
    # CALLS_AT_ONCE (smtps_iredmail/provider_process.py), so that 4 processes keep many hosts busy. 12 creates in one
    # provider process each wait until all 12 run: with 4 at a time, the first 4 would give up after 30 s.
    from smtps_iredmail.provider_process import CALLS_AT_ONCE

    count = 12
    assert 4 < count <= CALLS_AT_ONCE
    project = Project.create(tmp_path / "project", SMTPS_PROGRAM="tests.engine_fixture:gates")
    (tmp_path / "marks").mkdir()
    project.pulumi("stack", "init", "t1", "--secrets-provider", "passphrase")
    project.pulumi("config", "set", "-s", "t1", "count", str(count))
    project.pulumi("config", "set", "-s", "t1", "folder", str(tmp_path / "marks"))
    project.smtps("up", "-s", "t1", "--yes")
    outputs = json.loads(project.pulumi("stack", "output", "-s", "t1", "--json").stdout)
    assert outputs["together"] == count
    project.pulumi("destroy", "-s", "t1", "--yes")


def test_a_resource_moved_to_another_provider_is_kept_not_replaced(tmp_path):
    # Hosts are spread over provider processes by their name (components/host.py); a release that changes how many
    # there are moves hosts to other providers. The engine asks the new provider whether its configuration needs a
    # replacement, and a dynamic provider says not: the resource stays as it is, now with the new provider, and the
    # provider no resource uses any more is deleted from the state.
    project = Project.create(tmp_path / "project", SMTPS_PROGRAM="tests.engine_fixture:moved")
    target, summary = tmp_path / "greeting.txt", tmp_path / "summary.json"
    project.pulumi("stack", "init", "t1", "--secrets-provider", "passphrase")
    for key, value in (("path", str(target)), ("content", "hello"), ("providerName", "ssh-9")):
        project.pulumi("config", "set", "-s", "t1", key, value)
    project.pulumi("config", "set", "-s", "t1", "--secret", "fileSecret", SECRET)
    project.smtps("up", "-s", "t1", "--yes")
    written = target.stat().st_mtime_ns

    project.pulumi("config", "set", "-s", "t1", "providerName", "ssh-1")
    preview = project.smtps("preview", "-s", "t1", "--diff", "--summary", str(summary))
    assert json.loads(summary.read_text())["changes"] == {"create": 1, "delete": 1, "same": 2}, preview.stdout
    project.smtps("up", "-s", "t1", "--yes", "--summary", str(summary))
    assert json.loads(summary.read_text())["changes"] == {"create": 1, "delete": 1, "same": 2}
    assert target.stat().st_mtime_ns == written  # neither made again nor updated
    resources = json.loads(project.pulumi("stack", "export", "-s", "t1").stdout)["deployment"]["resources"]
    providers = {r["urn"].rsplit("::", 1)[-1] for r in resources if r["type"].startswith("pulumi:providers:")}
    greeting = next(r for r in resources if r["urn"].endswith("::greeting"))
    assert providers == {"ssh-1"} and greeting["provider"].split("::")[-2] == "ssh-1"
    project.smtps("preview", "-s", "t1", "--expect-no-changes")
    project.pulumi("destroy", "-s", "t1", "--yes")
    assert not target.exists()  # the moved provider still deletes it
