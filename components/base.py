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

import base64
import binascii
import pickletools
import re
from typing import Any, ClassVar

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)
from pulumi.output import Unknown
from pulumi.runtime import rpc

from smtps_iredmail.core import facts, ports, profile, remote
from smtps_iredmail.core import firewall as fw
from smtps_iredmail.core.credentials import CREDENTIAL
from smtps_iredmail.core.firewall import Firewall
from smtps_iredmail.core.model import Model
from smtps_iredmail.core.reader import Reader, labelled, read_connection
from smtps_iredmail.core.remote import HostFailure
from smtps_iredmail.core.settings import Connection
from smtps_iredmail.core.stacks import PROJECT, SSH_KEY
from smtps_iredmail.core.templating import Action

from .provider_process import THIS_PROCESS

# The stack's secret SSH key, handed to each explicit provider as its only input: an explicit provider's
# `configure` sees only its own inputs (docs/how-it-works.md, "The Pulumi engine"), the state keeps it encrypted,
# and no SMTPS resource ever has it as an input.
SSH_KEY_CONFIG = f"{PROJECT}:{SSH_KEY}"
# The optional test credential ({username, password}, a secret) the check from outside logs in with, handed to the
# explicit providers like the key; or, in CI, from SMTPS_TEST_CREDENTIAL_FILE (smtps/credentials.py).
CREDENTIAL_CONFIG = f"{PROJECT}:{CREDENTIAL}"
# Or the key comes from a file on the machine that runs Pulumi (SMTPS_SSH_KEY_FILE, smtps/remote.py `deploy_key`), and
# never enters Pulumi at all: what CI uses, so that nothing that can decrypt the stack (a pull request's preview) can
# get the key (docs/safety.md, "Secrets").
# Inputs that say how to reach a host, not what is on it.
CONNECTION_INPUTS = ("address", "port", "user", "hostKey", "jump", "confirmSeconds", "firewalldPending")
# Of those, the ones that say which machine it is: a new host key (or address) is how a rebuilt server looks, so a
# change of one re-runs the idempotent apply and the check from outside. A change of only the others (port, user,
# bastion, confirmSeconds, firewalldPending) reaches the same machine another way: nothing runs on it.
MACHINE_INPUTS = ("address", "hostKey")
# The host's `firewall` setting, an input of every kind: auto, firewalld or nftables. What auto found is kept in
# the outputs (fw.USED); the kinds of the other firewall do nothing on that host (smtps/firewall.py decides).
FIREWALL = fw.SETTING


def from_wire(props: dict[str, Any]) -> dict[str, Any]:
    """Inputs as the program gave them. Every number crosses the engine as a float (a protobuf Value), so a port of
    22 arrives as 22.0 (also inside a mapping: the bastion's port); the program had checked it was a whole number,
    and a fraction stays a float and is refused."""

    def value(item: Any) -> Any:
        if type(item) is float and item.is_integer():
            return int(item)
        return from_wire(item) if isinstance(item, dict) else item

    return {key: value(item) for key, item in props.items()}


def unknown(value: Any) -> bool:
    """Whether an input is, or holds, a value not known yet (an Output of a resource still to be made, at preview).
    The dynamic provider server hands `check` and `diff` their inputs with unknowns kept as `Unknown` objects; the
    wire's own sentinel string is recognised too."""
    if isinstance(value, Unknown):
        return True
    if isinstance(value, str):
        return value == rpc.UNKNOWN
    if isinstance(value, dict):
        return any(unknown(item) for item in value.values())
    if isinstance(value, list):
        return any(unknown(item) for item in value)
    return False


# The engine keeps each resource's provider serialized in its state (`__provider`), and loads it again from there for
# a refresh or a delete. Before the library was a package, its classes lived in top-level modules `components.*`;
# a state written then names them, and they no longer exist.
PROVIDER_KEY = "__provider"
_OLD_MODULE = re.compile(r"components\.[a-z_]+")


def stale_provider(olds: dict[str, Any]) -> bool:
    """Whether the state's serialized provider names the modules of the release before the package: its diff then
    reports a change, and the update (which runs nothing on the host) stores the provider as it is now. Read from the
    pickle's strings, never loaded."""
    serialized = olds.get(PROVIDER_KEY)
    if not isinstance(serialized, str):
        return False
    try:
        raw = base64.b64decode(serialized, validate=True)
        return any(isinstance(arg, str) and _OLD_MODULE.fullmatch(arg) for _, arg, _ in pickletools.genops(raw))
    except (binascii.Error, ValueError):
        return False


# The settings this tool last applied, kept in the outputs under this name. A refresh puts what it finds on the
# host into the outputs (so that the next diff shows it per setting); `applied` it never touches. Delete and read
# act from it: they remove what this tool wrote and read where it wrote, whatever a refresh found meanwhile, and
# never validate a live value (an empty service file, a missing entry) as if it were a setting.
APPLIED = "applied"


class HostProvider(ResourceProvider):
    """One resource kind's provider: everything kind-specific comes from its model (smtps/model.py)."""

    model: ClassVar[Model]
    # The serialized provider (`__provider` in the state) is encrypted only if it captured a secret, which it never
    # does (the key arrives through `configure`): so a stack's state holds no secret at all, and CI's `up` can refuse
    # one that does (smtps/credentials.py). Pulumi's default encrypts it always.
    serialize_as_secret_always = False

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def settings(self) -> tuple[str, ...]:
        return self.model.keys

    # --- the protocol ----------------------------------------------------------------------------------------------
    def configure(self, req: ConfigureRequest) -> None:
        THIS_PROCESS.ssh.configure(req.config.get(SSH_KEY_CONFIG))

    def _reader(self, props: dict[str, Any]) -> Reader:
        # The labels name the host in every message and script: checked like names, since the state that brings
        # them back may have been edited (values read back from state are data, never code).
        return labelled(from_wire(props))

    def _parse(self, props: dict[str, Any], judge_options: bool = True) -> tuple[str, Connection, Any]:
        read = self._reader(props)
        read.judge_options = judge_options
        connection, parsed = read_connection(read), self.model.parse(read)
        read.finish()
        return read.host, connection, parsed

    def _upgraded(self, olds: dict[str, Any]) -> dict[str, Any]:
        """The state as an older release may have written it, in today's terms: called once by each method that gets
        the state, for what it decides; what it writes back is the state as it came (smtps/model.py `upgrade`)."""
        if not isinstance(olds.get(APPLIED), dict):
            # State written before `applied` existed has only the outputs, which were the applied settings then.
            olds = {**olds, APPLIED: {key: olds[key] for key in self.settings if key in olds}}
        return self.model.upgrade(olds)

    def _parse_applied(self, olds: dict[str, Any]) -> tuple[str, Connection, Any]:
        """The host as this tool last applied it (`olds` upgraded): the connection from the outputs, the settings
        from `applied`."""
        applied = olds[APPLIED]
        # What is already on the host is taken out or read whatever today's option rules say of it (a remove or a
        # read writes no entry): an option allowed when it was applied must not block its removal.
        # Only this kind's settings come from `applied`: the connection (where to go, which key to trust) never.
        return self._parse({**olds, **{key: applied[key] for key in self.settings if key in applied}},
                           judge_options=False)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Every input, in the settings' own words (an Output a program gave is checked here, as soon as it is
        known, before any SSH connection). An input not known yet (at preview) is checked when it is."""
        read = self._reader(news)
        read_connection(read)
        self.model.parse(read)
        read.choice(FIREWALL, tuple(f.value for f in Firewall))
        later = {key for key, value in news.items() if unknown(value)}
        failures = [CheckFailure(key, read.message(key, problem)) for key, problem in read.problems
                    if key.split(".")[0] not in later]
        return CheckResult(news, failures)

    def _changed(self, olds: dict[str, Any], news: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
        # No bastion is None in state written before bastions existed, and {} now: the same thing.
        return [key for key in keys if (olds.get(key) or None) != (news.get(key) or None)]

    # --- which firewall: decided in smtps/firewall.py, from this kind's firewalls and the host's data -------------
    def _resolved(self, olds: dict[str, Any], news: dict[str, Any]) -> Firewall | None:
        """The firewall this resource is to act for (None: still to be found); the same machine keeps what it had."""
        return fw.resolved(self.model.firewalls, olds, news, not self._changed(olds, news, MACHINE_INPUTS))

    def _find(self, host: str, connection: Connection, firewall: Firewall | None) -> Firewall:
        """The host's firewall for a kind whose apply does not find it itself: known, found by this run's first
        apply on the host, else asked (a read-only step of its own, before this kind changes anything)."""
        found = firewall or THIS_PROCESS.firewall_of(host, connection)
        if found is None:
            found = fw.found(self._run(host, connection, fw.script(host, fw.asked(None))))
            if found is None:
                raise HostFailure(f"{host}: firewall: auto: the host did not say which firewall it has")
            THIS_PROCESS.note_firewall(host, connection, found)
        return found

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        olds = self._upgraded(olds)
        old_fw, new_fw = fw.recorded_in(self.model.firewalls, olds), self._resolved(olds, news)
        if fw.idle(self.model.firewalls, old_fw, new_fw):
            # Another firewall opens 465 on this host, before and after: nothing of this kind is there to change. A
            # stored provider of the old modules is still a change: refresh and destroy load it from the state, idle
            # kind or not, and the update (which runs nothing here) stores the one of today.
            return DiffResult(changes=stale_provider(olds), replaces=[], stables=None, delete_before_replace=False)
        changed = self._changed(olds, news, (*self.settings, *CONNECTION_INPUTS))
        if fw.switched(old_fw, new_fw):
            changed.append(FIREWALL)
        if stale_provider(olds):
            changed.append(PROVIDER_KEY)
        replaces = [key for key in changed if key in self.model.identity]
        # Delete before replace, on purpose: the old thing is taken off the host (as found) before the new one is
        # made. Create-first would run the old delete after the new create, and where both touch the same file (the
        # zone: its remove puts the file back as found, which would drop the new membership) that delete would undo
        # what the create just did.
        return DiffResult(changes=bool(changed), replaces=replaces, stables=None,
                          delete_before_replace=bool(replaces))

    def _run(self, host: str, connection: Connection, script: str) -> str:
        return remote.run(host, connection, script, self.kind, THIS_PROCESS.ssh.get())

    def _change(self, host: str, connection: Connection, script: str) -> str:
        """Run an apply or remove script; where it reloaded firewalld, confirm with a fresh login (or fail, and
        the host reverts by itself). Returns what the script printed."""
        # Which mail ports answer before this run first changes the host: none of them may go quiet (the check
        # from outside compares after the host's last change).
        port_opener = remote.reach(host, connection.address, connection.jump, THIS_PROCESS.ssh.get)
        with profile.span("probe: mail ports before the first change", host):
            THIS_PROCESS.record_ports_before(host, lambda: ports.answering(connection.address, port_opener, quick=True))
        return remote.run_confirmed(host, connection, script, self.kind, THIS_PROCESS.ssh.get())

    def _outputs(self, props: dict[str, Any], revision: int, stdout: str | None = None,
                 olds: dict[str, Any] | None = None, used: Firewall | None = None) -> dict[str, Any]:
        # `revision` counts the applies: the host's verification depends on it, so it runs after every change.
        applied = {key: props[key] for key in self.settings if key in props}
        # What the apply reported (the certificate it serves), or, where nothing ran, what it reported last.
        reported = self.model.report(stdout) if stdout is not None else {}
        kept = {key: (olds or {}).get(key) for key in self.model.reports if key not in reported}
        return {**props, **kept, **reported, "revision": revision, APPLIED: applied, fw.USED: fw.output(used, olds)}

    def _apply(self, host: str, connection: Connection, parsed: Any,
               firewall: Firewall | None) -> tuple[str | None, Firewall | None]:
        """Apply on the host, for its firewall (`firewall`: the setting, or what was found before; None: not known);
        (what the script printed, or None where this kind has nothing on a host with that firewall; the firewall).
        The host's firewall is found, or the one set is checked, before anything changes there."""
        if fw.found_by_apply(self.model.firewalls):
            # The apply itself checks the firewall (auto: finds it) as its first step, in the same session.
            script = self.model.script(host, parsed, Action.APPLY, connection, THIS_PROCESS.snapshot_id,
                                       firewall=fw.asked(firewall).value)
            stdout = self._change(host, connection, script)
            found = fw.found(stdout)
            THIS_PROCESS.note_firewall(host, connection, found)
            return stdout, found
        firewall = self._find(host, connection, firewall)
        if not fw.acts(self.model.firewalls, firewall):
            return None, firewall
        script = self.model.script(host, parsed, Action.APPLY, connection, THIS_PROCESS.snapshot_id)
        return self._change(host, connection, script), firewall

    def create(self, props: dict[str, Any]) -> CreateResult:
        host, connection, parsed = self._parse(props)
        stdout, used = self._apply(host, connection, parsed, self._resolved({}, props))
        # Revision 0: nothing of this kind was applied (the host's firewall is another).
        return CreateResult(f"{host}@{props['address']}", self._outputs(props, 0 if stdout is None else 1, stdout,
                                                                        used=used))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        host, connection, parsed = self._parse(news)
        olds = self._upgraded(olds)
        revision = int(olds.get("revision") or 0)
        old_fw, new_fw = fw.recorded_in(self.model.firewalls, olds), self._resolved(olds, news)
        if not self._changed(olds, news, (*self.settings, *MACHINE_INPUTS)) and new_fw == old_fw:
            # Only the way to reach the same machine changed (user, port, bastion): nothing on it changes, so
            # nothing runs on it, and the revision (which triggers the check from outside) stays.
            return UpdateResult(self._outputs(news, revision, olds=olds))
        stdout, used = self._apply(host, connection, parsed, new_fw)
        if stdout is None:
            return UpdateResult(self._outputs(news, revision, olds=olds, used=used))
        return UpdateResult(self._outputs(news, revision + 1, stdout, olds, used))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        olds = self._upgraded(props)
        if not fw.acts(self.model.firewalls, fw.recorded_in(self.model.firewalls, olds)):
            return  # another firewall opens 465 on this host: this kind never put anything there
        host, connection, parsed = self._parse_applied(olds)
        self._change(host, connection,
                     self.model.script(host, parsed, Action.REMOVE, connection, THIS_PROCESS.snapshot_id))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        olds = self._upgraded(props)
        if not fw.acts(self.model.firewalls, fw.recorded_in(self.model.firewalls, olds)):
            # Nothing of this kind is on the host to read: what the state says stands (the host is not touched).
            return ReadResult(id_, props, {key: value for key, value in props.items()
                                           if key not in ("revision", APPLIED, fw.USED, *self.model.reports)})
        host, connection, parsed = self._parse_applied(olds)
        found = facts.parse(self._run(host, connection, self.model.read_script(host, parsed)))
        live = self.model.live(found, parsed)
        # What the apply reported (the certificate) is an output, never an input: as an input, a refresh would make
        # the next diff show it removed.
        inputs = {key: value for key, value in props.items()
                  if key not in ("revision", APPLIED, fw.USED, *self.model.reports)}
        return ReadResult(id_, {**props, **live}, {**inputs, **live})


class TypedResource(Resource):
    """A dynamic resource that knows its own type token, `pulumi-python:dynamic/MODULE:NAME`: the engine's type of
    it, made from the module and name its class is declared with, as the SDK makes it. Canary targets name a
    resource by it before the engine has one."""

    type_token: ClassVar[str]

    def __init_subclass__(cls, module: str = "", name: str = "Resource", **kwargs: Any) -> None:
        super().__init_subclass__(module=module, name=name, **kwargs)
        cls.type_token = f"pulumi-python:dynamic{f'/{module}' if module else ''}:{name}"


class HostResource(TypedResource):
    """One resource kind on one host; `revision` counts its applies (the host's verification depends on it)."""

    provider_class: ClassVar[type[HostProvider]]
    revision: pulumi.Output[int]

    @classmethod
    def new_provider(cls) -> HostProvider:
        return cls.provider_class()

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        provider = self.new_provider()
        # Outputs are declared as None inputs: the engine then exposes them as attributes (revision, certSha256).
        reports = dict.fromkeys(provider.model.reports)
        super().__init__(provider, name, {**props, **reports, "revision": None, fw.USED: None}, opts)
