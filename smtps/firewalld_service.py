"""The firewalld service definition, written whole from a template into /etc/firewalld/services/."""

from __future__ import annotations

from .settings import CONFIRM_SECONDS, FirewalldServiceSettings
from .templating import Action, lockout_guard, render


def service_xml(service: FirewalldServiceSettings) -> str:
    return render("firewalld_service.xml.j2", service=service)


def script(host: str, service: FirewalldServiceSettings, action: Action,
           confirm_seconds: int = CONFIRM_SECONDS) -> str:
    return render("firewalld_service.sh.j2", kind="firewalld service", host=host, action=action.value,
                  reloads_firewalld=True, service=service, xml=service_xml(service), guard=lockout_guard(),
                  confirm_seconds=confirm_seconds)
