"""Which firewall opens 465 on a host: the one place that decides it, as functions of data (settings, facts, state).

A host's `firewall` setting is auto, firewalld or nftables. An explicit one is checked on the host before anything
changes there; auto is found on the host then (the rule runs host-side: templates/_firewall.sh.j2, as its own step,
`script`, or inside drift's read) and recorded in the outputs of each of the host's resources, which keep it until the
machine is rebuilt. A kind that opens 465 with one firewall is declared on hosts that may use it, and does nothing on
a host whose firewall is the other one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Protocol

from .answers import answers
from .templating import render


class Firewall(StrEnum):
    """What opens 465 on the host. iRedMail's installer puts firewalld on the RHEL family and iRedMail's own
    /etc/nftables.conf on Debian and Ubuntu. `auto` is found on the host at its first apply (templates/_firewall.sh.j2)
    and recorded in the state: the host's resources then keep it, until the machine is rebuilt."""

    AUTO = "auto"
    FIREWALLD = "firewalld"
    NFTABLES = "nftables"


# The line the script below prints with what it found: smtps-firewall=firewalld|nftables.
REPORT = "smtps-firewall"
# The output each resource of a host keeps it under, once decided.
USED = "firewallUsed"
# The input every resource of a host has: the host's setting.
SETTING = "firewall"
# The answers: what a host can use (auto is a question, never an answer).
ANSWERS = (Firewall.FIREWALLD, Firewall.NFTABLES)

class Host(Protocol):
    """A host's settings as far as the choice goes (smtps/hosts.py's HostSettings, which imports this module)."""

    @property
    def name(self) -> str: ...

    @property
    def firewall(self) -> Firewall: ...


# A kind's firewalls: the ones it opens 465 with; empty: it belongs on every host (Postfix).
Kinds = tuple[Firewall, ...]


# --- on the host --------------------------------------------------------------------------------------------------
def script(host: str, firewall: Firewall | str) -> str:
    """Read only: prints `smtps-firewall=NAME`, or fails naming the host and why (nothing was changed). `firewall`:
    the one to check is there, or auto: find which one it is."""
    return render("firewall.sh.j2", host=host, firewall=str(firewall))


def found(stdout: str) -> Firewall | None:
    """What a script found, from its `smtps-firewall=` line (None where it printed none)."""
    value = answers(stdout).first(REPORT)
    return None if value is None else recorded(value.strip())


def recorded(value: object) -> Firewall | None:
    """A decision read back from the state or a host: data, never code. Only the two answers count."""
    return Firewall(value) if value in (Firewall.FIREWALLD.value, Firewall.NFTABLES.value) else None


def asked(firewall: Firewall | None) -> Firewall:
    """What the host is asked before anything changes there: the firewall this run acts for is checked, or (not
    known yet) auto finds it."""
    return firewall if firewall is not None else Firewall.AUTO


# --- which kinds ----------------------------------------------------------------------------------------------------
def declares(kind: Kinds, firewall: Firewall | None) -> bool:
    """Whether a host declares (or, for drift, compares) the kind: auto declares every kind (the one its host does
    not use does nothing there); None (auto found neither firewall): only the kinds of every host."""
    if not kind:
        return True
    return firewall is Firewall.AUTO or firewall in kind


def acts(kind: Kinds, firewall: Firewall | None) -> bool:
    """Whether the kind has something on a host with this firewall (None, not known yet: it may)."""
    return firewall is None or not kind or firewall in kind


def idle(kind: Kinds, before: Firewall | None, after: Firewall | None) -> bool:
    """Whether another firewall opens 465 on the host, before and after: nothing of this kind is there to change."""
    return not acts(kind, before) and not acts(kind, after)


def switched(before: Firewall | None, after: Firewall | None) -> bool:
    """Whether a resource now acts for another firewall than the one it last applied for (both known)."""
    return before is not None and after is not None and before is not after


def found_by_apply(kind: Kinds) -> bool:
    """Whether the kind's own apply finds the host's firewall (or checks the one set) as its first step, before it
    changes anything, in the same SSH session: a kind that acts whatever the firewall, which is the first applied on
    every host (Postfix's). A kind of one firewall must know the answer before it knows whether to act: it takes the
    one found by that apply, or asks in a step of its own (`script`)."""
    return not kind


# --- the state ------------------------------------------------------------------------------------------------------
def recorded_in(kind: Kinds, olds: Mapping[str, Any]) -> Firewall | None:
    """The host's firewall when a resource of this kind last applied, from its outputs (as `upgrade` reads older
    state); None where it is not known (a master.cf entry applied before the setting existed)."""
    used = recorded(olds.get(USED))
    if used is not None:
        return used
    return recorded(olds.get(SETTING))


def upgrade(kind: Kinds, olds: Mapping[str, Any]) -> dict[str, Any]:
    """State written before the setting existed, in today's terms: a firewall kind's resource was only declared on
    its hosts, so the setting was its firewall (a kind's `upgrade`, smtps/model.py)."""
    if SETTING in olds or len(kind) != 1:
        return dict(olds)
    return {**olds, SETTING: kind[0].value}


def resolved(kind: Kinds, olds: Mapping[str, Any], news: Mapping[str, Any], same_machine: bool) -> Firewall | None:
    """The firewall a resource is to act for: the setting, else (auto) what was found on the same machine before;
    None: still to be found (a new resource, or a rebuilt machine, which is found again)."""
    explicit = recorded(news.get(SETTING))
    if explicit is not None:
        return explicit
    if olds and same_machine:
        return recorded_in(kind, olds)
    return None


def output(used: Firewall | None, olds: Mapping[str, Any] | None = None) -> str | None:
    """What a resource records under USED: the firewall this apply used, else what it recorded last."""
    used = used if used is not None else recorded((olds or {}).get(USED))
    return used.value if used is not None else None


def from_state(deployment: Mapping[str, Any], token: str) -> dict[str, str]:
    """What `firewall: auto` found on each host, from a stack's exported state: the outputs of its resources of type
    `token` (the kind applied first, on every host). No host is read; only the two answers count."""
    found = {}
    for resource in deployment.get("resources") or []:
        outputs = resource.get("outputs") or {}
        host, used = outputs.get("host"), recorded(outputs.get(USED))
        if resource.get("type") == token and isinstance(host, str) and used is not None:
            found[host] = used.value
    return found


def lines(hosts: Iterable[Host], found: Mapping[str, str]) -> list[str]:
    """One line per host whose setting is auto: what was found there, or that its first apply will find it."""
    shown = []
    for host in hosts:
        if host.firewall is Firewall.AUTO:
            what = f"auto, found {found[host.name]}" if host.name in found else "auto (found at its first apply)"
            shown.append(f"smtps: {host.name}: firewall: {what}")
    return shown


# --- settings and facts ---------------------------------------------------------------------------------------------
def keep_only(firewall: Firewall | None, policy: str) -> str | None:
    """Why a host with this setting cannot have existingPortPolicy `policy` (not keep), or None where it can.
    Refused at settings, before any host is touched."""
    if firewall is Firewall.NFTABLES:
        # Taking out a rule someone else wrote (iRedMail 1.5's `tcp dport 465 accept`) is not built for nftables.
        return "only keep is available with firewall: nftables (a rule that already accepts 465 is left as found)"
    if firewall is Firewall.AUTO:
        # Refused here, before any host is touched, rather than at the apply that finds nftables.
        return f"{policy} needs firewall: firewalld (auto may find nftables, where only keep is available)"
    return None


def candidates(setting: Firewall) -> tuple[Firewall, ...]:
    """The firewalls a host with this setting may use: the ones whose parts drift reads (auto: the host's own is
    found in the same read, and only its parts are read)."""
    return ANSWERS if setting is Firewall.AUTO else (setting,)


def in_use(setting: Firewall, found_now: object) -> Firewall | None:
    """The firewall a host uses by its facts: the setting, or what auto finds there now (None: neither)."""
    return recorded(found_now) if setting is Firewall.AUTO else setting
