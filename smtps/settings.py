"""SMTPS settings: parsed once, at the edge, into frozen dataclasses, and checked before anything touches a host.

The raw input is plain data (what a stack's config holds): stack-wide defaults, then per-host entries whose keys
override the defaults. Every error names the stack, the host and the setting.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from .firewall import Firewall, keep_only
from .lockout_guard import PENDING_CHOICES
from .option_rules import KEEP, refusal, removal_risk, risk

# iRedMail's stanza: iRedMail >= 1.5.0 writes exactly this (the lab's iredmail-1.5 master.cf has it).
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
# How long a host waits for a fresh SSH login to confirm a firewalld reload before it puts the previous firewall
# configuration back by itself (commit-confirmed, as Juniper's `commit confirmed` or `netplan try`).
CONFIRM_SECONDS = 60
# What the lockout guard does with firewalld state that this run did not write (firewalldPending). refuse: any
# difference between the permanent and the running configuration stops the reload. drop-runtime-only: state kept
# only at runtime in rich rules, ipset entries and direct rules (fail2ban's firewalld actions keep their bans so),
# which every reload drops, no longer stops it; anything pending in the permanent configuration still does. The
# guard, which runs on the host on its own, holds the choices.


def _builtin_services() -> dict[str, str]:
    """firewalld's own services and their ports (firewalld_services.txt says where the list comes from)."""
    found = {}
    for line in (Path(__file__).with_name("firewalld_services.txt")).read_text().splitlines():
        if line and not line.startswith("#"):
            name, ports = line.split("\t")
            found[name] = ports
    return found


FIREWALLD_SERVICES = _builtin_services()


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
    # Options allowed although they open relaying or bypass the content filter (smtps/option_rules.py).
    allowed: tuple[str, ...] = ()

    @property
    def entry(self) -> str:
        """The whole master.cf entry on one line, as `postconf -M key/inet=...` takes it."""
        fields = [self.key, "inet", self.private, self.unprivileged, self.chroot, self.wakeup, self.maxproc,
                  self.command]
        return " ".join(fields + [f"-o {name}={value}" for name, value in self.options])


@dataclass(frozen=True)
class TlsSettings:
    """The certificate and key the 465 entry serves (each None: main.cf's, which the apply reads and reports)."""

    cert: str | None
    key: str | None


# The master.cf options the TLS settings become (a stack sets them with tlsCert/tlsKey, never as options).
TLS_OPTIONS = {"smtpd_tls_cert_file": "tlsCert", "smtpd_tls_key_file": "tlsKey"}


@dataclass(frozen=True)
class CheckSettings:
    """What the check from outside demands of the served certificate, beyond matching the file on the host."""

    min_days: int  # fail when it expires within this many days
    tls_name: str | None  # strict mode: the name the certificate must carry
    ca_bundle: str | None  # strict mode: a CA bundle on the machine running Pulumi that must verify the chain


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
class NftablesSettings:
    """The nftables chain that gets the rule accepting 465 (iRedMail's: `table inet filter`, `chain input`)."""

    family: str
    table: str
    chain: str
    # keep only: a rule someone else wrote that accepts 465 (iRedMail >= 1.5) is left as found, and nothing added.
    port_policy: PortPolicy = PortPolicy.KEEP


@dataclass(frozen=True)
class Connection:
    """How to reach a machine over SSH. `jump` is the bastion the connection goes through (None: direct); `name`
    names a bastion in messages (a mail host's connection leaves it empty: the host is named by its settings)."""

    address: str
    port: int
    user: str
    host_key: str
    jump: Connection | None = None
    name: str = ""
    # Seconds the host waits for a fresh login after a firewalld reload before it reverts that reload by itself.
    confirm_seconds: int = CONFIRM_SECONDS
    # What the lockout guard does before a reload with runtime-only state this run did not write (PENDING_CHOICES).
    firewalld_pending: str = PENDING_CHOICES[0]


def reload_values(connection: Connection | None) -> dict[str, object]:
    """What a host script that may reload firewalld is rendered with: the connection's, or the defaults."""
    if connection is None:
        return {"confirm_seconds": CONFIRM_SECONDS, "firewalld_pending": PENDING_CHOICES[0]}
    return {"confirm_seconds": connection.confirm_seconds, "firewalld_pending": connection.firewalld_pending}


@dataclass(frozen=True)
class HostSettings:
    name: str
    connection: Connection
    master: MasterServiceSettings
    tls: TlsSettings
    check: CheckSettings
    service: FirewalldServiceSettings
    zone: ZoneSettings
    firewall: Firewall = Firewall.AUTO
    nftables: NftablesSettings = NftablesSettings("inet", "filter", "input")


DEFAULTS: dict[str, Any] = {
    "serviceKey": "465",
    "options": dict(IREDMAIL_OPTIONS),
    "allowOptions": [],
    "chroot": "n",
    "maxproc": "-",
    "tlsCert": None,
    "tlsKey": None,
    "certMinDays": 14,
    "tlsName": None,
    "caBundle": None,
    "firewalldService": "smtps",
    "serviceShort": "Enable SMTPS",
    "serviceDescription": "Enable SMTPS.",
    "zone": "iredmail",
    "existingPortPolicy": PortPolicy.KEEP.value,
    "firewall": Firewall.AUTO.value,
    "nftFamily": "inet",
    "nftTable": "filter",
    "nftChain": "input",
    "port": 22,
    "user": "root",
    "jump": None,
    "confirmSeconds": CONFIRM_SECONDS,
    "firewalldPending": PENDING_CHOICES[0],
}
HOST_ONLY = ("name", "address", "hostKey")
KNOWN = set(DEFAULTS) | set(HOST_ONLY)
# A bastion's entry: how to reach it, nothing else. It is never configured, only passed through (TCP forwarding).
BASTION_KNOWN = ("name", "address", "port", "user", "hostKey")
BASTION_DEFAULTS: dict[str, Any] = {"port": 22, "user": "root"}

# Every pattern is matched whole (`fullmatch`): `$` alone would let a trailing newline through.
_PARAM = re.compile(r"[a-z][a-z0-9_]{0,63}")
# master.cf -o values: no white space (it would split the entry), no braces or quotes; what Postfix lists use.
_OPTION_VALUE = re.compile(r"[A-Za-z0-9_.,:;=/@\[\]!$+*%-]{0,512}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# A Pulumi stack name (what pulumi.get_stack() returns).
_STACK = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# firewalld's own rules (firewall/core/io/service.py, zone.py): letters, digits, _ and -; a zone name at most 17
# characters (netfilter's 28 for a chain name, less firewalld's longest prefix and suffix).
_SERVICE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ZONE = re.compile(r"[A-Za-z0-9_-]{1,17}")
# nftables' own identifiers (nft(8), "Identifiers"), without the / and \ it also allows.
_NFT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
NFT_FAMILIES = ("inet", "ip", "ip6")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# A DNS name whose last label is not all digits (RFC 3696 2): "10.231.0.06" or "0x0a.0.0.1" are not names.
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$)({_LABEL}\.)*(?![0-9]+$){_LABEL}")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_PATH = re.compile(r"(/[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,254})+")
# One line of text that XML 1.0 can carry (no control characters, surrogates or U+FFFE/U+FFFF) and needs no
# XML entity (the script carries it in a quoted here-document: nothing in it is expanded).
_TEXT = re.compile("[^\x00-\x1f\x7f-\x9f<>&\"\ud800-\udfff\ufffe\uffff]{1,200}")
_HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
_HOST_KEY = re.compile(rf"({'|'.join(_HOST_KEY_TYPES)}) [A-Za-z0-9+/]{{20,2800}}={{0,3}}")
_MAXPROC = re.compile(r"-|[0-9]{1,5}")
_DIGITS = re.compile(r"[0-9]{1,5}")


# Characters that do not show, or show as something else: bidi controls and other format characters (Cf: U+202E
# turns the rest of a line around, U+200B is nothing), controls (Cc), line and paragraph separators (Zl, Zp),
# private-use (Co) and surrogates (Cs), and every space but the ASCII one (Zs). A value holding one reads differently
# in a review, a terminal or a log than it is.
_INVISIBLE_CATEGORIES = ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Zs")
# Unicode's Default_Ignorable_Code_Point characters outside those categories: Hangul fillers, the combining grapheme
# joiner, Khmer inherent vowels, Mongolian variation selectors and the variation selectors (they draw nothing); and
# the braille blank, a symbol drawn as nothing.
_IGNORABLE = re.compile("[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0f\uffa0"
                        "\U000e0100-\U000e01ef]")


def invisible(text: str) -> str | None:
    """The first character of `text` that does not show (`U+202E RIGHT-TO-LEFT OVERRIDE`), or None. ASCII controls
    are left to each setting's own pattern, which refuses them already (with the setting's own words)."""
    for char in text:
        if not char.isascii() and (unicodedata.category(char) in _INVISIBLE_CATEGORIES or _IGNORABLE.match(char)):
            return f"U+{ord(char):04X} {unicodedata.name(char, unicodedata.category(char))}"
    return None


# RFC 6052's well-known prefix: a NAT64 gateway reaches the IPv4 address in the last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def ipv4_inside(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """(how, the IPv4 address) when an IPv6 address is a way of writing an IPv4 one: IPv4-mapped (::ffff:a.b.c.d,
    RFC 4291 2.5.5.2), IPv4-compatible (::a.b.c.d, 2.5.5.1; not :: or ::1), NAT64 (64:ff9b::a.b.c.d, RFC 6052) or
    6to4 (2002:AABB:CCDD::/48, RFC 3056: the site behind the IPv4 address). A dual-stack connect, a NAT64 gateway or
    a 6to4 relay reaches the same machine as the IPv4 address."""
    low = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if int(address) >> 32 == 0 and int(address) > 1:
        return "IPv4-compatible", low
    if address in _NAT64:
        return "NAT64 well-known prefix", low
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    return None


def _show(value: Any) -> str:
    """A value for an error message: short, and safe to format whatever it is (a huge int's repr can fail)."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - any value at all may arrive here; the message must still be made
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


class Reader:
    """Reads one host's settings. Every problem is kept (stack, host and setting named), so one error lists them all.

    Each method returns the typed value, or None after recording a problem: read every part, then call `finish()`.
    """

    def __init__(self, stack: str, host: str, values: Mapping[str, Any], kind: str = "host") -> None:
        # `kind` is what `host` is: a mail host, or a bastion (a jump host reached on the way to one).
        self.stack, self.host, self.values, self.kind = stack, host, values, kind
        self.problems: list[tuple[str, str]] = []
        # Whether the options are judged (smtps/option_rules.py): not for what a host already has from an earlier
        # run (a remove or a read writes no entry), so that a rule added later never blocks taking it out.
        self.judge_options = True
        # The bastion named by a `jump` mapping (a resource's inputs): its problems are said as a stack's bastions
        # are, in its own name, whichever way the value came.
        self.bastion: str | None = None

    def fail(self, key: str, problem: str) -> None:
        self.problems.append((key, problem))

    def message(self, key: str, problem: str) -> str:
        if self.bastion is not None and key.startswith("jump."):
            return f"stack {self.stack}, bastion {self.bastion}, setting {key.removeprefix('jump.')}: {problem}"
        return f"stack {self.stack}, {self.kind} {self.host}, setting {key}: {problem}"

    def finish(self) -> None:
        if self.problems:
            raise SettingsError("\n".join(self.message(key, problem) for key, problem in self.problems))

    def visible(self, key: str, value: Any) -> bool:
        """False (and the problem recorded) when a string holds a character that does not show: one setting must
        read the same in a review, a terminal and a log as on the host."""
        found = invisible(value) if isinstance(value, str) else None
        if found:
            self.fail(key, f"{_show(value)} holds {found}, a character that does not show (bidi control, format, "
                           "control, separator, private-use or surrogate character, or a non-ASCII space)")
        return not found

    def text(self, key: str, pattern: re.Pattern[str], what: str) -> str | None:
        value = self.values.get(key)
        if not isinstance(value, str):
            return self.fail(key, f"expected a string ({what}), got {type(value).__name__}")
        if not self.visible(key, value):
            return None
        if not pattern.fullmatch(value):
            return self.fail(key, f"{_show(value)} is not {what}")
        return value

    def integer(self, key: str, low: int, high: int) -> int | None:
        value = self.values.get(key)
        # Exact types only: a bool is an int to Python, and "²" is a digit to str.isdigit().
        if type(value) is str and _DIGITS.fullmatch(value):
            value = int(value)
        if type(value) is not int:
            return self.fail(key, f"expected a whole number from {low} to {high}, got {_show(value)}")
        if not low <= value <= high:
            return self.fail(key, f"{_show(value)} is outside {low} to {high}")
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str | None:
        value = self.values.get(key)
        if not self.visible(key, value):
            return None
        if type(value) is not str or value not in allowed:
            return self.fail(key, f"{_show(value)} is not one of {', '.join(allowed)}")
        return value

    def options(self, key: str) -> tuple[tuple[str, str], ...] | None:
        value = self.values.get(key)
        if not isinstance(value, Mapping):
            return self.fail(key, "expected a mapping of Postfix parameter names to values")
        options, before = [], len(self.problems)
        for name, option in value.items():
            if isinstance(name, str) and invisible(name):
                self.visible(f"{key}.{_show(name)}", name)
            elif not self.visible(f"{key}.{name}", option):
                continue
            elif not isinstance(name, str) or not _PARAM.fullmatch(name):
                shown = name if isinstance(name, str) and name.isprintable() and len(name) <= 64 else _show(name)
                self.fail(f"{key}.{shown}", "not a Postfix parameter name (lower-case letters, digits, _)")
            elif not isinstance(option, str) or not _OPTION_VALUE.fullmatch(option):
                self.fail(f"{key}.{name}", f"{_show(option)}: master.cf -o values take no white space, quotes "
                                           "or braces")
            else:
                options.append((name, option))
        if dict(options).get("smtpd_tls_wrappermode") != "yes" and "smtpd_tls_wrappermode" not in {
                k for k, _ in self.problems[before:]}:
            self.fail(f"{key}.smtpd_tls_wrappermode", "must be 'yes': port 465 is implicit TLS")
        return tuple(options) if len(self.problems) == before else None

    def address(self, key: str) -> str | None:
        """An IP address in its canonical spelling, or a DNS name in lower case: one host has one spelling, so the
        duplicate check sees it."""
        value = self.values.get(key)
        if not self.visible(key, value):
            return None
        if type(value) is str:
            try:
                address = ipaddress.ip_address(value)
            except ValueError:
                pass
            else:
                if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
                    return self.fail(key, f"{_show(value)}: an IPv6 scope id (%...) is not supported")
                embedded = ipv4_inside(address) if isinstance(address, ipaddress.IPv6Address) else None
                if embedded:
                    # Refused rather than rewritten: the stack then says what the engine, its state and every
                    # message use, and the duplicate check sees the one spelling that an IPv4 host also has.
                    how, mapped = embedded
                    return self.fail(key, f"{_show(value)} is the IPv4 address {mapped} written as IPv6 ({how}; one "
                                          f"machine would appear as two hosts): write {mapped}")
                return str(address)
        name = self.text(key, _HOSTNAME, "an IP address or a DNS name")
        if name:
            try:
                # The system resolver (inet_aton) reads "0x0ae70006", "10.1" or "012.0.0.1" as IPv4 addresses: as a
                # name, one machine could appear twice in a stack under two spellings.
                meant = socket.inet_ntoa(socket.inet_aton(name))
            except OSError:
                return name.lower()
            return self.fail(key, f"{_show(value)} is read by the resolver as the IPv4 address {meant}: write {meant}")
        return None

    def host_key(self, key: str) -> str | None:
        """`TYPE BASE64` whose blob really is a key of that type (SSH wire format: the type comes first)."""
        value = self.text(key, _HOST_KEY, "a public host key like 'ssh-ed25519 AAAA...'")
        if value is None:
            return None
        kind, blob = value.split(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError):
            return self.fail(key, f"the {kind} key is not valid base64")
        length = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
        if raw[4:4 + length] != kind.encode():
            return self.fail(key, f"the key's data is not a {kind} key")
        return value


def labelled(values: Mapping[str, Any]) -> Reader:
    """A Reader for a resource's inputs, named by their `stack` and `host` labels. The labels come back from the
    state, which anyone with write access to the backend can edit: they are checked like names, and a bad one is
    shown (repr, cut short), never used, so it can reach neither a message line nor a script."""
    stack, host = values.get("stack"), values.get("host")
    good_stack = type(stack) is str and _STACK.fullmatch(stack) is not None
    good_host = type(host) is str and _NAME.fullmatch(host) is not None
    read = Reader(stack if good_stack else _show(stack), host if good_host else _show(host), values)
    if not good_stack:
        read.fail("stack", f"{_show(stack)} is not a stack name (letters, digits, _ . -)")
    if not good_host:
        read.fail("host", f"{_show(host)} is not a host name of letters, digits, . _ -")
    return read


def _read_endpoint(read: Reader, name: str = "") -> Connection | None:
    parts = (read.address("address"), read.integer("port", 1, 65535), read.text("user", _USER, "a user name"),
             read.host_key("hostKey"))
    return None if None in parts else Connection(*parts, name=name)


def read_jump(read: Reader, bastions: Mapping[str, Connection | None] | None = None) -> tuple[bool, Connection | None]:
    """The bastion a host is reached through: (ok, None) when direct. In a stack `jump` is a bastion's name, looked
    up in `bastions`; in a resource's inputs (`bastions` None) it is the bastion's connection as a mapping."""
    value = read.values.get("jump")
    if value in (None, "") or value == {}:
        return True, None
    if not read.visible("jump", value):
        return False, None
    if bastions is not None:
        jump = bastions.get(value) if type(value) is str else None
        if type(value) is not str or value not in bastions:
            known = ", ".join(sorted(bastions)) or "none: add them under the stack's bastions"
            read.fail("jump", f"{_show(value)} is not a bastion of this stack (bastions: {known})")
        elif jump is None:
            read.fail("jump", f"bastion {value} has bad settings (see its own message)")
        return jump is not None, jump
    if isinstance(value, Mapping):
        name = value.get("name")
        read.bastion = name if isinstance(name, str) and _NAME.fullmatch(name) else "#1"
        inner = Reader(read.stack, read.host, {**BASTION_DEFAULTS, **value})
        jump = _read_endpoint(inner, str(value.get("name", "")))
        read.problems.extend((f"jump.{key}", problem) for key, problem in inner.problems)
        return jump is not None, jump
    read.fail("jump", f"expected a bastion, got {_show(value)}")
    return False, None


def read_connection(read: Reader, bastions: Mapping[str, Connection | None] | None = None) -> Connection | None:
    endpoint, (ok, jump) = _read_endpoint(read), read_jump(read, bastions)
    # Long enough for a fresh login through a slow bastion; short enough that a locked-out host is back soon.
    confirm = read.integer("confirmSeconds", 15, 600) if "confirmSeconds" in read.values else CONFIRM_SECONDS
    pending = read.choice("firewalldPending", PENDING_CHOICES) if "firewalldPending" in read.values \
        else PENDING_CHOICES[0]
    if endpoint is None or not ok or confirm is None or pending is None:
        return None
    return replace(endpoint, jump=jump, confirm_seconds=confirm, firewalld_pending=pending)


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
        label = name if isinstance(name, str) and _NAME.fullmatch(name) else f"#{index + 1}"
        read = Reader(stack, label, {**BASTION_DEFAULTS, **entry}, kind="bastion")
        for key in entry:
            if key not in BASTION_KNOWN:
                read.fail(key if isinstance(key, str) and key.isprintable() else _show(key),
                          f"unknown setting for a bastion (known: {', '.join(BASTION_KNOWN)})")
        name = read.text("name", _NAME, "a bastion name of letters, digits, . _ -")
        connection = _read_endpoint(read, name or "")
        if name in found:
            read.fail("name", f"bastion {name} appears twice")
        problems.extend(read.message(key, problem) for key, problem in read.problems)
        if name and name not in found:
            found[name] = None if read.problems else connection
    return found


def read_allowed(read: Reader) -> tuple[str, ...] | None:
    """`allowOptions`: the option names the stack allows although they open relaying, let clients in without
    logging in or send mail around the content filter (smtps/option_rules.py)."""
    value = read.values.get("allowOptions")
    if value is None:
        return ()  # none allowed (and state written before this setting existed has none)
    if isinstance(value, list) and not all(read.visible("allowOptions", v) for v in value):
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and _PARAM.fullmatch(v) for v in value):
        return read.fail("allowOptions", f"expected a list of Postfix parameter names, got {_show(value)}")
    return tuple(value)


def read_master(read: Reader) -> MasterServiceSettings | None:
    key, options, allowed = read.choice("serviceKey", SERVICE_KEYS), read.options("options"), read_allowed(read)
    refused = []
    for name, value in options or ():
        why = risk(name, value) if read.judge_options else None
        if why and allowed is not None and name not in allowed:
            refused.append((name, f"{value!r}: {why}"))
    for name in KEEP if options is not None and read.judge_options else ():
        if name not in dict(options) and allowed is not None and name not in allowed:
            refused.append((name, removal_risk(name)))
    for name, why in refused:
        read.fail(f"options.{name}", refusal(why, name))
    options = None if refused else options
    chroot = read.choice("chroot", ("y", "n", "-"))
    maxproc = read.text("maxproc", _MAXPROC, "'-' or a number")
    parts = (key, options, chroot, maxproc, allowed)
    return None if None in parts else MasterServiceSettings(key=key, options=options, chroot=chroot, maxproc=maxproc,
                                                            allowed=allowed)


def _optional(read: Reader, key: str, pattern: re.Pattern[str], what: str) -> tuple[bool, str | None]:
    """(read well, value): an unset (None) setting is read well as None."""
    if read.values.get(key) is None:
        return True, None
    value = read.text(key, pattern, what)
    return value is not None, value


_PATH_WHAT = "an absolute path (letters, digits, . _ + -; no segment starting with a dot)"


def read_tls(read: Reader) -> TlsSettings | None:
    (cert_ok, cert), (key_ok, key) = (_optional(read, name, _PATH, _PATH_WHAT) for name in ("tlsCert", "tlsKey"))
    return TlsSettings(cert, key) if cert_ok and key_ok else None


def read_master_tls(read: Reader) -> tuple[MasterServiceSettings | None, TlsSettings | None]:
    """The entry and the TLS files it serves: a certificate or key the stack names becomes the entry's own
    smtpd_tls_cert_file / smtpd_tls_key_file, so 465 serves exactly it (else main.cf's, as Postfix would)."""
    master, tls = read_master(read), read_tls(read)
    if master is None or tls is None:
        return master, tls
    options = dict(master.options)
    for option, setting in TLS_OPTIONS.items():
        value = tls.cert if setting == "tlsCert" else tls.key
        # Already there with the setting's own value: the entry as made from these settings (a provider's inputs).
        if option in options and options[option] != value:
            read.fail(f"options.{option}", f"set the file with {setting}, not as an option (the certificate check "
                                           "reads that setting)")
            return None, tls
        if value:
            options[option] = value
    return replace(master, options=tuple(options.items())), tls


def read_check(read: Reader) -> CheckSettings | None:
    days = read.integer("certMinDays", 0, 3650)
    name_ok, name = _optional(read, "tlsName", _HOSTNAME, "a DNS name")
    ca_ok, ca = _optional(read, "caBundle", _PATH, _PATH_WHAT)
    return CheckSettings(days, name, ca) if days is not None and name_ok and ca_ok else None


def read_service(read: Reader) -> FirewalldServiceSettings | None:
    name = read.text("firewalldService", _SERVICE, "a firewalld service name (letters, digits, _ -)")
    if name in FIREWALLD_SERVICES and FIREWALLD_SERVICES[name] != f"{SMTPS_PORT}/tcp":
        # Writing /etc/firewalld/services/ssh.xml with only 465/tcp would close SSH in every zone that allows ssh.
        read.fail("firewalldService", f"{name} is firewalld's own service for {FIREWALLD_SERVICES[name]}: a file of "
                  f"that name would replace it in every zone that uses it (choose another name, e.g. smtps)")
        name = None
    parts = (name,
             read.text("serviceShort", _TEXT, "one line of text XML can carry, without < > & \""),
             read.text("serviceDescription", _TEXT, "one line of text XML can carry, without < > & \""))
    return None if None in parts else FirewalldServiceSettings(*parts)


def read_zone(read: Reader) -> ZoneSettings | None:
    parts = (read.text("zone", _ZONE, "a firewalld zone name (letters, digits, _ -; at most 17)"),
             read.text("firewalldService", _SERVICE, "a firewalld service name (letters, digits, _ -)"),
             read.choice("existingPortPolicy", tuple(p.value for p in PortPolicy)))
    return None if None in parts else ZoneSettings(parts[0], parts[1], PortPolicy(parts[2]))


def read_firewall(read: Reader) -> Firewall | None:
    value = read.choice("firewall", tuple(f.value for f in Firewall))
    return None if value is None else Firewall(value)


def read_nftables(read: Reader, firewall: Firewall | None = Firewall.NFTABLES,
                  policy: PortPolicy | None = None) -> NftablesSettings | None:
    """The chain; `policy` is the host's existingPortPolicy where it was read already (else it is read here)."""
    what = "an nftables name (letters, digits, _ . -; not starting with a digit)"
    if policy is None:
        value = read.choice("existingPortPolicy", tuple(p.value for p in PortPolicy))
        policy = None if value is None else PortPolicy(value)
    parts = (read.choice("nftFamily", NFT_FAMILIES), read.text("nftTable", _NFT_NAME, what),
             read.text("nftChain", _NFT_NAME, what))
    if None in parts or policy is None:
        return None
    refused = None if policy is PortPolicy.KEEP else keep_only(firewall, policy.value)
    if refused is not None:
        read.fail("existingPortPolicy", refused)
        return None
    return NftablesSettings(parts[0], parts[1], parts[2], policy)


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
    name = host.get("name") if isinstance(host.get("name"), str) and _NAME.fullmatch(host["name"]) else label
    read = Reader(stack, name, values)
    for key in values:
        if key not in KNOWN:
            read.fail(key if isinstance(key, str) and key.isprintable() else _show(key),
                      f"unknown setting (known: {', '.join(sorted(KNOWN))})")
    name = read.text("name", _NAME, "a host name of letters, digits, . _ -")
    # In this order, so that one error lists the problems in the order of the settings above.
    connection, (master, tls), check = read_connection(read, bastions or {}), read_master_tls(read), read_check(read)
    service, zone, firewall = read_service(read), read_zone(read), read_firewall(read)
    nftables = read_nftables(read, firewall, zone.port_policy) if zone is not None else None
    parts = (name, connection, master, tls, check, service, zone, firewall, nftables)
    read.finish()
    return HostSettings(*parts)


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
                shown = f"the host key {_show(h.connection.host_key)}" if key == "hostKey" else of(h)
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
        return [f"stack {stack}: setting canaries: expected a list of host names, got {_show(canaries)}"]
    return [f"stack {stack}, host {_show(c) if not _NAME.fullmatch(c) else c}, setting canaries: not a host of "
            f"this stack (hosts: {', '.join(sorted(names))})" for c in canaries if c not in names]
