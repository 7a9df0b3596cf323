"""The one base class of the SMTPS dynamic providers: inputs are settings, the host is reached over SSH.

What the engine hands each method (Pulumi's dynamic provider protocol):
- `check(olds, news)`: `news` are the inputs as the program declared them; return them, or failures per input.
  Runs at preview: it touches no host.
- `diff(id, olds, news)`: `olds` are the outputs of the last create/update (or of the last refresh's `read`),
  `news` the checked inputs. Runs at preview and up: it touches no host.
- `create(news)`, `update(id, olds, news)`, `delete(id, olds)`: run the apply or remove script on the host.
- `read(id, olds)`: reads the host and returns what it finds, as outputs and as inputs, so that `pulumi refresh`
  shows a hand edit per field and the next `up` puts it back.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, ClassVar

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from smtps.drift import parse_state
from smtps.settings import Connection, Reader, read_connection
from smtps.templating import Action

PROJECT = "smtps-iredmail"
# The stack's secret SSH key, handed to each explicit provider as its only input (shared/FACTS.md): `configure`
# sees it, the state keeps it encrypted, and no SMTPS resource ever has it as an input.
SSH_KEY_CONFIG = f"{PROJECT}:sshPrivateKey"
CONNECTION_INPUTS = ("address", "port", "user", "hostKey", "jump")
# Set by the program, never by the user: which stack and host a resource belongs to, for error messages.
LABEL_INPUTS = ("stack", "host")


if TYPE_CHECKING:
    from smtps.ssh import Pool


class _Ssh:
    """The provider process's SSH pool. Module-level on purpose: the engine runs the three resource kinds of a host
    in one provider process, each with its own provider object, and they must share the host's one connection."""

    lock = threading.Lock()
    key: str | None = None
    pool: Pool | None = None

    @classmethod
    def configure(cls, key: str | None) -> None:
        with cls.lock:
            if key and key != cls.key:
                cls.key, cls.pool = key, None

    @classmethod
    def get(cls) -> Pool:
        # Imported on first use: preview and a no-op up start every provider process but never open SSH, and
        # paramiko is a fifth of a provider process's start-up.
        from smtps.ssh import Pool, SshError

        with cls.lock:
            if cls.pool is None:
                if not cls.key:
                    raise SshError(f"no SSH private key: set it with `pulumi config set --secret sshPrivateKey` "
                                   f"(config key {SSH_KEY_CONFIG})")
                cls.pool = Pool(cls.key)
            return cls.pool


def from_wire(props: dict[str, Any]) -> dict[str, Any]:
    """Inputs as the program gave them. Every number crosses the engine as a float (a protobuf Value), so a port of
    22 arrives as 22.0 (also inside a mapping: the bastion's port); the program had checked it was a whole number,
    and a fraction stays a float and is refused."""

    def value(item: Any) -> Any:
        if type(item) is float and item.is_integer():
            return int(item)
        return from_wire(item) if isinstance(item, dict) else item

    return {key: value(item) for key, item in props.items()}


class HostFailure(Exception):
    """A script failed on a host: the message is the script's own, which names the host and the reason."""


class HostProvider(ResourceProvider):
    kind: ClassVar[str]
    # The inputs that are settings of this resource kind, in the order a reader shows them.
    settings: ClassVar[tuple[str, ...]]
    # The inputs whose change means another thing on the host (not the same thing changed): replaced, old first.
    identity: ClassVar[tuple[str, ...]] = ("address",)

    # --- what each kind says -------------------------------------------------------------------------------------
    def parse(self, read: Reader) -> Any:
        """The typed settings of this kind from its inputs (problems recorded on `read`)."""
        raise NotImplementedError

    def script(self, host: str, parsed: Any, action: Action) -> str:
        """The apply or remove script of this kind (smtps/ renders it, every value quoted)."""
        raise NotImplementedError

    def read_script(self, host: str, parsed: Any) -> str:
        raise NotImplementedError

    def live(self, state: dict[str, str], props: dict[str, Any], parsed: Any) -> dict[str, Any]:
        """The settings of this kind as found on the host, keyed like the inputs."""
        raise NotImplementedError

    # --- the protocol ----------------------------------------------------------------------------------------------
    def configure(self, req: ConfigureRequest) -> None:
        _Ssh.configure(req.config.get(SSH_KEY_CONFIG))

    def _reader(self, props: dict[str, Any]) -> Reader:
        return Reader(str(props.get("stack", "?")), str(props.get("host", "?")), from_wire(props))

    def _parse(self, props: dict[str, Any]) -> tuple[str, Connection, Any]:
        read = self._reader(props)
        connection, parsed = read_connection(read), self.parse(read)
        read.finish()
        return read.host, connection, parsed

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        read = self._reader(news)
        read_connection(read)
        self.parse(read)
        failures = [CheckFailure(key, read.message(key, problem)) for key, problem in read.problems]
        return CheckResult(news, failures)

    def _changed(self, olds: dict[str, Any], news: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
        # No bastion is None in state written before bastions existed, and {} now: the same thing.
        return [key for key in keys if (olds.get(key) or None) != (news.get(key) or None)]

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = self._changed(olds, news, (*self.settings, *CONNECTION_INPUTS))
        replaces = [key for key in changed if key in self.identity]
        # Delete before replace, on purpose: the old thing is taken off the host (as found) before the new one is
        # made. Create-first would run the old delete after the new create, and where both name the same machine
        # (a renumbered host) that delete would undo what the create just did.
        return DiffResult(changes=bool(changed), replaces=replaces, stables=None,
                          delete_before_replace=bool(replaces))

    def _run(self, props: dict[str, Any], script: str) -> str:
        host, connection, _ = self._parse(props)
        result = _Ssh.get().run(host, connection, script)
        if result.status != 0:
            raise HostFailure(result.stderr.strip() or f"{host}: {self.kind}: exit status {result.status}")
        return result.stdout

    def _outputs(self, props: dict[str, Any], revision: int) -> dict[str, Any]:
        # `revision` counts the applies: the host's verification depends on it, so it runs after every change.
        return {**props, "revision": revision}

    def create(self, props: dict[str, Any]) -> CreateResult:
        host, _, parsed = self._parse(props)
        self._run(props, self.script(host, parsed, Action.APPLY))
        return CreateResult(f"{host}@{props['address']}", self._outputs(props, 1))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        host, _, parsed = self._parse(news)
        revision = int(olds.get("revision") or 0)
        if not self._changed(olds, news, self.settings):
            # Only the way to reach the host changed (user, port, host key, bastion): nothing on it changes, so
            # nothing runs on it, and the revision (which triggers the check from outside) stays.
            return UpdateResult(self._outputs(news, revision))
        self._run(news, self.script(host, parsed, Action.APPLY))
        return UpdateResult(self._outputs(news, revision + 1))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        host, _, parsed = self._parse(props)
        self._run(props, self.script(host, parsed, Action.REMOVE))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        host, _, parsed = self._parse(props)
        live = self.live(parse_state(self._run(props, self.read_script(host, parsed))), props, parsed)
        inputs = {key: value for key, value in props.items() if key != "revision"}
        return ReadResult(id_, {**props, **live}, {**inputs, **live})
