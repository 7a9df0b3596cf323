"""The code's shape, checked: no import cycles among the project's modules (lazy imports inside functions count
too), the project's name defined once, and every resource kind wired from its one descriptor."""

from __future__ import annotations

import ast
from pathlib import Path

from smtps_iredmail.core.model import Inputs
from smtps_iredmail.kinds import KINDS

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("components", "smtps", "lab")
# The folders' names once installed (pyproject.toml's package-dir).
INSTALLED = {"components": "smtps_iredmail", "smtps": "smtps_iredmail.core", "lab": "lab"}


def _imports() -> dict[str, set[str]]:
    modules = {f"{INSTALLED[p.parent.name]}.{p.stem}": p for package in PACKAGES
               for p in (REPO / package).glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = INSTALLED[path.parent.name]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = f"{package}.{base}" if base else package
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every back edge of a depth-first walk, as the cycle it closes."""
    state: dict[str, int] = {}
    found: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]  # the check works
    graph = _imports()
    assert "smtps_iredmail.core.cli" in graph and graph["smtps_iredmail.core.cli"]
    assert cycles(graph) == []


def test_the_project_name_is_defined_once():
    defined = [p for package in PACKAGES for p in (REPO / package).glob("*.py")
               if any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "PROJECT" for t in n.targets)
                      for n in ast.walk(ast.parse(p.read_text())))]
    assert [p.relative_to(REPO).as_posix() for p in defined] == ["smtps/stacks.py"]


def test_each_kind_is_one_descriptor_with_typed_inputs_that_diff_compares():
    suffixes = [kind.suffix for kind in KINDS]
    assert len(set(suffixes)) == len(suffixes)
    for kind in KINDS:
        assert issubclass(kind.model.inputs, Inputs)
        provider = kind.resource.new_provider()
        assert provider.model is kind.model
        # The keys diff compares are the dataclass's fields: a new field is compared the moment it exists.
        assert provider.settings == kind.model.inputs.keys() and len(provider.settings) >= 3
        assert set(kind.model.identity) <= set(provider.settings)


def test_plain_pulumi_keeps_a_later_double_dash(monkeypatch):
    """`smtps pulumi -- config set --secret -- KEY -VALUE`: only the first `--` is the front end's."""
    import subprocess

    from smtps_iredmail.core import cli, engine

    seen = []
    monkeypatch.setattr(engine, "pulumi_binary", lambda: "pulumi")
    monkeypatch.setattr(engine, "prepare", lambda folder=None: {})
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: seen.append(argv) or subprocess.CompletedProcess(argv, 0))
    args = cli.parser().parse_args(["pulumi", "--", "config", "set", "--secret", "--", "k", "-dash"])
    assert args.handler(args) == 0
    assert seen == [["pulumi", "config", "set", "--secret", "--", "k", "-dash"]]


def test_a_rolled_back_host_is_known_by_the_failures_type_not_its_words():
    """The front end reads a host back into the state when its check's failure is a RolledBackFailure (the rollback
    script answered done or partial), whatever the words say; "nothing was rolled back" is not one."""
    from pulumi.automation import events as ev

    from smtps_iredmail.core.events import EngineEvents

    urn = ("urn:pulumi:dc1::smtps-iredmail::smtps-iredmail:index:SmtpsHost$pulumi-python:dynamic/smtps:Verification"
           "::{}-verify")
    said = {"mx1": ("smtps_iredmail.verification.RolledBackFailure", "verification failed: x; rolled back: undone"),
            "mx2": ("smtps_iredmail.verification.VerificationFailed",
                    "verification failed: x; this run changed nothing on it, so nothing was rolled back")}
    collected = EngineEvents({"verify": "verification"})
    for sequence, (host, (error, message)) in enumerate(said.items()):
        text = f"Traceback (most recent call last):\n  File \"x.py\"\n{error}: {message}\n"
        collected.on_event(ev.EngineEvent(sequence=sequence, timestamp=0, diagnostic_event=ev.DiagnosticEvent(
            message=text, color="never", severity="error", urn=urn.format(host))))
    assert {(f.host, f.error) for f in collected.failures()} == {("mx1", "RolledBackFailure"),
                                                                 ("mx2", "VerificationFailed")}
    assert [f.message for f in collected.failures()] == [m for _, m in said.values()]


def test_resource_types_are_the_engines_and_urns_to_read_back_come_from_the_state():
    """Canary targets name each resource by its type token, recorded from its class's declaration: the one the SDK
    registers (its private attribute read here only, to hold the two together). A rolled-back host is read back by
    the URNs its stack's state holds."""
    from smtps_iredmail.core.cli import host_urns
    from smtps_iredmail.kinds import KINDS
    from smtps_iredmail.verification import Verification

    for resource in (*(kind.resource for kind in KINDS), Verification):
        assert resource.type_token == f"pulumi-python:{resource._resource_type_name}"  # noqa: SLF001
    base = "urn:pulumi:dc1::smtps-iredmail::"
    urns = [f"{base}pulumi:pulumi:Stack::smtps-iredmail-dc1", f"{base}smtps-iredmail:index:SmtpsHost::mx1",
            f"{base}smtps-iredmail:index:SmtpsHost$pulumi-python:dynamic/smtps:MasterService::mx1-master",
            f"{base}smtps-iredmail:index:SmtpsHost$pulumi-python:dynamic/smtps:Verification::mx1-verify",
            f"{base}smtps-iredmail:index:SmtpsHost$pulumi-python:dynamic/smtps:MasterService::mx10-master"]
    assert host_urns({"resources": [{"urn": urn} for urn in urns]}, ["mx1"]) == urns[1:4]


def test_only_the_remote_layer_speaks_ssh():
    """Everything that runs a command on a host goes through smtps/remote.py: no other module of the package
    imports paramiko or reads the deploy key's file variable itself."""
    for path in sorted((*REPO.glob("smtps/*.py"), *REPO.glob("components/*.py"))):
        text = path.read_text()
        if path.name != "remote.py":
            assert "import paramiko" not in text, path
        if path.name != "credentials.py":
            assert '"SMTPS_SSH_KEY_FILE"' not in text, path


def test_hosts_the_state_has_in_another_slots_provider_are_found_by_name():
    """A canary's up (`--target`) cannot move hosts between provider processes: the hosts the state has in a
    shared provider other than their slot now (an earlier release's 16) are found, and only those."""
    from smtps_iredmail.core.cli import moved_hosts
    from smtps_iredmail.host import provider_slot

    base = "urn:pulumi:dc1::smtps-iredmail::"
    host_type = f"{base}smtps-iredmail:index:SmtpsHost"
    master = "smtps-iredmail:index:SmtpsHost$pulumi-python:dynamic/smtps:MasterService"

    def resource(host: str, provider: str) -> dict:
        return {"urn": f"{base}{master}::{host}-master", "parent": f"{host_type}::{host}",
                "provider": f"{base}pulumi:providers:pulumi-python::{provider}::0b5e"}

    def provider(name: str) -> dict:
        return {"urn": f"{base}pulumi:providers:pulumi-python::{name}"}

    assert provider_slot("mx1") == 1 and provider_slot("mail1") == 1  # mail1 was in ssh-9 of 16
    resources = [resource("mx1", "ssh-1"), resource("mail1", "ssh-9"), resource("mx7", "mx7-ssh"),
                 provider("ssh-1"), provider("ssh-3"), provider("mx7-ssh"), provider("ssh-12"),
                 {"urn": f"{base}pulumi:pulumi:Stack::smtps-iredmail-dc1"}, {"urn": "x", "parent": 3, "provider": 4},
                 {"urn": 5}]
    assert moved_hosts({"resources": resources}) == ["host mail1", "provider ssh-12"]
    # An old slot's provider left alone (the up that moved every host stopped before deleting it).
    assert moved_hosts({"resources": [resource("mx1", "ssh-1"), provider("ssh-9")]}) == ["provider ssh-9"]
    assert moved_hosts({}) == [] and moved_hosts({"resources": None}) == []


class _ExportOnly:
    """A stack whose state is `deployment`: what the canary refusal reads (and nothing may run before it)."""

    def __init__(self, deployment: dict) -> None:
        self.deployment, self.calls = deployment, []

    def export_stack(self):
        import types

        self.calls.append("export")
        return types.SimpleNamespace(deployment=self.deployment)


def _old_slot_state(host: str) -> dict:
    base = "urn:pulumi:dc1::smtps-iredmail::"
    return {"resources": [{"urn": f"{base}smtps-iredmail:index:SmtpsHost$pulumi-python:dynamic/smtps:MasterService"
                                  f"::{host}-master", "parent": f"{base}smtps-iredmail:index:SmtpsHost::{host}",
                           "provider": f"{base}pulumi:providers:pulumi-python::ssh-9::0b5e"}]}


def test_a_canary_up_on_old_slots_is_refused_before_its_preview_and_question(monkeypatch, capsys):
    import argparse
    import types

    from smtps_iredmail.core import cli

    stack, asked = _ExportOnly(_old_slot_state("mail1")), []
    monkeypatch.setattr(cli, "_refused_in_ci", lambda *_a: 0)
    monkeypatch.setattr(cli, "_stack", lambda _args: stack)
    monkeypatch.setattr(cli.engine, "own_program", lambda: True)
    monkeypatch.setattr(cli.engine, "project_dir", lambda: None)
    loaded = types.SimpleNamespace(canaries=("mail2",), hosts=(), check_canaries=lambda given: tuple(given))
    monkeypatch.setattr(cli.stacks, "from_files", lambda *_a: loaded)
    monkeypatch.setattr(cli, "_ask", lambda *_a: asked.append("asked") or 1)
    monkeypatch.setattr(cli, "_up", lambda *_a, **_k: asked.append("up") or 0)
    args = argparse.Namespace(stack="dc1", refresh=True, yes=False, diff=False, parallel=64, stop_on_error=False,
                              canary=None, no_canary=False, no_rollback=False, summary=None, verbose=0)
    assert cli.cmd_up(args) == 2 and asked == [] and stack.calls == ["export"]
    assert "smtps: stack dc1: host mail1: in the provider processes of an earlier release" in capsys.readouterr().err
    # Without canaries, nothing is read for it.
    stack.calls.clear()
    assert cli.cmd_up(argparse.Namespace(**{**vars(args), "no_canary": True, "yes": True, "refresh": False})) == 0
    assert stack.calls == [] and asked == ["up"]


def test_a_host_name_read_from_the_state_is_shown_as_data(capsys):
    from smtps_iredmail.core import cli

    hostile = _old_slot_state("mail1\x1b]2;pwned\x07\x1b[2J")
    assert cli._moved_hosts_refused("dc1", lambda: hostile) == 2  # noqa: SLF001
    assert "\x1b" not in capsys.readouterr().err
