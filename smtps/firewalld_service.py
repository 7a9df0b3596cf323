"""The firewalld service definition, written whole from a template into /etc/firewalld/services/."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .facts import HostFacts, read_script
from .model import Inputs, Model
from .settings import Connection, Firewall, FirewalldServiceSettings, read_service, reload_values
from .templating import Action, lockout_guard, render

# The mode the file is written with (firewalld reads it as root; others may read it, as firewalld's own files).
FILE_MODE = "644"


@dataclass(frozen=True)
class FirewalldServiceInputs(Inputs):
    firewalld_service: str
    service_short: str
    service_description: str
    service_ports: str
    # The whole file as this tool writes it: an edit that firewalld ignores (a comment) is still an edit.
    service_file: str
    service_mode: str


def service_xml(service: FirewalldServiceSettings) -> str:
    return render("firewalld_service.xml.j2", service=service)


def script(host: str, service: FirewalldServiceSettings, action: Action, connection: Connection | None = None,
           run: str = "") -> str:
    return render("firewalld_service.sh.j2", kind=MODEL.kind, host=host, action=action.value,
                  reloads_firewalld=True, service=service, xml=service_xml(service), mode=FILE_MODE,
                  guard=lockout_guard(), **reload_values(connection), run=run)


def wanted(service: FirewalldServiceSettings) -> FirewalldServiceInputs:
    return FirewalldServiceInputs(
        firewalld_service=service.name, service_short=service.short, service_description=service.description,
        service_ports=f"{service.port}/{service.protocol}", service_file=service_xml(service).rstrip("\n") + "\n",
        service_mode=FILE_MODE)


def live(facts: HostFacts, service: FirewalldServiceSettings) -> dict[str, Any]:
    found = facts.service
    if found is None:
        return {"serviceShort": "", "serviceDescription": "", "servicePorts": "", "serviceFile": "",
                "serviceMode": ""}
    unreadable = "(a file firewalld cannot load)"
    return {"serviceShort": unreadable if found.short is None else found.short,
            "serviceDescription": unreadable if found.description is None else found.description,
            "servicePorts": unreadable if found.ports is None else ",".join(found.ports),
            "serviceFile": found.text, "serviceMode": found.mode}


MODEL = Model(
    kind="firewalld service", inputs=FirewalldServiceInputs, identity=("firewalldService",),
    part=lambda settings: settings.service, parse=read_service, wanted=wanted, script=script,
    read_script=lambda host, service: read_script(host, service=service), live=live,
    firewalls=(Firewall.FIREWALLD,))
