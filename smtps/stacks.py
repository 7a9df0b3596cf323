"""The one way a stack's config becomes settings: for the program, the front end, `fleet` and the tests.

A stack's settings live in two files: Pulumi.yaml (the project's `config`, for every stack: `fleet`, and
optionally `canaries`) and stacks/Pulumi.<stack>.yaml (`hosts`, `defaults`, `bastions`, `canaries`). The engine
merges both for the program (`pulumi.Config`); the front end reads the same two files itself, so that a command that
needs only the hosts (`verify`, `fleet`, the canaries of `up`) never asks Pulumi to decrypt anything. Either way the
values go through `load`, which checks everything at once (canaries included) and says what is wrong in each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .settings import HostSettings, SettingsError, canary_problems, parse_stack

# The Pulumi project's name: the namespace of every config key (`smtps-iredmail:hosts`) and part of every URN.
PROJECT = "smtps-iredmail"
# The config keys a stack's settings are read from (each under PROJECT).
KEYS = ("fleet", "defaults", "hosts", "bastions", "canaries")
# The stack's deploy key, a secret; never read by `load`.
SSH_KEY = "sshPrivateKey"


@dataclass(frozen=True)
class Stack:
    name: str
    hosts: tuple[HostSettings, ...]
    # The hosts `up` converges and verifies first, in the order given (empty: none).
    canaries: tuple[str, ...]

    def host_names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def check_canaries(self, names: list[str]) -> tuple[str, ...]:
        """Canaries given on the command line, checked as the stack's own are."""
        problems = canary_problems(self.name, names, self.host_names())
        if problems:
            raise SettingsError("\n".join(problems))
        return tuple(names)


def load(name: str, get: Callable[[str], Any]) -> Stack:
    """The stack's settings from `get(key)` (a config key without the project prefix; None where unset), or one
    SettingsError listing every problem."""
    values = {key: get(key) for key in KEYS}
    hosts = parse_stack(name, values["defaults"], values["hosts"], values["fleet"], values["bastions"],
                        values["canaries"])
    return Stack(name, hosts, tuple(values["canaries"] or ()))


def _project_value(item: Any) -> Any:
    # Project-level config in Pulumi.yaml is `key: {value: ...}` (or `default:`), or a plain value.
    if isinstance(item, Mapping) and ("value" in item or "default" in item):
        return item.get("value", item.get("default"))
    return item


def _secret(value: Any, path: str) -> str | None:
    """Where in `value` a secret is (`pulumi config set --secret --path` nests them), or None."""
    if isinstance(value, Mapping):
        if set(value) == {"secure"}:
            return path
        found = (_secret(item, f"{path}.{key}") for key, item in value.items())
    elif isinstance(value, list):
        found = (_secret(item, f"{path}[{index}]") for index, item in enumerate(value))
    else:
        return None
    return next((where for where in found if where), None)


def file_values(folder: Path, name: str) -> Callable[[str], Any]:
    """A `get` for `load` that reads Pulumi.yaml and stacks/Pulumi.<name>.yaml, as the engine merges them (the
    stack's value wins). Plain values only: a setting stored as a secret is refused, as it would need decrypting."""
    project = yaml.safe_load((folder / "Pulumi.yaml").read_text()) or {}
    path = folder / "stacks" / f"Pulumi.{name}.yaml"
    if not path.exists():
        raise SettingsError(f"stack {name}: no stack file {path} (README, \"Using it on your servers\")")
    stack = yaml.safe_load(path.read_text()) or {}
    merged = {key: _project_value(item) for key, item in (project.get("config") or {}).items()}
    merged.update(stack.get("config") or {})

    def get(key: str) -> Any:
        value = merged.get(f"{PROJECT}:{key}")
        if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
            # An object written as JSON text: the engine's get_object parses it so, and so does this.
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass  # left as text: the settings parser says what it expected
        where = _secret(value, key)
        if where:
            raise SettingsError(f"stack {name}: setting {where}: stored as a secret; only {SSH_KEY} may be one "
                                "(settings are read without decrypting anything)")
        return value

    return get


def from_files(folder: Path, name: str) -> Stack:
    return load(name, file_values(folder, name))


def stack_names(folder: Path) -> list[str]:
    """The stacks with a file in stacks/, in name order."""
    return sorted(f.name[len("Pulumi."):-len(".yaml")] for f in (folder / "stacks").glob("Pulumi.*.yaml"))


def project_secrets(folder: Path) -> list[str]:
    """The config keys of Pulumi.yaml's project-level `config:` that hold a secret: the engine decrypts them for every
    stack of the project, with that stack's passphrase. Keys without a namespace are the project's own."""
    path = folder / "Pulumi.yaml"
    project = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    config = project.get("config") if isinstance(project, Mapping) else None
    if not isinstance(config, Mapping):
        return []  # none, or not a mapping: Pulumi itself refuses such a project file
    prefix = project.get("name") or PROJECT
    return [key if ":" in str(key) else f"{prefix}:{key}" for key, value in config.items() if _secret(value, str(key))]


def stored_secrets(folder: Path, name: str) -> list[str]:
    """The config keys of stacks/Pulumi.<name>.yaml, then of Pulumi.yaml's project-level config, that hold a secret,
    anywhere in their value; read, not decrypted."""
    path = folder / "stacks" / f"Pulumi.{name}.yaml"
    if not path.exists():
        return []
    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    held = [key for key, value in config.items() if _secret(value, key)]
    return held + [key for key in project_secrets(folder) if key not in held]
