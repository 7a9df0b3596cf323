"""SMTPS settings: parsed once, at the edge, into frozen dataclasses, and checked before anything touches a host.

The raw input is plain data (what a stack's config holds): stack-wide defaults, then per-host entries whose keys
override the defaults. Every error names the stack, the host and the setting.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# iRedMail's stanza (iRedMail >= 1.5.0 writes exactly this; shared/FACTS.md).
IREDMAIL_OPTIONS: tuple[tuple[str, str], ...] = (
    ("syslog_name", "postfix/smtps"),
    ("smtpd_tls_wrappermode", "yes"),
    ("smtpd_sasl_auth_enable", "yes"),
    ("smtpd_client_restrictions", "permit_sasl_authenticated,reject"),
    ("content_filter", "smtp-amavis:[127.0.0.1]:10026"),
)
# All three mean port 465 in master.cf. A host with any of them is converged in place, never given a second one.
SERVICE_KEYS = ("465", "smtps", "submissions")
SMTPS_PORT = 465


class PortPolicy(StrEnum):
    """What to do when the zone already opens 465 by a raw `<port>` (iRedMail >= 1.5 writes one).

    keep:    leave the zone as found; the port already does what the service would. Nothing is added.
    replace: remove the raw port and add the service instead; destroy puts the port back.
    """

    KEEP = "keep"
    REPLACE = "replace"


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class MasterServiceSettings:
    key: str
    options: tuple[tuple[str, str], ...]
    private: str = "n"
    unprivileged: str = "-"
    chroot: str = "n"
    wakeup: str = "-"
    maxproc: str = "-"
    command: str = "smtpd"

    @property
    def entry(self) -> str:
        """The whole master.cf entry on one line, as `postconf -M key/inet=...` takes it."""
        fields = [self.key, "inet", self.private, self.unprivileged, self.chroot, self.wakeup, self.maxproc,
                  self.command]
        return " ".join(fields + [f"-o {name}={value}" for name, value in self.options])


@dataclass(frozen=True)
class TlsSettings:
    cert: str
    key: str


@dataclass(frozen=True)
class FirewalldServiceSettings:
    name: str
    short: str
    description: str
    port: int = SMTPS_PORT
    protocol: str = "tcp"


@dataclass(frozen=True)
class ZoneSettings:
    zone: str
    service: str
    port_policy: PortPolicy


@dataclass(frozen=True)
class Connection:
    address: str
    port: int
    user: str
    host_key: str


@dataclass(frozen=True)
class HostSettings:
    name: str
    connection: Connection
    master: MasterServiceSettings
    tls: TlsSettings
    service: FirewalldServiceSettings
    zone: ZoneSettings


DEFAULTS: dict[str, Any] = {
    "serviceKey": "465",
    "options": dict(IREDMAIL_OPTIONS),
    "chroot": "n",
    "maxproc": "-",
    "tlsCert": "/etc/pki/tls/certs/iRedMail.crt",
    "tlsKey": "/etc/pki/tls/private/iRedMail.key",
    "firewalldService": "smtps",
    "serviceShort": "Enable SMTPS",
    "serviceDescription": "Enable SMTPS.",
    "zone": "iredmail",
    "existingPortPolicy": PortPolicy.KEEP.value,
    "port": 22,
    "user": "root",
}
HOST_ONLY = ("name", "address", "hostKey")
KNOWN = set(DEFAULTS) | set(HOST_ONLY)

_PARAM = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# master.cf -o values: no white space (it would split the entry), no braces or quotes; what Postfix lists use.
_OPTION_VALUE = re.compile(r"^[A-Za-z0-9_.,:;=/@\[\]!$+*%-]{0,512}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_PATH = re.compile(r"^/[A-Za-z0-9._+/-]{1,255}$")
_TEXT = re.compile(r"^[^\x00-\x1f<>&\"]{1,200}$")
_HOST_KEY = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) "
                       r"[A-Za-z0-9+/]+={0,3}$")
_MAXPROC = re.compile(r"^(-|[0-9]{1,5})$")


class _Reader:
    """Reads one host's merged settings and reports errors with stack, host and key."""

    def __init__(self, stack: str, host: str, values: Mapping[str, Any]) -> None:
        self.stack, self.host, self.values = stack, host, values

    def fail(self, key: str, problem: str) -> SettingsError:
        return SettingsError(f"stack {self.stack}, host {self.host}, setting {key}: {problem}")

    def text(self, key: str, pattern: re.Pattern[str], what: str) -> str:
        value = self.values.get(key)
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string ({what}), got {type(value).__name__}")
        if not pattern.match(value):
            raise self.fail(key, f"{value!r} is not {what}")
        return value

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.values.get(key)
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
            raise self.fail(key, f"expected a whole number from {low} to {high}, got {value!r}")
        number = int(value)
        if not low <= number <= high:
            raise self.fail(key, f"{number} is outside {low} to {high}")
        return number

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.values.get(key)
        if value not in allowed:
            raise self.fail(key, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def options(self, key: str) -> tuple[tuple[str, str], ...]:
        value = self.values.get(key)
        if not isinstance(value, Mapping):
            raise self.fail(key, "expected a mapping of Postfix parameter names to values")
        options = []
        for name, option in value.items():
            if not isinstance(name, str) or not _PARAM.match(name):
                raise self.fail(f"{key}.{name}", "not a Postfix parameter name (lower-case letters, digits, _)")
            if not isinstance(option, str) or not _OPTION_VALUE.match(option):
                raise self.fail(f"{key}.{name}", f"{option!r}: master.cf -o values take no white space, quotes "
                                                 "or braces")
            options.append((name, option))
        if dict(options).get("smtpd_tls_wrappermode") != "yes":
            raise self.fail(f"{key}.smtpd_tls_wrappermode", "must be 'yes': port 465 is implicit TLS")
        return tuple(options)


def parse_host(stack: str, defaults: Mapping[str, Any], host: Mapping[str, Any]) -> HostSettings:
    name = host.get("name") if isinstance(host.get("name"), str) else "?"
    values: dict[str, Any] = {**DEFAULTS, **defaults, **host}
    layers = [DEFAULTS["options"], defaults.get("options", {}), host.get("options", {})]
    if all(isinstance(layer, Mapping) for layer in layers):
        # Options merge by parameter (iRedMail's, then the stack's, then the host's); null removes one.
        merged: dict[str, Any] = {}
        for layer in layers:
            merged.update(layer)
        values["options"] = {name: value for name, value in merged.items() if value is not None}
    read = _Reader(stack, name, values)
    for key in values:
        if key not in KNOWN:
            raise read.fail(key, f"unknown setting (known: {', '.join(sorted(KNOWN))})")
    name = read.text("name", _NAME, "a host name of letters, digits, . _ -")
    address = values.get("address")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        read.text("address", _HOSTNAME, "an IP address or a DNS name")
    connection = Connection(
        address=str(address),
        port=read.integer("port", 1, 65535),
        user=read.text("user", _USER, "a user name"),
        host_key=read.text("hostKey", _HOST_KEY, "a public host key like 'ssh-ed25519 AAAA...'"),
    )
    master = MasterServiceSettings(
        key=read.choice("serviceKey", SERVICE_KEYS),
        options=read.options("options"),
        chroot=read.choice("chroot", ("y", "n", "-")),
        maxproc=read.text("maxproc", _MAXPROC, "'-' or a number"),
    )
    tls = TlsSettings(cert=read.text("tlsCert", _PATH, "an absolute path"),
                      key=read.text("tlsKey", _PATH, "an absolute path"))
    service_name = read.text("firewalldService", _NAME, "a firewalld service name")
    service = FirewalldServiceSettings(
        name=service_name,
        short=read.text("serviceShort", _TEXT, "a short one-line text"),
        description=read.text("serviceDescription", _TEXT, "a one-line text"),
    )
    zone = ZoneSettings(
        zone=read.text("zone", _NAME, "a firewalld zone name"),
        service=service_name,
        port_policy=PortPolicy(read.choice("existingPortPolicy", tuple(p.value for p in PortPolicy))),
    )
    return HostSettings(name, connection, master, tls, service, zone)


def parse_stack(stack: str, defaults: Mapping[str, Any] | None, hosts: Any) -> tuple[HostSettings, ...]:
    defaults = defaults or {}
    if not isinstance(defaults, Mapping):
        raise SettingsError(f"stack {stack}: setting defaults: expected a mapping")
    if not isinstance(hosts, list) or not hosts:
        raise SettingsError(f"stack {stack}: setting hosts: expected a non-empty list of hosts")
    parsed = []
    for index, host in enumerate(hosts):
        if not isinstance(host, Mapping):
            raise SettingsError(f"stack {stack}, host #{index + 1}: expected a mapping")
        parsed.append(parse_host(stack, defaults, host))
    for what, values in (("name", [h.name for h in parsed]), ("address", [h.connection.address for h in parsed])):
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise SettingsError(f"stack {stack}: setting hosts: {what} {', '.join(duplicates)} appears twice")
    return tuple(parsed)
