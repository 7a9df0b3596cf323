"""The stack files in stacks/ parse into settings, as the program will parse them: an example never rots."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from smtps.settings import SettingsError, parse_stack

STACKS = sorted(p for p in (Path(__file__).parent.parent / "stacks").glob("Pulumi.*.yaml") if p.name !=
                "Pulumi.lab.yaml")


def test_there_are_example_stacks():
    assert STACKS


FLEET = yaml.safe_load((Path(__file__).parent.parent / "Pulumi.yaml").read_text())["config"]["smtps-iredmail:fleet"]


@pytest.mark.parametrize("path", STACKS, ids=lambda p: p.name)
def test_example_stack_parses(path):
    config = yaml.safe_load(path.read_text())["config"]
    stack = path.name.split(".")[1]
    hosts = parse_stack(stack, config.get("smtps-iredmail:defaults"), config["smtps-iredmail:hosts"],
                        FLEET["value"], config.get("smtps-iredmail:bastions"), config.get("smtps-iredmail:canaries"))
    assert [h.name for h in hosts] and all(h.connection.host_key.startswith("ssh-") for h in hosts)


def test_fleet_then_stack_then_host_override_setting_by_setting_and_option_by_option():
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"
    fleet = {"zone": "public", "serviceShort": "Fleet",
             "options": {"syslog_name": "fleet", "smtpd_tls_ciphers": "high"}}
    stack = {"serviceShort": "Stack", "options": {"syslog_name": "stack", "smtpd_tls_ciphers": None}}
    [a, b] = parse_stack("dc1", stack, [
        {"name": "mail1", "address": "10.0.0.1", "hostKey": key},
        {"name": "mail2", "address": "10.0.0.2", "hostKey": key, "zone": "iredmail", "options": {"syslog_name": "h"}},
    ], fleet)
    assert (a.zone.zone, a.service.short, dict(a.master.options)["syslog_name"]) == ("public", "Stack", "stack")
    assert "smtpd_tls_ciphers" not in dict(a.master.options)  # the stack's null removed the fleet's option
    assert (b.zone.zone, dict(b.master.options)["syslog_name"]) == ("iredmail", "h")


def test_a_bad_fleet_default_is_named():
    with pytest.raises(SettingsError, match="stack dc1: setting fleet.address: belongs to each host"):
        parse_stack("dc1", {}, [{"name": "m"}], {"address": "10.0.0.1"})
