"""The zone probe: run ON a mail host, by firewalld's own Python, to read what SMTPS needs of one firewalld zone, and
to plan the zone script's change.

    zone_probe ZONE SERVICE PORT                                  e.g. iredmail smtps 465/tcp
    zone_probe ZONE SERVICE PORT apply|remove POLICY STATE FILE   the same, then the plan (see Plan, plan_lines)

It prints `field=value` lines, the zone part of the host's facts (smtps/facts.py parses them):
    firewalld=running|stopped
    zone=present|missing|unknown
    zone.permanent.service=yes|no   zone.permanent.port=yes|no   (and the same for runtime)
and with an action, the plan's `plan.*` lines after them. POLICY is existingPortPolicy (keep|replace), STATE the
zone's state folder (what this tool found and left of the zone), FILE the zone's file under /etc/firewalld.

The one reader of a zone: the read behind `pulumi refresh` and `drift`, and the zone script's own decisions, all run
it. It asks firewalld over D-Bus, with dbus-python, what firewall-cmd asks (in one process: each firewall-cmd run is a
Python start of its own, docs/benchmark.md). With firewalld stopped there is no runtime layer, and the permanent one
is read from the zone's file with firewalld's own reader, so a stopped firewalld hides nothing that is on disk.

The decision (what to add and take out in which layer, and what becomes of the zone file as found) is the pure
function `plan`, tested on data; the script executes its steps, with its undo.

Standard library and firewalld only: shipped inside the host scripts as it is (never rendered). It runs on Python
3.6 and later: firewalld's own Python on RHEL 8 and its rebuilds is platform-python, Python 3.6 (docs/servers.md).
So NamedTuple records rather than dataclasses (3.7), and typing's generics in annotations, which 3.6 evaluates.
"""

import os
import sys
from typing import List, NamedTuple, Tuple

FOLDERS = ("/etc/firewalld/zones", "/usr/lib/firewalld/zones")


class Layer(NamedTuple):
    """One layer of the zone (permanent or runtime): does it hold the service, and the port by number."""

    service: bool = False
    port: bool = False


class Zone(NamedTuple):
    firewalld: str  # running | stopped
    zone: str  # present | missing | unknown
    permanent: Layer = Layer()
    runtime: Layer = Layer()


def _layer(services: object, ports: object, service: str, port: str) -> Layer:
    listed = {f"{number}/{protocol}" for number, protocol in ports}  # type: ignore[attr-defined]
    return Layer(service in services, port in listed)  # type: ignore[operator]


# firewalld on the system bus: its name, its object, and the interfaces asked (firewalld's D-Bus API, which
# firewall-cmd and firewalld's client library call).
BUS_NAME = "org.fedoraproject.FirewallD1"
PATH = "/org/fedoraproject/FirewallD1"


def _settings(call, legacy) -> Tuple[object, object]:  # noqa: ANN001 - dbus-python's methods, on the host only
    """A zone's services and ports: from the settings as a dict (firewalld 0.9 and later, where an empty setting is
    left out), else as the older tuple (services and ports are its 6th and 7th fields)."""
    import dbus

    try:
        found = call()
        return found.get("services", []), found.get("ports", [])
    except dbus.exceptions.DBusException as err:
        if err.get_dbus_name() != "org.freedesktop.DBus.Error.UnknownMethod":
            raise
    found = legacy()
    return found[5], found[6]


def _running(zone: str, service: str, port: str) -> Zone:
    # dbus-python alone (what firewalld's client library is built on, without the rest of it: a tenth of the
    # import), and no introspection (each costs firewalld more than the call itself). Getting firewalld's object
    # resolves its name as the client library does.
    import dbus

    bus = dbus.SystemBus()
    try:
        fw = bus.get_object(BUS_NAME, PATH, introspect=False)
        config = bus.get_object(BUS_NAME, f"{PATH}/config", introspect=False)
    except dbus.exceptions.DBusException:
        raise ConnectionError from None
    try:
        path = config.getZoneByName(zone, dbus_interface=f"{BUS_NAME}.config")
        permanent = bus.get_object(BUS_NAME, path, introspect=False)
        permanent_services, permanent_ports = _settings(
            lambda: permanent.getSettings2(dbus_interface=f"{BUS_NAME}.config.zone"),
            lambda: permanent.getSettings(dbus_interface=f"{BUS_NAME}.config.zone"))
        runtime_services, runtime_ports = _settings(
            lambda: fw.getZoneSettings2(zone, dbus_interface=f"{BUS_NAME}.zone"), lambda: fw.getZoneSettings(zone))
    except Exception:  # noqa: BLE001 - firewalld's "INVALID_ZONE" comes as a D-Bus error
        return Zone("running", "missing")
    return Zone("running", "present", _layer(permanent_services, permanent_ports, service, port),
                _layer(runtime_services, runtime_ports, service, port))


def _stopped(zone: str, service: str, port: str) -> Zone:
    folder = next((f for f in FOLDERS if os.path.exists(f"{f}/{zone}.xml")), None)
    if folder is None:
        return Zone("stopped", "missing")
    try:
        from firewall.core.io.zone import zone_reader

        found = zone_reader(f"{zone}.xml", folder)
    except Exception:  # noqa: BLE001 - no firewalld library, or a file firewalld could not load either
        return Zone("stopped", "unknown")
    # No firewalld running: no runtime layer.
    return Zone("stopped", "present", _layer(found.services, found.ports, service, port))


def read(zone: str, service: str, port: str) -> Zone:
    try:
        return _running(zone, service, port)
    except Exception:  # noqa: BLE001 - no firewalld, no D-Bus, or no library: not running, as far as SMTPS goes
        return _stopped(zone, service, port)


def facts_lines(found: Zone) -> List[str]:
    lines = [f"firewalld={found.firewalld}", f"zone={found.zone}"]
    if found.zone == "present":
        for name, layer in (("permanent", found.permanent), ("runtime", found.runtime)):
            lines += [f"zone.{name}.service={_yes(layer.service)}", f"zone.{name}.port={_yes(layer.port)}"]
    return lines


def _yes(value: bool) -> str:
    return "yes" if value else "no"


class Kept(NamedTuple):
    """What this tool keeps of the zone, as a run finds it: its state folder (none: it never changed the zone) and,
    beside it, the zone file as an interrupted run of it started from (BEFORE); and the zone file now."""

    state: bool = False  # the state folder is there
    orig: bool = False  # orig: the zone file as found
    absent: bool = False  # absent: there was no zone file when found
    applied: bool = False  # applied: the zone file as this tool last left it
    had_port: bool = False  # had-port: the permanent layer had the port by number when found
    file: bool = False  # the zone file is there
    file_is_orig: bool = False  # the zone file is byte for byte orig (both there)
    file_is_applied: bool = False
    before_is_orig: bool = False  # BEFORE is byte for byte orig (both there)
    before_is_applied: bool = False

    def changed(self) -> bool:
        """Someone changed the zone file since this tool last wrote it (applied) or found it (orig): unless a run of
        ours was interrupted after starting from one of those (its BEFORE copy is still there); then the change is
        that run's own."""
        return not (self.file_is_applied or self.file_is_orig or self.before_is_applied or self.before_is_orig)


class Facts(NamedTuple):
    zone: Zone
    kept: Kept


class Wanted(NamedTuple):
    action: str  # apply | remove
    policy: str  # keep | replace (existingPortPolicy)
    service: str
    port: str


class Change(NamedTuple):
    """One change to the zone in one layer, as the script's `change` takes it (it journals the inverse)."""

    layer: str  # permanent | runtime
    op: str  # add | remove
    what: str  # service | port
    value: str


class Plan(NamedTuple):
    refuse: str = ""  # "" | stopped (firewalld is not running) | missing (no such zone)
    # apply: kept (the port does the service's work) | runtime (the port opened at runtime too) | current (up to
    # date) | add; remove: none (nothing of ours) | restore (the zone file back byte for byte, and a reload) |
    # take-out (only this tool's part, in both layers)
    outcome: str = ""
    record: bool = False  # current: an earlier run was interrupted before it recorded the result (applied)
    # add: what becomes of the zone as found: first (kept now, the first change) | refound (someone changed the
    # file: as it is now, it is the new "as found") | forget (no file is: remove takes out only this tool's part)
    # | "" (as it was)
    found: str = ""
    had_port: bool = False  # first: the permanent layer has the port by number
    changes: Tuple[Change, ...] = ()


def _apply(zone: Zone, kept: Kept, wanted: Wanted) -> Plan:
    permanent, runtime = zone.permanent, zone.runtime
    if wanted.policy == "keep" and permanent.port:
        # iRedMail >= 1.5 opens 465 by a raw port; the service would only repeat it (existingPortPolicy=keep).
        if runtime.port:
            return Plan(outcome="kept")
        return Plan(outcome="runtime", changes=(Change("runtime", "add", "port", wanted.port),))
    # The service goes in before the raw port comes out: a kill in between leaves 465 open twice, never closed.
    changes = [Change(name, "add", "service", wanted.service)
               for name, layer in (("permanent", permanent), ("runtime", runtime)) if not layer.service]
    if wanted.policy == "replace":
        changes += [Change(name, "remove", "port", wanted.port)
                    for name, layer in (("permanent", permanent), ("runtime", runtime)) if layer.port]
    if not changes:
        return Plan(outcome="current", record=kept.state and not kept.applied and kept.file)
    found = ""
    if not kept.state:
        found = "first"
    elif kept.file and kept.changed():
        # Without the service in its permanent layer, the file as it is now is the new "as found"; with it, no
        # file is. (A raw port this tool took out, and that is not back, keeps destroy on its part-by-part path.)
        found = "refound" if not permanent.service and (not kept.had_port or permanent.port) else "forget"
    return Plan(outcome="add", found=found, had_port=permanent.port, changes=tuple(changes))


def _remove(zone: Zone, kept: Kept, wanted: Wanted) -> Plan:
    if not kept.state:
        return Plan(outcome="none")
    # The zone file as we left it, or already as it was found (a remove interrupted before its reload).
    as_found = (kept.absent and not kept.file) or kept.file_is_orig
    if (kept.orig or kept.absent) and (as_found or kept.file_is_applied):
        return Plan(outcome="restore")
    # Someone changed the zone since: take out only the service, after putting back the port if we took it out.
    changes = []
    if kept.had_port:
        changes += [Change(name, "add", "port", wanted.port)
                    for name, layer in (("permanent", zone.permanent), ("runtime", zone.runtime)) if not layer.port]
    changes += [Change(name, "remove", "service", wanted.service)
                for name, layer in (("permanent", zone.permanent), ("runtime", zone.runtime)) if layer.service]
    return Plan(outcome="take-out", changes=tuple(changes))


def plan(facts: Facts, wanted: Wanted) -> Plan:
    """What the zone script does, from the zone's two layers and what this tool kept of it."""
    if facts.zone.firewalld != "running":
        return Plan(refuse="stopped")
    if facts.zone.zone != "present":
        return Plan(refuse="missing")
    decide = _apply if wanted.action == "apply" else _remove
    return decide(facts.zone, facts.kept, wanted)


def plan_lines(result: Plan) -> List[str]:
    """The plan as the script reads it: one plan.field=value line each, and one plan.change line per change."""
    lines = [f"plan.refuse={result.refuse}", f"plan.outcome={result.outcome}", f"plan.record={_yes(result.record)}",
             f"plan.found={result.found}", f"plan.had_port={_yes(result.had_port)}"]
    return lines + [f"plan.change={c.layer} {c.op} {c.what} {c.value}" for c in result.changes]


def _same(a: str, b: str) -> bool:
    """Both files there and byte for byte the same (`cmp -s`)."""
    try:
        with open(a, "rb") as first, open(b, "rb") as second:
            return first.read() == second.read()
    except OSError:
        return False


def kept(state: str, file: str) -> Kept:
    """What the state folder STATE and the zone file FILE hold now (read-only)."""
    orig, applied, before = f"{state}/orig", f"{state}/applied", f"{state}.before"
    return Kept(state=os.path.isdir(state), orig=os.path.exists(orig), absent=os.path.exists(f"{state}/absent"),
                applied=os.path.exists(applied), had_port=os.path.exists(f"{state}/had-port"),
                file=os.path.exists(file), file_is_orig=_same(file, orig), file_is_applied=_same(file, applied),
                before_is_orig=_same(before, orig), before_is_applied=_same(before, applied))


def main(zone: str, service: str, port: str, *planned: str) -> None:
    found = read(zone, service, port)
    lines = facts_lines(found)
    if planned:
        action, policy, state, file = planned
        lines += plan_lines(plan(Facts(found, kept(state, file)), Wanted(action, policy, service, port)))
    print("\n".join(lines))


if __name__ == "__main__":
    main(*sys.argv[1:])
