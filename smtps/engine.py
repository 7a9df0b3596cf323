"""The Pulumi workspace every command of this project runs in: the project folder, its stacks/, its backend and
secrets, the engine from .tools/bin (installed from the wheel: the `pulumi` on PATH), and nothing that reaches for
the network.

Defaults, each overridable the way Pulumi users expect:
- state: a file backend in the project folder (`.pulumi-state/`, gitignored), unless PULUMI_BACKEND_URL is set;
- secrets: the passphrase provider, with a passphrase generated once into `.pulumi-passphrase` (mode 0600,
  gitignored), unless PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE is set.
"""

from __future__ import annotations

import importlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .stacks import PROJECT

if TYPE_CHECKING:
    from pulumi import automation as auto

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / ".tools"
# Run from this repository (the editable install), the project is the repository and the engine is `make tools`'s.
# Installed from the wheel, there is no repository around the package (REPO is then the package's folder): the
# project is the current folder, and the engine the `pulumi` on PATH.
IN_REPOSITORY = (REPO / "pyproject.toml").is_file()


def project_dir() -> Path:
    """The folder with Pulumi.yaml and stacks/: this repository (installed: the current folder), or
    SMTPS_PROJECT_DIR (the tests use their own)."""
    return Path(os.environ.get("SMTPS_PROJECT_DIR") or (REPO if IN_REPOSITORY else Path.cwd())).resolve()


def pulumi_binary() -> Path:
    if not IN_REPOSITORY:
        found = shutil.which("pulumi")
        if found is None:
            raise SystemExit("smtps: no `pulumi` on PATH: install the Pulumi CLI (v3.176 or newer), with "
                             "pulumi-resource-pulumi-python beside it or on PATH")
        return Path(found)
    binary = TOOLS / "bin" / "pulumi"
    if not binary.exists():
        raise SystemExit(f"smtps: no Pulumi engine in {binary.parent}: run `make tools` first")
    return binary


def _virtualenv() -> Path:
    # The provider processes must run the Python that has this project and its dependencies: this one, when it is
    # a virtualenv or the package is installed in it; else the repository's.
    return Path(sys.prefix) if sys.prefix != sys.base_prefix or not IN_REPOSITORY else REPO / ".venv"


def environment(folder: Path | None = None) -> dict[str, str]:
    """The variables the Pulumi CLI and the plugins it starts need, on top of the caller's environment. Names only:
    `prepare` makes the files they point at."""
    folder = folder or project_dir()
    env = {
        # Offline by design: no update check, no plugin download, ever.
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        # pulumi-resource-pulumi-python starts `python -m pulumi.dynamic` from this virtualenv.
        "PULUMI_RUNTIME_VIRTUALENV": str(_virtualenv()),
        "PATH": f"{pulumi_binary().parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # One broken host must not hold up the fleet: the others converge (or are destroyed), while the broken
        # host's later steps, which depend on the failed one, are skipped. Pulumi still exits non-zero.
        "PULUMI_CONTINUE_ON_ERROR": os.environ.get("PULUMI_CONTINUE_ON_ERROR", "true"),
        # The state is written once, at the end of the run, instead of after every step: the file backend rewrites
        # the whole stack each time, so a converge's controller cost grew with the square of the fleet. What a
        # run dies without writing (SIGKILL, power loss) is only how far it got: the state stays the last run's,
        # whole, with no pending operations, and the next `up --refresh` finds the hosts already done and adopts
        # them (README, "State and secrets"). A run stopped by Ctrl-C still writes it at its end.
        "PULUMI_SKIP_CHECKPOINTS": os.environ.get("PULUMI_SKIP_CHECKPOINTS", "true"),
    }
    if not os.environ.get("PULUMI_BACKEND_URL"):
        env["PULUMI_BACKEND_URL"] = backend_url(folder)
    if not os.environ.get("PULUMI_CONFIG_PASSPHRASE") and not os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE"):
        env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(folder / PASSPHRASE)
    return env


STATE = ".pulumi-state"


def backend_url(folder: Path | None = None) -> str:
    """The backend every command here uses: PULUMI_BACKEND_URL, else the file backend in the project folder."""
    return os.environ.get("PULUMI_BACKEND_URL") or f"file://{(folder or project_dir()) / STATE}"
PASSPHRASE = ".pulumi-passphrase"  # noqa: S105 - the file's name, not a secret


def prepare(folder: Path | None = None) -> dict[str, str]:
    """`environment`, with the files it names made where they are this project's defaults: the file backend's
    folder (it must exist before the first login) and the generated passphrase."""
    folder = folder or project_dir()
    env = environment(folder)
    if not os.environ.get("PULUMI_BACKEND_URL"):
        (folder / STATE).mkdir(exist_ok=True)
    path = folder / PASSPHRASE
    if env.get("PULUMI_CONFIG_PASSPHRASE_FILE") == str(path) and not path.exists():
        # Created with mode 0600 from the start: the passphrase is never readable by others, even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return env


def stack_secret(name: str, key: str) -> str | None:
    """One secret of a stack, decrypted (None if unset): one CLI call that decrypts only this value. In CI nothing is
    decrypted: a stack that holds the secret is refused, one that does not gives None (smtps/credentials.py)."""
    from . import credentials, stacks

    folder = project_dir()
    if credentials.in_ci():
        if f"{PROJECT}:{key}" in stacks.stored_secrets(folder, name):
            raise SystemExit(f"smtps: {credentials.refusal(name, [f'{PROJECT}:{key}'])}")
        return None
    result = subprocess.run([str(pulumi_binary()), "config", "get", key, "--stack", name], cwd=folder,
                            env={**os.environ, **prepare(folder)}, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        if "not found" in result.stderr or "no stack named" in result.stderr:
            return None
        raise SystemExit(f"smtps: stack {name}: {result.stderr.strip() or 'pulumi config get failed'}")
    return result.stdout.rstrip("\n") + "\n"


def own_program() -> bool:
    """Is the program this project's own (not another named by SMTPS_PROGRAM)?"""
    return not os.environ.get("SMTPS_PROGRAM")


def _program() -> Callable[[], object]:
    """The project's program, or another one named by SMTPS_PROGRAM=module:function (the engine's own tests run a
    small program of theirs through the same front end)."""
    module, _, function = (os.environ.get("SMTPS_PROGRAM") or "smtps_iredmail.program:program").partition(":")
    return getattr(importlib.import_module(module), function)


def stack(name: str, program: Callable[[], object] | None = None) -> auto.Stack:
    """The named stack of this project, created on first use, with `program` served inline by this process (the
    Automation API: no Python language host needed)."""
    from pulumi import automation as auto  # imported here: drift and verify start faster without it

    folder = project_dir()
    workspace = auto.LocalWorkspace(
        work_dir=str(folder),
        # The root's bin/pulumi; installed, the `pulumi` that PATH finds (environment() puts its folder first).
        pulumi_command=_command_class()(str(pulumi_binary().parent.parent) if IN_REPOSITORY else None),
        env_vars=prepare(folder),
        secrets_provider="passphrase",
        program=program or _program(),
    )
    if not any((folder / f"Pulumi{ext}").is_file() for ext in (".yaml", ".yml", ".json")):
        # As the Automation API's create_or_select_stack does for an inline program: a folder without a project
        # file gets the default one.
        workspace.save_project_settings(auto.ProjectSettings(name=PROJECT, runtime="python", main=os.getcwd()))
    # The SDK's own Stack.create_or_select, for this class (that one makes its base class). The mode is not among
    # the package's exports; the SDK is pinned (requirements.txt) and tests/test_engine.py runs this path.
    from pulumi.automation._stack import StackInitMode

    if _held_here(folder, workspace.project_settings().name, name):
        return _stack_class().held(name, workspace)
    return _stack_class()(name, workspace, StackInitMode.CREATE_OR_SELECT)


def _held_here(folder: Path, project: str, name: str) -> bool:
    """Whether this project's own file backend holds the stack: its file is there, in the layout the backend's
    meta.yaml names (by project from version 1; the older one without, version 0), and only there: a file of the
    other layout is one the engine does not read (it says "no stack named"), which a select would make anew.
    Another backend (PULUMI_BACKEND_URL) is asked, as is a stack not found or a backend whose layout is not known."""
    if os.environ.get("PULUMI_BACKEND_URL"):
        return False
    import yaml

    try:
        meta = yaml.safe_load((folder / STATE / ".pulumi" / "meta.yaml").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    stacks = folder / STATE / ".pulumi" / "stacks"
    version = meta.get("version") if isinstance(meta, dict) else None
    where = {1: stacks / project, 0: stacks}.get(version) if type(version) is int else None
    return where is not None and any((where / f"{name}{ext}").is_file() for ext in (".json", ".json.gz"))


def _command_class() -> type[auto.PulumiCommand]:
    """The Automation API's PulumiCommand, less its wait for `pulumi version` when it is made: the SDK runs it then
    and waits, before the stack can even be selected. This one asks in a thread and reads the answer on first use
    (when an operation picks how the engine streams its events to this process), so that `pulumi stack select` and
    the program's imports go on meanwhile. As before, the version is not checked against the SDK's minimum
    (skip_version_check): `make tools` pins the engine, and the README says which an installed one must be."""
    import threading

    from pulumi import automation as auto
    from semver import VersionInfo

    class Command(auto.PulumiCommand):
        def __init__(self, root: str | None = None) -> None:  # the base's __init__ is what runs `pulumi version`
            self.command = os.path.join(root, "bin", "pulumi") if root else "pulumi"
            self._answer: list[str] = []
            self._asking = threading.Thread(target=self._ask, daemon=True)
            self._asking.start()

        def _ask(self) -> None:
            result = subprocess.run([self.command, "version"], env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"},
                                    capture_output=True, text=True, check=False)
            self._answer.append(result.stdout.strip().removeprefix("v"))

        @property
        def version(self) -> VersionInfo | None:  # type: ignore[override]
            self._asking.join()
            try:
                return VersionInfo.parse(self._answer[0]) if self._answer else None
            except ValueError:
                return None

    return Command


def _stack_class() -> type[auto.Stack]:
    """The Automation API's Stack, less what it runs after each `up`, `refresh` and `destroy` for the result it
    returns: `pulumi stack output` twice (once decrypting every secret) after an `up`, then `pulumi stack history`,
    each a start of the Pulumi CLI. Nothing here reads that result's outputs or history (the front end takes what
    an operation did from its event stream, smtps/events.py): so the result's `outputs` is empty, and its `summary`
    is made from the same stream's summary event (the kind, the times, the resource changes). `outputs()` and
    `info()` called by themselves still ask the CLI."""
    from pulumi import automation as auto

    class Stack(auto.Stack):
        # Set while one of the operations runs: what its summary is made from (its kind, start and summary event).
        _running: tuple[str, datetime, list[auto.SummaryEvent]] | None = None

        @classmethod
        def held(cls, name: str, workspace: auto.Workspace) -> Stack:
            """A stack the backend is known to hold, without the base's `pulumi stack select` (a CLI start, about
            0.15 s): every operation names its stack (--stack). So `-s` names the stack for that command only, as
            Pulumi's own `-s` does; the stack a plain `pulumi` without `-s` uses stays the one last selected or
            made. What the base's __init__ sets, set here."""
            from pulumi.automation._stack import StackInitMode

            stack = cls.__new__(cls)
            stack.name, stack.workspace, stack._mode = name, workspace, StackInitMode.SELECT
            return stack

        def _operation(self, kind: str, call: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
            summaries: list[auto.SummaryEvent] = []
            given = kwargs.get("on_event")

            def on_event(event: auto.EngineEvent) -> None:
                if event.summary_event is not None:
                    summaries.append(event.summary_event)
                if given is not None:
                    given(event)

            self._running = (kind, datetime.now(), summaries)
            try:
                return call(**{**kwargs, "on_event": on_event})
            finally:
                self._running = None

        def up(self, **kwargs: Any) -> auto.UpResult:
            return self._operation("update", super().up, kwargs)

        def refresh(self, **kwargs: Any) -> auto.RefreshResult:
            return self._operation("refresh", super().refresh, kwargs)

        def destroy(self, **kwargs: Any) -> auto.DestroyResult:
            return self._operation("destroy", super().destroy, kwargs)

        def outputs(self) -> auto.OutputMap:
            return {} if self._running else super().outputs()

        def info(self, show_secrets: bool = True) -> auto.UpdateSummary | None:
            if not self._running:
                return super().info(show_secrets)
            # Reached only when the CLI succeeded: a failure raised before.
            kind, started, summaries = self._running
            return auto.UpdateSummary(kind=kind, start_time=started, end_time=datetime.now(), message="",
                                      environment={}, config={}, result="succeeded",
                                      resource_changes=summaries[-1].resource_changes if summaries else None)

    return Stack
