"""The service's membership in the firewalld zone, permanent and runtime."""

from __future__ import annotations

from .settings import SMTPS_PORT, ZoneSettings
from .templating import Action, render


def script(host: str, zone: ZoneSettings, action: Action) -> str:
    return render("zone_membership.sh.j2", kind="zone membership", host=host, action=action.value, zone=zone,
                  reloads_firewalld=action is Action.REMOVE, port=f"{SMTPS_PORT}/tcp")
