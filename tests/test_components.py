"""The providers' check and diff as plain functions, and the program's wiring under Pulumi's mocks: no engine, no
host. (The lab tests run the same code through the real engine against real hosts.)"""

from __future__ import annotations

import json

import pulumi
import pytest
from google.protobuf import struct_pb2
from pulumi.output import Unknown
from pulumi.runtime import rpc

from smtps_iredmail.core import facts, firewalld_service, master_service, nftables_rule, zone_membership
from smtps_iredmail.core.hosts import parse_host, parse_stack
from smtps_iredmail.firewalld_service import FirewalldServiceProvider
from smtps_iredmail.host import connection_inputs
from smtps_iredmail.master_service import MasterServiceProvider
from smtps_iredmail.nftables_rule import NftablesRuleProvider
from smtps_iredmail.verification import VerificationProvider
from smtps_iredmail.zone_membership import ZoneMembershipProvider

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"
KINDS = [(MasterServiceProvider, master_service), (FirewalldServiceProvider, firewalld_service),
         (ZoneMembershipProvider, zone_membership), (NftablesRuleProvider, nftables_rule)]


def inputs(module, **extra) -> dict:
    settings = parse_host("dc1", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": KEY, **extra})
    return {**connection_inputs("dc1", settings), **module.MODEL.wanted(module.MODEL.part(settings)).props()}


@pytest.mark.parametrize(("provider", "module"), KINDS)
def test_check_accepts_what_the_settings_produce(provider, module):
    news = inputs(module)
    result = provider().check({}, news)
    assert result.failures == [] and result.inputs == news


@pytest.mark.parametrize(("provider", "module", "key", "value", "message"), [
    (MasterServiceProvider, master_service, "serviceKey", "smtp",
     "stack dc1, host mail1, setting serviceKey: 'smtp' is not one of 465, smtps, submissions"),
    (MasterServiceProvider, master_service, "options", {"smtpd_tls_wrappermode": "no"},
     "stack dc1, host mail1, setting options.smtpd_tls_wrappermode: must be 'yes'"),
    (MasterServiceProvider, master_service, "tlsCert", "relative.crt",
     "stack dc1, host mail1, setting tlsCert: 'relative.crt' is not an absolute path"),
    (FirewalldServiceProvider, firewalld_service, "serviceShort", "<b>", "setting serviceShort:"),
    (ZoneMembershipProvider, zone_membership, "zone", "a zone", "setting zone:"),
    (ZoneMembershipProvider, zone_membership, "port", True, "setting port: expected a whole number"),
    (ZoneMembershipProvider, zone_membership, "hostKey", "AAAA", "setting hostKey:"),
    (NftablesRuleProvider, nftables_rule, "nftChain", "input; flush ruleset", "setting nftChain:"),
    (NftablesRuleProvider, nftables_rule, "existingPortPolicy", "replace", "only keep is available"),
])
def test_check_names_stack_host_and_setting(provider, module, key, value, message):
    news = {**inputs(module), key: value}
    [failure] = provider().check({}, news).failures
    key_named = key if key != "options" else "options.smtpd_tls_wrappermode"
    assert failure.property == key_named and message in failure.reason


@pytest.mark.parametrize(("provider", "module"), KINDS)
def test_inputs_not_known_yet_reach_check_as_the_engine_sends_them_and_are_checked_later(provider, module):
    # A program's Outputs at preview (a host made in the same run): the dynamic provider server deserializes the
    # wire's unknown sentinel into `Unknown` objects before it calls check.
    news = inputs(module, tlsCert="/etc/ssl/a.crt", tlsKey="/etc/ssl/a.key")
    later = [key for key in ("address", "hostKey", "tlsCert", "tlsKey", "options") if key in news]
    wire = struct_pb2.Struct()
    wire.update({**news, **dict.fromkeys(later, rpc.UNKNOWN)})
    received = rpc.deserialize_properties(wire, keep_unknowns=True)
    assert all(isinstance(received[key], Unknown) for key in later)
    assert provider().check({}, received).failures == []
    # A known value beside them is still checked.
    [failure] = provider().check({}, {**received, "stack": "dc 1"}).failures
    assert failure.property == "stack"


@pytest.mark.parametrize(("provider", "module"), KINDS)
def test_diff_of_nothing_changed_is_no_change(provider, module):
    olds = {**inputs(module), "revision": 3, "__provider": "x"}
    result = provider().diff("id", olds, inputs(module))
    assert result.changes is False and result.replaces == []


@pytest.mark.parametrize(("provider", "module", "change", "replaces"), [
    (MasterServiceProvider, master_service, {"options": {"smtpd_tls_wrappermode": "yes"}}, []),
    (MasterServiceProvider, master_service, {"serviceKey": "submissions"}, []),
    (MasterServiceProvider, master_service, {"address": "10.0.0.2"}, []),
    (MasterServiceProvider, master_service, {"unprivileged": "n"}, []),
    (FirewalldServiceProvider, firewalld_service, {"serviceFile": "<!-- x -->"}, []),
    (MasterServiceProvider, master_service, {"port": 2222}, []),
    (FirewalldServiceProvider, firewalld_service, {"serviceShort": "SMTPS"}, []),
    (FirewalldServiceProvider, firewalld_service, {"firewalldService": "smtps2"}, ["firewalldService"]),
    (ZoneMembershipProvider, zone_membership, {"existingPortPolicy": "replace"}, []),
    (ZoneMembershipProvider, zone_membership, {"zone": "public"}, ["zone"]),
    (ZoneMembershipProvider, zone_membership, {"runtime": False}, []),
])
def test_diff_names_the_change_and_replaces_only_identities(provider, module, change, replaces):
    olds = {**inputs(module), **change}
    result = provider().diff("id", olds, inputs(module))
    assert result.changes is True and result.replaces == replaces
    # Replacement takes the old thing off the host before the new one is made (see components/base.py).
    assert result.delete_before_replace is bool(replaces)


def test_verification_runs_again_only_when_something_on_the_host_changed():
    olds = {"host": "mail1", "address": "10.0.0.1", "port": 465, "trigger": [1, 1, 1], "tlsVersion": "TLSv1.3"}
    assert VerificationProvider().diff("id", olds, {**olds, "tlsVersion": None}).changes is False
    assert VerificationProvider().diff("id", olds, {**olds, "trigger": [2, 1, 1]}).changes is True


def test_master_live_reads_every_column_and_the_other_entries():
    part = master_service.MODEL.part(parse_host("dc1", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": KEY}))
    entry = "smtps inet n n y - 10 smtpd -o syslog_name=postfix/smtps -o smtpd_tls_wrappermode=yes"
    found = facts.parse(f"postfix=running\nmaster.465=\nmaster.smtps={entry}\nmaster.submissions=submissions "
                        "inet n - n - - smtpd\n")
    assert master_service.MODEL.live(found, part) == {
        "serviceKey": "smtps", "private": "n", "unprivileged": "n", "chroot": "y", "wakeup": "-", "maxproc": "10",
        "command": "smtpd", "options": {"syslog_name": "postfix/smtps", "smtpd_tls_wrappermode": "yes"},
        "otherEntries": ["submissions"], "postfix": "running"}
    assert master_service.MODEL.live(facts.parse("postfix=stopped\n"), part) == {
        "serviceKey": "", "options": {}, "private": "", "unprivileged": "", "chroot": "", "wakeup": "", "maxproc": "",
        "command": "", "otherEntries": [], "postfix": "stopped"}


def test_every_live_key_is_an_input_of_its_kind():
    """The rule of the facts layer: what a kind reads is one of its inputs (else diff would never see it)."""
    settings = parse_host("dc1", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": KEY,
                                      "existingPortPolicy": "replace", "firewall": "firewalld"})
    found = facts.parse("postfix=running\nmaster.465=465 inet n - n - - smtpd\nservice.file=PHg+\n"
                        "service.mode=600\nfirewalld=running\nzone=present\nzone.permanent.port=yes\n")
    for model in (master_service.MODEL, firewalld_service.MODEL, zone_membership.MODEL):
        live = model.live(found, model.part(settings))
        assert live and set(live) <= set(model.keys), model.kind


def test_zone_live_fields_follow_the_port_policy():
    found = facts.parse("firewalld=running\nzone=present\nzone.permanent.service=no\nzone.permanent.port=yes\n"
                        "zone.runtime.service=no\nzone.runtime.port=no\n")
    keep = parse_host("dc1", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": KEY}).zone
    assert zone_membership.MODEL.live(found, keep) == {"firewalld": "running", "permanent": True, "runtime": False}
    replace = parse_host("dc1", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": KEY,
                                     "existingPortPolicy": "replace", "firewall": "firewalld"}).zone
    assert zone_membership.MODEL.live(found, replace) == {"firewalld": "running", "permanent": False, "runtime": False,
                                                    "rawPort": "open"}


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        return f"{args.name}-id", {**args.inputs, "revision": 1}

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@pytest.fixture
def mocks():
    the_mocks = Mocks()
    config = {
        "smtps-iredmail:hosts": json.dumps([{"name": "mail1", "address": "10.0.0.1", "hostKey": KEY},
                                            {"name": "mail2", "address": "10.0.0.2", "hostKey": KEY[:-1] + "Y"}]),
        "smtps-iredmail:defaults": '{"serviceKey": "submissions"}',
        "smtps-iredmail:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n",
    }
    pulumi.runtime.set_all_config(config, ["smtps-iredmail:sshPrivateKey"])
    pulumi.runtime.set_mocks(the_mocks, project="smtps-iredmail", stack="dc1", preview=False)
    yield the_mocks
    pulumi.runtime.set_all_config({})


@pulumi.runtime.test
def test_program_registers_each_hosts_resources_with_the_key_only_on_providers(mocks):
    from smtps_iredmail.program import program

    hosts = program()

    def check(_):
        by_name = {r.name: r for r in mocks.resources}
        for host in ("mail1", "mail2"):
            master, service = by_name[f"{host}-master"], by_name[f"{host}-service"]
            zone, verify = by_name[f"{host}-zone"], by_name[f"{host}-verify"]
            nft = by_name[f"{host}-nftables"]
            assert master.typ == "pulumi-python:dynamic/smtps:MasterService"
            # firewall: auto (the default): both firewalls' kinds, each told the setting; the one the host does not
            # use does nothing there.
            assert {r.inputs["firewall"] for r in (master, service, zone, nft)} == {"auto"}
            assert master.inputs["serviceKey"] == "submissions" and master.inputs["address"].startswith("10.0.0.")
            assert service.typ.endswith(":FirewalldService") and zone.typ.endswith(":ZoneMembership")
            assert verify.inputs["port"] == 465 and verify.inputs["trigger"] == [1, 1, 1, 1]
            # The key never is an input of a host's resources; only the providers get it.
            for resource in (master, service, zone, nft, verify):
                assert "sshPrivateKey" not in str(resource.inputs) and "secret" not in str(resource.inputs)
        providers = [r for r in mocks.resources if r.typ.startswith("pulumi:providers:")]
        assert providers and all("smtps-iredmail:sshPrivateKey" in p.inputs for p in providers)

    return pulumi.Output.all(*[h.verification.id for h in hosts.values()]).apply(check)


def test_numbers_that_crossed_the_engine_as_floats_are_read_as_the_whole_numbers_they_were():
    news = {**inputs(master_service), "port": 22.0}
    assert MasterServiceProvider().check({}, news).failures == []
    [failure] = MasterServiceProvider().check({}, {**news, "port": 22.5}).failures
    assert failure.property == "port"


def at_preview(news: dict) -> dict:
    """Inputs as the dynamic provider server hands them to `check` at preview: through the SDK's own
    deserialization, which keeps an Output not known yet as `pulumi.output.Unknown`."""
    wire = struct_pb2.Struct()
    wire.update(news)
    return rpc.deserialize_properties(wire, True)


@pytest.mark.parametrize(("provider", "module"), KINDS)
def test_an_address_and_host_key_not_known_at_preview_are_checked_later_and_the_rest_now(provider, module):
    """A program's host whose address and host key are Outputs of a resource still to be made (a new VM)."""
    news = at_preview({**inputs(module), "address": rpc.UNKNOWN, "hostKey": rpc.UNKNOWN})
    assert isinstance(news["address"], Unknown) and isinstance(news["hostKey"], Unknown)
    assert provider().check({}, news).failures == []
    [failure] = provider().check({}, {**news, "user": "two words"}).failures
    assert failure.property == "user"


HOST = {"name": "mail1", "address": "10.0.0.1", "hostKey": KEY}
BASTION = {"name": "jkt-bastion", "address": "10.0.0.9", "port": 2222, "user": "jump", "hostKey": KEY}


def test_a_host_behind_a_bastion_carries_the_bastion_in_its_inputs_and_passes_check():
    [host, direct] = parse_stack("dc1", {"jump": "jkt-bastion"},
                                 [HOST, {**HOST, "name": "mail2", "address": "10.0.0.2", "hostKey": KEY[:-1] + "Y",
                                         "jump": None}],
                                 bastions=[BASTION])
    assert host.connection.jump.name == "jkt-bastion" and direct.connection.jump is None
    assert connection_inputs("dc1", direct)["jump"] == {}
    news = {**connection_inputs("dc1", host), **master_service.MODEL.wanted(master_service.MODEL.part(host)).props()}
    assert news["jump"] == BASTION
    # The engine hands the bastion's port back as 2222.0; check still reads it as the port it was.
    wire = {**news, "jump": {**BASTION, "port": 2222.0}}
    assert MasterServiceProvider().check({}, wire).failures == []
    assert MasterServiceProvider()._parse(wire)[1].jump.port == 2222
    bad = {**news, "jump": {**BASTION, "hostKey": "AAAA"}}
    [failure] = MasterServiceProvider().check({}, bad).failures
    assert failure.property == "jump.hostKey" and "stack dc1, bastion jkt-bastion, setting hostKey" in failure.reason


@pytest.mark.parametrize(("provider", "module"), KINDS)
@pytest.mark.parametrize("change", [{"user": "deploy"}, {"port": 2222}, {"jump": BASTION}])
def test_a_change_of_how_to_reach_a_host_updates_state_and_runs_nothing_on_it(provider, module, change,
                                                                              monkeypatch):
    olds = {**inputs(module), "revision": 4}
    news = {**inputs(module), **change}
    assert provider().diff("id", olds, news).changes is True

    def no_host(*_args, **_kwargs):
        raise AssertionError("a script ran on the host")

    monkeypatch.setattr(provider, "_run", no_host)
    result = provider().update("id", olds, news)
    assert result.outs["revision"] == 4 and all(result.outs[k] == v for k, v in change.items())


def test_state_written_before_bastions_existed_is_not_a_change():
    for provider, module in KINDS:
        olds = {key: value for key, value in inputs(module).items() if key != "jump"}
        assert provider().diff("id", olds, inputs(module)).changes is False


@pytest.mark.parametrize(("provider", "module"), KINDS)
def test_remove_and_read_act_from_the_applied_settings_never_from_what_a_refresh_found(provider, module):
    """After a refresh found the service file gone (empty texts), a missing entry, the zone out: delete and read
    still parse, from the settings last applied; and `applied` never moves the connection elsewhere."""
    applied = provider()._outputs(inputs(module), 3)["applied"]
    found = {"serviceShort": "", "serviceDescription": "", "serviceKey": "", "options": {}, "chroot": "",
             "maxproc": "", "permanent": False, "runtime": False}
    tampered = {**applied, "address": "10.9.9.9", "hostKey": "ssh-ed25519 AAAA"}
    props = {**inputs(module), **{k: v for k, v in found.items() if k in applied}, "applied": tampered}
    host, connection, parsed = provider()._parse_applied(props)
    assert host == "mail1" and connection.address == "10.0.0.1" and connection.host_key == KEY
    assert parsed == provider()._parse(inputs(module))[2]


def test_check_accepts_the_entry_a_named_certificate_makes():
    news = inputs(master_service, tlsCert="/etc/ssl/mx.crt", tlsKey="/etc/ssl/mx.key")
    assert news["options"]["smtpd_tls_cert_file"] == "/etc/ssl/mx.crt"
    result = MasterServiceProvider().check({}, news)
    assert result.failures == []
    host, _, (master, tls) = MasterServiceProvider()._parse(news)
    assert dict(master.options)["smtpd_tls_key_file"] == "/etc/ssl/mx.key" and tls.cert == "/etc/ssl/mx.crt"


def test_an_option_applied_before_a_rule_refused_it_is_still_removed_and_read_but_never_applied_again(monkeypatch):
    """State from a run whose rules accepted `smtpd_banner` (off today's allow-list): delete and read, which write
    no entry, still parse it; an update with it is refused before any script runs."""
    props = inputs(master_service)
    old = {**props, "options": {**props["options"], "smtpd_banner": "hello"}}
    ran: list[str] = []
    monkeypatch.setattr(MasterServiceProvider, "_change", lambda _self, _host, _conn, script: ran.append(script))
    MasterServiceProvider().delete("id", MasterServiceProvider()._outputs(old, 1))
    assert len(ran) == 1
    [failure] = MasterServiceProvider().check({}, old).failures
    assert failure.property == "options.smtpd_banner" and "allowOptions: [smtpd_banner]" in failure.reason
    with pytest.raises(Exception, match="allowOptions: \\[smtpd_banner\\]"):
        MasterServiceProvider().update("id", props, old)
    assert len(ran) == 1


def test_a_host_scripts_warning_lines_reach_the_operator_and_nothing_else_does(monkeypatch, capsys):
    """A warning a host script says (an earlier change that stood unconfirmed) is written to the provider's stderr,
    which the engine shows in the run's output; the script's other lines are data, and stay quiet."""
    from smtps_iredmail.core import remote
    from smtps_iredmail.core.remote import Result

    stdout = ("smtps: mail1: warning: an earlier firewalld change here (0123456789abcdef) was never confirmed\n"
              "smtps: mail1: an earlier firewalld change here was never confirmed: its previous configuration\n"
              "smtps: mail2: warning: another host's line\n"
              "smtps: mail1: warning: ::stop-commands::x \x1b[2J\n"
              "firewall=firewalld\n")

    class Pool:
        def run(self, host, connection, script):
            return Result(0, stdout, "")

    assert remote.run("mail1", None, "true", "master.cf", Pool()) == stdout
    assert capsys.readouterr().err == (
        "smtps: mail1: warning: an earlier firewalld change here (0123456789abcdef) was never confirmed\n"
        "smtps: mail1: warning: ::stop-commands::x \\x1b[2J\n")


def test_a_confirmation_that_finds_the_hosts_revert_failed_says_so_at_once(monkeypatch):
    """The fresh login finds the watcher came first and failed (confirm.sh exits 5 with its report): the run fails
    with that, at once, and never says the previous configuration is back."""
    from smtps_iredmail.core import remote
    from smtps_iredmail.core.remote import Result
    from smtps_iredmail.core.settings import Connection

    logins = []

    class Pool:
        def run(self, host, connection, script):
            return Result(0, "smtps-confirm=0123456789abcdef\n", "")

        def fresh(self, host, connection, script, timeout=60.0):
            logins.append(script)
            return Result(5, "reverting the unconfirmed firewalld change 0123456789abcdef failed; putting back "
                             "/etc/firewalld/zones/iredmail.xml failed; its copies are kept in "
                             "/run/smtps-iredmail/confirm\n", "")

    monkeypatch.setattr(remote.time, "sleep", lambda seconds: pytest.fail("waited for nothing"))
    with pytest.raises(remote.HostFailure) as failed:
        remote.run_confirmed("mail1", Connection("10.0.0.1", 22, "root", KEY), "true", "zone", Pool())
    assert len(logins) == 1
    assert str(failed.value) == (
        "mail1: zone: the firewalld reload was not confirmed in time, and the host's revert of it failed (reverting "
        "the unconfirmed firewalld change 0123456789abcdef failed; putting back /etc/firewalld/zones/iredmail.xml "
        "failed; its copies are kept in /run/smtps-iredmail/confirm); the next run there stops, saying how to "
        "settle it, until someone has")


@pytest.mark.parametrize(("nft", "rendered"), [
    ({"firewall": "nftables", "nftFamily": "inet", "nftTable": "filter", "nftChain": "input"},
     "NFT_CHAIN='inet filter input'\n"),
    ({"firewall": "firewalld", "nftFamily": "inet", "nftTable": "filter", "nftChain": "input"}, "NFT_CHAIN=''\n"),
    ({}, "NFT_CHAIN=''\n"),  # a state written before the setting: no nftables line is taken as this run's
    ({"firewall": "nftables", "nftFamily": "inet", "nftTable": "filter", "nftChain": "input;reboot"}, None),
])
def test_a_rollback_names_the_nftables_chain_only_of_a_host_whose_firewall_is_nftables(monkeypatch, nft, rendered):
    from smtps_iredmail import verification

    scripts = []
    monkeypatch.setattr(verification.remote, "run_confirmed",
                        lambda host, connection, script, *_: scripts.append(script) or "smtps-rollback=done\n")
    monkeypatch.setattr(verification.THIS_PROCESS.ssh, "get", lambda: "the provider process's pool")
    props = {"stack": "lab", "host": "mail1", "address": "10.0.0.1", "hostKey": KEY,
             "ssh": {"port": 22, "user": "root", "confirmSeconds": 60},
             "rollbackZone": {"zone": "iredmail", "service": "smtps"}, "rollbackNft": nft}
    outcome = VerificationProvider()._roll_back(props)
    said = outcome.words
    assert outcome.undone is (rendered is not None) and outcome.answer == (None if rendered is None else "done")
    if rendered is None:  # read back from the state like a setting, and refused like one
        assert not scripts and said.startswith("and rolling back this run's changes failed: ") and "nftChain" in said
    else:
        assert len(scripts) == 1 and rendered in scripts[0] and "undone" in said
