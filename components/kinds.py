"""The resource kinds of a host, one descriptor each: everything that wires a kind in (the host component, canary
targets, drift) reads it from here. A new kind is its model (smtps/<kind>.py, with its templates), its file in
components/ and one line in KINDS."""

from __future__ import annotations

from dataclasses import dataclass

from smtps_iredmail.core import firewall as fw
from smtps_iredmail.core.firewall import Firewall
from smtps_iredmail.core.model import Model

from .base import HostProvider, HostResource
from .firewalld_service import FirewalldService, FirewalldServiceProvider
from .master_service import MasterService, MasterServiceProvider
from .nftables_rule import NftablesRule, NftablesRuleProvider
from .zone_membership import ZoneMembership, ZoneMembershipProvider

# A component's type token.
COMPONENT_TYPE = "smtps-iredmail:index:SmtpsHost"


@dataclass(frozen=True)
class Kind:
    suffix: str  # the child's name is HOST-SUFFIX
    resource: type[HostResource]
    provider: type[HostProvider]

    @property
    def model(self) -> Model:
        return self.provider.model

    def belongs(self, firewall: Firewall | None) -> bool:
        """Whether a host with this `firewall` declares the kind (smtps/firewall.py decides)."""
        return fw.declares(self.model.firewalls, firewall)

    def child_name(self, host: str) -> str:
        return f"{host}-{self.suffix}"

    def type_token(self) -> str:
        return self.resource.type_token


# In the order they are applied on a host (each after the ones before it); destroy runs the reverse.
# Postfix listens before the port opens: master.cf first, then the service file, then the zone (firewalld hosts),
# or the nftables rule (Debian/Ubuntu hosts).
KINDS = (
    Kind("master", MasterService, MasterServiceProvider),
    Kind("service", FirewalldService, FirewalldServiceProvider),
    Kind("zone", ZoneMembership, ZoneMembershipProvider),
    Kind("nftables", NftablesRule, NftablesRuleProvider),
)


def kinds_for(firewall: Firewall | None) -> tuple[Kind, ...]:
    """A host's kinds, in order, by its `firewall` setting (or, for drift, which reads the host, what auto found
    there: None where it found neither, the kinds of every host)."""
    return tuple(kind for kind in KINDS if kind.belongs(firewall))
