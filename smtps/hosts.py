"""A host's settings from a stack: the layers merged (built-in defaults, the fleet's, the stack's, the host's own),
read once, at the edge, into frozen dataclasses, and checked before anything touches a host.

The raw input is plain data (what a stack's config holds): stack-wide defaults, then per-host entries whose keys
override the defaults. Every error names the stack, the host and the setting.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .firewall import SETTING, Firewall
from .kinds import KINDS
from .lockout_guard import PENDING_CHOICES
from .reader import (
    BASTION_DEFAULTS,
    BASTION_KNOWN,
    HOSTNAME,
    NAME,
    PATH,
    PATH_WHAT,
    Reader,
    optional,
    read_connection,
    read_endpoint,
    show,
)
from .settings import CONFIRM_SECONDS, CheckSettings, Connection, SettingsError


@dataclass(frozen=True)
class HostSettings:
    """One host's settings: what every host has, and each kind's part (smtps/kinds.py), which reads as an attribute
    by the names its kind gives it (`settings.zone`, `settings.tls`: smtps/model.py `views`)."""

    name: str
    connection: Connection
    check: CheckSettings
    firewall: Firewall
    # Each kind's part, in the kinds' order: (the kind's name, its part).
    parts: tuple[tuple[str, Any], ...]

    def part(self, name: str) -> Any:
        return dict(self.parts)[name]

    def __getattr__(self, name: str) -> Any:
        # Called only for a name that is no field; `parts` is looked up directly (absent while a copy is made).
        parts = self.__dict__.get("parts")
        if parts is not None and not name.startswith("_"):
            for model, part in zip(KINDS, dict(parts).values(), strict=True):
                views = model.views(part)
                if name in views:
                    return views[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


# The settings that are inputs of a kind have their built-in default on the kind's inputs field (smtps/model.py
# `setting`); the others are the check's, the firewall's and the connection's.
DEFAULTS: dict[str, Any] = {
    **{key: value for model in KINDS for key, value in model.inputs.defaults().items()},
    "certMinDays": 14,
    "tlsName": None,
    "caBundle": None,
    SETTING: Firewall.AUTO.value,
    "port": 22,
    "user": "root",
    "jump": None,
    "confirmSeconds": CONFIRM_SECONDS,
    "firewalldPending": PENDING_CHOICES[0],
}
HOST_ONLY = ("name", "address", "hostKey")
KNOWN = set(DEFAULTS) | set(HOST_ONLY)


def parse_bastions(stack: str, bastions: Any, problems: list[str]) -> dict[str, Connection | None]:
    """The stack's bastions by name: the SSH jump hosts its mail hosts may be reached through (`jump: NAME`).
    A bastion whose entry is bad is recorded in `problems` and kept as None, so hosts naming it add no error."""
    if bastions is None:
        return {}
    if not isinstance(bastions, list):
        problems.append(f"stack {stack}: setting bastions: expected a list of bastions")
        return {}
    found: dict[str, Connection | None] = {}
    for index, entry in enumerate(bastions):
        if not isinstance(entry, Mapping):
            problems.append(f"stack {stack}, bastion #{index + 1}: expected a mapping")
            continue
        name = entry.get("name")
        label = name if isinstance(name, str) and NAME.fullmatch(name) else f"#{index + 1}"
        read = Reader(stack, label, {**BASTION_DEFAULTS, **entry}, kind="bastion")
        for key in entry:
            if key not in BASTION_KNOWN:
                read.fail(key if isinstance(key, str) and key.isprintable() else show(key),
                          f"unknown setting for a bastion (known: {', '.join(BASTION_KNOWN)})")
        name = read.text("name", NAME, "a bastion name of letters, digits, . _ -")
        connection = read_endpoint(read, name or "")
        if name in found:
            read.fail("name", f"bastion {name} appears twice")
        problems.extend(read.message(key, problem) for key, problem in read.problems)
        if name and name not in found:
            found[name] = None if read.problems else connection
    return found


def read_check(read: Reader) -> CheckSettings | None:
    days = read.integer("certMinDays", 0, 3650)
    name_ok, name = optional(read, "tlsName", HOSTNAME, "a DNS name")
    ca_ok, ca = optional(read, "caBundle", PATH, PATH_WHAT)
    return CheckSettings(days, name, ca) if days is not None and name_ok and ca_ok else None


def read_firewall(read: Reader) -> Firewall | None:
    value = read.choice(SETTING, tuple(f.value for f in Firewall))
    return None if value is None else Firewall(value)


def merge(defaults: Mapping[str, Any], host: Mapping[str, Any]) -> dict[str, Any]:
    """One host's raw settings: built-in defaults, then the stack's, then the host's own."""
    values: dict[str, Any] = {**DEFAULTS, **defaults, **host}
    layers = [DEFAULTS["options"], defaults.get("options", {}), host.get("options", {})]
    if all(isinstance(layer, Mapping) for layer in layers):
        # Options merge by parameter (iRedMail's, then the stack's, then the host's); null removes one.
        merged: dict[str, Any] = {}
        for layer in layers:
            merged.update(layer)
        values["options"] = {name: value for name, value in merged.items() if value is not None}
    return values


def parse_host(stack: str, defaults: Mapping[str, Any], host: Mapping[str, Any], label: str = "?",
               bastions: Mapping[str, Connection | None] | None = None) -> HostSettings:
    """One host's settings; `label` names it in messages when its own name is missing or bad (`#2`)."""
    values = merge(defaults, host)
    name = host.get("name") if isinstance(host.get("name"), str) and NAME.fullmatch(host["name"]) else label
    read = Reader(stack, name, values)
    for key in values:
        if key not in KNOWN:
            read.fail(key if isinstance(key, str) and key.isprintable() else show(key),
                      f"unknown setting (known: {', '.join(sorted(KNOWN))})")
    name = read.text("name", NAME, "a host name of letters, digits, . _ -")
    # What every host has, then each kind's part in the kinds' order (a kind's reader may use what was read before
    # it): one error lists the problems in that order.
    connection, check, firewall = read_connection(read, bastions or {}), read_check(read), read_firewall(read)
    earlier: dict[str, Any] = {SETTING: firewall}
    for model in KINDS:
        earlier[model.name] = model.from_settings(read, earlier)
    read.finish()
    return HostSettings(name, connection, check, firewall, tuple((model.name, earlier[model.name]) for model in KINDS))


def _layer(stack: str, what: str, layer: Any, problems: list[str]) -> Mapping[str, Any]:
    if layer is None:
        return {}
    if not isinstance(layer, Mapping):
        problems.append(f"stack {stack}: setting {what}: expected a mapping")
        return {}
    for key in layer:
        if key in HOST_ONLY:
            problems.append(f"stack {stack}: setting {what}.{key}: belongs to each host, not to the {what}")
    return layer


def parse_stack(stack: str, defaults: Any, hosts: Any, fleet: Any = None,
                bastions: Any = None, canaries: Any = None) -> tuple[HostSettings, ...]:
    """Every host of a stack, or one SettingsError that lists every problem in all of them.

    Layers, each overriding the one before setting by setting (`options` parameter by parameter, null removing
    one): built-in DEFAULTS, `fleet` (Pulumi.yaml, for every stack), the stack's `defaults`, the host's entry.
    `bastions` are the stack's jump hosts, which a host (or the defaults) names in `jump`; `canaries` the hosts
    `smtps up` converges and verifies first (checked here, so a preview already refuses a wrong one)."""
    problems: list[str] = []
    jumps = parse_bastions(stack, bastions, problems)
    fleet = _layer(stack, "fleet", fleet, problems)
    defaults = _layer(stack, "defaults", defaults, problems)
    combined: dict[str, Any] = {**fleet, **defaults}
    if isinstance(fleet.get("options"), Mapping) and isinstance(defaults.get("options"), Mapping):
        combined["options"] = {**fleet["options"], **defaults["options"]}
    if not isinstance(hosts, list) or not hosts:
        problems.append(f"stack {stack}: setting hosts: expected a non-empty list of hosts")
        hosts = []
    parsed = []
    for index, host in enumerate(hosts):
        if not isinstance(host, Mapping):
            problems.append(f"stack {stack}, host #{index + 1}: expected a mapping")
            continue
        try:
            parsed.append(parse_host(stack, combined, host, f"#{index + 1}", jumps))
        except SettingsError as err:
            problems.append(str(err))
    # Each later host that repeats an earlier one's name, address or host key is named, with the one it repeats. One
    # host key on two hosts is one machine under two names, or a cloned image whose keys should not be shared.
    # A host key is compared by its decoded data: base64 accepts padding that is not needed ("AAAA...=").
    for key, of in (("name", lambda h: h.name), ("address", lambda h: h.connection.address),
                    ("hostKey", lambda h: base64.b64decode(h.connection.host_key.split(" ")[1]))):
        first: dict[Any, int] = {}
        for index, h in enumerate(parsed):
            if of(h) in first:
                shown = f"the host key {show(h.connection.host_key)}" if key == "hostKey" else of(h)
                problems.append(f"stack {stack}, host {h.name} (#{index + 1}), setting {key}: {shown} appears twice "
                                f"(first as host #{first[of(h)] + 1}, {parsed[first[of(h)]].name})")
            first.setdefault(of(h), index)
    problems += canary_problems(stack, canaries, [h.name for h in parsed]) if not problems else []
    if problems:
        raise SettingsError("\n".join(problems))
    return tuple(parsed)


def canary_problems(stack: str, canaries: Any, names: list[str]) -> list[str]:
    if canaries is None:
        return []
    if not isinstance(canaries, list) or not all(isinstance(c, str) for c in canaries):
        return [f"stack {stack}: setting canaries: expected a list of host names, got {show(canaries)}"]
    return [f"stack {stack}, host {show(c) if not NAME.fullmatch(c) else c}, setting canaries: not a host of "
            f"this stack (hosts: {', '.join(sorted(names))})" for c in canaries if c not in names]
