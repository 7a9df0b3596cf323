"""The SMTPS service's membership in a firewalld zone, permanent and runtime, as a Pulumi resource. Inputs: zone,
firewalldService, existingPortPolicy (and the connection), plus `permanent` and `runtime`, always true: the state
wanted, so that a refresh that finds the service gone from one layer shows exactly that layer as drift. The zone
and the service name are identities: membership of another zone, or of another service, is another thing."""

from __future__ import annotations

from typing import Any, ClassVar

import pulumi
from pulumi.dynamic import Resource

from smtps import zone_membership
from smtps.drift import read_script
from smtps.settings import Connection, HostSettings, PortPolicy, Reader, ZoneSettings, read_zone
from smtps.templating import Action

from .base import HostProvider


class ZoneMembershipProvider(HostProvider):
    kind = "zone membership"
    settings: ClassVar = ("zone", "firewalldService", "existingPortPolicy", "permanent", "runtime")
    identity: ClassVar = ("address", "zone", "firewalldService")

    def parse(self, read: Reader) -> Any:
        return read_zone(read)

    def script(self, host: str, parsed: Any, action: Action, connection: Connection) -> str:
        return zone_membership.script(host, parsed, action, connection.confirm_seconds)

    def read_script(self, host: str, parsed: Any) -> str:
        return read_script(host, zone=parsed)

    def live(self, state: dict[str, str], props: dict[str, Any], parsed: Any) -> dict[str, Any]:
        zone: ZoneSettings = parsed
        if state.get("firewalld") != "running" or state.get("zone") == "missing":
            # Reported as found, never a failure: a refresh must work on a host in any state. With firewalld
            # stopped neither layer can be seen to hold the service; `up` then says why it cannot repair that.
            return {"permanent": False, "runtime": False}

        def member(layer: str) -> bool:
            # Under `keep`, a raw 465 port that iRedMail wrote does the service's work and counts as membership.
            by_port = zone.port_policy is PortPolicy.KEEP and state.get(f"zone.{layer}.port") == "yes"
            return by_port or state.get(f"zone.{layer}.service") == "yes"

        return {"permanent": member("permanent"), "runtime": member("runtime")}


def inputs(settings: HostSettings) -> dict[str, Any]:
    zone = settings.zone
    return {"zone": zone.zone, "firewalldService": zone.service, "existingPortPolicy": zone.port_policy.value,
            "permanent": True, "runtime": True}


class ZoneMembership(Resource, module="smtps", name="ZoneMembership"):
    revision: pulumi.Output[int]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(ZoneMembershipProvider(), name, {**props, "revision": None}, opts)
