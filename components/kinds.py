"""The resource kinds of a host as Pulumi binds them, one descriptor per kind of smtps/kinds.py (the one list):
everything that wires a kind in (the host component, canary targets, drift) reads it from here."""

from __future__ import annotations

from dataclasses import dataclass

from smtps_iredmail.core import kinds
from smtps_iredmail.core.firewall import Firewall
from smtps_iredmail.core.model import Model

from .base import HostResource
from .binding import resource_for
from .firewalld_service import FirewalldService
from .master_service import MasterService
from .nftables_rule import NftablesRule
from .zone_membership import ZoneMembership

# A component's type token.
COMPONENT_TYPE = "smtps-iredmail:index:SmtpsHost"
# The kinds whose own provider classes the states written before the generic binding name (the engine pickles a
# provider by its class's module path): they keep them. Every other kind is bound from its model (binding.py).
OWN_CLASSES: dict[str, type[HostResource]] = {
    resource.provider_class.model.name: resource
    for resource in (MasterService, FirewalldService, ZoneMembership, NftablesRule)
}


@dataclass(frozen=True)
class Kind:
    model: Model
    resource: type[HostResource]

    @property
    def suffix(self) -> str:
        """The child's name is HOST-SUFFIX."""
        return self.model.name

    def child_name(self, host: str) -> str:
        return f"{host}-{self.suffix}"

    def type_token(self) -> str:
        return self.resource.type_token


# In smtps/kinds.py's order: the order they are applied on a host; destroy runs the reverse.
KINDS = tuple(Kind(model, OWN_CLASSES.get(model.name) or resource_for(model)) for model in kinds.KINDS)


def kinds_for(firewall: Firewall | None) -> tuple[Kind, ...]:
    """A host's kinds, in order, by its `firewall` setting (smtps/kinds.py `declared`)."""
    models = kinds.declared(firewall)
    return tuple(kind for kind in KINDS if kind.model in models)
