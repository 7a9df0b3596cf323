"""Drift: the live state of a host, read in one SSH session, against what its settings want.

The operator's view of changes made by hand, in one table without touching the state: each difference names the
host, the field, what is wanted and what was found (`pulumi refresh` shows the providers' view, per input).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from .firewalld_service import service_xml
from .settings import SERVICE_KEYS, SMTPS_PORT, FirewalldServiceSettings, HostSettings, PortPolicy, ZoneSettings
from .templating import render


@dataclass(frozen=True)
class Drift:
    host: str
    field: str
    want: str
    have: str

    @property
    def resource(self) -> str:
        """Which of the host's three resources the field belongs to (the daemons count with what needs them)."""
        if self.field.startswith(("master.cf", "postfix")):
            return "master.cf service"
        if self.field.startswith("firewalld service"):
            return "firewalld service"
        return "zone membership"

    def __str__(self) -> str:
        return f"{self.host}: {self.field}: want {self.want!r}, found {self.have!r}"


def read_script(host: str, *, master: bool = False, service: FirewalldServiceSettings | None = None,
                zone: ZoneSettings | None = None) -> str:
    """A read-only script printing the live state of the parts asked for: the master.cf entries of all three keys,
    the service file, the zone's permanent and runtime membership."""
    return render("read_state.sh.j2", host=host, keys=SERVICE_KEYS if master else (), service=service, zone=zone,
                  port=f"{SMTPS_PORT}/tcp")


def read_host_script(settings: HostSettings) -> str:
    """Everything one host's drift needs, in one SSH session."""
    return read_script(settings.name, master=True, service=settings.service, zone=settings.zone)


def parse_state(text: str) -> dict[str, str]:
    state = {}
    for line in text.splitlines():
        field, sep, value = line.partition("=")
        if sep:
            state[field] = value
    return state


def _fold(entry: str) -> str:
    return " ".join(entry.split())


def compare(settings: HostSettings, state: dict[str, str]) -> list[Drift]:
    host = settings.name
    found: list[Drift] = []

    def differs(field: str, want: str, have: str) -> None:
        if want != have:
            found.append(Drift(host, field, want, have))

    differs("postfix", "running", state.get("postfix", "?"))
    master = settings.master
    entry = _fold(state.get(f"master.{master.key}", ""))
    differs(f"master.cf {master.key}/inet", "present", "present" if entry else "missing")
    if entry:
        have = dict(part.split("=", 1) for part in entry.split(" -o ")[1:] if "=" in part)
        for name, value in master.options:
            differs(f"master.cf {master.key}/inet option {name}", value, have.pop(name, "(unset)"))
        for name, value in have.items():
            differs(f"master.cf {master.key}/inet option {name}", "(unset)", value)
        fields = entry.split(" -o ")[0].split()
        differs(f"master.cf {master.key}/inet fields", _fold(master.entry.split(" -o ")[0]), " ".join(fields))
    for key in SERVICE_KEYS:
        if key != master.key and state.get(f"master.{key}"):
            differs(f"master.cf {key}/inet", "absent", "present")

    encoded = state.get("service.file", "")
    have_xml = base64.b64decode(encoded).decode(errors="replace") if encoded else "(missing)"
    differs(f"firewalld service file {settings.service.name}.xml", service_xml(settings.service), have_xml)

    differs("firewalld", "running", state.get("firewalld", "?"))
    differs(f"zone {settings.zone.zone}", "present", "missing" if state.get("zone") == "missing" else "present")
    if state.get("firewalld") == "running" and state.get("zone") != "missing":
        zone = settings.zone
        for layer in ("permanent", "runtime"):
            by_service = state.get(f"zone.{layer}.service") == "yes"
            by_port = state.get(f"zone.{layer}.port") == "yes"
            if zone.port_policy is PortPolicy.KEEP and by_port:
                continue  # a raw 465 port is kept as found and does the service's work
            differs(f"zone {zone.zone} {layer} service {zone.service}", "yes", "yes" if by_service else "no")
            if zone.port_policy is PortPolicy.REPLACE:
                differs(f"zone {zone.zone} {layer} port {SMTPS_PORT}/tcp", "no", "yes" if by_port else "no")
    return found
