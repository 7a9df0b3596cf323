"""The lockout guard: run ON a mail host, by its own python3 with firewalld's own library, right before a firewalld
reload. It judges the configuration that reload will load (the permanent files as they are on disk now, this run's
change included, and any permanent edit somebody left pending), not the running one, and answers one question: will
the SSH connection this run came in on still be allowed? Exit 0: yes. Exit 1: no, or it cannot tell; the reason,
and what to check, on stdout. It fails closed: anything it cannot decide is a refusal.

Python 3.6 and later, like the other host programs (docs/servers.md: RHEL 8's firewalld runs on platform-python 3.6):
NamedTuple records rather than dataclasses (3.7), typing's generics in annotations, which 3.6 evaluates.

Standard library and firewalld only: it is shipped inside the host scripts as it is (never rendered), and runs on
hosts that have nothing of this project. The judgement (`verdict`) is pure and works on plain data, so it is tested
without a host; `load` reads a host's firewalld files with firewalld's own readers.

How firewalld picks the zone of an incoming connection (firewalld.zones(5), "How to set or change a zone for a
connection"): a zone bound to the packet's source address (an address, a network, an ipset, a MAC) first; then the
zone bound to the interface it came in on; then the default zone. After a reload only the permanent bindings remain:
runtime-only bindings are dropped unless firewalld.conf says FlushAllOnReload=no (NetworkManager may bind an
interface again, so a runtime binding is judged too). Rich rules that reject or drop are evaluated before those that
accept (firewalld.richlanguage(5)); so any deny rule that matches is a refusal here.

An interface name ending in "+" binds every interface that starts with what comes before it ("eth+": eth0, eth1).
Zone files in a sub-folder of /etc/firewalld/zones/ are combined by firewalld into one zone named after the folder;
the configuration is read by firewalld's own loader (the one `firewall-offline-cmd` uses), so those and everything
else it loads are read as firewalld reads them. firewalld 2.x's `ingress-priority` can put a zone bound to an
interface ahead of one bound to a source: where any zone has one, every zone that may classify the connection (by
source, by interface, the default zone) is judged. A policy with a priority above 0 runs after the zones, so its
accepts do not count (a zone's target decides before it); its rejects still refuse.

And it refuses a reload that would make live anything this run did not write: a permanent edit somebody left
pending, or a runtime-only change a reload would drop, is named, and nothing is reloaded (`pending`). The reload is
then never the moment someone else's edit goes live unseen. The caller names the files it changed, each with its
copy from before the run ("-": there was none): those are compared as they were, but for a service file, which
the run writes whole (an edit pending in it is replaced, never made live). Compared: every object firewalld's
loader reads, the default zone, the firewalld.conf settings the daemon shows as it runs them (LogDenied, Lockdown,
IPv6_rpfilter) and the lockdown whitelist; firewalld.conf's other settings are judged by the file's time against
the daemon's start (`conf_problem`). The guard writes nothing under /etc/firewalld: its "before" view is a
private copy.

`--pending=drop-runtime-only` (the host's firewalldPending) lets the reload drop what only the running
configuration has in rich rules, ipset entries and direct rules: fail2ban's firewalld actions keep their bans
there, runtime only, and would otherwise stop every reload. Anything the permanent configuration has that is not
running is still refused. firewalld keeps no history, so a rich rule (ipset entry, direct rule) removed permanently
and not yet reloaded looks the same as one added at runtime only: with this setting the reload removes it too.
"""

import ipaddress
import os
import re
import subprocess
import sys
from typing import Dict, FrozenSet, List, NamedTuple, Optional, Tuple

ETC = "/etc/firewalld"
FIREWALLD_CONF = "firewalld.conf"  # the names of the two files in the pending comparison
WHITELIST = "the lockdown whitelist"
_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")


class Undecidable(Exception):  # noqa: N818 - a verdict, not an error of the program
    """The guard cannot tell whether SSH survives: the message says what to check."""


class Rule(NamedTuple):
    """One rich rule, reduced to what matters for an incoming TCP connection."""

    text: str
    action: str  # accept, reject, drop, or "" (log, audit, mark: no verdict)
    family: str = ""  # ipv4, ipv6 or "" (both)
    source: str = ""  # an address or network, "ipset:NAME", "mac:..." or ""
    source_invert: bool = False
    destination: str = ""
    destination_invert: bool = False
    element: Tuple[str, ...] = ()  # ("service", NAME) | ("port", PORT, PROTO) | ("protocol", P) | ("other", KIND)


class Zone(NamedTuple):
    name: str
    target: str = "default"
    services: Tuple[str, ...] = ()
    ports: Tuple[Tuple[str, str], ...] = ()
    sources: Tuple[str, ...] = ()
    interfaces: Tuple[str, ...] = ()
    rules: Tuple[Rule, ...] = ()
    ingress_priority: int = 0  # firewalld >= 2.0; 0 is its default


class Policy(NamedTuple):
    name: str
    ingress: Tuple[str, ...]
    egress: Tuple[str, ...]
    target: str = "CONTINUE"
    services: Tuple[str, ...] = ()
    ports: Tuple[Tuple[str, str], ...] = ()
    rules: Tuple[Rule, ...] = ()
    priority: int = -1  # firewalld's default: before the zones


class Config:
    """The permanent configuration a reload loads, plus the runtime facts that survive it."""

    def __init__(self, default_zone: str, flush_all_on_reload: bool = True,
                 zones: "Optional[Dict[str, Zone]]" = None,
                 services: "Optional[Dict[str, Tuple[Tuple[str, str], ...]]]" = None,  # includes resolved
                 ipsets: "Optional[Dict[str, Tuple[str, Tuple[str, ...]]]]" = None,  # name: (type, entries)
                 policies: "Tuple[Policy, ...]" = (), direct_rules: int = 0,
                 runtime_zone_of_interface: str = "") -> None:
        self.default_zone = default_zone
        self.flush_all_on_reload = flush_all_on_reload
        self.zones = {} if zones is None else zones
        self.services = {} if services is None else services
        self.ipsets = {} if ipsets is None else ipsets
        self.policies = policies
        self.direct_rules = direct_rules
        # The binding firewalld has now, which NetworkManager may restore.
        self.runtime_zone_of_interface = runtime_zone_of_interface


class Connection(NamedTuple):
    client: str
    server: str
    port: int
    interface: str  # the interface the connection comes in on


def _without(text: str, prefix: str) -> str:
    """`text` without a leading `prefix`: str.removeprefix, which is 3.9 (the host's Python may be 3.6)."""
    return text[len(prefix):] if text.startswith(prefix) else text


def _port_covers(spec: str, port: int) -> bool:
    low, _, high = spec.partition("-")
    try:
        return int(low) <= port <= int(high or low)
    except ValueError:
        return False


def _ports_allow(ports: Tuple[Tuple[str, str], ...], port: int) -> bool:
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
        raise Undecidable(f"a source is a MAC address ({_without(spec, 'mac:')}), which the guard cannot match")
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


def _deny(rules: Tuple[Rule, ...], conn: Connection, config: Config, where: str) -> None:
    for rule in rules:
        if rule.action in ("reject", "drop"):
            try:
                hit = _matches(rule, conn, config)
            except Undecidable as err:
                raise Undecidable(f"{where}: {err}") from None
            if hit:
                raise Undecidable(f"{where}: rich rule '{rule.text}' would {rule.action} this SSH connection")


def _accepts(rules: Tuple[Rule, ...], conn: Connection, config: Config) -> bool:
    for rule in rules:
        if rule.action == "accept":
            try:
                if _matches(rule, conn, config):
                    return True
            except Undecidable:
                continue  # an accept the guard cannot evaluate is simply not counted
    return False


def _allows(services: Tuple[str, ...], ports: Tuple[Tuple[str, str], ...], conn: Connection, config: Config,
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


def interface_matches(spec: str, interface: str) -> bool:
    """firewalld's interface names: a trailing "+" is a wildcard for the rest of the name."""
    return spec == interface or (spec.endswith("+") and interface.startswith(spec[:-1]))


def zones_of(conn: Connection, config: Config) -> List[Tuple[str, str]]:
    """The zones that may carry the connection after a reload, each with why: every one must allow it."""
    by_source = []
    for zone in config.zones.values():
        for source in zone.sources:
            if _in(conn.client, source, config):
                by_source.append((zone.name, f"its source {source}"))
    prioritised = any(zone.ingress_priority for zone in config.zones.values())
    if by_source and not prioritised:
        return by_source
    found = [(zone.name, f"interface {spec}") for zone in config.zones.values() for spec in zone.interfaces
             if interface_matches(spec, conn.interface)]
    found = found or [
        (config.default_zone, f"the default zone (interface {conn.interface} is bound to no zone permanently)")]
    if prioritised:  # the order between them is firewalld's to decide: every one is judged
        found = by_source + [(name, f"{why}, ingress-priority set") for name, why in found]
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
            if policy.priority > 0:
                continue  # after the zone: its target has decided before this policy's accepts are reached
            allowed = allowed or policy.target == "ACCEPT" or \
                _allows(policy.services, policy.ports, conn, config, pwhere) or _accepts(policy.rules, conn, config)
        if not allowed:
            return (f"a firewalld reload would cut SSH: this connection (from {conn.client}, IPv{version}, to port "
                    f"{conn.port}/tcp) comes in through {where}, whose configuration after this change does not "
                    f"allow it. Allow it permanently first (firewall-cmd --permanent --zone={name} "
                    f"--add-port={conn.port}/tcp, or --add-service=ssh if sshd listens on 22)")
    return ""


# --- pending edits: what a reload would change that this run did not write ----------------------------------------
# Names only, never a verdict: firewalld ignores them when it filters.
_WORDS = frozenset({"version", "short", "description"})
_SHOWN = 8  # differences named in one refusal; the rest are counted
PENDING_CHOICES = ("refuse", "drop-runtime-only")
# Where runtime-only state may be dropped by the reload under drop-runtime-only: what fail2ban's firewalld actions
# (firewallcmd-rich-rules, firewallcmd-ipset, firewallcmd-new/multiport/allports) add at runtime for their bans.
_RUNTIME_ONLY = frozenset({("zone", "rules_str"), ("ipset", "entries"), ("direct", "chains"), ("direct", "rules"),
                           ("direct", "passthroughs")})


def _value(value: object) -> object:
    """A setting as firewalld means it: a list is a set (the order of ports, services or rich rules decides
    nothing), an item of it keeps its order (a forward port's from and to), and empty is empty whatever its type."""
    def item(inner: object) -> object:
        if isinstance(inner, (list, tuple)):
            return tuple(item(part) for part in inner)
        if isinstance(inner, dict):
            return tuple(sorted((str(key), item(part)) for key, part in inner.items()))
        return inner

    if not value:
        return None
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(item(part) for part in value)
    return item(value)


def _show(values: object) -> str:
    if isinstance(values, frozenset):
        return " ".join(sorted(" ".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in values))
    return "none" if values is None else str(values)


def pending(expected: Dict[str, dict], live: Dict[str, dict], ours: FrozenSet[str] = frozenset(),
            drop_runtime_only: bool = False) -> List[str]:
    """How the configuration a reload would load (`expected`: "zone NAME", "service NAME", ... each with its
    settings, this run's own files as they were before it) differs from the running one (`live`), in words; `ours`
    are objects this run writes whole (its service file), which nobody else's edit reaches through. An interface
    bound only at runtime is not a difference: NetworkManager binds interfaces so, and the judgement of runtime
    bindings is `zones_of`'s. `drop_runtime_only`: what only the running side has in _RUNTIME_ONLY's settings is
    not a difference either."""
    found = []
    for key in sorted((set(expected) | set(live)) - ours):
        if key not in live:
            found.append(f"{key} is defined permanently but not running")
            continue
        if key not in expected:
            found.append(f"{key} is running but not defined permanently")
            continue
        want, have = expected[key], live[key]
        for name in sorted((set(want) | set(have)) - _WORDS):
            permanent, running = _value(want.get(name)), _value(have.get(name))
            if name == "interfaces" and key.startswith("zone "):
                running = (running or frozenset()) & (permanent or frozenset()) or None
            if permanent == running:
                continue
            # firewalld's own fields read as words (forward_ports: forward ports); firewalld.conf's keep their name.
            words = name.replace("_", " ") if name.islower() else name
            setting = {"rules_str": "rich rules"}.get(name, words)
            if isinstance(permanent, frozenset) or isinstance(running, frozenset):
                only_permanent = (permanent or frozenset()) - (running or frozenset())
                only_running = (running or frozenset()) - (permanent or frozenset())
                if drop_runtime_only and (key.split(" ", 1)[0], name) in _RUNTIME_ONLY:
                    only_running = frozenset()
                    if not only_permanent:
                        continue
                parts = [f"{_show(only_permanent)} pending (permanent only)"] if only_permanent else []
                parts += [f"{_show(only_running)} running only"] if only_running else []
                found.append(f"{key}, {setting}: {', '.join(parts)}")
            else:
                found.append(f"{key}, {setting}: {_show(permanent)} pending (running: {_show(running)})")
    return found


def known_mode(mode: str) -> None:
    if mode not in PENDING_CHOICES:
        raise Undecidable(f"--pending={mode} is not one of {', '.join(PENDING_CHOICES)}")


def pending_problem(expected: Dict[str, dict], live: Dict[str, dict], ours: FrozenSet[str] = frozenset(),
                    mode: str = PENDING_CHOICES[0]) -> str:
    known_mode(mode)
    differences = pending(expected, live, ours, drop_runtime_only=mode == "drop-runtime-only")
    if not differences:
        return ""
    shown = "; ".join(differences[:_SHOWN])
    more = f"; and {len(differences) - _SHOWN} more" if len(differences) > _SHOWN else ""
    # Said only where the setting would change the outcome for some of it (fail2ban's bans, most often).
    hint = "" if mode != "refuse" or pending(expected, live, ours, drop_runtime_only=True) == differences else (
        ". What is only running in rich rules, ipset entries or direct rules (fail2ban's firewalld bans are kept "
        "so) is dropped by any reload: the host setting firewalldPending: drop-runtime-only lets this reload drop it")
    return ("the permanent firewalld configuration differs from the running one in what this run did not write, "
            f"and a reload would make that live unseen: {shown}{more}. Make it live yourself (check it, then "
            f"firewall-cmd --reload) or undo it, then run this again{hint}")


# --- reading a host (firewalld's own loader and D-Bus client; not used by the unit tests) -------------------------
def _rule(text: str) -> Rule:
    from firewall.core import rich

    parsed = rich.Rich_Rule(rule_str=text)
    action = {rich.Rich_Accept: "accept", rich.Rich_Reject: "reject", rich.Rich_Drop: "drop"}.get(
        type(parsed.action), "")
    element: Tuple[str, ...] = ()
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


def offline(etc: str = ETC):  # noqa: ANN201 - firewalld's Firewall, imported on the host only
    """The configuration a reload would load from `etc`, by firewalld's own loader, offline (no backend: nothing
    reaches the kernel; `firewall-offline-cmd` reads it so): /usr/lib and /etc, zone sub-folders combined."""
    from firewall import config as paths
    from firewall.core.fw import Firewall

    paths.set_system_config_paths(etc)
    try:
        fw = Firewall(offline=True)
        fw.start()
    finally:
        paths.set_system_config_paths(ETC)
    return fw


def _target(target: str) -> str:
    return "default" if "{" in target else target  # firewalld's internal name of the default target


def load(fw, runtime_zone: str) -> Config:  # noqa: ANN001
    conf = fw._firewalld_conf  # noqa: SLF001 - firewalld.conf as this loader read it
    flush = (conf.get("FlushAllOnReload") or "yes").lower() not in ("no", "false", "0")
    config = Config(default_zone=fw.get_default_zone(), flush_all_on_reload=flush,
                    runtime_zone_of_interface=runtime_zone)
    raw = {name: fw.service.get_service(name) for name in fw.service.get_services()}

    def ports_of(name: str, seen: FrozenSet[str] = frozenset()) -> Tuple[Tuple[str, str], ...]:
        ports = tuple(tuple(port) for port in raw[name].ports)
        for inner in getattr(raw[name], "includes", ()) or ():
            if inner in raw and inner not in seen:
                ports += ports_of(inner, seen | {name})
        return ports

    config.services = {name: ports_of(name) for name in raw}
    for name in fw.zone.get_zones():
        zone = fw.zone.get_zone(name)
        config.zones[name] = Zone(name, _target(zone.target), tuple(zone.services), tuple(map(tuple, zone.ports)),
                                  tuple(zone.sources), tuple(zone.interfaces),
                                  tuple(_rule(text) for text in zone.rules_str),
                                  int(getattr(zone, "ingress_priority", 0) or 0))
    for name in fw.ipset.get_ipsets():
        ipset = fw.ipset.get_ipset(name)
        config.ipsets[name] = (ipset.type, tuple(ipset.entries))
    config.policies = tuple(
        Policy(name, tuple(policy.ingress_zones), tuple(policy.egress_zones), policy.target,
               tuple(policy.services), tuple(map(tuple, policy.ports)),
               tuple(_rule(text) for text in policy.rules_str), int(policy.priority))
        for name in fw.policy.get_policies_not_derived_from_zone()
        for policy in [fw.policy.get_policy(name)])
    direct = _direct_listed(fw.config.get_direct())  # counted rule by rule (the loader nests them by chain)
    config.direct_rules = len(direct["rules"]) + len(direct["passthroughs"])
    return config


def _kinds(fw) -> Dict[str, tuple]:  # noqa: ANN001
    """Each kind of object: its names and its settings in the loaded configuration."""
    return {
        "zone": (fw.zone.get_zones(), lambda name: fw.zone.get_zone(name).export_config_dict()),
        "policy": (fw.policy.get_policies_not_derived_from_zone(),
                   lambda name: fw.policy.get_policy(name).export_config_dict()),
        "service": (fw.service.get_services(), lambda name: fw.service.get_service(name).export_config_dict()),
        "ipset": (fw.ipset.get_ipsets(), lambda name: fw.ipset.get_ipset(name).export_config_dict()),
        "helper": (fw.helper.get_helpers(), lambda name: fw.helper.get_helper(name).export_config_dict()),
        "icmptype": (fw.icmptype.get_icmptypes(), lambda name: fw.icmptype.get_icmptype(name).export_config_dict()),
    }


def expected_of(fw) -> Dict[str, dict]:  # noqa: ANN001
    found = {f"{kind} {name}": read(name) for kind, (names, read) in _kinds(fw).items() for name in names}
    for key in [key for key in found if key.startswith("zone ")]:
        found[key] = {**found[key], "target": _target(found[key].get("target", ""))}
    found["direct configuration"] = _direct_listed(fw.config.get_direct())
    found["the default zone"] = {"name": fw.get_default_zone()}
    rpfilter = (fw._firewalld_conf.get("IPv6_rpfilter") or "yes").lower()  # noqa: SLF001 - as firewalld reads it
    found[FIREWALLD_CONF] = {"LogDenied": fw.get_log_denied(), "Lockdown": _yes(fw.policies.query_lockdown()),
                             "IPv6_rpfilter": _yes(rpfilter not in ("no", "false"))}
    whitelist = fw.policies.lockdown_whitelist
    found[WHITELIST] = {"commands": whitelist.get_commands(), "contexts": whitelist.get_contexts(),
                        "uids": whitelist.get_uids(), "users": whitelist.get_users()}
    return found


def _yes(value: object) -> str:
    return "yes" if value is True else "no" if value is False else f"unknown ({value!r})"


def _direct_listed(direct) -> Dict[str, list]:  # noqa: ANN001
    """The loader's direct configuration (nested by family and table) in the flat lists D-Bus answers with, so that
    the two layers compare, and a difference reads as the rule itself."""
    return {"chains": [(*key, chain) for key, chains in direct.get_all_chains().items() for chain in chains],
            "rules": [(*key, priority, *args) for key, rules in direct.get_all_rules().items()
                      for priority, args in rules.keys()],
            "passthroughs": [(ipv, *args) for ipv, passthroughs in direct.get_all_passthroughs().items()
                             for args in passthroughs]}


def live_of(client) -> Dict[str, dict]:  # noqa: ANN001
    """The running configuration, over D-Bus, in the loader's terms."""
    from firewall.core.io import helper, icmptype, ipset

    # The kinds D-Bus still answers as plain lists: their fields in the order of firewalld's own class for them.
    listed = {"ipset": ipset.IPSet, "helper": helper.Helper, "icmptype": icmptype.IcmpType}
    found = {}
    for kind, names, read in (
            ("zone", client.getZones(), client.getZoneSettings),
            ("policy", client.getPolicies(), client.getPolicySettings),
            ("service", client.listServices(), client.getServiceSettings),
            ("ipset", client.getIPSets(), client.getIPSetSettings),
            ("helper", client.getHelpers(), client.getHelperSettings),
            ("icmptype", client.listIcmpTypes(), client.getIcmpTypeSettings)):
        for name in names:
            settings = read(name)
            if hasattr(settings, "getSettingsDict"):
                found[f"{kind} {name}"] = settings.getSettingsDict()
            else:
                fields = [field for field, _ in listed[kind].IMPORT_EXPORT_STRUCTURE]
                found[f"{kind} {name}"] = dict(zip(fields, settings.settings))  # noqa: B905 - hosts' Python may predate strict=
    found["direct configuration"] = {
        "chains": [tuple(chain) for chain in client.getAllChains()],
        "rules": [(*rule[:4], *rule[4]) for rule in client.getAllRules()],
        "passthroughs": [(ipv, *args) for ipv, args in client.getAllPassthroughs()]}
    found["the default zone"] = {"name": client.getDefaultZone()}
    # The settings of firewalld.conf the daemon shows as it runs them (its config properties show the file instead).
    found[FIREWALLD_CONF] = {"LogDenied": client.getLogDenied(), "Lockdown": _yes(client.queryLockdown()),
                             "IPv6_rpfilter": _yes(client.get_property("IPv6_rpfilter"))}
    found[WHITELIST] = {"commands": client.getLockdownWhitelistCommands(),
                        "contexts": client.getLockdownWhitelistContexts(),
                        "uids": client.getLockdownWhitelistUids(), "users": client.getLockdownWhitelistUsers()}
    return found


def conf_problem(path: str, started: float) -> str:
    """firewalld.conf's other settings (FlushAllOnReload, AllowZoneDrifting, FirewallBackend, ...) are re-read by a
    reload, but the daemon shows only the file's values, never the ones it runs with: a change to the file since
    the daemon started (`started`, wall clock) may be pending, and is refused naming the file. A file removed since
    then shows in its folder's time."""
    import time

    try:  # a link swapped for one to an older file shows in the link's own time
        changed, what = max(os.stat(path).st_mtime, os.lstat(path).st_mtime), "was changed"
    except FileNotFoundError:
        changed, what = os.stat(os.path.dirname(path)).st_mtime, "is missing, and its folder was changed"
    if changed < started:
        return ""

    def when(moment: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(moment))

    return (f"{path} {what} at {when(changed)}, after firewalld started ({when(started)}); a reload re-reads it, "
            "and of its settings the guard can compare with the running ones only DefaultZone, LogDenied, Lockdown "
            "and IPv6_rpfilter, so any other edit in it would go live unseen. Check the file; once firewalld runs "
            "with it (restart firewalld, your own step), run this again")


def daemon_started(bus) -> float:  # noqa: ANN001 - dbus-python's bus, on the host only
    """When the running firewalld started (wall clock), from its process as D-Bus names it: /proc gives the start
    in clock ticks since boot, rounded down, so a file written as it started counts as changed after (fail closed)."""
    import time

    pid = int(bus.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus").GetConnectionUnixProcessID(
        "org.fedoraproject.FirewallD1", dbus_interface="org.freedesktop.DBus"))
    with open(f"/proc/{pid}/stat") as stat:
        ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime (the name may hold spaces)
    # time.CLOCK_BOOTTIME is 3.7's name for Linux's clock 7 (the host's Python may be 3.6).
    return time.time() - time.clock_gettime(getattr(time, "CLOCK_BOOTTIME", 7)) + ticks / os.sysconf("SC_CLK_TCK")


def own_files(args: List[str]) -> Dict[str, str]:
    """This run's files (TARGET BEFORE pairs, as `arm` takes them): each one firewalld loads, with its copy from
    before the run ("-": none)."""
    if len(args) % 2:
        raise Undecidable("the guard was given a file without its copy from before the run")
    found = {}
    for target, before in zip(args[::2], args[1::2]):  # noqa: B905 - hosts' Python may predate strict=
        if not target.startswith(f"{ETC}/") or "/../" in target or not target.endswith(".xml"):
            continue  # not loaded by firewalld (a zone's .old copy), so not compared
        found[target] = before
    return found


def written_whole(own: Dict[str, str]) -> FrozenSet[str]:
    """The objects of this run's files that it writes whole from its own template (a service file): what was
    pending in one is replaced, never made live."""
    return frozenset(f"service {os.path.basename(target)[:-4]}" for target in own
                     if os.path.dirname(target) == f"{ETC}/services")


def _copy_regular(source: str, target: str) -> None:
    """copytree's copy function for as_before: a regular file only (a link's target is read, as firewalld reads it);
    a FIFO or a device would hang the guard or feed it without end."""
    import shutil
    import stat

    if not stat.S_ISREG(os.stat(source).st_mode):
        raise Undecidable(f"{source} is not a regular file, which firewalld would not load as configuration")
    shutil.copy2(source, target)


def as_before(own: Dict[str, str], folder: str) -> str:
    """A private copy of /etc/firewalld in `folder` with this run's files as they were before it: what the running
    configuration should be if nobody else left an edit pending. The guard only reads the host's files: links are
    copied as what they point to (a zones/ folder that is a link to elsewhere is copied, never written through), and
    each file put back must land inside the copy."""
    import shutil

    copy = os.path.join(folder, "firewalld")
    try:
        shutil.copytree(ETC, copy, symlinks=False, copy_function=_copy_regular)
    except shutil.Error as err:  # a dangling link, an unreadable file: firewalld's own reading of it is unknown
        raise Undecidable(f"{ETC} cannot be read whole ({err.args[0][0][2]})") from None
    inside = os.path.realpath(copy)
    for target, before in own.items():
        path = os.path.join(copy, os.path.relpath(target, ETC))
        if os.path.commonpath([os.path.realpath(os.path.dirname(path)), inside]) != inside:
            raise Undecidable(f"{target} does not resolve inside the copy of {ETC}")
        if os.path.lexists(path):
            os.unlink(path)
        if before != "-":
            shutil.copyfile(before, path)
    return copy


def ingress(client: str, server: str) -> str:
    """The interface a packet from `client` to `server` comes in on: the one the host routes its replies through
    (firewalld classifies by the ingress interface, not by the interface that owns the address)."""
    out = subprocess.run(["ip", "-o", "route", "get", client, "from", server], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, check=False).stdout.split()
    if "dev" not in out:
        raise Undecidable(f"no route from {server} back to {client}")
    return out[out.index("dev") + 1]


def main(args: List[str]) -> int:
    import tempfile

    parts = os.environ.get("SSH_CONNECTION", "").split()
    mode = PENDING_CHOICES[0]
    if args and args[0].startswith("--pending="):
        mode, args = args[0][len("--pending="):], args[1:]
    try:
        known_mode(mode)
        if len(parts) != 4:
            raise Undecidable("SSH_CONNECTION is not set, so the connection to protect is unknown (run over SSH; "
                              "with sudo, keep SSH_CONNECTION)")
        own = own_files(args)
        client, _, server, port = parts
        client, server = _without(client, "::ffff:"), _without(server, "::ffff:")
        conn = Connection(client, server, int(port), ingress(client, server))
        from firewall.client import FirewallClient

        firewalld = FirewallClient()
        if not firewalld.connected:
            raise Undecidable("firewalld is not answering on D-Bus")
        fw = offline()
        problem = verdict(conn, load(fw, firewalld.getZoneOfInterface(conn.interface) or ""))
        if not problem:
            with tempfile.TemporaryDirectory(prefix="smtps-guard.") as folder:
                before = offline(as_before(own, folder)) if own else fw
                problem = pending_problem(expected_of(before), live_of(firewalld), written_whole(own), mode) or \
                    conf_problem(f"{ETC}/firewalld.conf", daemon_started(firewalld.bus))
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
    sys.exit(main(sys.argv[1:]))
