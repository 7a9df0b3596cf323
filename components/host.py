"""One mail host's SMTPS: its resources (one per kind) in a safe order, then the check from outside."""

from __future__ import annotations

from typing import Any

import pulumi

from smtps.settings import SMTPS_PORT, HostSettings

from .base import FIREWALL
from .kinds import COMPONENT_TYPE, kinds_for
from .verification import Verification

# The verification's child name: HOST-verify.
VERIFY_SUFFIX = "verify"


def jump_input(settings: HostSettings) -> dict[str, Any]:
    """The host's bastion as an input ({} when it is reached directly)."""
    jump = settings.connection.jump
    if jump is None:
        return {}
    return {"name": jump.name, "address": jump.address, "port": jump.port, "user": jump.user, "hostKey": jump.host_key}


def connection_inputs(stack: str, settings: HostSettings) -> dict[str, Any]:
    conn = settings.connection
    return {"stack": stack, "host": settings.name, "address": conn.address, "port": conn.port, "user": conn.user,
            "hostKey": conn.host_key, "jump": jump_input(settings), "confirmSeconds": conn.confirm_seconds,
            "firewalldPending": conn.firewalld_pending, FIREWALL: settings.firewall.value}


class SmtpsHost(pulumi.ComponentResource):
    """The host's kinds in order (`kinds_for` its firewall), each depending on the ones before it: so 465 is never
    open with nothing (or something without TLS) behind it, and destroy runs the reverse (the port closes first, the
    master.cf entry goes last). The check from outside runs after the last, whenever any of them applied something."""

    def __init__(self, stack: str, settings: HostSettings, provider: pulumi.ProviderResource,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(COMPONENT_TYPE, settings.name, None, opts)
        name, base = settings.name, connection_inputs(stack, settings)
        made: list[pulumi.Resource] = []
        for kind in kinds_for(settings.firewall):
            inputs = kind.model.wanted(kind.model.part(settings)).props()
            made.append(kind.resource(kind.child_name(name), {**base, **inputs},
                                      pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(made))))
        self.verification = Verification(
            f"{name}-{VERIFY_SUFFIX}",
            # hostKey: a rebuilt machine is checked again even where nothing else about it changed.
            {"stack": stack, "host": name, "address": settings.connection.address, "port": SMTPS_PORT,
             "hostKey": settings.connection.host_key, "jump": jump_input(settings),
             # How to log in for a rollback (not watched: a new SSH port or user is no reason to check again).
             "ssh": {"port": settings.connection.port, "user": settings.connection.user,
                     "confirmSeconds": settings.connection.confirm_seconds,
                     "firewalldPending": settings.connection.firewalld_pending},
             # The firewalld zone and service a rollback may find in this run's snapshot (not watched either).
             "rollbackZone": {"zone": settings.zone.zone, "service": settings.zone.service},
             # The nftables chain it may find there, on a host whose firewall is nftables (the one its apply used).
             "rollbackNft": {"firewall": made[0].firewallUsed,  # type: ignore[attr-defined]
                             "nftFamily": settings.nftables.family, "nftTable": settings.nftables.table,
                             "nftChain": settings.nftables.chain},
             # The certificate file's SHA-256 as the master.cf apply read it on the host: what 465 must serve.
             "certSha256": made[0].certSha256,  # type: ignore[attr-defined]
             "certMinDays": settings.check.min_days, "tlsName": settings.check.tls_name,
             "caBundle": settings.check.ca_bundle,
             "trigger": [resource.revision for resource in made]},  # type: ignore[attr-defined]
            pulumi.ResourceOptions(parent=self, provider=provider, depends_on=made[-1:]),
        )
        v = self.verification
        # The firewall that opens 465 there: as set, or what auto found at the host's first apply.
        self.outputs = {"address": settings.connection.address, "firewall": made[0].firewallUsed,  # type: ignore[attr-defined]
                        "tlsVersion": v.tlsVersion,
                        "certSubject": v.certSubject, "certNotAfter": v.certNotAfter, "auth": v.auth,
                        "certSha256": v.servedSha256, "certDaysLeft": v.certDaysLeft,
                        "relayWithoutLogin": v.relayAnonymous, "portsBefore": v.portsBefore,
                        "portsAfter": v.portsAfter}
        self.register_outputs(self.outputs)
