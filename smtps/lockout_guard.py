"""The lockout guard: run ON a mail host, by its own python3 with firewalld's own library, right before a firewalld
reload. It judges the configuration that reload will load (the permanent files as they are on disk now, this run's
change included, and any permanent edit somebody left pending), not the running one, and answers one question: will
the SSH connection this run came in on still be allowed? Exit 0: yes. Exit 1: no, or it cannot tell; the reason,
and what to check, on stdout. It fails closed: anything it cannot decide is a refusal.

Standard library and firewalld only: it is shipped inside the host scripts as it is (never rendered), and runs on
hosts that have nothing of this project. The judgement (`verdict`) is pure and works on plain data, so it is tested
without a host; `load` reads a host's firewalld files with firewalld's own readers.

How firewalld picks the zone of an incoming connection (firewalld.zones(5), "How to set or change a zone for a
connection"): a zone bound to the packet's source address (an address, a network, an ipset, a MAC) first; then the
zone bound to the interface it came in on; then the default zone. After a reload only the permanent bindings remain:
runtime-only bindings are dropped unless firewalld.conf says FlushAllOnReload=no (NetworkManager may bind an
interface again, so a runtime binding is judged too). Rich rules that reject or drop are evaluated before those that
accept (firewalld.richlanguage(5)); so any deny rule that matches is a refusal here.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field

ETC = "/etc/firewalld"
USR = "/usr/lib/firewalld"
_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")


class Undecidable(Exception):  # noqa: N818 - a verdict, not an error of the program
    """The guard cannot tell whether SSH survives: the message says what to check."""


@dataclass(frozen=True)
class Rule:
    """One rich rule, reduced to what matters for an incoming TCP connection."""

    text: str
    action: str  # accept, reject, drop, or "" (log, audit, mark: no verdict)
    family: str = ""  # ipv4, ipv6 or "" (both)
    source: str = ""  # an address or network, "ipset:NAME", "mac:..." or ""
    source_invert: bool = False
    destination: str = ""
    destination_invert: bool = False
    element: tuple[str, ...] = ()  # ("service", NAME) | ("port", PORT, PROTO) | ("protocol", P) | ("other", KIND)


@dataclass(frozen=True)
class Zone:
    name: str
    target: str = "default"
    services: tuple[str, ...] = ()
    ports: tuple[tuple[str, str], ...] = ()
    sources: tuple[str, ...] = ()
    interfaces: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Policy:
    name: str
    ingress: tuple[str, ...]
    egress: tuple[str, ...]
    target: str = "CONTINUE"
    services: tuple[str, ...] = ()
    ports: tuple[tuple[str, str], ...] = ()
    rules: tuple[Rule, ...] = ()


@dataclass
class Config:
    """The permanent configuration a reload loads, plus the runtime facts that survive it."""

    default_zone: str
    flush_all_on_reload: bool = True
    zones: dict[str, Zone] = field(default_factory=dict)
    services: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)  # includes resolved
    ipsets: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # name: (type, entries)
    policies: tuple[Policy, ...] = ()
    direct_rules: int = 0
    runtime_zone_of_interface: str = ""  # the binding firewalld has now, which NetworkManager may restore


@dataclass(frozen=True)
class Connection:
    client: str
    server: str
    port: int
    interface: str  # the interface the connection comes in on


def _port_covers(spec: str, port: int) -> bool:
    low, _, high = spec.partition("-")
    try:
        return int(low) <= port <= int(high or low)
    except ValueError:
        return False


def _ports_allow(ports: tuple[tuple[str, str], ...], port: int) -> bool:
    return any(protocol == "tcp" and _port_covers(spec, port) for spec, protocol in ports)


def _in(address: str, spec: str, config: Config) -> bool:
    """Is `address` in `spec` (an address, a network, or ipset:NAME)? Undecidable where it cannot be known here."""
    ip = ipaddress.ip_address(address)
    if spec.startswith("ipset:"):
        name = spec[len("ipset:"):]
        if name not in config.ipsets:
            raise Undecidable(f"ipset {name} is used but not defined in the permanent configuration")
        kind, entries = config.ipsets[name]
        if kind not in ("hash:ip", "hash:net"):
            raise Undecidable(f"ipset {name} is of type {kind}, which the guard does not evaluate")
        return any(_in(address, entry, config) for entry in entries)
    if spec.startswith("mac:") or _MAC.fullmatch(spec):
        raise Undecidable(f"a source is a MAC address ({spec.removeprefix('mac:')}), which the guard cannot match")
    if "-" in spec and "/" not in spec:  # an ipset range: FIRST-LAST
        first, last = (ipaddress.ip_address(part) for part in spec.split("-", 1))
        return first.version == ip.version and first <= ip <= last
    network = ipaddress.ip_network(spec, strict=False)
    return network.version == ip.version and ip in network


def _element_matches(rule: Rule, conn: Connection, config: Config) -> bool:
    if not rule.element:
        return True  # no element: the rule is about all traffic of its source
    kind = rule.element[0]
    if kind == "service":
        name = rule.element[1]
        if name not in config.services:
            raise Undecidable(f"rich rule '{rule.text}' names service {name}, which is defined nowhere")
        return _ports_allow(config.services[name], conn.port)
    if kind == "port":
        return rule.element[2] == "tcp" and _port_covers(rule.element[1], conn.port)
    if kind == "protocol":
        return rule.element[1] in ("tcp", "6")
    if kind == "source-port":
        raise Undecidable(f"rich rule '{rule.text}' matches a source port, which differs for every login")
    return False  # icmp, masquerade, forward-port, tcp-mss-clamp: not about a TCP connection to this host


def _matches(rule: Rule, conn: Connection, config: Config) -> bool:
    version = ipaddress.ip_address(conn.client).version
    if rule.family and rule.family != f"ipv{version}":
        return False
    if rule.source and _in(conn.client, rule.source, config) == rule.source_invert:
        return False
    if rule.destination and _in(conn.server, rule.destination, config) == rule.destination_invert:
        return False
    return _element_matches(rule, conn, config)


def _deny(rules: tuple[Rule, ...], conn: Connection, config: Config, where: str) -> None:
    for rule in rules:
        if rule.action in ("reject", "drop"):
            try:
                hit = _matches(rule, conn, config)
            except Undecidable as err:
                raise Undecidable(f"{where}: {err}") from None
            if hit:
                raise Undecidable(f"{where}: rich rule '{rule.text}' would {rule.action} this SSH connection")


def _accepts(rules: tuple[Rule, ...], conn: Connection, config: Config) -> bool:
    for rule in rules:
        if rule.action == "accept":
            try:
                if _matches(rule, conn, config):
                    return True
            except Undecidable:
                continue  # an accept the guard cannot evaluate is simply not counted
    return False


def _allows(services: tuple[str, ...], ports: tuple[tuple[str, str], ...], conn: Connection, config: Config,
            where: str) -> bool:
    if _ports_allow(ports, conn.port):
        return True
    for name in services:
        if name not in config.services:
            # firewalld refuses to load a zone that uses an undefined service: everything in it would be lost.
            raise Undecidable(f"{where} uses service {name}, which is defined nowhere: firewalld would not load it")
        if _ports_allow(config.services[name], conn.port):
            return True
    return False


def zones_of(conn: Connection, config: Config) -> list[tuple[str, str]]:
    """The zones that may carry the connection after a reload, each with why: every one must allow it."""
    by_source = []
    for zone in config.zones.values():
        for source in zone.sources:
            if _in(conn.client, source, config):
                by_source.append((zone.name, f"its source {source}"))
    if by_source:
        return by_source
    bound = [zone.name for zone in config.zones.values() if conn.interface in zone.interfaces]
    found = [(name, f"interface {conn.interface}") for name in bound] or [
        (config.default_zone, f"the default zone (interface {conn.interface} is bound to no zone permanently)")]
    runtime = config.runtime_zone_of_interface
    if runtime and runtime not in [name for name, _ in found]:
        why = "kept by FlushAllOnReload=no" if not config.flush_all_on_reload else "NetworkManager may bind it again"
        found.append((runtime, f"interface {conn.interface}'s runtime binding ({why})"))
    return found


def verdict(conn: Connection, config: Config) -> str:
    """"" when the connection survives a reload into `config`; else why not. Raises Undecidable."""
    if conn.interface == "lo":
        return ""  # firewalld accepts everything on the loopback interface
    if config.direct_rules:
        raise Undecidable(f"{ETC}/direct.xml has {config.direct_rules} direct rule(s), which the guard does not "
                          "evaluate")
    version = ipaddress.ip_address(conn.client).version
    for name, why in zones_of(conn, config):
        zone = config.zones.get(name)
        if zone is None:
            raise Undecidable(f"zone {name} ({why}) is not in the permanent configuration")
        where = f"zone {name} ({why})"
        _deny(zone.rules, conn, config, where)
        policies = [p for p in config.policies if "HOST" in p.egress and ("ANY" in p.ingress or name in p.ingress)]
        allowed = zone.target == "ACCEPT" or _allows(zone.services, zone.ports, conn, config, where) or \
            _accepts(zone.rules, conn, config)
        for policy in policies:
            pwhere = f"policy {policy.name}"
            _deny(policy.rules, conn, config, pwhere)
            if policy.target in ("REJECT", "DROP"):
                raise Undecidable(f"{pwhere} has target {policy.target} for traffic to this host")
            allowed = allowed or policy.target == "ACCEPT" or \
                _allows(policy.services, policy.ports, conn, config, pwhere) or _accepts(policy.rules, conn, config)
        if not allowed:
            return (f"a firewalld reload would cut SSH: this connection (from {conn.client}, IPv{version}, to port "
                    f"{conn.port}/tcp) comes in through {where}, whose configuration after this change does not "
                    f"allow it. Allow it permanently first (firewall-cmd --permanent --zone={name} "
                    f"--add-port={conn.port}/tcp, or --add-service=ssh if sshd listens on 22)")
    return ""


# --- reading a host (firewalld's own readers; not used by the unit tests) ------------------------------------------
def _rule(text: str) -> Rule:
    from firewall.core import rich

    parsed = rich.Rich_Rule(rule_str=text)
    action = {rich.Rich_Accept: "accept", rich.Rich_Reject: "reject", rich.Rich_Drop: "drop"}.get(
        type(parsed.action), "")
    element: tuple[str, ...] = ()
    item = parsed.element
    if isinstance(item, rich.Rich_Service):
        element = ("service", item.name)
    elif isinstance(item, rich.Rich_Port):
        element = ("port", str(item.port), item.protocol)
    elif isinstance(item, rich.Rich_Protocol):
        element = ("protocol", str(item.value))
    elif isinstance(item, rich.Rich_SourcePort):
        element = ("source-port", str(item.port), item.protocol)
    elif item is not None:
        element = ("other", type(item).__name__)
    source = destination = ""
    source_invert = destination_invert = False
    if parsed.source:
        src = parsed.source
        source = src.addr or (f"ipset:{src.ipset}" if src.ipset else f"mac:{src.mac}")
        source_invert = bool(src.invert)
    if parsed.destination:
        dst = parsed.destination
        destination = dst.addr or f"ipset:{dst.ipset}"
        destination_invert = bool(dst.invert)
    return Rule(text, action, parsed.family or "", source, source_invert, destination, destination_invert, element)


def _names(kind: str) -> dict[str, str]:
    """Every object of a kind (zones, services, ipsets, policies) and the folder it loads from: /etc wins."""
    found = {}
    for folder in (f"{USR}/{kind}", f"{ETC}/{kind}"):
        if os.path.isdir(folder):
            for entry in sorted(os.listdir(folder)):
                if entry.endswith(".xml"):
                    found[entry[:-4]] = folder
    return found


def load(interface: str) -> Config:
    from firewall.core.io.firewalld_conf import firewalld_conf
    from firewall.core.io.ipset import ipset_reader
    from firewall.core.io.service import service_reader
    from firewall.core.io.zone import zone_reader

    conf = firewalld_conf(f"{ETC}/firewalld.conf")
    conf.read()
    flush = (conf.get("FlushAllOnReload") or "yes").lower() not in ("no", "false", "0")
    config = Config(default_zone=conf.get("DefaultZone") or "public", flush_all_on_reload=flush)
    raw_services = {}
    for name, folder in _names("services").items():
        service = service_reader(f"{name}.xml", folder)
        raw_services[name] = (tuple(service.ports), tuple(getattr(service, "includes", ()) or ()))

    def ports_of(name: str, seen: frozenset[str] = frozenset()) -> tuple[tuple[str, str], ...]:
        ports, includes = raw_services[name]
        for inner in includes:
            if inner in raw_services and inner not in seen:
                ports += ports_of(inner, seen | {name})
        return ports

    config.services = {name: ports_of(name) for name in raw_services}
    for name, folder in _names("zones").items():
        zone = zone_reader(f"{name}.xml", folder)
        target = "ACCEPT" if zone.target == "ACCEPT" else zone.target
        config.zones[name] = Zone(name, target, tuple(zone.services), tuple(zone.ports), tuple(zone.sources),
                                  tuple(zone.interfaces), tuple(_rule(text) for text in zone.rules_str))
    for name, folder in _names("ipsets").items():
        ipset = ipset_reader(f"{name}.xml", folder)
        config.ipsets[name] = (ipset.type, tuple(ipset.entries))
    policies = []
    if _names("policies"):
        from firewall.core.io.policy import policy_reader

        for name, folder in _names("policies").items():
            policy = policy_reader(f"{name}.xml", folder)
            policies.append(Policy(name, tuple(policy.ingress_zones), tuple(policy.egress_zones), policy.target,
                                   tuple(policy.services), tuple(policy.ports),
                                   tuple(_rule(text) for text in policy.rules_str)))
    config.policies = tuple(policies)
    direct = f"{ETC}/direct.xml"
    if os.path.exists(direct):
        with open(direct) as handle:
            text = handle.read()
        config.direct_rules = text.count("<rule") + text.count("<passthrough")
    from firewall.client import FirewallClient

    client = FirewallClient()
    if not client.connected:
        raise Undecidable("firewalld is not answering on D-Bus")
    config.runtime_zone_of_interface = client.getZoneOfInterface(interface) or ""
    return config


def ingress(client: str, server: str) -> str:
    """The interface a packet from `client` to `server` comes in on: the one the host routes its replies through
    (firewalld classifies by the ingress interface, not by the interface that owns the address)."""
    out = subprocess.run(["ip", "-o", "route", "get", client, "from", server], capture_output=True, text=True,
                         check=False).stdout.split()
    if "dev" not in out:
        raise Undecidable(f"no route from {server} back to {client}")
    return out[out.index("dev") + 1]


def main() -> int:
    parts = os.environ.get("SSH_CONNECTION", "").split()
    try:
        if len(parts) != 4:
            raise Undecidable("SSH_CONNECTION is not set, so the connection to protect is unknown (run over SSH; "
                              "with sudo, keep SSH_CONNECTION)")
        client, _, server, port = parts
        client, server = client.removeprefix("::ffff:"), server.removeprefix("::ffff:")
        conn = Connection(client, server, int(port), ingress(client, server))
        problem = verdict(conn, load(conn.interface))
    except Undecidable as err:
        problem = (f"cannot tell whether SSH survives a firewalld reload: {err}. Check it, or allow SSH so that "
                   "the guard can see it (a zone's port or service)")
    except Exception as err:  # noqa: BLE001 - fail closed on anything at all
        problem = f"cannot tell whether SSH survives a firewalld reload: the guard failed: {type(err).__name__}: {err}"
    if problem:
        print(f"{problem}; firewalld was not reloaded")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
