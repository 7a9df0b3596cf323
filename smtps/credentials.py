"""Where the deploy key and the test credential come from, and CI's rule that a stack holds no secret.

A stack's secrets are encrypted with its passphrase, and a passphrase stack has exactly one (its `encryptionsalt`): a
pull request's preview, which runs the pull request's own code, needs that passphrase to open the stack, so it can
decrypt anything the stack or its state holds. So in CI the stacks hold no secret at all, the passphrase protects
nothing, and the machine that runs `up` gives both credentials from files: SMTPS_SSH_KEY_FILE (the deploy key) and
SMTPS_TEST_CREDENTIAL_FILE (the test credential). Neither value then ever enters Pulumi: the provider processes,
started by the engine from this environment, read the files themselves. Storing them in the stack (`python -m smtps
key`, `pulumi config set --secret`) stays possible on a single operator's machine, never in CI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping

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
    remove = (f"remove them (`python -m smtps pulumi -- config rm -s {stack} KEY`)" if where != STATE else
              "outside CI, move the stack to the files below and check that `python -m smtps pulumi -- stack export "
              f"-s {stack}` shows no \"ciphertext\" before CI runs it")
    return (f"stack {stack}: {where} holds secrets ({names}): refused in CI (CI or GITHUB_ACTIONS is set). A pull "
            "request's preview gets the stack's passphrase, so whoever can push a branch could decrypt them. "
            f"{remove[0].upper()}{remove[1:]}; give the machine that runs `up` the deploy key as a file "
            f"({SSH_KEY_FILE_ENV}) and the test credential as a file ({CREDENTIAL_FILE_ENV}); and replace the key "
            "and the password, which the passphrase opened (README, \"Using it on your servers\")")


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
