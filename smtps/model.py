"""What a resource kind is, apart from Pulumi: its typed inputs, how they come from a host's settings, its scripts,
and which of the host's facts are its inputs as found. smtps/kinds.py lists them; components/kinds.py binds each to
Pulumi.

The rule that keeps `pulumi refresh`, `drift` and `up --refresh` in agreement: every fact a kind reads is one of its
inputs (`live` returns it under the input's key), so a refresh shows it per field and the next `up` puts it back;
a fact that is not an input is not read at all. Both readers call the same `live` on the same facts.

An input's key is written once, as its inputs dataclass field (`service_short` is the key serviceShort): `live`
returns values by field name (`Inputs.found`), the readers name a key as `Inputs.key.service_short`, and a setting's
built-in default is the field's (`setting(DEFAULT)`), from which smtps/hosts.py builds DEFAULTS.
"""

from __future__ import annotations

from dataclasses import field, fields
from typing import TYPE_CHECKING, Any, ClassVar

from . import firewall
from .firewall import Firewall
from .templating import Action

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .facts import HostFacts
    from .reader import Reader
    from .settings import Connection

# Where an input's field keeps the built-in default of the setting of the same key.
DEFAULT = "default"


def camel(name: str) -> str:
    """An inputs dataclass field's input key: tls_cert -> tlsCert."""
    first, *rest = name.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


def setting(default: Any) -> Any:
    """An input that is also a setting of a stack, whose built-in default is `default` (smtps/hosts.py DEFAULTS)."""
    return field(metadata={DEFAULT: default})


class Keys:
    """An inputs class's keys by field name: `.service_short` is "serviceShort"; a name that is no field fails."""

    def __init__(self, inputs: type[Inputs]) -> None:
        self._inputs = inputs

    def __getattr__(self, name: str) -> str:
        if name.startswith("_") or name not in {f.name for f in fields(self._inputs)}:  # type: ignore[arg-type]
            raise AttributeError(f"{self._inputs.__name__} has no input {name}")
        return camel(name)


class Inputs:
    """Base of each kind's inputs dataclass: its fields, in camelCase, are the kind's input keys."""

    key: ClassVar[Keys]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.key = Keys(cls)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(camel(f.name) for f in fields(cls))  # type: ignore[arg-type]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The built-in defaults of the inputs that are settings with one, by key."""
        return {camel(f.name): f.metadata[DEFAULT] for f in fields(cls) if DEFAULT in f.metadata}  # type: ignore[arg-type]

    @classmethod
    def found(cls, **values: Any) -> dict[str, Any]:
        """Inputs as found on a host (some of them), by field name, under their keys: a name that is no field fails."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - names)
        if unknown:
            raise TypeError(f"{cls.__name__} has no input {', '.join(unknown)}")
        return {camel(name): value for name, value in values.items()}

    def props(self) -> dict[str, Any]:
        return {camel(f.name): getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


class Model:
    """One resource kind: a subclass per kind (smtps/<kind>.py), and one instance of it, the kind's MODEL."""

    kind: ClassVar[str]  # names the kind in messages: "master.cf service"
    # Its part of a host's settings (smtps/hosts.py HostSettings) and its child resource's suffix (HOST-NAME).
    name: ClassVar[str]
    # Its resource's type name: pulumi-python:dynamic/smtps:RESOURCE.
    resource: ClassVar[str]
    inputs: ClassVar[type[Inputs]]
    # The inputs whose change means another thing on the host (not the same thing changed): replaced, old first.
    identity: ClassVar[tuple[str, ...]] = ()
    # The firewall the kind opens 465 with; empty: it belongs on every host (Postfix). On a host whose firewall is
    # another, the kind's resource is declared where the setting is auto, and does nothing (smtps/firewall.py).
    firewalls: ClassVar[tuple[Firewall, ...]] = ()
    # What an apply reports besides its inputs (outputs named in `reports`, parsed from the script's stdout by
    # `report`): the certificate the master.cf entry serves, for the check from outside.
    reports: ClassVar[tuple[str, ...]] = ()
    # Inputs that `up` checks but never changes (a daemon an operator may have stopped on purpose): what drift says
    # to do instead, by input key.
    not_repaired: ClassVar[dict[str, str]] = {}

    @property
    def keys(self) -> tuple[str, ...]:
        return self.inputs.keys()

    def part(self, settings: Any) -> Any:
        """The kind's part of a host's settings (smtps/hosts.py HostSettings, which imports the kinds: so not named
        here), what its scripts are rendered from."""
        return settings.part(self.name)

    def parse(self, read: Reader) -> Any:
        """The kind's part from settings or inputs (None, with the problems recorded in `read`)."""
        raise NotImplementedError

    def from_settings(self, read: Reader, earlier: Mapping[str, Any]) -> Any:
        """The kind's part of a host's settings: `earlier` holds what was read before it (the host's firewall
        setting, under fw.SETTING, and the parts of the kinds before it, by name)."""
        return self.parse(read)

    def views(self, part: Any) -> dict[str, Any]:
        """The kind's part (or its pieces) by the names a host's settings give them (`settings.zone`)."""
        return {self.name: part}

    def wanted(self, part: Any) -> Inputs:
        raise NotImplementedError

    def script(self, host: str, part: Any, action: Action, connection: Connection | None = None, snapshot_id: str = "",
               **kw: Any) -> str:
        """`snapshot_id` names the engine operation's rollback snapshot on the host. A kind whose apply finds the
        host's firewall first (smtps/firewall.py, `found_by_apply`) also takes firewall=SETTING."""
        raise NotImplementedError

    def read_script(self, host: str, part: Any) -> str:
        raise NotImplementedError

    def live(self, facts: HostFacts, part: Any) -> dict[str, Any]:
        """The inputs as found on the host: every input the facts say something about, and only those."""
        raise NotImplementedError

    def report(self, stdout: str) -> dict[str, Any]:
        return {}

    def upgrade(self, olds: dict[str, Any]) -> dict[str, Any]:
        """The kind's state as an older release wrote it, in today's terms: what its provider decides from (read once,
        where the provider gets the state), never written back as such. Unchanged where nothing of it changed."""
        return olds


class FirewallModel(Model):
    """A kind of one firewall (firewalld's or nftables'): its resource does nothing on a host with the other."""

    def upgrade(self, olds: dict[str, Any]) -> dict[str, Any]:
        return firewall.upgrade(self.firewalls, olds)
