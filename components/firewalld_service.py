"""The firewalld service definition (/etc/firewalld/services/NAME.xml), as a Pulumi resource. Inputs:
firewalldService, serviceShort, serviceDescription (and the connection). The service name is an identity: another
name is another file, so the old one is removed (as found) before the new one is written."""

from __future__ import annotations

import base64
import binascii
from typing import Any, ClassVar
from xml.etree import ElementTree

import pulumi
from pulumi.dynamic import Resource

from smtps import firewalld_service
from smtps.drift import read_script
from smtps.settings import Connection, HostSettings, Reader, read_service
from smtps.templating import Action

from .base import HostProvider


class FirewalldServiceProvider(HostProvider):
    kind = "firewalld service"
    settings: ClassVar = ("firewalldService", "serviceShort", "serviceDescription")
    identity: ClassVar = ("address", "firewalldService")

    def parse(self, read: Reader) -> Any:
        return read_service(read)

    def script(self, host: str, parsed: Any, action: Action, connection: Connection) -> str:
        return firewalld_service.script(host, parsed, action, connection.confirm_seconds)

    def read_script(self, host: str, parsed: Any) -> str:
        return read_script(host, service=parsed)

    def live(self, state: dict[str, str], props: dict[str, Any], parsed: Any) -> dict[str, Any]:
        found = {"serviceShort": "", "serviceDescription": ""}
        try:
            # The file comes from a host we manage as root; expat (2.4+, in Python 3.11) caps entity expansion.
            root = ElementTree.fromstring(base64.b64decode(state.get("service.file", ""), validate=True))  # noqa: S314
        except (binascii.Error, ElementTree.ParseError):
            return found  # missing, or not a service file firewalld could load either
        ports = sorted(f"{p.get('port')}/{p.get('protocol')}" for p in root.iter("port"))
        found["serviceShort"] = root.findtext("short") or ""
        description = root.findtext("description") or ""
        # The port is not a setting (it is 465/tcp): a file edited to open another shows in the description's diff.
        if ports != [f"{parsed.port}/{parsed.protocol}"]:
            description = f"{description} (ports: {', '.join(ports) or 'none'})"
        found["serviceDescription"] = description
        return found


def inputs(settings: HostSettings) -> dict[str, Any]:
    service = settings.service
    return {"firewalldService": service.name, "serviceShort": service.short,
            "serviceDescription": service.description}


class FirewalldService(Resource, module="smtps", name="FirewalldService"):
    revision: pulumi.Output[int]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(FirewalldServiceProvider(), name, {**props, "revision": None}, opts)
