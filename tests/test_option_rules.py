"""The rule for options that open relaying or bypass the content filter (smtps/option_rules.py), on plain values,
and as the settings apply it: refused naming stack, host and setting, unless allowed by name."""

from __future__ import annotations

import pytest

from smtps.option_rules import risk
from smtps.settings import SettingsError, parse_host

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"


@pytest.mark.parametrize(("name", "value"), [
    ("smtpd_relay_restrictions", "permit_sasl_authenticated,reject"),
    ("smtpd_relay_restrictions", "permit_sasl_authenticated, permit_mynetworks, reject_unauth_destination"),
    ("smtpd_recipient_restrictions", "reject_non_fqdn_recipient permit_sasl_authenticated defer_unauth_destination"),
    ("content_filter", "smtp-amavis:[127.0.0.1]:10026"), ("content_filter", "smtp-amavis:127.0.0.1:10026"),
    ("content_filter", "smtp-amavis:[ipv6:::1]:10026"), ("content_filter", "smtp-amavis:localhost:10026"),
    ("content_filter", "smtp-amavis:"), ("mynetworks", "127.0.0.0/8 [::1]/128"),
    ("smtpd_client_restrictions", "permit"),  # not a relay decision: the relay restrictions still apply
])
def test_safe(name, value):
    assert risk(name, value) is None


@pytest.mark.parametrize(("name", "value", "words"), [
    ("smtpd_relay_restrictions", "permit", "permit comes before permit_sasl_authenticated"),
    ("smtpd_relay_restrictions", "permit_mynetworks,permit_sasl_authenticated,reject", "permit_mynetworks comes"),
    ("smtpd_recipient_restrictions", "reject_unauth_pipelining", "has no permit_sasl_authenticated"),
    ("smtpd_relay_restrictions", "permit_sasl_authenticated", "does not end unauthenticated relaying"),
    ("content_filter", "smtp-amavis:[10.0.0.5]:10026", "sends submitted mail to [10.0.0.5], off this host"),
    ("content_filter", "smtp:filter.example.com", "sends submitted mail to filter.example.com"),
    ("mynetworks", "127.0.0.0/8 10.0.0.0/8", "lets every client in 10.0.0.0/8 relay"),
    ("mynetworks", "hash:/etc/postfix/network_table", "not a network this check can judge"),
])
def test_risky(name, value, words):
    assert words in (risk(name, value) or "")


def test_refused_naming_stack_host_and_setting_unless_allowed_by_name():
    host = {"name": "mx1", "address": "10.0.0.1", "hostKey": KEY,
            "options": {"content_filter": "smtp-amavis:[10.0.0.5]:10026"}}
    with pytest.raises(SettingsError, match=r"stack dc1, host mx1, setting options\.content_filter: "
                                            r"'smtp-amavis:\[10\.0\.0\.5\]:10026': sends submitted mail .*"
                                            r"allowOptions: \[content_filter\]"):
        parse_host("dc1", {}, host)
    allowed = parse_host("dc1", {"allowOptions": ["content_filter"]}, host)
    assert dict(allowed.master.options)["content_filter"] == "smtp-amavis:[10.0.0.5]:10026"
    assert allowed.master.allowed == ("content_filter",)


@pytest.mark.parametrize(("options", "words"), [
    ({"smtpd_relay_restrictions": "permit"}, "permit comes before permit_sasl_authenticated"),
    ({"mynetworks": "0.0.0.0/0"}, "lets every client in 0.0.0.0/0 relay"),
])
def test_the_program_refuses_them_before_registering_anything(monkeypatch, options, words):
    from tests.test_hostile_input import NoNetwork, run_program

    network = NoNetwork(monkeypatch)
    host = {"name": "mail1", "address": "10.0.0.1", "hostKey": KEY, "options": options}
    refused, mocks = run_program({}, [host])
    assert refused is not None and "setting options." in str(refused) and words in str(refused)
    assert mocks.resources == [] and network.attempts == []
