"""Running the host-side SMTPS scripts on lab hosts over SSH, as the SSH command string (as pulumi-command runs a
Command's create and delete)."""

from __future__ import annotations

import subprocess

from smtps import firewalld_service, master_service, zone_membership
from smtps.settings import HostSettings, parse_host
from smtps.templating import Action
from tests.lab.labkit import Lab


def settings_for(lab: Lab, name: str, **overrides) -> HostSettings:
    host = next(h for h in lab.hosts() if h["name"] == name)
    raw = {"name": name, "address": host["address"], "hostKey": host["host_key"], **overrides}
    return parse_host("lab", {}, raw)


def run(lab: Lab, settings: HostSettings, script: str) -> subprocess.CompletedProcess[str]:
    host = next(h for h in lab.hosts() if h["name"] == settings.name)
    return lab.ssh(host, script)


def converge(lab: Lab, settings: HostSettings) -> list[str]:
    """Postfix listens before the port opens: master.cf first, then the service file, then the zone."""
    outputs = []
    for script in (master_service.script(settings.name, settings.master, settings.tls, Action.APPLY),
                   firewalld_service.script(settings.name, settings.service, Action.APPLY),
                   zone_membership.script(settings.name, settings.zone, Action.APPLY)):
        result = run(lab, settings, script)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout.strip())
    return outputs


def destroy(lab: Lab, settings: HostSettings) -> None:
    """The reverse order: close the port first, then remove the service file and the master.cf entry."""
    for script in (zone_membership.script(settings.name, settings.zone, Action.REMOVE),
                   firewalld_service.script(settings.name, settings.service, Action.REMOVE),
                   master_service.script(settings.name, settings.master, settings.tls, Action.REMOVE)):
        result = run(lab, settings, script)
        assert result.returncode == 0, result.stderr
