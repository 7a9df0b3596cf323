"""The stack files in stacks/ parse into settings, as the program will parse them: an example never rots."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from smtps_iredmail.core import stacks
from smtps_iredmail.core.hosts import parse_stack
from smtps_iredmail.core.settings import SettingsError

STACKS = sorted(p for p in (Path(__file__).parent.parent / "stacks").glob("Pulumi.*.yaml") if p.name !=
                "Pulumi.lab.yaml")


def test_there_are_example_stacks():
    assert STACKS


@pytest.mark.parametrize("path", STACKS, ids=lambda p: p.name)
def test_example_stack_loads(path):
    """Through the one loader the front end uses (Pulumi.yaml's fleet and the stack file, nothing decrypted)."""
    loaded = stacks.from_files(path.parent.parent, path.name.split(".")[1])
    assert loaded.hosts and all(h.connection.host_key.startswith("ssh-") for h in loaded.hosts)
    assert set(loaded.canaries) <= set(loaded.host_names())


def test_fleet_then_stack_then_host_override_setting_by_setting_and_option_by_option():
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"
    fleet = {"zone": "public", "serviceShort": "Fleet",
             "options": {"syslog_name": "fleet", "smtpd_tls_ciphers": "high"}}
    stack = {"serviceShort": "Stack", "options": {"syslog_name": "stack", "smtpd_tls_ciphers": None}}
    [a, b] = parse_stack("dc1", stack, [
        {"name": "mail1", "address": "10.0.0.1", "hostKey": key},
        {"name": "mail2", "address": "10.0.0.2", "hostKey": key[:-1] + "Y", "zone": "iredmail",
         "options": {"syslog_name": "h"}},
    ], fleet)
    assert (a.zone.zone, a.service.short, dict(a.master.options)["syslog_name"]) == ("public", "Stack", "stack")
    assert "smtpd_tls_ciphers" not in dict(a.master.options)  # the stack's null removed the fleet's option
    assert (b.zone.zone, dict(b.master.options)["syslog_name"]) == ("iredmail", "h")


def test_a_bad_fleet_default_is_named():
    with pytest.raises(SettingsError, match="stack dc1: setting fleet.address: belongs to each host"):
        parse_stack("dc1", {}, [{"name": "m"}], {"address": "10.0.0.1"})


def test_a_setting_stored_as_a_secret_is_refused_by_the_file_loader(tmp_path):
    (tmp_path / "stacks").mkdir()
    (tmp_path / "Pulumi.yaml").write_text("name: smtps-iredmail\nconfig:\n  smtps-iredmail:canaries:\n"
                                          "    value: [mx1]\n")
    host = {"name": "mx1", "address": "10.0.0.1", "hostKey": {"secure": "v1:abc"}}
    (tmp_path / "stacks" / "Pulumi.s1.yaml").write_text(yaml.safe_dump({"config": {"smtps-iredmail:hosts": [host]}}))
    with pytest.raises(SettingsError, match=r"stack s1: setting hosts\[0\]\.hostKey: stored as a secret"):
        stacks.from_files(tmp_path, "s1")
    host["hostKey"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"
    (tmp_path / "stacks" / "Pulumi.s1.yaml").write_text(yaml.safe_dump({"config": {"smtps-iredmail:hosts": [host]}}))
    # Project-level canaries (Pulumi.yaml) are the stack's too.
    assert stacks.from_files(tmp_path, "s1").canaries == ("mx1",)


def test_an_object_written_as_json_text_loads_as_the_engine_reads_it(tmp_path):
    (tmp_path / "stacks").mkdir()
    (tmp_path / "Pulumi.yaml").write_text("name: smtps-iredmail\n")
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"
    hosts = f'[{{"name": "mx1", "address": "10.0.0.1", "hostKey": "{key}"}}]'
    (tmp_path / "stacks" / "Pulumi.s1.yaml").write_text(yaml.safe_dump({"config": {"smtps-iredmail:hosts": hosts}}))
    assert stacks.from_files(tmp_path, "s1").host_names() == ["mx1"]


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"


def stack_with(tmp_path, extra: dict) -> Path:
    (tmp_path / "stacks").mkdir(exist_ok=True)
    (tmp_path / "Pulumi.yaml").write_text("name: smtps-iredmail\n")
    hosts = [{"name": "mx1", "address": "10.0.0.1", "hostKey": KEY},
             {"name": "mx2", "address": "10.0.0.2", "hostKey": KEY[:-1] + "Y"}]
    config = {"smtps-iredmail:hosts": hosts, **extra}
    (tmp_path / "stacks" / "Pulumi.s1.yaml").write_text(yaml.safe_dump({"config": config}, allow_unicode=True))
    return tmp_path


@pytest.mark.parametrize(("key", "shown"), [
    # The review's proof: each of these left the canaries empty, so every host converged at once.
    ("smtps-iredmail:canaries\u200b", r"'smtps-iredmail:canaries\u200b'"),
    ("smtps-iredmail:c\u0430naries", r"'smtps-iredmail:c\u0430naries'"),  # a Cyrillic a
    ("smtps-iredmail:canary", "'smtps-iredmail:canary'"),
    ("smtps-iredmai1:canaries", "'smtps-iredmai1:canaries'"),  # a look-alike namespace
    ("smtps-\u0456redmail:canaries", r"'smtps-\u0456redmail:canaries'"),
])
def test_a_config_key_the_tool_does_not_read_is_refused_named_escaped_with_the_close_one(tmp_path, key, shown):
    folder = stack_with(tmp_path, {key: ["mx1"]})
    with pytest.raises(SettingsError) as refused:
        stacks.from_files(folder, "s1")
    assert str(refused.value).startswith(f"stack s1: setting {shown}: not a setting this tool reads (did you mean "
                                         "smtps-iredmail:canaries? known: smtps-iredmail:fleet, ")
    assert str(refused.value).isascii()


def test_keys_of_other_namespaces_and_bare_keys_are_read_as_the_engine_reads_them(tmp_path):
    # aws:region is another namespace's; a key without one is the project's (canaries, here).
    folder = stack_with(tmp_path, {"aws:region": "eu-central-1", "canaries": ["mx2"]})
    assert stacks.from_files(folder, "s1").canaries == ("mx2",)
    folder = stack_with(tmp_path, {"canaries\u200b": ["mx2"]})
    with pytest.raises(SettingsError, match=r"setting 'smtps-iredmail:canaries\\u200b': not a setting"):
        stacks.from_files(folder, "s1")


def test_the_program_refuses_a_key_it_does_not_read_before_registering_anything(monkeypatch):
    import json

    import pulumi

    from smtps_iredmail.program import program
    from tests.test_hostile_input import Mocks, NoNetwork

    network, mocks = NoNetwork(monkeypatch), Mocks()
    hosts = [{"name": "mx1", "address": "10.0.0.1", "hostKey": KEY}]
    pulumi.runtime.set_all_config({"smtps-iredmail:hosts": json.dumps(hosts),
                                   "smtps-iredmail:c\u0430naries": json.dumps(["mx1"]),
                                   "smtps-iredmail:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----"},
                                  ["smtps-iredmail:sshPrivateKey"])
    pulumi.runtime.set_mocks(mocks, project="smtps-iredmail", stack="s1", preview=False)
    try:
        with pytest.raises(pulumi.RunError, match=r"stack s1: setting 'smtps-iredmail:c\\u0430naries': not a "):
            program()
    finally:
        pulumi.runtime.set_all_config({})
    assert mocks.resources == [] and network.attempts == []
