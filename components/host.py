"""One mail host's SMTPS: the three resources in a safe order, then the check from outside."""

from __future__ import annotations

from typing import Any

import pulumi

from smtps.settings import SMTPS_PORT, HostSettings

from . import firewalld_service, master_service, zone_membership
from .firewalld_service import FirewalldService
from .master_service import MasterService
from .verification import Verification
from .zone_membership import ZoneMembership


def jump_input(settings: HostSettings) -> dict[str, Any]:
    """The host's bastion as an input ({} when it is reached directly)."""
    jump = settings.connection.jump
    if jump is None:
        return {}
    return {"name": jump.name, "address": jump.address, "port": jump.port, "user": jump.user, "hostKey": jump.host_key}


def connection_inputs(stack: str, settings: HostSettings) -> dict[str, Any]:
    conn = settings.connection
    return {"stack": stack, "host": settings.name, "address": conn.address, "port": conn.port, "user": conn.user,
            "hostKey": conn.host_key, "jump": jump_input(settings), "confirmSeconds": conn.confirm_seconds}


class SmtpsHost(pulumi.ComponentResource):
    """Postfix listens before the port opens: master.cf first, then the service file, then the zone. So 465 is never
    open with nothing (or something without TLS) behind it. `depends_on` makes destroy run the reverse: the port
    closes first, and the master.cf entry goes last."""

    def __init__(self, stack: str, settings: HostSettings, provider: pulumi.ProviderResource,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smtps-iredmail:index:SmtpsHost", settings.name, None, opts)
        name, base = settings.name, connection_inputs(stack, settings)

        def child(*after: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(after))

        master = MasterService(f"{name}-master", {**base, **master_service.inputs(settings)}, child())
        service = FirewalldService(f"{name}-service", {**base, **firewalld_service.inputs(settings)}, child(master))
        zone = ZoneMembership(f"{name}-zone", {**base, **zone_membership.inputs(settings)}, child(master, service))
        self.verification = Verification(
            f"{name}-verify",
            {"stack": stack, "host": name, "address": settings.connection.address, "port": SMTPS_PORT,
             "jump": jump_input(settings), "trigger": [master.revision, service.revision, zone.revision]},
            pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[zone]),
        )
        v = self.verification
        self.outputs = {"address": settings.connection.address, "tlsVersion": v.tlsVersion,
                        "certSubject": v.certSubject, "certNotAfter": v.certNotAfter, "auth": v.auth}
        self.register_outputs(self.outputs)
