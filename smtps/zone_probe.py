"""The zone probe: run ON a mail host, by firewalld's own Python, to read what SMTPS needs of one firewalld zone.

    zone_probe ZONE SERVICE PORT      e.g. iredmail smtps 465/tcp

It prints `field=value` lines, the zone part of the host's facts (smtps/facts.py parses them):
    firewalld=running|stopped
    zone=present|missing|unknown
    zone.permanent.service=yes|no   zone.permanent.port=yes|no   (and the same for runtime)

The one reader of a zone: the read behind `pulumi refresh` and `drift`, and the zone script's own decisions, all run
it. It uses firewalld's client library over D-Bus (what firewall-cmd uses, in one process: each firewall-cmd run is a
Python start of its own, docs/benchmark.md). With firewalld stopped there is no runtime layer, and the permanent one
is read from the zone's file with firewalld's own reader, so a stopped firewalld hides nothing that is on disk.

Standard library and firewalld only: shipped inside the host scripts as it is (never rendered).
"""

from __future__ import annotations

import os
import sys

FOLDERS = ("/etc/firewalld/zones", "/usr/lib/firewalld/zones")


def _layer(name: str, services: object, ports: object, service: str, port: str) -> None:
    listed = {f"{number}/{protocol}" for number, protocol in ports}  # type: ignore[attr-defined]
    print(f"zone.{name}.service={'yes' if service in services else 'no'}")  # type: ignore[operator]
    print(f"zone.{name}.port={'yes' if port in listed else 'no'}")


def _running(zone: str, service: str, port: str) -> None:
    from firewall.client import FirewallClient

    fw = FirewallClient()
    if not fw.connected:
        raise ConnectionError
    print("firewalld=running")
    try:
        permanent = fw.config().getZoneByName(zone).getSettings()
        runtime = fw.getZoneSettings(zone)
    except Exception:  # noqa: BLE001 - firewalld's "INVALID_ZONE" comes as a D-Bus error
        print("zone=missing")
        return
    print("zone=present")
    _layer("permanent", permanent.getServices(), permanent.getPorts(), service, port)
    _layer("runtime", runtime.getServices(), runtime.getPorts(), service, port)


def _stopped(zone: str, service: str, port: str) -> None:
    print("firewalld=stopped")
    folder = next((f for f in FOLDERS if os.path.exists(f"{f}/{zone}.xml")), None)
    if folder is None:
        print("zone=missing")
        return
    try:
        from firewall.core.io.zone import zone_reader

        found = zone_reader(f"{zone}.xml", folder)
    except Exception:  # noqa: BLE001 - no firewalld library, or a file firewalld could not load either
        print("zone=unknown")
        return
    print("zone=present")
    _layer("permanent", found.services, found.ports, service, port)
    _layer("runtime", (), (), service, port)  # no firewalld running: no runtime layer


def main(zone: str, service: str, port: str) -> None:
    try:
        _running(zone, service, port)
    except Exception:  # noqa: BLE001 - no firewalld, no D-Bus, or no library: not running, as far as SMTPS goes
        _stopped(zone, service, port)


if __name__ == "__main__":
    main(*sys.argv[1:4])
