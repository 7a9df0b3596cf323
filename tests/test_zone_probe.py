"""The zone probe (smtps/zone_probe.py), run here on sample answers of firewalld over D-Bus (dbus-python) and of
firewalld's zone reader: what it prints for a running firewalld (its settings as a dict, or as the older tuple), a
stopped one, a missing zone, a zone file firewalld cannot read, and no library at all; and that
smtps/facts.py reads those lines as the zone's facts. (The lab tests run it on hosts with a real firewalld.)"""

from __future__ import annotations

import runpy
import sys
import types
from dataclasses import dataclass, field

import pytest

from smtps_iredmail.core import facts, zone_probe
from smtps_iredmail.core.facts import ZoneLayer


@dataclass
class Settings:
    """A zone's settings in one layer, as far as the probe reads them."""

    services: list[str] = field(default_factory=list)
    ports: list[tuple[str, str]] = field(default_factory=list)


class DBusException(Exception):  # noqa: N818 - dbus-python's name
    """dbus-python's error: firewalld's refusals (INVALID_ZONE) and the bus's (no such method) come as one."""

    def __init__(self, message: str, name: str = "org.fedoraproject.FirewallD1.Exception") -> None:
        super().__init__(message)
        self.name = name

    def get_dbus_name(self) -> str:
        return self.name


def client(zones: dict[str, tuple[Settings, Settings]], connected: bool = True, version2: bool = True) -> type:
    """dbus-python's SystemBus with firewalld on it, over `zones`: name -> (permanent, runtime). `version2`: the
    settings as a dict (firewalld 0.9 and later, an empty setting left out), else only as the older tuple."""

    def lookup(name: str) -> tuple[Settings, Settings]:
        if name not in zones:
            raise DBusException(f"INVALID_ZONE: {name}")
        return zones[name]

    def as_dict(settings: Settings) -> dict:
        if not version2:
            raise DBusException("no such method", "org.freedesktop.DBus.Error.UnknownMethod")
        return {key: value for key, value in (("services", settings.services), ("ports", settings.ports)) if value}

    def as_tuple(settings: Settings) -> tuple:
        return ("", "", "", False, "default", settings.services, settings.ports, [], False, [], [], [])

    class Firewalld:
        def __init__(self, path: str) -> None:
            self.path = path

        def getZoneByName(self, name: str, dbus_interface: str) -> str:  # noqa: ARG002
            lookup(name)
            return f"/org/fedoraproject/FirewallD1/config/zone/{name}"

        def getSettings2(self, dbus_interface: str) -> dict:  # noqa: ARG002
            return as_dict(lookup(self.path.rsplit("/", 1)[1])[0])

        def getSettings(self, dbus_interface: str) -> tuple:  # noqa: ARG002
            return as_tuple(lookup(self.path.rsplit("/", 1)[1])[0])

        def getZoneSettings2(self, name: str, dbus_interface: str) -> dict:  # noqa: ARG002
            return as_dict(lookup(name)[1])

        def getZoneSettings(self, name: str) -> tuple:
            return as_tuple(lookup(name)[1])

    class SystemBus:
        def get_object(self, name: str, path: str, introspect: bool = True) -> Firewalld:
            assert name == "org.fedoraproject.FirewallD1" and not introspect
            if not connected:
                raise DBusException("not running", "org.freedesktop.DBus.Error.ServiceUnknown")
            return Firewalld(path)

    return SystemBus


def library(monkeypatch, system_bus: type | None = None, zone_reader=None) -> None:
    """dbus-python and firewalld's library as the probe imports them: only the parts given (a missing part fails to
    import)."""
    for name in ("dbus", "firewall", "firewall.core", "firewall.core.io", "firewall.core.io.zone"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    if system_bus is None:
        monkeypatch.setitem(sys.modules, "dbus", None)
    else:
        sys.modules["dbus"].SystemBus = system_bus
        sys.modules["dbus"].exceptions = types.SimpleNamespace(DBusException=DBusException)
    if zone_reader is None:
        monkeypatch.setitem(sys.modules, "firewall.core.io.zone", None)
    else:
        sys.modules["firewall.core.io.zone"].zone_reader = zone_reader


def probe(capsys, zone: str = "iredmail", service: str = "smtps", port: str = "465/tcp") -> list[str]:
    zone_probe.main(zone, service, port)
    return capsys.readouterr().out.splitlines()


def test_running_each_layer_read_for_the_service_and_the_port(monkeypatch, capsys):
    # The service only in the permanent layer; 465/tcp only in the runtime layer (465/udp is not it).
    permanent = Settings(services=["ssh", "smtps"], ports=[("465", "udp")])
    runtime = Settings(services=["ssh"], ports=[("8080", "tcp"), ("465", "tcp")])
    library(monkeypatch, client({"iredmail": (permanent, runtime)}))
    lines = probe(capsys)
    assert lines == ["firewalld=running", "zone=present",
                     "zone.permanent.service=yes", "zone.permanent.port=no",
                     "zone.runtime.service=no", "zone.runtime.port=yes"]
    found = facts.parse("\n".join(lines))
    assert (found.firewalld, found.zone) == ("running", "present")
    assert found.permanent == ZoneLayer(service=True, port=False)
    assert found.runtime == ZoneLayer(service=False, port=True)


def test_running_an_older_firewalld_read_from_its_settings_tuple(monkeypatch, capsys):
    permanent = Settings(services=["smtps"], ports=[("465", "udp")])
    runtime = Settings(services=[], ports=[("465", "tcp")])
    library(monkeypatch, client({"iredmail": (permanent, runtime)}, version2=False))
    assert probe(capsys) == ["firewalld=running", "zone=present",
                             "zone.permanent.service=yes", "zone.permanent.port=no",
                             "zone.runtime.service=no", "zone.runtime.port=yes"]


def test_running_the_service_and_port_asked_for_not_others(monkeypatch, capsys):
    both = Settings(services=["submissions", "smtps-old"], ports=[("4650", "tcp"), ("46", "tcp")])
    library(monkeypatch, client({"iredmail": (both, both)}))
    assert probe(capsys)[2:] == ["zone.permanent.service=no", "zone.permanent.port=no",
                                 "zone.runtime.service=no", "zone.runtime.port=no"]
    library(monkeypatch, client({"iredmail": (both, both)}))
    assert probe(capsys, service="submissions", port="4650/tcp")[2:] == [
        "zone.permanent.service=yes", "zone.permanent.port=yes", "zone.runtime.service=yes", "zone.runtime.port=yes"]


def test_running_a_zone_firewalld_does_not_know_is_missing(monkeypatch, capsys):
    library(monkeypatch, client({"public": (Settings(), Settings())}))
    lines = probe(capsys)
    assert lines == ["firewalld=running", "zone=missing"]
    found = facts.parse("\n".join(lines))
    assert found.zone == "missing" and found.permanent == found.runtime == ZoneLayer(False, False)


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """The two zone folders, /etc's first (an edited zone) and then the package's."""
    etc, usr = tmp_path / "etc", tmp_path / "usr"
    etc.mkdir()
    usr.mkdir()
    monkeypatch.setattr(zone_probe, "FOLDERS", (str(etc), str(usr)))
    return etc, usr


def reader(zones: dict[tuple[str, str], object], read: list):
    """firewalld's zone_reader(filename, folder) over sample zones, noting what it was asked to read."""

    def zone_reader(filename: str, folder: str) -> object:
        read.append((filename, folder))
        found = zones[(filename, folder)]
        if isinstance(found, Exception):
            raise found
        return found

    return zone_reader


def test_stopped_the_permanent_layer_from_the_zone_file_and_no_runtime_layer(monkeypatch, capsys, folders):
    etc, usr = folders
    (etc / "iredmail.xml").write_text("<zone/>")
    (usr / "iredmail.xml").write_text("<zone/>")
    edited = types.SimpleNamespace(services=["smtps"], ports=[("465", "tcp")])
    shipped = types.SimpleNamespace(services=[], ports=[])
    read: list = []
    # Not connected: firewalld is not running (or D-Bus is not there).
    library(monkeypatch, client({}, connected=False),
            reader({("iredmail.xml", str(etc)): edited, ("iredmail.xml", str(usr)): shipped}, read))
    lines = probe(capsys)
    assert lines == ["firewalld=stopped", "zone=present",
                     "zone.permanent.service=yes", "zone.permanent.port=yes",
                     "zone.runtime.service=no", "zone.runtime.port=no"]
    assert read == [("iredmail.xml", str(etc))]  # the edited zone, which is what firewalld would load
    found = facts.parse("\n".join(lines))
    assert found.firewalld == "stopped" and found.permanent == ZoneLayer(True, True)
    assert found.runtime == ZoneLayer(False, False)


def test_stopped_a_zone_only_the_package_ships_is_read_from_there(monkeypatch, capsys, folders):
    _, usr = folders
    (usr / "public.xml").write_text("<zone/>")
    read: list = []
    library(monkeypatch, None, reader({("public.xml", str(usr)): types.SimpleNamespace(services=["smtps"], ports=[])},
                                      read))
    assert probe(capsys, zone="public")[:4] == ["firewalld=stopped", "zone=present", "zone.permanent.service=yes",
                                                "zone.permanent.port=no"]
    assert read == [("public.xml", str(usr))]


def test_stopped_and_no_zone_file_is_missing(monkeypatch, capsys, folders):
    read: list = []
    library(monkeypatch, None, reader({}, read))
    assert probe(capsys) == ["firewalld=stopped", "zone=missing"]
    assert read == []


def test_stopped_a_zone_file_firewalld_cannot_read_is_unknown_not_missing(monkeypatch, capsys, folders):
    etc, _ = folders
    (etc / "iredmail.xml").write_text("<zone")
    library(monkeypatch, None, reader({("iredmail.xml", str(etc)): ValueError("not well-formed")}, []))
    lines = probe(capsys)
    assert lines == ["firewalld=stopped", "zone=unknown"]
    assert facts.parse("\n".join(lines)).zone == "unknown"


def test_no_firewalld_library_at_all_is_stopped_and_its_zone_file_unknown(monkeypatch, capsys, folders):
    etc, _ = folders
    (etc / "iredmail.xml").write_text("<zone/>")
    library(monkeypatch)
    assert probe(capsys) == ["firewalld=stopped", "zone=unknown"]


def test_a_failing_client_falls_back_to_the_files(monkeypatch, capsys, folders):
    """Any error of the bus (no D-Bus socket, a library that breaks on import) reads the files instead."""

    class Broken:
        def __init__(self) -> None:
            raise OSError("no D-Bus socket")

    library(monkeypatch, Broken, reader({}, []))
    assert probe(capsys) == ["firewalld=stopped", "zone=missing"]


def test_run_as_the_host_runs_it_zone_service_port_from_its_arguments(monkeypatch, capsys):
    permanent = Settings(services=["smtps"], ports=[])
    library(monkeypatch, client({"iredmail": (permanent, Settings(ports=[("465", "tcp")]))}))
    monkeypatch.setattr(sys, "argv", ["zone_probe", "iredmail", "smtps", "465/tcp"])
    runpy.run_path(zone_probe.__file__, run_name="__main__")
    assert capsys.readouterr().out.splitlines() == [
        "firewalld=running", "zone=present", "zone.permanent.service=yes", "zone.permanent.port=no",
        "zone.runtime.service=no", "zone.runtime.port=yes"]
