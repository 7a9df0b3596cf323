"""The public component under Pulumi's mocks (no engine, no host): SmtpsHostArgs parsed in the settings' words,
Outputs passed through to the resources, each field matching a setting, the providers wired by the component, the
providers' check deferring unknown values, and a state written by the release before the package recognised."""

from __future__ import annotations

import base64
import sys
import types
from dataclasses import fields

import dill
import pulumi
import pytest
from pulumi.output import Unknown
from pulumi.runtime import rpc

from smtps_iredmail import JumpArgs, SmtpsHost, SmtpsHostArgs, set_deploy_key
from smtps_iredmail.base import stale_provider
from smtps_iredmail.core import master_service
from smtps_iredmail.core.hosts import DEFAULTS, HOST_ONLY
from smtps_iredmail.core.model import camel
from smtps_iredmail.host import provider_slot
from smtps_iredmail.master_service import MasterServiceProvider
from smtps_iredmail.verification import VerificationProvider
from tests.test_components import KEY, Mocks, inputs


@pytest.fixture
def mocks():
    the_mocks = Mocks()
    pulumi.runtime.set_mocks(the_mocks, project="smtps-iredmail", stack="dc1", preview=False)
    return the_mocks


def test_each_setting_is_a_field_with_the_same_default():
    settings = {camel(f.name): f.default for f in fields(SmtpsHostArgs)}
    # Every setting of a stack's host entry but `name` (the resource's name); the key is not a setting there.
    assert set(settings) - {"sshPrivateKey"} == (set(DEFAULTS) | set(HOST_ONLY)) - {"name"}
    for key, default in DEFAULTS.items():
        if key not in ("options", "allowOptions", "jump", "tlsCert", "tlsKey", "tlsName", "caBundle"):
            assert settings[key] == default, key


def test_a_bad_plain_value_stops_the_program_in_the_settings_words(mocks):
    with pytest.raises(pulumi.RunError) as err:
        SmtpsHost("mx1", SmtpsHostArgs(address="0x0ae70006", host_key=KEY, service_key="smpts"))
    assert ("stack dc1, host mx1, setting address: '0x0ae70006' is read by the resolver as the IPv4 address "
            "10.231.0.6: write 10.231.0.6") in str(err.value)
    assert "stack dc1, host mx1, setting serviceKey: 'smpts' is not one of 465, smtps, submissions" in str(err.value)
    assert mocks.resources == []  # nothing registered


def test_a_bad_bastion_is_named_as_one(mocks):
    with pytest.raises(pulumi.RunError, match="stack dc1, bastion jump1, setting port: 0 is outside 1 to 65535"):
        SmtpsHost("mx1", SmtpsHostArgs(address="10.0.0.1", host_key=KEY,
                                       jump=JumpArgs("10.0.0.9", KEY, port=0, name="jump1")))


@pulumi.runtime.test
def test_outputs_reach_the_resources_as_given_and_plain_values_as_parsed(mocks):
    address, cert = pulumi.Output.from_input("10.0.0.7"), pulumi.Output.from_input("/etc/ssl/certs/mx.crt")
    host = SmtpsHost("mx1", SmtpsHostArgs(address=address, host_key=pulumi.Output.from_input(KEY), tls_cert=cert,
                                          tls_key="/etc/ssl/private/mx.key", firewall="firewalld",
                                          jump=JumpArgs(pulumi.Output.from_input("10.0.0.9"), KEY, name="b1")))

    def check(_):
        by_name = {r.name: r for r in mocks.resources}
        master = by_name["mx1-master"]
        assert master.inputs["address"] == "10.0.0.7" and master.inputs["hostKey"] == KEY
        assert master.inputs["tlsCert"] == "/etc/ssl/certs/mx.crt"
        assert master.inputs["options"]["smtpd_tls_cert_file"] == "/etc/ssl/certs/mx.crt"
        assert master.inputs["options"]["smtpd_tls_key_file"] == "/etc/ssl/private/mx.key"
        assert master.inputs["jump"] == {"name": "b1", "address": "10.0.0.9", "port": 22, "user": "root",
                                         "hostKey": KEY}
        # firewall: firewalld declares only the firewalld kinds.
        assert {"mx1-master", "mx1-service", "mx1-zone", "mx1-verify"} <= set(by_name)
        assert "mx1-nftables" not in by_name
        # Every input a provider checks passes its check.
        assert MasterServiceProvider().check({}, dict(master.inputs)).failures == []
        providers = [r for r in mocks.resources if r.typ.startswith("pulumi:providers:")]
        assert [p.name for p in providers] == [f"ssh-{provider_slot('mx1')}"]

    return host.verification.id.apply(check)


@pulumi.runtime.test
def test_a_host_with_its_own_key_gets_its_own_provider_with_the_key_secret(mocks):
    host = SmtpsHost("mx2", SmtpsHostArgs(address="10.0.0.8", host_key=KEY, ssh_private_key="PRIVATE"))

    def check(_):
        [provider] = [r for r in mocks.resources if r.typ.startswith("pulumi:providers:")]
        assert provider.name == "mx2-ssh"
        for r in mocks.resources:
            if not r.typ.startswith("pulumi:providers:"):
                assert "PRIVATE" not in str(r.inputs)

    return host.verification.id.apply(check)


def test_check_defers_what_is_not_known_yet_and_refuses_it_once_known():
    news = {**inputs(master_service), "address": Unknown(), "hostKey": rpc.UNKNOWN, "options": Unknown(),
            "jump": {"address": Unknown(), "hostKey": KEY, "port": 22, "user": "root"}}
    assert MasterServiceProvider().check({}, news).failures == []
    [failure] = MasterServiceProvider().check({}, {**news, "address": "0x0ae70006", "hostKey": KEY, "jump": {},
                                                  "options": inputs(master_service)["options"]}).failures
    assert failure.property == "address" and "stack dc1, host mail1, setting address: '0x0ae70006'" in failure.reason


def _old_release_provider() -> str:
    """A provider serialized as the release before the package did: its class in a top-level `components.*`."""
    module = types.ModuleType("components.master_service")
    provider = type("MasterServiceProvider", (), {"__module__": "components.master_service"})
    module.MasterServiceProvider = provider
    sys.modules["components.master_service"] = module
    try:
        return base64.b64encode(dill.dumps(provider(), recurse=True)).decode()
    finally:
        del sys.modules["components.master_service"]


def test_a_state_from_the_release_before_the_package_is_updated_in_place_and_nothing_else_is():
    old = _old_release_provider()
    now = base64.b64encode(dill.dumps(MasterServiceProvider(), recurse=True)).decode()
    assert stale_provider({"__provider": old}) and not stale_provider({"__provider": now})
    assert not stale_provider({"__provider": "not base64 !"}) and not stale_provider({})
    olds = {**inputs(master_service), "revision": 1, "__provider": old}
    news = {**inputs(master_service), "__provider": now}
    diff = MasterServiceProvider().diff("id", olds, news)
    assert diff.changes and diff.replaces == []
    assert not MasterServiceProvider().diff("id", {**olds, "__provider": now}, news).changes
    verify = VerificationProvider()
    assert verify.diff("id", {"host": "mail1", "__provider": old}, {"host": "mail1", "__provider": now}).changes
    kept = verify.update("id", {"host": "mail1", "tlsVersion": "TLSv1.3", "__provider": old},
                         {"host": "mail1", "__provider": now, "tlsVersion": None})
    assert kept.outs["tlsVersion"] == "TLSv1.3"  # nothing was checked again: what was seen stands


# Found by a hostile review, each shown failing on the code before its fix.


@pulumi.runtime.test
def test_a_coroutine_address_is_accepted_as_the_docstring_says(mocks):
    async def address() -> str:
        return "10.0.0.7"

    host = SmtpsHost("mx1", SmtpsHostArgs(address=address(), host_key=KEY, firewall="firewalld"))

    def check(_):
        by_name = {r.name: r for r in mocks.resources}
        assert by_name["mx1-master"].inputs["address"] == "10.0.0.7"
        assert by_name["mx1-verify"].inputs["address"] == "10.0.0.7"

    return pulumi.Output.all(host.verification.id, host.address).apply(check)


def test_a_jump_given_as_a_mapping_is_refused_in_the_settings_words(mocks):
    with pytest.raises(pulumi.RunError, match="setting jump: expected JumpArgs"):
        SmtpsHost("mx1", SmtpsHostArgs(address="10.0.0.1", host_key=KEY,
                                       jump={"address": "10.0.0.9", "host_key": KEY}))

def _provider_inputs(the_mocks, name):
    return [dict(r.inputs) for r in the_mocks.resources if r.typ.startswith("pulumi:providers:") and r.name == name]


def test_a_second_program_run_in_the_same_process_inherits_the_first_runs_deploy_key():
    """Automation API: one process runs stack A's program (which calls set_deploy_key) and then stack B's (which
    does not, its hosts using SMTPS_SSH_KEY_FILE). _Fleet.key is never reset: B's providers get A's key."""
    slot = f"ssh-{provider_slot('mx1')}"
    first = Mocks()
    pulumi.runtime.set_mocks(first, project="p", stack="a", preview=False)

    @pulumi.runtime.test
    def run_a():
        set_deploy_key("PRIVATE-KEY-OF-STACK-A")
        return SmtpsHost("mx1", SmtpsHostArgs(address="10.0.0.1", host_key=KEY)).verification.id

    run_a()
    pulumi.runtime.settings.reset_options()  # as the Automation API's language server does between runs
    second = Mocks()
    pulumi.runtime.set_mocks(second, project="p", stack="b", preview=False)
    @pulumi.runtime.test
    def run_b():
        # set_mocks made a fresh root (reset_options dropped A's), as run_in_stack does for every run.
        return SmtpsHost("mx1", SmtpsHostArgs(address="10.0.0.2", host_key=KEY)).verification.id

    run_b()
    [provider] = _provider_inputs(second, slot)
    assert "smtps-iredmail:sshPrivateKey" not in provider, provider


def test_two_hosts_on_one_machine_are_refused_as_a_stack_refuses_them(mocks):
    """A stack refuses a second host with the same address or host key ("appears twice": one machine under two
    names, whose destroy of one takes SMTPS off the other). The component path checks nothing across hosts."""
    from smtps_iredmail.core.hosts import parse_stack
    from smtps_iredmail.core.settings import SettingsError

    with pytest.raises(SettingsError, match="appears twice"):
        parse_stack("dc1", {}, [{"name": "mx1", "address": "10.0.0.1", "hostKey": KEY},
                                {"name": "mx1b", "address": "10.0.0.1", "hostKey": KEY}])
    SmtpsHost("mx1", SmtpsHostArgs(address="10.0.0.1", host_key=KEY))
    with pytest.raises(pulumi.RunError, match="appears twice"):
        SmtpsHost("mx1b", SmtpsHostArgs(address="10.0.0.1", host_key=KEY))


def test_a_bad_bastion_key_from_an_output_is_refused_in_the_same_words_as_written_plainly(mocks):
    from smtps_iredmail.core import master_service
    from smtps_iredmail.master_service import MasterServiceProvider
    from tests.test_components import inputs

    with pytest.raises(pulumi.RunError) as plain:
        SmtpsHost("mail1", SmtpsHostArgs(address="10.0.0.1", host_key=KEY,
                                         jump=JumpArgs("10.0.0.9", "garbage", name="b1")))
    news = {**inputs(master_service), "jump": {"name": "b1", "address": "10.0.0.9", "port": 22, "user": "root",
                                               "hostKey": "garbage"}}
    [failure] = MasterServiceProvider().check({}, news).failures
    print(str(plain.value), "\n", failure.reason)
    assert failure.reason in str(plain.value)
