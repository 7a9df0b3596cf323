"""The firewall choice (smtps/firewall.py) on data: what a host's setting and its facts or state decide, with no
host, no engine and no provider. tests/test_firewall_choice.py runs the same rules through the providers, and the lab
tests run the host-side rule (templates/_firewall.sh.j2) on real hosts."""

from __future__ import annotations

import pytest

from smtps_iredmail.core import firewall as fw
from smtps_iredmail.core import master_service
from smtps_iredmail.core.firewall import Firewall
from smtps_iredmail.core.hosts import parse_host
from smtps_iredmail.core.templating import Action
from smtps_iredmail.kinds import KINDS

AUTO, FIREWALLD, NFTABLES = Firewall.AUTO, Firewall.FIREWALLD, Firewall.NFTABLES
POSTFIX: fw.Kinds = ()  # a kind of every host
ZONE: fw.Kinds = (FIREWALLD,)
RULE: fw.Kinds = (NFTABLES,)
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"


@pytest.mark.parametrize(("kind", "setting", "declared"), [
    (POSTFIX, AUTO, True), (POSTFIX, FIREWALLD, True), (POSTFIX, NFTABLES, True), (POSTFIX, None, True),
    (ZONE, AUTO, True), (ZONE, FIREWALLD, True), (ZONE, NFTABLES, False), (ZONE, None, False),
    (RULE, AUTO, True), (RULE, FIREWALLD, False), (RULE, NFTABLES, True), (RULE, None, False),
])
def test_which_kinds_a_host_declares(kind, setting, declared):
    # None: auto found neither firewall (drift): only the kinds of every host are compared.
    assert fw.declares(kind, setting) is declared


@pytest.mark.parametrize(("kind", "firewall", "acting"), [
    (POSTFIX, FIREWALLD, True), (POSTFIX, NFTABLES, True), (POSTFIX, None, True),
    (ZONE, FIREWALLD, True), (ZONE, NFTABLES, False), (ZONE, None, True),
    (RULE, FIREWALLD, False), (RULE, NFTABLES, True), (RULE, None, True),
])
def test_which_kinds_act_on_a_host_and_not_known_yet_may(kind, firewall, acting):
    assert fw.acts(kind, firewall) is acting


def test_a_kind_is_idle_only_where_the_other_firewall_is_known_before_and_after():
    assert fw.idle(ZONE, NFTABLES, NFTABLES)
    assert not fw.idle(ZONE, NFTABLES, FIREWALLD) and not fw.idle(ZONE, NFTABLES, None)
    assert not fw.idle(ZONE, None, NFTABLES) and not fw.idle(POSTFIX, NFTABLES, NFTABLES)


def test_a_switch_needs_both_known_and_different():
    assert fw.switched(FIREWALLD, NFTABLES)
    assert not fw.switched(FIREWALLD, FIREWALLD) and not fw.switched(None, NFTABLES) and not fw.switched(NFTABLES, None)


def test_what_is_recorded_in_the_outputs():
    assert fw.recorded_in(ZONE, {fw.USED: "nftables", fw.SETTING: "auto"}) is NFTABLES
    # The setting counts where nothing was recorded, and only an answer (auto is a question).
    assert fw.recorded_in(POSTFIX, {fw.USED: None, fw.SETTING: "firewalld"}) is FIREWALLD
    assert fw.recorded_in(POSTFIX, {fw.USED: None, fw.SETTING: "auto"}) is None
    # State written before the setting existed: a firewall kind was declared only on its own hosts; Postfix anywhere.
    assert fw.recorded_in(RULE, fw.upgrade(RULE, {"revision": 1})) is NFTABLES
    assert fw.recorded_in(ZONE, fw.upgrade(ZONE, {})) is FIREWALLD
    assert fw.recorded_in(POSTFIX, {"revision": 1}) is None
    # Tampered state is no answer.
    assert fw.recorded_in(POSTFIX, {fw.USED: "nftables; reboot", fw.SETTING: "auto"}) is None


@pytest.mark.parametrize(("olds", "news", "same", "want"), [
    # The setting decides where it names a firewall, whatever was recorded.
    ({fw.USED: "nftables"}, {fw.SETTING: "firewalld"}, True, FIREWALLD),
    # auto keeps what was found on the same machine.
    ({fw.USED: "nftables", fw.SETTING: "auto"}, {fw.SETTING: "auto"}, True, NFTABLES),
    # A rebuilt machine (a new host key or address) and a new resource are found again.
    ({fw.USED: "nftables", fw.SETTING: "auto"}, {fw.SETTING: "auto"}, False, None),
    ({}, {fw.SETTING: "auto"}, True, None),
    ({}, {fw.SETTING: "nftables"}, True, NFTABLES),
])
def test_what_a_resource_acts_for_from_olds_and_news(olds, news, same, want):
    assert fw.resolved(POSTFIX, olds, news, same) is want


def test_the_output_is_what_this_apply_used_else_what_was_recorded():
    assert fw.output(NFTABLES, {fw.USED: "firewalld"}) == "nftables"
    assert fw.output(None, {fw.USED: "firewalld"}) == "firewalld"
    assert fw.output(None, {fw.USED: "iptables"}) is None and fw.output(None) is None


def test_the_host_is_asked_to_check_what_is_known_or_to_find_it():
    assert fw.asked(NFTABLES) is NFTABLES and fw.asked(None) is AUTO


def test_the_one_apply_that_finds_the_firewall_is_the_first_applied_on_every_host():
    finders = [kind for kind in KINDS if fw.found_by_apply(kind.model.firewalls)]
    assert finders == [KINDS[0]]
    assert all(fw.declares(KINDS[0].model.firewalls, setting) for setting in (*Firewall, None))


def test_the_policy_a_setting_allows():
    assert fw.keep_only(FIREWALLD, "replace") is None
    assert fw.keep_only(NFTABLES, "replace") == ("only keep is available with firewall: nftables (a rule that already "
                                                "accepts 465 is left as found)")
    assert fw.keep_only(AUTO, "replace") == ("replace needs firewall: firewalld (auto may find nftables, where only "
                                             "keep is available)")


def test_what_drift_reads_and_compares():
    assert fw.candidates(AUTO) == (FIREWALLD, NFTABLES)
    assert fw.candidates(NFTABLES) == (NFTABLES,) and fw.candidates(FIREWALLD) == (FIREWALLD,)
    assert fw.in_use(AUTO, "nftables") is NFTABLES and fw.in_use(AUTO, "") is None and fw.in_use(AUTO, None) is None
    # An explicit setting is compared as set: what the host would have said is the apply's to refuse.
    assert fw.in_use(FIREWALLD, "nftables") is FIREWALLD


def test_the_host_side_rule_is_one_partial_in_the_step_and_in_the_apply_that_finds():
    settings = parse_host("dc1", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": KEY})
    step = fw.script("mail1", AUTO)
    apply = master_service.MODEL.script("mail1", (settings.master, settings.tls), Action.APPLY, settings.connection,
                                        "run", firewall="auto")
    for text in (step, apply):
        assert text.count('SMTPS_FIREWALL_WHY="firewall: auto: neither') == 1
        assert "printf 'smtps: %s: %s; nothing was changed\\n' mail1" in text
        assert 'echo "smtps-firewall=$SMTPS_FIREWALL"' in text
    # Before anything changes: the rule runs ahead of the apply's first edit of master.cf.
    assert apply.index('echo "smtps-firewall=$SMTPS_FIREWALL"') < apply.index("start_copy\n")
    # Asked for nothing, an apply has no rule in it (the kinds of one firewall, and a remove).
    assert "SMTPS_FIREWALL" not in master_service.MODEL.script("mail1", (settings.master, settings.tls), Action.APPLY)
