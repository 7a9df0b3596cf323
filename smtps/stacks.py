"""The one way a stack's config becomes settings: for the program, the front end, `fleet` and the tests.

A stack's settings live in two files: Pulumi.yaml (the project's `config`, for every stack: `fleet`, and
optionally `canaries`) and stacks/Pulumi.<stack>.yaml (`hosts`, `defaults`, `bastions`, `canaries`). The engine
merges both for the program (`pulumi.Config`); the front end reads the same two files itself, so that a command that
needs only the hosts (`verify`, `fleet`, the canaries of `up`) never asks Pulumi to decrypt anything. Either way the
values go through `load`, which checks everything at once (canaries included) and says what is wrong in each.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .credentials import CREDENTIAL
from .hosts import HostSettings, canary_problems, parse_stack
from .settings import SettingsError

# The Pulumi project's name: the namespace of every config key (`smtps-iredmail:hosts`) and part of every URN.
PROJECT = "smtps-iredmail"
# The config keys a stack's settings are read from (each under PROJECT).
KEYS = ("fleet", "defaults", "hosts", "bastions", "canaries")
# The stack's deploy key, a secret; never read by `load`.
SSH_KEY = "sshPrivateKey"
# Every key under PROJECT that this tool reads. Any other is refused: a misspelt or look-alike key
# (`canaries` with a zero-width space, or a Cyrillic `а`) would otherwise be ignored without a word, and with
# `canaries` gone every host converges at once.
READS = (*KEYS, SSH_KEY, CREDENTIAL)


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


def key_problems(name: str, keys: Iterable[str]) -> list[str]:
    """A problem for each config key (`namespace:key`) under PROJECT that this tool does not read, and for each key
    whose namespace only looks like PROJECT: named escaped (an invisible or look-alike character shows as \\u...),
    with the known key it is closest to."""
    problems = []
    known = [f"{PROJECT}:{key}" for key in READS]
    for key in sorted(keys):
        namespace, _, rest = key.partition(":")
        ours = namespace == PROJECT
        if ours and rest in READS:
            continue
        if not ours and namespace.isascii() and namespace.isprintable() and not difflib.get_close_matches(
                namespace, [PROJECT], cutoff=0.8):
            continue  # another namespace's key (pulumi:, aws:...): not this tool's to judge
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        problems.append(f"stack {name}: setting {ascii(key)}: not a setting this tool reads ({hint}known: "
                        f"{', '.join(known)}); a key it does not read would be ignored")
    return problems


def load(name: str, get: Callable[[str], Any], keys: Iterable[str] = ()) -> Stack:
    """The stack's settings from `get(key)` (a config key without the project prefix; None where unset), or one
    SettingsError listing every problem. `keys`: every config key the stack has (`namespace:key`), each of
    PROJECT's checked to be one this tool reads."""
    problems = key_problems(name, keys)
    values = {key: get(key) for key in KEYS}
    try:
        hosts = parse_stack(name, values["defaults"], values["hosts"], values["fleet"], values["bastions"],
                            values["canaries"])
    except SettingsError as err:
        problems.append(str(err))
    if problems:
        raise SettingsError("\n".join(problems))
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


def _qualified(key: Any) -> Any:
    # A key without a namespace is the project's own, as the engine reads it.
    return key if not isinstance(key, str) or ":" in key else f"{PROJECT}:{key}"


def file_config(folder: Path, name: str) -> dict[str, Any]:
    """The config of Pulumi.yaml and stacks/Pulumi.<name>.yaml, as the engine merges them (the stack's value wins),
    by full key (`namespace:key`)."""
    project = yaml.safe_load((folder / "Pulumi.yaml").read_text()) or {}
    path = folder / "stacks" / f"Pulumi.{name}.yaml"
    if not path.exists():
        raise SettingsError(f"stack {name}: no stack file {path} (docs/servers.md)")
    stack = yaml.safe_load(path.read_text()) or {}
    merged = {_qualified(key): _project_value(item) for key, item in (project.get("config") or {}).items()}
    merged.update({_qualified(key): item for key, item in (stack.get("config") or {}).items()})
    return merged


def file_values(folder: Path, name: str, merged: Mapping[str, Any] | None = None) -> Callable[[str], Any]:
    """A `get` for `load` that reads Pulumi.yaml and stacks/Pulumi.<name>.yaml (`file_config`). Plain values only:
    a setting stored as a secret is refused, as it would need decrypting."""
    merged = file_config(folder, name) if merged is None else merged

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
    merged = file_config(folder, name)
    return load(name, file_values(folder, name, merged), [key for key in merged if isinstance(key, str)])


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
