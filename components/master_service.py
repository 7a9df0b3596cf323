"""The master.cf service for port 465, as a Pulumi resource. Inputs: serviceKey, options, chroot, maxproc, tlsCert,
tlsKey (and the connection). Only the address is an identity: switching serviceKey converges the one entry in place
(the script replaces an entry under another key, never adds a second), so no change ever ends with 465 gone."""

from __future__ import annotations

from typing import Any, ClassVar

import pulumi
from pulumi.dynamic import Resource

from smtps import master_service
from smtps.drift import read_script
from smtps.settings import SERVICE_KEYS, Connection, HostSettings, MasterServiceSettings, Reader, read_master, read_tls
from smtps.templating import Action

from .base import HostProvider


class MasterServiceProvider(HostProvider):
    kind = "master.cf service"
    settings: ClassVar = ("serviceKey", "options", "chroot", "maxproc", "tlsCert", "tlsKey")

    def parse(self, read: Reader) -> Any:
        return read_master(read), read_tls(read)

    def script(self, host: str, parsed: Any, action: Action, connection: Connection) -> str:
        return master_service.script(host, *parsed, action)

    def read_script(self, host: str, parsed: Any) -> str:
        return read_script(host, master=True)

    def live(self, state: dict[str, str], props: dict[str, Any], parsed: Any) -> dict[str, Any]:
        master: MasterServiceSettings = parsed[0]
        found = next((key for key in (master.key, *SERVICE_KEYS) if state.get(f"master.{key}")), None)
        if found is None:
            # No entry for 465 under any key: the drift shows every field of it as gone.
            return {"serviceKey": "", "options": {}, "chroot": "", "maxproc": ""}
        head, *overrides = state[f"master.{found}"].split(" -o ")
        fields = head.split()
        options = dict(part.split("=", 1) for part in overrides if "=" in part)
        return {"serviceKey": found, "options": options, "chroot": fields[4] if len(fields) > 4 else "",
                "maxproc": fields[6] if len(fields) > 6 else ""}


def inputs(settings: HostSettings) -> dict[str, Any]:
    master, tls = settings.master, settings.tls
    return {"serviceKey": master.key, "options": dict(master.options), "chroot": master.chroot,
            "maxproc": master.maxproc, "tlsCert": tls.cert, "tlsKey": tls.key}


class MasterService(Resource, module="smtps", name="MasterService"):
    revision: pulumi.Output[int]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(MasterServiceProvider(), name, {**props, "revision": None}, opts)
