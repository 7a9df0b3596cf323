"""The lockout guard's judgement, on plain data: which zone carries the SSH connection after a reload, and whether
it still allows it. The lab tests run the same program on real hosts with firewalld's own readers."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from smtps_iredmail.core import lockout_guard
from smtps_iredmail.core.lockout_guard import (
    Config,
    Connection,
    Policy,
    Rule,
    Undecidable,
    Zone,
    as_before,
    conf_problem,
    interface_matches,
    own_files,
    pending,
    pending_problem,
    verdict,
    written_whole,
    zones_of,
)
from tests.conftest import require

SSH = (("22", "tcp"),)
CONN = Connection(client="10.1.0.5", server="10.1.0.6", port=22, interface="eth0")


def config(*zones: Zone, **extra) -> Config:
    return Config(default_zone="iredmail", zones={z.name: z for z in zones},
                  services={"ssh": SSH, "smtp": (("25", "tcp"),), "smtps": (("465", "tcp"),)}, **extra)


IREDMAIL = Zone("iredmail", services=("ssh", "smtp", "smtps"))


def test_the_default_zone_allowing_ssh_passes():
    assert verdict(CONN, config(IREDMAIL)) == ""


def test_the_default_zone_without_ssh_is_refused_naming_zone_and_fix():
    problem = verdict(CONN, config(Zone("iredmail", services=("smtp",))))
    assert problem.startswith("a firewalld reload would cut SSH") and "zone iredmail (the default zone" in problem
    assert "--permanent --zone=iredmail --add-port=22/tcp" in problem


def test_a_port_range_or_target_accept_allows_it():
    assert verdict(CONN, config(Zone("iredmail", ports=(("20-30", "tcp"),)))) == ""
    assert verdict(CONN, config(Zone("iredmail", target="ACCEPT"))) == ""
    assert verdict(CONN, config(Zone("iredmail", ports=(("22", "udp"),)))) != ""


def test_sshd_on_another_port_is_judged_on_that_port():
    conn = Connection("10.1.0.5", "10.1.0.6", 2222, "eth0")
    assert verdict(conn, config(IREDMAIL)) != ""
    assert verdict(conn, config(Zone("iredmail", ports=(("2222", "tcp"),)))) == ""


@pytest.mark.parametrize("source", ["10.1.0.0/16", "10.1.0.5", "ipset:admins"])
def test_a_zone_bound_to_the_clients_address_wins_over_the_interface(source):
    mgmt = Zone("mgmt", sources=(source,))
    ipsets = {"admins": ("hash:net", ("10.1.0.0/24",))}
    problem = verdict(CONN, config(IREDMAIL, mgmt, ipsets=ipsets))
    assert f"zone mgmt (its source {source})" in problem
    assert verdict(CONN, config(IREDMAIL, Zone("mgmt", sources=(source,), services=("ssh",)), ipsets=ipsets)) == ""


def test_a_source_that_does_not_match_leaves_the_interface_zone():
    assert verdict(CONN, config(IREDMAIL, Zone("mgmt", sources=("192.0.2.0/24", "2001:db8::/32")))) == ""


def test_an_ipset_range_and_an_ipset_of_another_type():
    assert zones_of(CONN, config(IREDMAIL, Zone("m", sources=("ipset:r",)),
                                 ipsets={"r": ("hash:ip", ("10.1.0.1-10.1.0.9",))}))[0][0] == "m"
    with pytest.raises(Undecidable, match="type hash:ip,port"):
        verdict(CONN, config(IREDMAIL, Zone("m", sources=("ipset:p",)), ipsets={"p": ("hash:ip,port", ("x",))}))
    with pytest.raises(Undecidable, match="not defined"):
        verdict(CONN, config(IREDMAIL, Zone("m", sources=("ipset:gone",))))


def test_a_mac_source_cannot_be_judged_and_an_ipv6_source_is_not_taken_for_one():
    with pytest.raises(Undecidable, match="MAC"):
        verdict(CONN, config(IREDMAIL, Zone("m", sources=("00:11:22:33:44:55",))))
    assert verdict(CONN, config(IREDMAIL, Zone("m", sources=("fe80::1:2:3:4",)))) == ""  # five colons, no MAC


def test_the_interface_bound_permanently_and_the_runtime_binding_are_both_judged():
    drop = Zone("drop", target="DROP", interfaces=("eth0",))
    assert "zone drop (interface eth0)" in verdict(CONN, config(IREDMAIL, drop))
    # Bound to drop only at runtime: a reload drops that binding, but NetworkManager may restore it.
    runtime = verdict(CONN, config(IREDMAIL, Zone("drop", target="DROP"), runtime_zone_of_interface="drop"))
    assert "runtime binding" in runtime
    assert verdict(CONN, config(IREDMAIL, runtime_zone_of_interface="iredmail")) == ""


@pytest.mark.parametrize(("rule", "refused"), [
    (Rule("r", "reject", "ipv4", "10.1.0.0/24", element=("service", "ssh")), True),
    (Rule("r", "drop", "ipv4", "10.1.0.0/24"), True),  # no element: all of that source's traffic
    (Rule("r", "drop", "ipv4", "10.1.0.0/24", source_invert=True), False),
    (Rule("r", "reject", "ipv6", element=("service", "ssh")), False),
    (Rule("r", "drop", element=("port", "465", "tcp")), False),
    (Rule("r", "drop", element=("protocol", "tcp")), True),
    (Rule("r", "", "ipv4", "10.1.0.0/24", element=("service", "ssh")), False),  # log only
])
def test_deny_rich_rules_that_match_refuse(rule, refused):
    problem = ""
    try:
        problem = verdict(CONN, config(Zone("iredmail", services=("ssh",), rules=(rule,))))
    except Undecidable as err:
        problem = str(err)
    assert bool(problem) is refused, problem


def test_an_accept_rich_rule_allows_and_a_source_port_rule_cannot_be_judged():
    accept = Rule("r", "accept", "ipv4", "10.1.0.0/24", element=("port", "22", "tcp"))
    assert verdict(CONN, config(Zone("iredmail", rules=(accept,)))) == ""
    sport = Rule("r", "drop", element=("source-port", "22", "tcp"))
    with pytest.raises(Undecidable, match="source port"):
        verdict(CONN, config(Zone("iredmail", services=("ssh",), rules=(sport,))))


def test_an_undefined_service_in_the_zone_cannot_be_judged():
    with pytest.raises(Undecidable, match="service gone, which is defined nowhere"):
        verdict(CONN, config(Zone("iredmail", services=("gone",))))


def test_direct_rules_and_rejecting_policies_cannot_be_judged():
    with pytest.raises(Undecidable, match="direct rule"):
        verdict(CONN, config(IREDMAIL, direct_rules=1))
    with pytest.raises(Undecidable, match="target REJECT"):
        verdict(CONN, config(IREDMAIL, policies=(Policy("p", ("ANY",), ("HOST",), "REJECT"),)))
    allow = Policy("allow-host-ipv6", ("ANY",), ("HOST",), "CONTINUE")
    assert verdict(CONN, config(IREDMAIL, policies=(allow,))) == ""


def test_the_loopback_is_always_allowed():
    assert verdict(Connection("127.0.0.1", "127.0.0.1", 22, "lo"), config(Zone("iredmail"))) == ""


# --- what firewalld models that the guard once missed --------------------------------------------------------------
@pytest.mark.parametrize(("spec", "matches"), [
    ("eth0", True), ("eth+", True), ("e+", True), ("+", True), ("eth0+", True),
    ("eth1", False), ("eth", False), ("wlan+", False), ("eth00+", False),
])
def test_interface_names_match_as_firewalld_matches_them(spec, matches):
    assert interface_matches(spec, "eth0") is matches


def test_a_wildcard_interface_in_drop_is_judged_for_eth0():
    """The issue's case: eth+ in zone drop, pending, was judged to survive for eth0."""
    drop = Zone("drop", target="DROP", interfaces=("eth+",))
    assert "zone drop (interface eth+)" in verdict(CONN, config(IREDMAIL, drop))
    assert verdict(CONN, config(IREDMAIL, Zone("drop", target="DROP", interfaces=("wlan+",)))) == ""


def test_with_an_ingress_priority_every_zone_that_may_classify_the_connection_is_judged():
    mgmt = Zone("mgmt", sources=("10.1.0.0/16",), services=("ssh",))
    # Without priorities the source zone wins, and it allows SSH.
    assert verdict(CONN, config(IREDMAIL, mgmt, Zone("drop", target="DROP", interfaces=("eth0",)))) == ""
    # With one, the interface's zone may come first: it is judged too.
    ahead = Zone("drop", target="DROP", interfaces=("eth0",), ingress_priority=-10)
    problem = verdict(CONN, config(IREDMAIL, mgmt, ahead))
    assert "zone drop (interface eth0, ingress-priority set)" in problem
    assert [name for name, _ in zones_of(CONN, config(IREDMAIL, mgmt, ahead))] == ["mgmt", "drop"]
    # No interface binding: the default zone may classify it.
    unbound = Zone("mgmt", sources=("10.1.0.0/16",), services=("ssh",), ingress_priority=5)
    assert "zone iredmail (the default zone" in verdict(CONN, config(Zone("iredmail"), unbound))


def test_a_policy_after_the_zones_does_not_allow_but_still_refuses():
    late = Policy("late", ("ANY",), ("HOST",), "CONTINUE", services=("ssh",), priority=10)
    assert verdict(CONN, config(Zone("iredmail"), policies=(late,))) != ""
    early = Policy("early", ("ANY",), ("HOST",), "CONTINUE", services=("ssh",), priority=-10)
    assert verdict(CONN, config(Zone("iredmail"), policies=(early,))) == ""
    late_reject = Policy("late", ("ANY",), ("HOST",), "CONTINUE", priority=10,
                         rules=(Rule("r", "reject", element=("service", "ssh")),))
    with pytest.raises(Undecidable, match="policy late: rich rule 'r' would reject"):
        verdict(CONN, config(IREDMAIL, policies=(late_reject,)))


# --- pending edits: the reload must not make live what this run did not write ---------------------------------------
ZONE = {"target": "default", "services": ["ssh", "smtp"], "ports": [], "interfaces": [], "masquerade": False}


def test_nothing_pending_when_both_layers_agree_whatever_the_order_or_the_empty_values():
    live = {"zone iredmail": {"version": "", "short": "other words", "target": "default", "services": ["smtp", "ssh"],
                              "ports": [], "interfaces": ["eth0"], "rules_str": [], "forward": False}}
    assert pending({"zone iredmail": ZONE}, live) == []  # eth0 bound at runtime only: NetworkManager's way


@pytest.mark.parametrize(("permanent", "running", "said"), [
    ({**ZONE, "interfaces": ["eth+"]}, ZONE, "zone iredmail, interfaces: eth+ pending (permanent only)"),
    ({**ZONE, "ports": [("8080", "tcp")]}, ZONE, "zone iredmail, ports: 8080 tcp pending (permanent only)"),
    (ZONE, {**ZONE, "rules_str": ['rule service name="ssh" drop']},
     "zone iredmail, rich rules: rule service name=\"ssh\" drop running only"),
    ({**ZONE, "target": "DROP"}, ZONE, "zone iredmail, target: DROP pending (running: default)"),
    ({**ZONE, "ingress_priority": -10}, ZONE, "zone iredmail, ingress priority: -10 pending (running: none)"),
    ({**ZONE, "forward_ports": [("80", "tcp", "8080", "")]}, {**ZONE, "forward_ports": [("8080", "tcp", "80", "")]},
     "zone iredmail, forward ports: 80 tcp 8080  pending (permanent only), 8080 tcp 80  running only"),
])
def test_a_difference_between_the_layers_is_named(permanent, running, said):
    assert pending({"zone iredmail": permanent}, {"zone iredmail": running}) == [said]


def test_objects_in_one_layer_only_and_the_default_zone_are_named():
    found = pending({"zone mgmt": ZONE, "the default zone": {"name": "drop"}},
                    {"ipset f2b": {"type": "hash:ip"}, "the default zone": {"name": "iredmail"}})
    assert found == ["ipset f2b is running but not defined permanently",
                     "the default zone, name: drop pending (running: iredmail)",
                     "zone mgmt is defined permanently but not running"]


def test_the_refusal_names_the_first_differences_and_counts_the_rest():
    live = {f"service s{i:02}": {"ports": [("1", "tcp")]} for i in range(11)}
    problem = pending_problem({}, live)
    assert problem.startswith("the permanent firewalld configuration differs from the running one in what this run "
                              "did not write") and "service s07 is running" in problem and "s08" not in problem
    assert problem.endswith("; and 3 more. Make it live yourself (check it, then firewall-cmd --reload) or undo it, "
                            "then run this again")
    assert pending_problem({"zone a": ZONE}, {"zone a": ZONE}) == ""
    # The service file this run writes whole: what was pending in it is replaced, so it is not a difference.
    assert pending_problem({"service smtps": {"ports": [("4650", "tcp")]}}, {"service smtps": {"ports": []}},
                           frozenset({"service smtps"})) == ""


# fail2ban's firewallcmd-rich-rules ban: a rich rule added at runtime only, which every reload drops.
BAN = "rule family=\"ipv4\" source address=\"192.0.2.7\" port port=\"465\" protocol=\"tcp\" reject"
BANNED = {"zone iredmail": {**ZONE, "rules_str": [BAN]}}


def test_runtime_only_bans_are_refused_by_default_and_the_setting_that_lets_them_go_is_named():
    problem = pending_problem({"zone iredmail": ZONE}, BANNED)
    assert f"zone iredmail, rich rules: {BAN} running only" in problem
    assert problem.endswith("the host setting firewalldPending: drop-runtime-only lets this reload drop it")
    assert pending_problem({"zone iredmail": ZONE}, BANNED, mode="drop-runtime-only") == ""


@pytest.mark.parametrize(("permanent", "running", "said"), [
    # Pending permanently: refused whatever the setting.
    ({"zone iredmail": {**ZONE, "rules_str": [BAN]}}, {"zone iredmail": ZONE},
     f"zone iredmail, rich rules: {BAN} pending (permanent only)"),
    ({"zone iredmail": {**ZONE, "rules_str": ["rule service name=\"http\" accept"]}}, BANNED,
     "zone iredmail, rich rules: rule service name=\"http\" accept pending (permanent only)"),
    ({"zone iredmail": {**ZONE, "target": "DROP"}}, BANNED, "zone iredmail, target: DROP pending (running: default)"),
    ({"zone iredmail": ZONE, "zone mgmt": ZONE}, BANNED, "zone mgmt is defined permanently but not running"),
    # Running only, but not where bans are kept: a runtime port, an object that only a permanent delete explains.
    ({"zone iredmail": ZONE}, {"zone iredmail": {**ZONE, "ports": [("9090", "tcp")]}},
     "zone iredmail, ports: 9090 tcp running only"),
    ({"zone iredmail": ZONE}, {"zone iredmail": ZONE, "ipset f2b": {"entries": ["192.0.2.7"]}},
     "ipset f2b is running but not defined permanently"),
])
def test_drop_runtime_only_still_refuses_what_is_pending_permanently_or_kept_elsewhere(permanent, running, said):
    assert pending(permanent, running, drop_runtime_only=True) == [said]


def test_drop_runtime_only_lets_runtime_ipset_entries_and_direct_rules_go():
    rule = ["ipv4", "filter", "INPUT_direct", 0, ["-m", "set", "--match-set", "f2b-sshd", "src", "-j", "REJECT"]]
    permanent = {"ipset admins": {"type": "hash:ip", "entries": ["10.1.0.5"]},
                 "direct configuration": {"chains": [], "rules": [], "passthroughs": []}}
    running = {"ipset admins": {"type": "hash:ip", "entries": ["10.1.0.5", "192.0.2.7"]},
               "direct configuration": {"chains": [], "rules": [rule], "passthroughs": []}}
    assert len(pending(permanent, running)) == 2
    assert pending(permanent, running, drop_runtime_only=True) == []
    # An entry pending permanently is still one.
    permanent["ipset admins"]["entries"].append("198.51.100.1")
    assert pending(permanent, running, drop_runtime_only=True) == [
        "ipset admins, entries: 198.51.100.1 pending (permanent only)"]


def test_an_unknown_pending_mode_is_a_refusal(monkeypatch, capsys):
    with pytest.raises(Undecidable, match="--pending=yes is not one of refuse, drop-runtime-only"):
        pending_problem({}, {}, mode="yes")
    monkeypatch.setenv("SSH_CONNECTION", "10.1.0.5 40000 10.1.0.6 22")
    assert lockout_guard.main(["--pending=yes"]) == 1
    said = capsys.readouterr().out
    assert "--pending=yes is not one of refuse, drop-runtime-only" in said and "firewalld was not reloaded" in said


def test_this_runs_files_are_taken_as_they_were_before_it(tmp_path, monkeypatch):
    etc = tmp_path / "etc"
    (etc / "services").mkdir(parents=True)
    (etc / "zones").mkdir()
    (etc / "services" / "smtps.xml").write_text("new")
    (etc / "zones" / "iredmail.xml").write_text("admin's")
    before = tmp_path / "before"
    before.write_text("old")
    monkeypatch.setattr(lockout_guard, "ETC", str(etc))
    own = own_files([f"{etc}/services/smtps.xml", str(before), f"{etc}/zones/iredmail.xml.old", "-",
                     "/tmp/elsewhere.xml", "-", f"{etc}/services/../zones/x.xml", "-"])
    assert own == {f"{etc}/services/smtps.xml": str(before)}  # .old copies and paths outside are never loaded
    assert written_whole({**own, f"{etc}/zones/iredmail.xml": "-"}) == {"service smtps"}
    copy = as_before({**own, f"{etc}/zones/gone.xml": "-"}, str(tmp_path / "work"))
    assert (tmp_path / "work" / "firewalld" / "services" / "smtps.xml").read_text() == "old"
    assert (tmp_path / "work" / "firewalld" / "zones" / "iredmail.xml").read_text() == "admin's"
    assert copy == str(tmp_path / "work" / "firewalld")
    assert (etc / "services" / "smtps.xml").read_text() == "new"  # the host's own files are not touched
    with pytest.raises(Undecidable, match="without its copy from before the run"):
        own_files([f"{etc}/services/smtps.xml"])


# --- the guard only reads the host's files ---------------------------------------------------------------------------
def test_a_linked_zones_folder_is_copied_never_written_through(tmp_path, monkeypatch):
    """The review's case: with /etc/firewalld/zones a link (a configuration-management layout), putting this run's
    zone file back as it was before, in the copy, once rewrote the real file (and deleted one the run had created)."""
    real = tmp_path / "srv-zones"
    real.mkdir()
    etc = tmp_path / "etc-firewalld"
    etc.mkdir()
    (etc / "zones").symlink_to(real)
    (real / "iredmail.xml").write_text("<zone>this run's change: service smtps</zone>\n")
    (real / "new.xml").write_text("<zone>created by this run</zone>\n")
    (tmp_path / "srv-one.xml").write_text("<zone>a linked file, changed by this run</zone>\n")
    (real / "one.xml").symlink_to(tmp_path / "srv-one.xml")
    before = tmp_path / "before.xml"
    before.write_text("<zone>before the run</zone>\n")
    files = [real / "iredmail.xml", real / "new.xml", tmp_path / "srv-one.xml"]
    seen = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in files}
    monkeypatch.setattr(lockout_guard, "ETC", str(etc))
    own = own_files([f"{etc}/zones/iredmail.xml", str(before), f"{etc}/zones/new.xml", "-",
                     f"{etc}/zones/one.xml", str(before)])
    copy = Path(as_before(own, str(tmp_path / "work")))
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in files} == seen
    assert not (copy / "zones").is_symlink() and not (copy / "zones" / "one.xml").is_symlink()
    assert (copy / "zones" / "iredmail.xml").read_text() == (copy / "zones" / "one.xml").read_text() == \
        "<zone>before the run</zone>\n"
    assert not (copy / "zones" / "new.xml").exists()


def test_what_the_guard_cannot_copy_as_a_file_is_a_refusal_naming_it(tmp_path, monkeypatch):
    etc = tmp_path / "etc"
    (etc / "zones").mkdir(parents=True)
    monkeypatch.setattr(lockout_guard, "ETC", str(etc))
    (etc / "zones" / "gone.xml").symlink_to(tmp_path / "nowhere.xml")
    with pytest.raises(Undecidable, match=f"{etc} cannot be read whole .*gone.xml"):
        as_before({}, str(tmp_path / "one"))
    (etc / "zones" / "gone.xml").unlink()
    os.mkfifo(etc / "zones" / "pipe.xml")  # read, it would hang the guard
    with pytest.raises(Undecidable, match="pipe.xml is not a regular file"):
        as_before({}, str(tmp_path / "two"))


# --- firewalld.conf and the lockdown whitelist, which a reload re-reads -----------------------------------------------
def test_a_firewalld_conf_changed_after_the_daemon_started_is_refused_naming_it(tmp_path):
    conf = tmp_path / "firewalld.conf"
    conf.write_text("FlushAllOnReload=no\n")
    changed = conf.stat().st_mtime
    assert conf_problem(str(conf), changed + 1) == ""  # the daemon started after the edit: it runs with it
    problem = conf_problem(str(conf), changed - 60)
    assert problem.startswith(f"{conf} was changed at ") and "after firewalld started" in problem, problem
    assert "only DefaultZone, LogDenied, Lockdown and IPv6_rpfilter" in problem
    old = tmp_path / "old.conf"
    old.write_text("FlushAllOnReload=yes\n")
    os.utime(old, (changed - 3600, changed - 3600))
    conf.unlink()
    conf.symlink_to(old)  # the link is new, what it points to is old
    assert conf_problem(str(conf), changed - 60).startswith(f"{conf} was changed at ")
    conf.unlink()
    assert conf_problem(str(conf), time.time() + 1) == ""
    assert conf_problem(str(conf), changed - 60).startswith(f"{conf} is missing, and its folder was changed at ")


HOST_PYTHON = "/usr/bin/python3"  # firewalld's library belongs to the distribution's Python, as on a mail host
_PENDING = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("lockout_guard", sys.argv[1])
guard = importlib.util.module_from_spec(spec)
sys.modules["lockout_guard"] = guard
spec.loader.exec_module(guard)
loaded, running = (guard.offline(etc) for etc in sys.argv[2:])
print(json.dumps({"pending": guard.pending(guard.expected_of(loaded), guard.expected_of(running)),
                  "direct_rules": guard.load(loaded, "").direct_rules}))
"""
CONF = "DefaultZone=public\nLogDenied=off\nLockdown=no\nIPv6_rpfilter=yes\n"


def offline_read(tmp_path: Path, permanent: dict[str, str], running: dict[str, str]) -> dict:
    """pending() between two /etc/firewalld folders (each FILE: its text), both read by firewalld's own offline
    loader from the machine's firewalld: what a reload would load against what runs."""
    have = Path(HOST_PYTHON).exists() and subprocess.run(
        [HOST_PYTHON, "-c", "import firewall.core.fw"], capture_output=True, check=False).returncode == 0
    require(have, f"firewalld's Python library for {HOST_PYTHON} is needed (apt package firewalld)")
    folders = []
    for name, files in (("permanent", permanent), ("running", running)):
        etc = tmp_path / name
        for file, text in files.items():
            (etc / file).parent.mkdir(parents=True, exist_ok=True)
            (etc / file).write_text(text)
        folders.append(str(etc))
    out = subprocess.run([HOST_PYTHON, "-c", _PENDING, lockout_guard.__file__, *folders], capture_output=True,
                         text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def offline_pending(tmp_path: Path, permanent: dict[str, str], running: dict[str, str]) -> list[str]:
    return offline_read(tmp_path, permanent, running)["pending"]


def test_firewalld_conf_settings_the_daemon_shows_are_compared_by_value(tmp_path):
    edited = CONF.replace("LogDenied=off", "LogDenied=all").replace("Lockdown=no", "Lockdown=yes") \
        .replace("IPv6_rpfilter=yes", "IPv6_rpfilter=no")
    assert offline_pending(tmp_path, {"firewalld.conf": edited}, {"firewalld.conf": CONF}) == [
        "firewalld.conf, IPv6_rpfilter: no pending (running: yes)",
        "firewalld.conf, Lockdown: yes pending (running: no)",
        "firewalld.conf, LogDenied: all pending (running: off)"]


def test_firewalld_conf_settings_the_daemon_hides_are_left_to_the_files_time(tmp_path):
    """FlushAllOnReload and the like: no running value to compare, so the comparison sees nothing and
    `conf_problem` (the file's time against the daemon's start) is what refuses them."""
    hidden = CONF + "FlushAllOnReload=no\nAllowZoneDrifting=yes\nRFC3964_IPv4=no\n"
    assert offline_pending(tmp_path, {"firewalld.conf": hidden}, {"firewalld.conf": CONF}) == []


def test_a_lockdown_whitelist_edit_is_named(tmp_path):
    whitelist = ('<?xml version="1.0" encoding="utf-8"?>\n<whitelist><user id="4242"/>'
                 '<command name="/usr/bin/python3 -s /usr/bin/firewall-cmd*"/></whitelist>\n')
    assert offline_pending(tmp_path, {"firewalld.conf": CONF, "lockdown-whitelist.xml": whitelist},
                           {"firewalld.conf": CONF}) == [
        "the lockdown whitelist, commands: /usr/bin/python3 -s /usr/bin/firewall-cmd* pending (permanent only)",
        "the lockdown whitelist, uids: 4242 pending (permanent only)"]


DIRECT = ('<?xml version="1.0" encoding="utf-8"?>\n<direct><chain ipv="ipv4" table="filter" chain="ops"/>'
          '<rule ipv="ipv4" table="filter" chain="INPUT" priority="0">-p tcp --dport 22 -j DROP</rule></direct>\n')


def test_direct_rules_are_named_as_rules_and_the_same_ones_in_both_layers_are_no_difference(tmp_path):
    assert offline_pending(tmp_path / "a", {"firewalld.conf": CONF, "direct.xml": DIRECT},
                           {"firewalld.conf": CONF}) == [
        "direct configuration, chains: ipv4 filter ops pending (permanent only)",
        "direct configuration, rules: ipv4 filter INPUT 0 -p tcp --dport 22 -j DROP pending (permanent only)"]
    same = {"firewalld.conf": CONF, "direct.xml": DIRECT}
    assert offline_pending(tmp_path / "b", same, same) == []


def test_direct_rules_are_counted_rule_by_rule(tmp_path):
    two = DIRECT.replace("</direct>", '<rule ipv="ipv4" table="filter" chain="INPUT" priority="1">-j DROP</rule>'
                                      '</direct>')
    read = offline_read(tmp_path, {"firewalld.conf": CONF, "direct.xml": two}, {"firewalld.conf": CONF})
    assert read["direct_rules"] == 2  # both in chain INPUT, which the loader keeps as one entry

