"""The Pulumi workspace every command of this project runs in: the project folder, its stacks/, its backend and
secrets, the engine from .tools/bin, and nothing that reaches for the network.

Defaults, each overridable the way Pulumi users expect:
- state: a file backend in the project folder (`.pulumi-state/`, gitignored), unless PULUMI_BACKEND_URL is set;
- secrets: the passphrase provider, with a passphrase generated once into `.pulumi-passphrase` (mode 0600,
  gitignored), unless PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE is set.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from pulumi import automation as auto

PROJECT = "smtps-iredmail"
REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / ".tools"


def project_dir() -> Path:
    """The folder with Pulumi.yaml and stacks/: this repository, or SMTPS_PROJECT_DIR (the tests use their own)."""
    return Path(os.environ.get("SMTPS_PROJECT_DIR") or REPO).resolve()


def pulumi_binary() -> Path:
    binary = TOOLS / "bin" / "pulumi"
    if not binary.exists():
        raise SystemExit(f"smtps: no Pulumi engine in {binary.parent}: run `make tools` first")
    return binary


def _virtualenv() -> Path:
    # The provider processes must run the Python that has this project and its dependencies: this one, when it is
    # a virtualenv; else the project's.
    return Path(sys.prefix) if sys.prefix != sys.base_prefix else REPO / ".venv"


def environment(folder: Path | None = None) -> dict[str, str]:
    """The variables the Pulumi CLI and the plugins it starts need, on top of the caller's environment."""
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
    }
    if not os.environ.get("PULUMI_BACKEND_URL"):
        state = folder / ".pulumi-state"
        state.mkdir(exist_ok=True)  # a file:// backend's folder must exist before the first login
        env["PULUMI_BACKEND_URL"] = f"file://{state}"
    if not os.environ.get("PULUMI_CONFIG_PASSPHRASE") and not os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE"):
        env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(_passphrase_file(folder))
    return env


def _passphrase_file(folder: Path) -> Path:
    path = folder / ".pulumi-passphrase"
    if not path.exists():
        # Created with mode 0600 from the start: the passphrase is never readable by others, even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return path


def stack_config(name: str) -> dict[str, Any]:
    """A stack's config, secrets decrypted, as `pulumi config --json` gives it: one CLI call, no stack selection and
    no Automation API (the drift and verify commands need only this, and start quickly)."""
    folder = project_dir()
    result = subprocess.run([str(pulumi_binary()), "config", "--show-secrets", "--json", "--stack", name],
                            cwd=folder, env={**os.environ, **environment(folder)}, capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise SystemExit(f"smtps: stack {name}: {result.stderr.strip() or 'pulumi config failed'}")
    values = {}
    for key, item in json.loads(result.stdout).items():
        values[key] = item["objectValue"] if "objectValue" in item else item.get("value")
    return values


def stack_file_setting(name: str, key: str) -> Any:
    """One plain (not secret) setting straight from stacks/Pulumi.<name>.yaml: no Pulumi call, so `up` can read
    the stack's canaries without decrypting anything."""
    path = project_dir() / "stacks" / f"Pulumi.{name}.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return None
    return (data.get("config") or {}).get(f"{PROJECT}:{key}")


def _program() -> Callable[[], object]:
    """The project's program, or another one named by SMTPS_PROGRAM=module:function (the engine's own tests run a
    small program of theirs through the same front end)."""
    module, _, function = (os.environ.get("SMTPS_PROGRAM") or "components.program:program").partition(":")
    return getattr(importlib.import_module(module), function)


def stack(name: str, program: Callable[[], object] | None = None) -> auto.Stack:
    """The named stack of this project, created on first use, with `program` served inline by this process (the
    Automation API: no Python language host needed)."""
    from pulumi import automation as auto  # imported here: drift and verify start faster without it

    folder = project_dir()
    options = auto.LocalWorkspaceOptions(
        work_dir=str(folder),
        pulumi_command=auto.PulumiCommand(root=str(pulumi_binary().parent.parent), skip_version_check=True),
        env_vars=environment(folder),
        secrets_provider="passphrase",
    )
    if program is None:
        program = _program()
    return auto.create_or_select_stack(stack_name=name, project_name=PROJECT, program=program, opts=options)
