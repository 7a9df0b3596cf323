"""firewall: auto, without a host: what each kind's diff, delete and read do with the decision kept in the state,
and drift's reading of what the host says (the lab tests run the rule itself on real hosts)."""

from __future__ import annotations

import base64

import pytest

from smtps_iredmail.base import FIREWALL
from smtps_iredmail.core import drift, facts, firewalld_service, master_service, nftables_rule, zone_membership
from smtps_iredmail.core import firewall as fw
from smtps_iredmail.core.firewall import Firewall
from smtps_iredmail.core.hosts import parse_host
from smtps_iredmail.core.settings import SettingsError
from smtps_iredmail.firewalld_service import FirewalldServiceProvider
from smtps_iredmail.host import connection_inputs
from smtps_iredmail.kinds import KINDS, kinds_for
from smtps_iredmail.master_service import MasterServiceProvider
from smtps_iredmail.nftables_rule import NftablesRuleProvider
from smtps_iredmail.zone_membership import ZoneMembershipProvider

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"
FIREWALLD_KINDS = [(FirewalldServiceProvider, firewalld_service), (ZoneMembershipProvider, zone_membership)]
ALL = [(MasterServiceProvider, master_service), *FIREWALLD_KINDS, (NftablesRuleProvider, nftables_rule)]


def host(**extra):
    return parse_host("dc1", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": KEY, **extra})


def inputs(module, **extra) -> dict:
    settings = host(**extra)
    return {**connection_inputs("dc1", settings), **module.MODEL.wanted(module.MODEL.part(settings)).props()}


def state(module, used: str | None, **extra) -> dict:
    """A resource's outputs as an apply left them, with what it found (None: written before auto existed)."""
    olds = {**inputs(module, **extra), "revision": 1}
    if used is None:
        olds.pop(FIREWALL)
    else:
        olds[fw.USED] = used
    return olds


def test_the_default_is_auto_and_an_auto_host_declares_every_kind():
    assert host().firewall is Firewall.AUTO
    assert kinds_for(Firewall.AUTO) == KINDS
    assert [k.suffix for k in kinds_for(Firewall.NFTABLES)] == ["master", "nftables"]
    assert [k.suffix for k in kinds_for(Firewall.FIREWALLD)] == ["master", "service", "zone"]


def test_replace_is_refused_with_auto_before_any_host_is_touched():
    with pytest.raises(SettingsError, match="mail1, setting existingPortPolicy: replace needs firewall: firewalld"):
        host(existingPortPolicy="replace")
    assert host(existingPortPolicy="replace", firewall="firewalld").zone.port_policy.value == "replace"


@pytest.mark.parametrize(("provider", "module"), FIREWALLD_KINDS)
def test_a_kind_of_the_other_firewall_shows_no_change_even_when_its_settings_do(provider, module):
    olds = state(module, "nftables")
    news = inputs(module, zone="public", firewalldService="smtps2", serviceShort="Other", port=2222)
    assert provider().diff("id", olds, news).changes is False


def test_an_nftables_rule_on_a_firewalld_host_shows_no_change():
    assert NftablesRuleProvider().diff("id", state(nftables_rule, "firewalld"),
                                       inputs(nftables_rule, nftTable="other")).changes is False


@pytest.mark.parametrize(("provider", "module"), ALL)
def test_auto_keeps_what_was_found_and_a_setting_that_names_it_is_no_change(provider, module):
    used = "nftables" if module is nftables_rule else "firewalld"
    olds = state(module, used)
    assert provider().diff("id", olds, inputs(module)).changes is False
    assert provider().diff("id", olds, inputs(module, firewall=used)).changes is False


@pytest.mark.parametrize(("provider", "module"), ALL)
def test_state_written_before_auto_existed_is_no_change(provider, module):
    extra = {"firewall": "nftables"} if module is nftables_rule else {}
    assert provider().diff("id", state(module, None, **extra), inputs(module)).changes is False


@pytest.mark.parametrize(("provider", "module"), FIREWALLD_KINDS)
def test_setting_the_firewall_a_kind_was_idle_for_is_a_change(provider, module):
    diff = provider().diff("id", state(module, "nftables"), inputs(module, firewall="firewalld"))
    assert diff.changes is True


@pytest.mark.parametrize(("provider", "module"), ALL)
def test_a_rebuilt_machine_is_found_again(provider, module):
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE9kZ2x1Zm5uY2h4bHZ6d2F0cW1jb2V0a3N6cmJ2eXBhZ2t1"
    used = "firewalld" if module is nftables_rule else "nftables"
    news = {**inputs(module), "hostKey": other}
    assert provider().diff("id", state(module, used), news).changes is True


@pytest.mark.parametrize(("provider", "module"), FIREWALLD_KINDS)
def test_delete_and_read_of_an_idle_kind_touch_no_host(provider, module):
    # No SSH key and no pool: any attempt to reach the host would raise.
    olds = state(module, "nftables")
    provider().delete("id", olds)
    read = provider().read("id", olds)
    assert read.outs == olds and fw.USED not in read.inputs and "revision" not in read.inputs


def old_provider(provider: type) -> str:
    """A stored provider (`__provider`) as the release before the package wrote it: its class by reference to the
    top-level `components` modules of then (a pickle's opcodes only: nothing loads it)."""

    def text(value: str) -> bytes:  # SHORT_BINUNICODE
        return b"\x8c" + bytes([len(value)]) + value.encode()

    module = "components." + provider.__module__.rsplit(".", 1)[1]
    return base64.b64encode(b"\x80\x04" + text(module) + text(provider.__name__) + b"\x93)\x81.").decode()


@pytest.mark.parametrize(("provider", "module", "used"), [(*kind, "nftables") for kind in FIREWALLD_KINDS]
                         + [(NftablesRuleProvider, nftables_rule, "firewalld")])
def test_an_idle_kind_whose_stored_provider_names_the_old_modules_is_updated_touching_no_host(provider, module, used):
    olds = {**state(module, used), "__provider": old_provider(provider)}
    diff = provider().diff("id", olds, inputs(module))
    # Refresh and destroy load the stored provider, idle or not: the update stores today's, and replaces nothing.
    assert diff.changes is True and diff.replaces == []
    # No SSH key and no pool: any attempt to reach the host would raise.
    outs = provider().update("id", olds, inputs(module)).outs
    assert outs["revision"] == 1 and outs[fw.USED] == used


@pytest.mark.parametrize("value", ["auto", "", "nftables; reboot", None, 1, {"x": 1}])
def test_a_tampered_decision_in_the_state_counts_as_none(value):
    assert fw.recorded(value) is None


def test_the_found_line_is_read_and_nothing_else():
    assert fw.found("smtps-cert-file=/x\nsmtps-firewall=nftables\n") is Firewall.NFTABLES
    assert fw.found("smtps-firewall=iptables\n") is None and fw.found("") is None


def _facts(**lines: str) -> facts.HostFacts:
    return facts.parse("".join(f"{k}={v}\n" for k, v in lines.items()))


def test_drift_of_an_auto_host_compares_the_firewall_it_finds():
    settings = host()
    master = {f"master.{settings.master.key}": settings.master.entry, "postfix": "running"}
    nft = {"nft.live.chain": "present", "nft.live.rule": "yes", "nft.file.chain": "present", "nft.file.rule": "yes"}
    assert drift.compare(settings, _facts(firewall="nftables", **master, **nft)) == []
    rows = drift.compare(settings, _facts(firewall="nftables", **master, **{**nft, "nft.live.rule": "no"}))
    assert [(r.resource, r.field) for r in rows] == [("nftables rule", "runtime")]
    xml = base64.b64encode(firewalld_service.service_xml(settings.service).encode()).decode()
    zone = {"firewalld": "running", "zone": "present", "service.file": xml, "service.mode": "644",
            "zone.permanent.service": "yes", "zone.runtime.service": "yes"}
    assert drift.compare(settings, _facts(firewall="firewalld", **master, **zone)) == []


def test_drift_of_an_auto_host_with_neither_firewall_says_why():
    settings = host()
    why = "firewall: auto: firewalld is installed but not running, and there is no /etc/nftables.conf"
    rows = drift.compare(settings, _facts(**{"firewall": "", "firewall.why": why, "postfix": "running",
                                             f"master.{settings.master.key}": settings.master.entry}))
    assert [(r.resource, r.field, r.want, r.have) for r in rows] == [("firewall", "firewall", "auto", why)]


def test_the_auto_read_script_reads_only_the_firewall_it_finds():
    text = drift.read_host_script(host())
    assert "firewall-cmd --state" in text and 'if [ "$SMTPS_FIREWALL" = firewalld ]; then' in text
    assert 'if [ "$SMTPS_FIREWALL" = nftables ]; then' in text


def test_the_front_end_shows_what_auto_found_from_the_state_and_trusts_only_the_two_answers():
    master = KINDS[0].type_token()
    deployment = {"resources": [
        {"type": master, "outputs": {"host": "mail1", "firewallUsed": "nftables"}},
        {"type": master, "outputs": {"host": "mail2", "firewallUsed": "nftables\n; rm -rf /"}},
        {"type": KINDS[1].type_token(), "outputs": {"host": "mail3", "firewallUsed": "firewalld"}},
        {"type": master, "outputs": {"host": "mail5", "firewallUsed": "firewalld"}},
    ]}
    found = fw.from_state(deployment, master)
    assert found == {"mail1": "nftables", "mail5": "firewalld"}
    hosts = tuple(host(name=name) for name in ("mail1", "mail2", "mail3"))
    hosts += (parse_host("dc1", {}, {"name": "mail5", "address": "10.0.0.5", "hostKey": KEY, "firewall": "firewalld"}),)
    assert fw.lines(hosts, found) == [
        "smtps: mail1: firewall: auto, found nftables", "smtps: mail2: firewall: auto (found at its first apply)",
        "smtps: mail3: firewall: auto (found at its first apply)"]
