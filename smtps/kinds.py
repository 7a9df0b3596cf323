"""The resource kinds, one line each: the one list everything that is about every kind reads (a host's settings and
their defaults, its resources, drift, the front end). A new kind is its module smtps/<kind>.py (its inputs, settings
reader, decision and script: a Model subclass and its MODEL), its template templates/<kind>.sh.j2, and one line here;
components/ binds it to Pulumi from its MODEL (tests/test_kinds.py checks that nothing else names a kind).
"""

from __future__ import annotations

from importlib import import_module

from . import firewall as fw
from .firewall import Firewall
from .model import Model

# In the order they are applied on a host (each after the ones before it); destroy runs the reverse. Postfix listens
# before the port opens: master.cf first, then the service file, then the zone (firewalld hosts), or the nftables
# rule (Debian/Ubuntu hosts). A kind's settings are read in this order too, after the ones before it.
MODULES = (
    "master_service",
    "firewalld_service",
    "zone_membership",
    "nftables_rule",
)
KINDS: tuple[Model, ...] = tuple(import_module(f".{module}", __package__).MODEL for module in MODULES)


def named(name: str) -> Model:
    """The kind whose `name` is `name` (what a generic provider keeps in the state)."""
    for model in KINDS:
        if model.name == name:
            return model
    raise LookupError(f"no resource kind {name!r} (known: {', '.join(model.name for model in KINDS)})")


def declared(firewall: Firewall | None) -> tuple[Model, ...]:
    """A host's kinds, in order, by its `firewall` setting (or, for drift, which reads the host, what auto found
    there: None where it found neither, the kinds of every host). smtps/firewall.py decides."""
    return tuple(model for model in KINDS if fw.declares(model.firewalls, firewall))
