"""The service's membership in the firewalld zone, permanent and runtime: its inputs, its settings and how they are
read, its decision (wanted and as found) and its script."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .facts import HostFacts, read_script
from .firewall import Firewall
from .firewalld_service import SERVICE_NAME, SERVICE_NAME_WHAT
from .model import FirewallModel, Inputs, setting
from .reader import Reader
from .settings import SMTPS_PORT, Connection, PortPolicy, reload_values
from .templating import Action, lockout_guard, render, zone_probe

PORT = f"{SMTPS_PORT}/tcp"
# rawPort's values: under `replace` a raw 465 port must be gone; under `keep` whatever is there stays as found (it
# does the service's work), so it is not read at all.
CLOSED, KEPT, OPEN = "closed", "kept as found", "open"


@dataclass(frozen=True)
class ZoneMembershipInputs(Inputs):
    zone: str = setting("iredmail")
    firewalld_service: str
    existing_port_policy: str = setting(PortPolicy.KEEP.value)
    # The state wanted, always true: a refresh that finds the service gone from one layer shows exactly that layer.
    permanent: bool
    runtime: bool
    raw_port: str
    # firewalld must run: the apply says so, and never starts it (an operator stopped it for a reason).
    firewalld: str


KEY = ZoneMembershipInputs.key
# firewalld's own rule (firewall/core/io/zone.py): letters, digits, _ and -; a zone name at most 17 characters
# (netfilter's 28 for a chain name, less firewalld's longest prefix and suffix).
_ZONE = re.compile(r"[A-Za-z0-9_-]{1,17}")


@dataclass(frozen=True)
class ZoneSettings:
    zone: str
    service: str
    port_policy: PortPolicy


def read_zone(read: Reader) -> ZoneSettings | None:
    parts = (read.text(KEY.zone, _ZONE, "a firewalld zone name (letters, digits, _ -; at most 17)"),
             read.text(KEY.firewalld_service, SERVICE_NAME, SERVICE_NAME_WHAT),
             read.choice(KEY.existing_port_policy, tuple(p.value for p in PortPolicy)))
    return None if None in parts else ZoneSettings(parts[0], parts[1], PortPolicy(parts[2]))


class ZoneMembershipModel(FirewallModel):
    kind = "zone membership"
    name = "zone"
    resource = "ZoneMembership"
    inputs = ZoneMembershipInputs
    identity = (KEY.zone, KEY.firewalld_service)
    firewalls = (Firewall.FIREWALLD,)
    not_repaired = {KEY.firewalld: "up does not start firewalld (it was stopped on purpose, or it failed): start it "
                                   "(systemctl start firewalld), then run up again"}

    def parse(self, read: Reader) -> ZoneSettings | None:
        return read_zone(read)

    def wanted(self, zone: ZoneSettings) -> ZoneMembershipInputs:
        return ZoneMembershipInputs(
            zone=zone.zone, firewalld_service=zone.service, existing_port_policy=zone.port_policy.value,
            permanent=True, runtime=True, raw_port=CLOSED if zone.port_policy is PortPolicy.REPLACE else KEPT,
            firewalld="running")

    def script(self, host: str, zone: ZoneSettings, action: Action, connection: Connection | None = None,
               snapshot_id: str = "", **kw: Any) -> str:
        # Only a remove may reload firewalld (to put the zone file back as found); an apply edits both layers in
        # place.
        return render("zone_membership.sh.j2", kind=self.kind, host=host, action=action.value, zone=zone,
                      reloads_firewalld=action is Action.REMOVE, port=PORT, guard=lockout_guard(),
                      zone_probe=zone_probe(),
                      **reload_values(connection), snapshot_id=snapshot_id)

    def read_script(self, host: str, zone: ZoneSettings) -> str:
        return read_script(host, zone=zone)

    def live(self, facts: HostFacts, zone: ZoneSettings) -> dict[str, Any]:
        keep = zone.port_policy is PortPolicy.KEEP
        # Under `keep`, a raw 465 port that iRedMail wrote does the service's work and counts as membership.
        permanent, runtime = (layer.service or (keep and layer.port) for layer in (facts.permanent, facts.runtime))
        if keep:
            return self.inputs.found(firewalld=facts.firewalld, permanent=permanent, runtime=runtime)
        raw = OPEN if facts.permanent.port or facts.runtime.port else CLOSED
        return self.inputs.found(firewalld=facts.firewalld, permanent=permanent, runtime=runtime, raw_port=raw)


MODEL = ZoneMembershipModel()
