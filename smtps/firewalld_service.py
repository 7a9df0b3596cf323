"""The firewalld service definition, written whole from a template into /etc/firewalld/services/: its inputs, its
settings and how they are read, its decision (wanted and as found) and its script."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .facts import HostFacts, read_script
from .firewall import Firewall
from .model import FirewallModel, Inputs, setting
from .reader import Reader
from .settings import SMTPS_PORT, Connection, reload_values
from .templating import Action, lockout_guard, render

# The mode the file is written with (firewalld reads it as root; others may read it, as firewalld's own files).
FILE_MODE = "644"


@dataclass(frozen=True)
class FirewalldServiceInputs(Inputs):
    firewalld_service: str = setting("smtps")
    service_short: str = setting("Enable SMTPS")
    service_description: str = setting("Enable SMTPS.")
    service_ports: str
    # The whole file as this tool writes it: an edit that firewalld ignores (a comment) is still an edit.
    service_file: str
    service_mode: str


KEY = FirewalldServiceInputs.key
# firewalld's own rule (firewall/core/io/service.py): letters, digits, _ and -.
SERVICE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
SERVICE_NAME_WHAT = "a firewalld service name (letters, digits, _ -)"
# One line of text that XML 1.0 can carry (no control characters, surrogates or U+FFFE/U+FFFF) and needs no
# XML entity (the script carries it in a quoted here-document: nothing in it is expanded).
_TEXT = re.compile("[^\x00-\x1f\x7f-\x9f<>&\"\ud800-\udfff\ufffe\uffff]{1,200}")


def _builtin_services() -> dict[str, str]:
    """firewalld's own services and their ports (firewalld_services.txt says where the list comes from)."""
    found = {}
    for line in (Path(__file__).with_name("firewalld_services.txt")).read_text().splitlines():
        if line and not line.startswith("#"):
            name, ports = line.split("\t")
            found[name] = ports
    return found


FIREWALLD_SERVICES = _builtin_services()


@dataclass(frozen=True)
class FirewalldServiceSettings:
    name: str
    short: str
    description: str
    port: int = SMTPS_PORT
    protocol: str = "tcp"


def read_service(read: Reader) -> FirewalldServiceSettings | None:
    name = read.text(KEY.firewalld_service, SERVICE_NAME, SERVICE_NAME_WHAT)
    if name in FIREWALLD_SERVICES and FIREWALLD_SERVICES[name] != f"{SMTPS_PORT}/tcp":
        # Writing /etc/firewalld/services/ssh.xml with only 465/tcp would close SSH in every zone that allows ssh.
        read.fail(KEY.firewalld_service, f"{name} is firewalld's own service for {FIREWALLD_SERVICES[name]}: a file "
                  f"of that name would replace it in every zone that uses it (choose another name, e.g. smtps)")
        name = None
    parts = (name,
             read.text(KEY.service_short, _TEXT, "one line of text XML can carry, without < > & \""),
             read.text(KEY.service_description, _TEXT, "one line of text XML can carry, without < > & \""))
    return None if None in parts else FirewalldServiceSettings(*parts)


def service_xml(service: FirewalldServiceSettings) -> str:
    return render("firewalld_service.xml.j2", service=service)


class FirewalldServiceModel(FirewallModel):
    kind = "firewalld service"
    name = "service"
    resource = "FirewalldService"
    inputs = FirewalldServiceInputs
    identity = (KEY.firewalld_service,)
    firewalls = (Firewall.FIREWALLD,)

    def parse(self, read: Reader) -> FirewalldServiceSettings | None:
        return read_service(read)

    def wanted(self, service: FirewalldServiceSettings) -> FirewalldServiceInputs:
        return FirewalldServiceInputs(
            firewalld_service=service.name, service_short=service.short, service_description=service.description,
            service_ports=f"{service.port}/{service.protocol}", service_file=service_xml(service).rstrip("\n") + "\n",
            service_mode=FILE_MODE)

    def script(self, host: str, service: FirewalldServiceSettings, action: Action, connection: Connection | None = None,
               snapshot_id: str = "", **kw: Any) -> str:
        return render("firewalld_service.sh.j2", kind=self.kind, host=host, action=action.value,
                      reloads_firewalld=True, service=service, xml=service_xml(service), mode=FILE_MODE,
                      guard=lockout_guard(), **reload_values(connection), snapshot_id=snapshot_id)

    def read_script(self, host: str, service: FirewalldServiceSettings) -> str:
        return read_script(host, service=service)

    def live(self, facts: HostFacts, service: FirewalldServiceSettings) -> dict[str, Any]:
        found = facts.service
        if found is None:
            return self.inputs.found(service_short="", service_description="", service_ports="", service_file="",
                                     service_mode="")
        unreadable = "(a file firewalld cannot load)"
        return self.inputs.found(
            service_short=unreadable if found.short is None else found.short,
            service_description=unreadable if found.description is None else found.description,
            service_ports=unreadable if found.ports is None else ",".join(found.ports),
            service_file=found.text, service_mode=found.mode)


MODEL = FirewalldServiceModel()
