"""Where the deploy key and the test credential come from, and CI's rule that a stack holds no secret.

A stack's secrets are encrypted with its passphrase, and a passphrase stack has exactly one (its `encryptionsalt`): a
pull request's preview, which runs the pull request's own code, needs that passphrase to open the stack, so it can
decrypt anything the stack or its state holds. So in CI the stacks hold no secret at all, the passphrase protects
nothing, and the machine that runs `up` gives both credentials from files: SMTPS_SSH_KEY_FILE (the deploy key) and
SMTPS_TEST_CREDENTIAL_FILE (the test credential). Neither value then ever enters Pulumi: the provider processes,
started by the engine from this environment, read the files themselves. Storing them in the stack (`smtps
key`, `pulumi config set --secret`) stays possible on a single operator's machine, never in CI.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

# The deploy key's file (the same name components.base reads).
SSH_KEY_FILE_ENV = "SMTPS_SSH_KEY_FILE"
# The test credential's file: JSON, {"username": "...", "password": "..."}, the shape of the stack's testCredential.
CREDENTIAL_FILE_ENV = "SMTPS_TEST_CREDENTIAL_FILE"
# The stack's optional test credential, when it is a stack secret (single operator only).
CREDENTIAL = "testCredential"
# The key that marks an encrypted value in a state export (Pulumi's "secret signature"), next to its "ciphertext".
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # noqa: S105 - a marker, not a secret


class CredentialError(ValueError):
    pass


def in_ci() -> bool:
    """Does this run belong to CI? GitHub Actions sets both; most other CI systems set CI."""
    return (os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
            or os.environ.get("GITHUB_ACTIONS", "").strip().lower() == "true")


def parse_credential(text: str, where: str) -> tuple[str, str]:
    """A test credential as JSON text: {"username", "password"}, both non-empty strings. `where` names its source."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise CredentialError(f"{where}: not JSON ({err.msg}, line {err.lineno}); expected "
                              '{"username": "...", "password": "..."}') from None
    if not isinstance(value, Mapping) or set(value) != {"username", "password"} or not all(
            isinstance(value[k], str) and value[k] for k in ("username", "password")):
        raise CredentialError(f'{where}: expected exactly {{"username": "...", "password": "..."}}, two '
                              "non-empty strings")
    return value["username"], value["password"]


def credential_from_file(stack: str | None = None) -> tuple[str, str] | None:
    """The test credential from SMTPS_TEST_CREDENTIAL_FILE (None when it is not set). A file that is set but cannot
    be read or is not a credential is an error: the check after logging in must not be skipped silently."""
    path = os.environ.get(CREDENTIAL_FILE_ENV)
    if not path:
        return None
    where = f"{'stack ' + stack + ': ' if stack else ''}{CREDENTIAL_FILE_ENV}={path}"
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as err:
        raise CredentialError(f"{where}: cannot be read: {getattr(err, 'strerror', None) or err}") from None
    return parse_credential(text, where)


STATE = "its state"


def refusal(stack: str, keys: Iterable[str], where: str = "its stack file") -> str:
    """Why CI refuses a stack that holds secrets (in its stack file, or in its `STATE`), and what to do instead."""
    keys = list(keys)
    # A state can hold one per resource: the first few say enough.
    names = ", ".join(keys[:4]) + (f", and {len(keys) - 4} more" if len(keys) > 4 else "")
    remove = (f"remove them (`smtps pulumi -- config rm -s {stack} KEY`)" if where != STATE else
              "outside CI, move the stack to the files below and check that `smtps pulumi -- stack export "
              f"-s {stack}` shows no \"ciphertext\" before CI runs it")
    if "Pulumi.yaml" in where:
        remove += ", and delete them from Pulumi.yaml's project-level `config:`"
    return (f"stack {stack}: {where} holds secrets ({names}): refused in CI (CI or GITHUB_ACTIONS is set). A pull "
            "request's preview gets the stack's passphrase, so whoever can push a branch could decrypt them. "
            f"{remove[0].upper()}{remove[1:]}; give the machine that runs `up` the deploy key as a file "
            f"({SSH_KEY_FILE_ENV}) and the test credential as a file ({CREDENTIAL_FILE_ENV}); and, as the "
            "backend's history keeps what the stack held, make a new key and a new password (the passphrase opened "
            "the old ones), give the stack a new passphrase (`smtps pulumi -- stack "
            f"change-secrets-provider passphrase -s {stack}`) and remove the stack's history and backups "
            "(docs/safety.md, \"Secrets\")")


def encrypted_in_state(deployment: Mapping) -> list[str]:
    """Where a state export (`stack export`, no secrets shown) holds an encrypted value: 'URN inputs.KEY' each."""
    found: list[str] = []

    def walk(value: object, path: str) -> None:
        if isinstance(value, Mapping):
            if SECRET_SIG in value:
                found.append(path)
                return
            for key, item in value.items():
                walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")

    pending = [op.get("resource") for op in deployment.get("pending_operations") or [] if isinstance(op, Mapping)]
    for resource in [*(deployment.get("resources") or []), *pending]:
        if isinstance(resource, Mapping):
            for part in ("inputs", "outputs"):
                walk(resource.get(part), f"{resource.get('urn', '?')} {part}")
    return found


# The DIY file backend keeps, besides a stack's current state, every update's config and state (`history/`), dated
# copies of earlier states (`backups/`) and the state before the last write (`stacks/STACK.json.bak`), each as
# written, gzipped when PULUMI_SELF_MANAGED_STATE_GZIP is set. Secrets stay there as ciphertext for the same
# passphrase, after `config rm` and any number of updates: a stack that once held the deploy key keeps it readable
# to anyone who can read the backend and has the passphrase, a pull request's preview included.
_STACK_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def file_backend(url: str, project_folder: Path) -> Path | None:
    """The folder of a `file://` backend URL (`~` is the home folder, a relative path is the project's), or None
    for any other backend."""
    if not url.startswith("file://"):
        return None
    parts = urlsplit(url)
    path = unquote(parts.netloc + parts.path)  # file://~/state and file://./state put the start in netloc
    path = os.path.expanduser(path) if path.startswith("~") else path
    return (project_folder / path).resolve() if path else project_folder.resolve()


def _places(backend: Path, project: str, stack: str) -> tuple[list[Path], Path, str]:
    """Where a file backend keeps a stack's old copies: its history and backups folders, the folder of its state
    (with the `.bak`), and the stack's short name."""
    parts = stack.split("/")  # STACK, or ORG/PROJECT/STACK
    if len(parts) not in (1, 3) or any(not _STACK_NAME.fullmatch(part) or part in (".", "..") for part in parts):
        raise CredentialError(f"stack {stack}: not a stack name the file backend's history can be looked up for")
    name, root = parts[-1], backend / ".pulumi"
    # meta.yaml's `version: 1` (Pulumi 3.61 on) puts each folder under the project's name; without it (version 0)
    # the stacks are directly in each folder.
    try:
        meta = yaml.safe_load((root / "meta.yaml").read_text()) or {}
    except FileNotFoundError:
        meta = {}
    except (OSError, yaml.YAMLError) as err:
        raise CredentialError(f"stack {stack}: the file backend's {root / 'meta.yaml'} cannot be read: {err}") from None
    scoped = [project] if isinstance(meta, dict) and meta.get("version", 0) != 0 else []
    history = [root.joinpath(part, *scoped, name) for part in ("history", "backups")]
    return history, root.joinpath("stacks", *scoped), name


def old_copies(backend: Path, project: str, stack: str) -> list[Path]:
    """The files of a file backend that keep a stack's earlier config and state: history, backups, the `.bak`."""
    folders, states, name = _places(backend, project, stack)
    for folder in [*folders, states]:
        # rglob passes over a folder it cannot read: unread is not proven clean.
        if folder.is_dir() and not os.access(folder, os.R_OK | os.X_OK):
            raise CredentialError(f"stack {stack}: the file backend's {folder} cannot be read: its old copies "
                                  "cannot be checked for secrets")
    found = [p for folder in folders if folder.is_dir() for p in sorted(folder.rglob("*")) if p.is_file()]
    if states.is_dir():
        found += sorted(p for p in states.glob(f"{name}.json*") if p.is_file() and ".bak" in p.suffixes)
    return found


def _holds_secret(value: object) -> bool:
    # A config value is {"secure": CIPHERTEXT} at any depth; a state value is {SECRET_SIG: ..., "ciphertext": ...}.
    if isinstance(value, Mapping):
        if SECRET_SIG in value or isinstance(value.get("secure"), str):
            return True
        return any(_holds_secret(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_secret(item) for item in value)
    return False


def secrets_in_history(backend: Path, project: str, stack: str) -> list[str]:
    """The files of a file backend's history, backups and `.bak` of `stack` that hold an encrypted value (a file
    that cannot be read counts: unread is not proven clean), relative to the backend's folder."""
    held = []
    for path in old_copies(backend, project, stack):
        try:
            data = path.read_bytes()
            # Gzipped by its first bytes, not its name: the `.bak` of a gzipped state is `STACK.json.gz.bak`.
            data = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            # Parsed only when a marker is there at all: a long history is mostly files without one.
            hit = (b'"secure"' in data or SECRET_SIG.encode() in data) and _holds_secret(json.loads(data))
        except (OSError, ValueError, EOFError) as err:
            held.append(f"{path.relative_to(backend)} (cannot be read: {getattr(err, 'strerror', None) or err})")
            continue
        if hit:
            held.append(str(path.relative_to(backend)))
    return held


def history_refusal(stack: str, backend: Path, project: str, files: list[str]) -> str:
    """Why CI refuses a stack whose file backend still keeps an encrypted value in old copies, and the way out."""
    history, states, name = _places(backend, project, stack)
    folders = " ".join(map(str, history))
    sample = ", ".join(files[:3]) + (f", and {len(files) - 3} more" if len(files) > 3 else "")
    return (f"stack {stack}: the file backend {backend} keeps secrets in the stack's history and backups "
            f"({len(files)} file(s): {sample}): refused in CI (CI or GITHUB_ACTIONS is set). The backend keeps every "
            "update's config and state, and a pull request's preview can read it with the same passphrase, so the "
            "old values are still readable. Outside CI: (1) make a new deploy key and a new test password and "
            "retire the old ones (anyone with the passphrase could read them); (2) give the stack a new passphrase "
            f"(`smtps pulumi -- stack change-secrets-provider passphrase -s {stack}`, and the new one to "
            f"CI); (3) then remove the stack's history and backups: rm -r {folders}, and any {name}.json*.bak in "
            f"{states} (docs/safety.md, \"Secrets\")")
