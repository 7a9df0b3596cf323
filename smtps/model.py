"""What a resource kind is, apart from Pulumi: its typed inputs, how they come from a host's settings, its scripts,
and which of the host's facts are its inputs as found. components/ wraps each in a Pulumi resource and provider.

The rule that keeps `pulumi refresh`, `drift` and `up --refresh` in agreement: every fact a kind reads is one of its
inputs (`live` returns it under the input's key), so a refresh shows it per field and the next `up` puts it back;
a fact that is not an input is not read at all. Both readers call the same `live` on the same facts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from .facts import HostFacts
from .settings import Connection, Firewall, HostSettings, Reader
from .templating import Action


def camel(name: str) -> str:
    """An inputs dataclass field's input key: tls_cert -> tlsCert."""
    first, *rest = name.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


class Inputs:
    """Base of each kind's inputs dataclass: its fields, in camelCase, are the kind's input keys."""

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(camel(f.name) for f in fields(cls))  # type: ignore[arg-type]

    def props(self) -> dict[str, Any]:
        return {camel(f.name): getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class Model:
    kind: str  # names the kind in messages: "master.cf service"
    inputs: type[Inputs]
    # The inputs whose change means another thing on the host (not the same thing changed): replaced, old first.
    identity: tuple[str, ...]
    # The kind's part of a host's settings (what its scripts are rendered from), from the settings or the inputs.
    part: Callable[[HostSettings], Any]
    parse: Callable[[Reader], Any]
    wanted: Callable[[Any], Inputs]
    # script(host, part, action, connection, run): `run` names the engine run, for its rollback snapshot. A kind whose
    # apply finds the host's firewall first (smtps/firewall.py, `found_by_apply`) also takes firewall=SETTING.
    script: Callable[[str, Any, Action, Connection, str], str]
    read_script: Callable[[str, Any], str]
    # The inputs as found on the host: every input the facts say something about, and only those.
    live: Callable[[HostFacts, Any], dict[str, Any]]
    # What an apply reports besides its inputs (outputs named in `reports`, parsed from the script's stdout): the
    # certificate the master.cf entry serves, for the check from outside.
    reports: tuple[str, ...] = ()
    report: Callable[[str], dict[str, Any]] | None = None
    # The firewall the kind opens 465 with; empty: it belongs on every host (Postfix). On a host whose firewall is
    # another, the kind's resource is declared where the setting is auto, and does nothing (smtps/firewall.py).
    firewalls: tuple[Firewall, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return self.inputs.keys()
