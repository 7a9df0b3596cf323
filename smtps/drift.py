"""Drift: each host's facts, read in one SSH session, against what its settings want.

The operator's view of changes made by hand, in one table, without touching the state. It compares exactly what
`pulumi refresh` compares: each kind's inputs as wanted, against the same kind's `live` reading of the same facts
(smtps/model.py). So every row here is a field a refresh shows, and `up --refresh` puts back, named the same way;
where `up` deliberately does not put something back (a stopped daemon), `NOT_REPAIRED` says so in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .facts import read_script
from .firewall import Firewall, candidates, in_use
from .hosts import HostSettings
from .kinds import KINDS, declared

# Inputs that `up` checks but never changes: it does not start a daemon an operator may have stopped on purpose.
NOT_REPAIRED = {key: note for model in KINDS for key, note in model.not_repaired.items()}


@dataclass(frozen=True)
class Drift:
    host: str
    resource: str
    field: str
    want: str
    have: str

    @property
    def note(self) -> str:
        return NOT_REPAIRED.get(self.field, "")

    def __str__(self) -> str:
        return f"{self.host}: {self.resource}: {self.field}: want {self.want!r}, found {self.have!r}"


def show(value: Any) -> str:
    """A value as Pulumi's diff shows it, near enough: true/false, lists with commas, text as it is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    return str(value) if value != "" else "(none)"


def read_host_script(settings: HostSettings) -> str:
    """Everything one host's drift needs, in one SSH session (auto: the host's firewall found first, by the rule
    the first apply used, and only its parts read)."""
    may = candidates(settings.firewall)
    firewalld, nftables = Firewall.FIREWALLD in may, Firewall.NFTABLES in may
    return read_script(settings.name, master=True, service=settings.service if firewalld else None,
                       zone=settings.zone if firewalld else None, nft=settings.nftables if nftables else None,
                       auto=len(may) > 1)


def differences(host: str, resource: str, wanted: dict[str, Any], live: dict[str, Any]) -> list[Drift]:
    """Each input the host says something about that differs from the wanted one; a mapping field per entry."""
    found = []
    for key, have in live.items():
        want = wanted[key]
        if isinstance(want, dict) and isinstance(have, dict):
            for name in sorted(set(want) | set(have)):
                if want.get(name) != have.get(name):
                    found.append(Drift(host, resource, f"{key}.{name}", show(want.get(name, "(unset)")),
                                       show(have.get(name, "(unset)"))))
        elif want != have:
            found.append(Drift(host, resource, key, show(want), show(have)))
    return found


def compare(settings: HostSettings, facts: Any) -> list[Drift]:
    """The host's drift from its facts (smtps.facts.HostFacts), kind by kind, in the order they are applied."""
    found = []
    firewall = in_use(settings.firewall, facts.firewall)
    if firewall is None:
        # Neither: what a first apply would refuse with. Postfix's part is still compared (the kinds of every host).
        found.append(Drift(settings.name, "firewall", "firewall", "auto",
                           facts.firewall_why or "neither firewalld nor nftables"))
    for model in declared(firewall):
        part = model.part(settings)
        found += differences(settings.name, model.kind, model.wanted(part).props(), model.live(facts, part))
    return found
