"""Reading settings: the Reader, which checks each value in the settings' own words and keeps every problem, the
checks of values every kind shares, and the connection to a host (and its bastion), which every resource has.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .lockout_guard import PENDING_CHOICES
from .settings import CONFIRM_SECONDS, Connection, SettingsError

# Every pattern is matched whole (`fullmatch`): `$` alone would let a trailing newline through.
PARAM = re.compile(r"[a-z][a-z0-9_]{0,63}")
# master.cf -o values: no white space (it would split the entry), no braces or quotes; what Postfix lists use.
_OPTION_VALUE = re.compile(r"[A-Za-z0-9_.,:;=/@\[\]!$+*%-]{0,512}")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# A Pulumi stack name (what pulumi.get_stack() returns).
_STACK = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# A DNS name whose last label is not all digits (RFC 3696 2): "10.231.0.06" or "0x0a.0.0.1" are not names.
HOSTNAME = re.compile(rf"(?=.{{1,253}}$)({_LABEL}\.)*(?![0-9]+$){_LABEL}")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
PATH = re.compile(r"(/[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,254})+")
_HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
_HOST_KEY = re.compile(rf"({'|'.join(_HOST_KEY_TYPES)}) [A-Za-z0-9+/]{{20,2800}}={{0,3}}")
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


def show(value: Any) -> str:
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
            self.fail(key, f"{show(value)} holds {found}, a character that does not show (bidi control, format, "
                           "control, separator, private-use or surrogate character, or a non-ASCII space)")
        return not found

    def text(self, key: str, pattern: re.Pattern[str], what: str) -> str | None:
        value = self.values.get(key)
        if not isinstance(value, str):
            return self.fail(key, f"expected a string ({what}), got {type(value).__name__}")
        if not self.visible(key, value):
            return None
        if not pattern.fullmatch(value):
            return self.fail(key, f"{show(value)} is not {what}")
        return value

    def integer(self, key: str, low: int, high: int) -> int | None:
        value = self.values.get(key)
        # Exact types only: a bool is an int to Python, and "²" is a digit to str.isdigit().
        if type(value) is str and _DIGITS.fullmatch(value):
            value = int(value)
        if type(value) is not int:
            return self.fail(key, f"expected a whole number from {low} to {high}, got {show(value)}")
        if not low <= value <= high:
            return self.fail(key, f"{show(value)} is outside {low} to {high}")
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str | None:
        value = self.values.get(key)
        if not self.visible(key, value):
            return None
        if type(value) is not str or value not in allowed:
            return self.fail(key, f"{show(value)} is not one of {', '.join(allowed)}")
        return value

    def options(self, key: str) -> tuple[tuple[str, str], ...] | None:
        value = self.values.get(key)
        if not isinstance(value, Mapping):
            return self.fail(key, "expected a mapping of Postfix parameter names to values")
        options, before = [], len(self.problems)
        for name, option in value.items():
            if isinstance(name, str) and invisible(name):
                self.visible(f"{key}.{show(name)}", name)
            elif not self.visible(f"{key}.{name}", option):
                continue
            elif not isinstance(name, str) or not PARAM.fullmatch(name):
                shown = name if isinstance(name, str) and name.isprintable() and len(name) <= 64 else show(name)
                self.fail(f"{key}.{shown}", "not a Postfix parameter name (lower-case letters, digits, _)")
            elif not isinstance(option, str) or not _OPTION_VALUE.fullmatch(option):
                self.fail(f"{key}.{name}", f"{show(option)}: master.cf -o values take no white space, quotes "
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
                    return self.fail(key, f"{show(value)}: an IPv6 scope id (%...) is not supported")
                embedded = ipv4_inside(address) if isinstance(address, ipaddress.IPv6Address) else None
                if embedded:
                    # Refused rather than rewritten: the stack then says what the engine, its state and every
                    # message use, and the duplicate check sees the one spelling that an IPv4 host also has.
                    how, mapped = embedded
                    return self.fail(key, f"{show(value)} is the IPv4 address {mapped} written as IPv6 ({how}; one "
                                          f"machine would appear as two hosts): write {mapped}")
                return str(address)
        name = self.text(key, HOSTNAME, "an IP address or a DNS name")
        if name:
            try:
                # The system resolver (inet_aton) reads "0x0ae70006", "10.1" or "012.0.0.1" as IPv4 addresses: as a
                # name, one machine could appear twice in a stack under two spellings.
                meant = socket.inet_ntoa(socket.inet_aton(name))
            except OSError:
                return name.lower()
            return self.fail(key, f"{show(value)} is read by the resolver as the IPv4 address {meant}: write {meant}")
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


def optional(read: Reader, key: str, pattern: re.Pattern[str], what: str) -> tuple[bool, str | None]:
    """(read well, value): an unset (None) setting is read well as None."""
    if read.values.get(key) is None:
        return True, None
    value = read.text(key, pattern, what)
    return value is not None, value


PATH_WHAT = "an absolute path (letters, digits, . _ + -; no segment starting with a dot)"


# A bastion's entry: how to reach it, nothing else. It is never configured, only passed through (TCP forwarding).
BASTION_KNOWN = ("name", "address", "port", "user", "hostKey")
BASTION_DEFAULTS: dict[str, Any] = {"port": 22, "user": "root"}


def labelled(values: Mapping[str, Any]) -> Reader:
    """A Reader for a resource's inputs, named by their `stack` and `host` labels. The labels come back from the
    state, which anyone with write access to the backend can edit: they are checked like names, and a bad one is
    shown (repr, cut short), never used, so it can reach neither a message line nor a script."""
    stack, host = values.get("stack"), values.get("host")
    good_stack = type(stack) is str and _STACK.fullmatch(stack) is not None
    good_host = type(host) is str and NAME.fullmatch(host) is not None
    read = Reader(stack if good_stack else show(stack), host if good_host else show(host), values)
    if not good_stack:
        read.fail("stack", f"{show(stack)} is not a stack name (letters, digits, _ . -)")
    if not good_host:
        read.fail("host", f"{show(host)} is not a host name of letters, digits, . _ -")
    return read


def read_endpoint(read: Reader, name: str = "") -> Connection | None:
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
            read.fail("jump", f"{show(value)} is not a bastion of this stack (bastions: {known})")
        elif jump is None:
            read.fail("jump", f"bastion {value} has bad settings (see its own message)")
        return jump is not None, jump
    if isinstance(value, Mapping):
        name = value.get("name")
        read.bastion = name if isinstance(name, str) and NAME.fullmatch(name) else "#1"
        inner = Reader(read.stack, read.host, {**BASTION_DEFAULTS, **value})
        jump = read_endpoint(inner, str(value.get("name", "")))
        read.problems.extend((f"jump.{key}", problem) for key, problem in inner.problems)
        return jump is not None, jump
    read.fail("jump", f"expected a bastion, got {show(value)}")
    return False, None


def read_connection(read: Reader, bastions: Mapping[str, Connection | None] | None = None) -> Connection | None:
    endpoint, (ok, jump) = read_endpoint(read), read_jump(read, bastions)
    # Long enough for a fresh login through a slow bastion; short enough that a locked-out host is back soon.
    confirm = read.integer("confirmSeconds", 15, 600) if "confirmSeconds" in read.values else CONFIRM_SECONDS
    pending = read.choice("firewalldPending", PENDING_CHOICES) if "firewalldPending" in read.values \
        else PENDING_CHOICES[0]
    if endpoint is None or not ok or confirm is None or pending is None:
        return None
    return replace(endpoint, jump=jump, confirm_seconds=confirm, firewalld_pending=pending)
