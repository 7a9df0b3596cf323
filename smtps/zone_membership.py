"""The service's membership in the firewalld zone, permanent and runtime."""

from __future__ import annotations

from .settings import CONFIRM_SECONDS, SMTPS_PORT, ZoneSettings
from .templating import Action, lockout_guard, render


def script(host: str, zone: ZoneSettings, action: Action, confirm_seconds: int = CONFIRM_SECONDS) -> str:
    # Only a remove may reload firewalld (to put the zone file back as found); an apply edits both layers in place.
    return render("zone_membership.sh.j2", kind="zone membership", host=host, action=action.value, zone=zone,
                  reloads_firewalld=action is Action.REMOVE, port=f"{SMTPS_PORT}/tcp", guard=lockout_guard(),
                  confirm_seconds=confirm_seconds)
