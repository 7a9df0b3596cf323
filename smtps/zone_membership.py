"""The service's membership in the firewalld zone, permanent and runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .facts import HostFacts, read_script
from .model import Inputs, Model
from .settings import (
    SMTPS_PORT,
    Connection,
    Firewall,
    PortPolicy,
    ZoneSettings,
    read_zone,
    reload_values,
)
from .templating import Action, lockout_guard, render, zone_probe

PORT = f"{SMTPS_PORT}/tcp"
# rawPort's values: under `replace` a raw 465 port must be gone; under `keep` whatever is there stays as found (it
# does the service's work), so it is not read at all.
CLOSED, KEPT, OPEN = "closed", "kept as found", "open"


@dataclass(frozen=True)
class ZoneMembershipInputs(Inputs):
    zone: str
    firewalld_service: str
    existing_port_policy: str
    # The state wanted, always true: a refresh that finds the service gone from one layer shows exactly that layer.
    permanent: bool
    runtime: bool
    raw_port: str
    # firewalld must run: the apply says so, and never starts it (an operator stopped it for a reason).
    firewalld: str


def script(host: str, zone: ZoneSettings, action: Action, connection: Connection | None = None,
           run: str = "") -> str:
    # Only a remove may reload firewalld (to put the zone file back as found); an apply edits both layers in place.
    return render("zone_membership.sh.j2", kind=MODEL.kind, host=host, action=action.value, zone=zone,
                  reloads_firewalld=action is Action.REMOVE, port=PORT, guard=lockout_guard(),
                  zone_probe=zone_probe(),
                  **reload_values(connection), run=run)


def wanted(zone: ZoneSettings) -> ZoneMembershipInputs:
    return ZoneMembershipInputs(
        zone=zone.zone, firewalld_service=zone.service, existing_port_policy=zone.port_policy.value,
        permanent=True, runtime=True, raw_port=CLOSED if zone.port_policy is PortPolicy.REPLACE else KEPT,
        firewalld="running")


def live(facts: HostFacts, zone: ZoneSettings) -> dict[str, Any]:
    found: dict[str, Any] = {"firewalld": facts.firewalld}
    keep = zone.port_policy is PortPolicy.KEEP
    for name, layer in (("permanent", facts.permanent), ("runtime", facts.runtime)):
        # Under `keep`, a raw 465 port that iRedMail wrote does the service's work and counts as membership.
        found[name] = layer.service or (keep and layer.port)
    if not keep:
        found["rawPort"] = OPEN if facts.permanent.port or facts.runtime.port else CLOSED
    return found


MODEL = Model(
    kind="zone membership", inputs=ZoneMembershipInputs, identity=("zone", "firewalldService"),
    part=lambda settings: settings.zone, parse=read_zone, wanted=wanted, script=script,
    read_script=lambda host, zone: read_script(host, zone=zone), live=live,
    firewalls=(Firewall.FIREWALLD,))
