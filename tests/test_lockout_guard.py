"""The lockout guard's judgement, on plain data: which zone carries the SSH connection after a reload, and whether
it still allows it. The lab tests run the same program on real hosts with firewalld's own readers."""

from __future__ import annotations

import pytest

from smtps.lockout_guard import Config, Connection, Policy, Rule, Undecidable, Zone, verdict, zones_of

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
