"""The rule for options that open relaying or bypass the content filter (smtps/option_rules.py), on plain values,
and as the settings apply it: refused naming stack, host and setting, unless allowed by name."""

from __future__ import annotations

import pytest

from smtps_iredmail.core.hosts import parse_host
from smtps_iredmail.core.option_rules import host_filter_checks, risk
from smtps_iredmail.core.settings import SettingsError

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"


# The -o overrides of iRedMail's own 465 and 587 entries, as its samples/postfix/master.cf (1.5.0 to 1.8.1) has them
# with the installer's defaults filled in: a host converged with these must stay valid.
IREDMAIL_465_587 = [
    ("syslog_name", "postfix/smtps"), ("syslog_name", "postfix/submission"), ("smtpd_tls_wrappermode", "yes"),
    ("smtpd_tls_security_level", "encrypt"), ("smtpd_sasl_auth_enable", "yes"),
    ("smtpd_client_restrictions", "permit_sasl_authenticated,reject"),
    ("content_filter", "smtp-amavis:[127.0.0.1]:10026"),
]


# The -o overrides of the submission and smtps examples in Postfix's stock master.cf (2.10 to 3.7), but the
# `$mua_*_restrictions` ones (a `$` is refused) and the empty restriction lists (each its own rule).
POSTFIX_EXAMPLES = [
    ("syslog_name", "postfix/submissions"), ("smtpd_tls_security_level", "encrypt"), ("smtpd_tls_wrappermode", "yes"),
    ("smtpd_sasl_auth_enable", "yes"), ("smtpd_tls_auth_only", "yes"), ("smtpd_reject_unlisted_recipient", "no"),
    ("smtpd_recipient_restrictions", "permit_sasl_authenticated,reject"),
    ("smtpd_relay_restrictions", "permit_sasl_authenticated,reject"), ("milter_macro_daemon_name", "ORIGINATING"),
    ("smtpd_helo_restrictions", ""), ("smtpd_sender_restrictions", ""),
]


@pytest.mark.parametrize(("name", "value"), [
    *IREDMAIL_465_587,
    ("smtpd_relay_restrictions", "permit_sasl_authenticated,reject"),
    ("smtpd_relay_restrictions", "permit_sasl_authenticated, permit_mynetworks, reject_unauth_destination"),
    ("smtpd_recipient_restrictions", "reject_non_fqdn_recipient permit_sasl_authenticated defer_unauth_destination"),
    ("content_filter", "smtp-amavis:[ipv6:::1]:10026"), ("content_filter", "smtp-amavis:[::1]:10026"),
    ("content_filter", "smtp:[127.0.0.2]:10024"), ("mynetworks", "127.0.0.0/8 [::1]/128"),
    ("smtpd_client_restrictions", "reject_unknown_client_hostname,permit_sasl_authenticated,reject"),
    ("smtpd_client_restrictions", "permit_sasl_authenticated,reject_unauth_pipelining,defer_if_permit,reject"),
    ("smtpd_sender_restrictions", "reject_non_fqdn_sender,reject_unknown_sender_domain"),
    # Postfix's own submission and smtps examples (its stock master.cf), where they do not expand $name.
    *POSTFIX_EXAMPLES,
    # How the TLS session is made.
    ("smtpd_tls_ciphers", "high"), ("smtpd_tls_mandatory_protocols", ">=TLSv1.2"), ("smtpd_tls_loglevel", "1"),
])
def test_safe(name, value):
    assert risk(name, value) is None


SHAPE = "is not transport:[loopback address]:port"


@pytest.mark.parametrize(("name", "value", "words"), [
    ("smtpd_relay_restrictions", "permit", "permit comes before permit_sasl_authenticated"),
    ("smtpd_relay_restrictions", "permit_mynetworks,permit_sasl_authenticated,reject", "permit_mynetworks comes"),
    ("smtpd_recipient_restrictions", "reject_unauth_pipelining", "has no permit_sasl_authenticated"),
    ("smtpd_relay_restrictions", "permit_sasl_authenticated", "does not end unauthenticated relaying"),
    ("content_filter", "smtp-amavis:[10.0.0.5]:10026", "sends submitted mail to [10.0.0.5], off this host"),
    ("content_filter", "smtp:[filter.example.com]:10026", "sends submitted mail to [filter.example.com]"),
    ("content_filter", "smtp-amavis:[localhost]:10026", "sends submitted mail to [localhost]"),
    ("content_filter", "smtp-amavis:[::ffff:127.0.0.1]:10026", "sends submitted mail to [::ffff:127.0.0.1]"),
    # The values that are no filter at all, or not this host's.
    ("content_filter", "", SHAPE), ("content_filter", "smtp", SHAPE), ("content_filter", "smtp:", SHAPE),
    ("content_filter", "a=b", SHAPE), ("content_filter", "-o", SHAPE), ("content_filter", "smtp-amavis:", SHAPE),
    ("content_filter", "smtp:filter.example.com", SHAPE), ("content_filter", "smtp-amavis:127.0.0.1:10026", SHAPE),
    ("content_filter", "smtp-amavis:[127.0.0.1]", SHAPE), ("content_filter", "smtp-amavis:[127.0.0.1]:", SHAPE),
    ("content_filter", ":[127.0.0.1]:10026", SHAPE), ("content_filter", "smtp-amavis:[127.0.0.1]:10026,x", SHAPE),
    ("content_filter", "smtp:[127.0.0.1]:10025", "port 10025 is iRedMail's re-injection listener"),
    ("content_filter", "smtp:[127.0.0.1]:10028", "port 10028 is iRedMail's re-injection listener"),
    ("content_filter", "smtp-amavis:[127.0.0.1]:465", "port 465 is this entry's own"),
    ("content_filter", "smtp:[127.0.0.1]:0", "port 0 is not a number from 1 to 65535 written without leading"),
    ("content_filter", "smtp:[127.0.0.1]:99999", "port 99999 is not a number from 1 to 65535"),
    ("content_filter", "smtp:[127.0.0.1]:025", "port 025 is not a number from 1 to 65535 written without leading"),
    ("content_filter", "smtp:[127.0.0.1]:010026", "port 010026 is not a number from 1 to 65535"),
    ("content_filter", "smtp:[127.0.0.1]:000000000010026", "port 000000000010026 is not a number"),
    ("content_filter", "smtp:[127.0.0.1]:65536", "port 65536 is not a number from 1 to 65535"),
    # Postfix expands $name in -o values; an unknown name expands to nothing.
    ("content_filter", "$HOME", "Postfix expands $name"),
    ("content_filter", "smtp-amavis:[127.0.0.1]:$port", "Postfix expands $name"),
    ("syslog_name", "postfix/$x", "Postfix expands $name"), ("smtpd_sasl_auth_enable", "$yes", "Postfix expands"),
    ("smtpd_client_restrictions", "$mua_client_restrictions", "Postfix expands $name"),
    ("smtpd_proxy_filter", "[203.0.113.9]:25", "hands every message, before it is queued, to a proxy"),
    ("smtpd_proxy_filter", "[127.0.0.1]:10026", "to a proxy"),
    ("smtpd_milters", "inet:127.0.0.1:8891", "hands every message to milters"), ("smtpd_milters", "", "milters"),
    ("non_smtpd_milters", "inet:127.0.0.1:8891", "to milters"),
    ("receive_override_options", "no_milters", "can switch off milters"),
    ("receive_override_options", "", "can switch off milters"),
    # Login required on 465: permit_sasl_authenticated, nothing that permits, and a final reject.
    ("smtpd_client_restrictions", "permit", "has no permit_sasl_authenticated"),
    ("smtpd_client_restrictions", "", "has no permit_sasl_authenticated"),
    ("smtpd_client_restrictions", "permit_mynetworks,permit_sasl_authenticated,reject", "permit_mynetworks may let"),
    ("smtpd_client_restrictions", "permit_sasl_authenticated,permit,reject", "permit may let a client past"),
    ("smtpd_client_restrictions", "check_client_access,hash:/etc/postfix/ok,permit_sasl_authenticated,reject",
     "check_client_access may let"),
    ("smtpd_client_restrictions", "myclass,permit_sasl_authenticated,reject", "myclass may let a client past"),
    ("smtpd_client_restrictions", "permit_sasl_authenticated", "does not end in reject"),
    ("smtpd_client_restrictions", "permit_sasl_authenticated,reject_unauth_pipelining", "does not end in reject"),
    ("smtpd_relay_restrictions", "check_client_access cidr:/etc/postfix/ok permit_sasl_authenticated reject",
     "check_client_access comes before reject: it may let a client relay without logging in"),
    ("smtpd_relay_restrictions", "permit_sasl_authenticated,permit_tls_clientcerts,reject_unauth_destination",
     "permit_tls_clientcerts comes before reject_unauth_destination"),
    ("smtpd_recipient_restrictions", "permit_sasl_authenticated myclass defer_unauth_destination", "myclass comes"),
    ("smtpd_sender_restrictions", "check_sender_access hash:/etc/postfix/x", "may answer OK, FILTER or REDIRECT"),
    ("smtpd_data_restrictions", "check_policy_service inet:127.0.0.1:7777", "check_policy_service may answer"),
    ("header_checks", "pcre:/etc/postfix/header_checks", "a FILTER or REDIRECT in this table"),
    ("body_checks", "regexp:/etc/postfix/b", "elsewhere than the content filter"),
    ("mynetworks", "127.0.0.0/8 10.0.0.0/8", "lets every client in 10.0.0.0/8 relay"),
    ("mynetworks", "hash:/etc/postfix/network_table", "not a network this check can judge"),
    # An access map anywhere, whatever the option.
    ("smtpd_relay_restrictions", "permit_sasl_authenticated,reject_unauth_destination,check_client_access,x",
     "check_client_access may answer OK, FILTER or REDIRECT"),
    ("smtpd_helo_restrictions", "check_helo_access,pcre:/etc/postfix/helo", "check_helo_access may answer OK"),
    ("syslog_name", "postfix/check_x", "check_x may answer OK"),
    # The review's holes: options nobody listed as dangerous. Each is off the allow-list.
    ("smtpd_authorized_xclient_hosts", "0.0.0.0/0", "(XCLIENT): they relay without logging in"),
    ("smtpd_sasl_type", "dovecot", "another kind of authentication server, which may accept any password"),
    ("smtpd_sasl_path", "inet:127.0.0.1:12345", "another authentication server, which may accept any password"),
    ("smtpd_sasl_exceptions_networks", "0.0.0.0/0", "without being offered AUTH"),
    ("smtpd_milter_maps", "cidr:/etc/postfix/milters", "to milters, apart from the content filter"),
    ("smtpd_restriction_classes", "myclass", "defines restriction classes"),
    ("smtpd_command_filter", "pcre:/etc/postfix/command_filter", "is not on the list of options known to be harmless"),
    ("cleanup_service_name", "other-cleanup", "is not on the list of options known to be harmless"),
    ("sender_bcc_maps", "hash:/etc/postfix/bcc", "is not on the list"),
    ("recipient_bcc_maps", "hash:/etc/postfix/bcc", "is not on the list"),
    ("always_bcc", "copy@example.net", "is not on the list"), ("smtpd_data_restrictions", "", "is not on the list"),
    ("local_header_rewrite_clients", "static:all", "is not on the list"),
    # A restriction class is an option of any name: off the list, and its check_* is refused too.
    ("myclass", "permit", "is not on the list"), ("myclass", "check_client_access,hash:/x", "check_client_access"),
    ("smtpd_sasl_auth_enable", "no", "only yes is known here"),
    # Postfix reads restriction names in any case.
    ("smtpd_sender_restrictions", "CHECK_SENDER_ACCESS,hash:/etc/postfix/x", "CHECK_SENDER_ACCESS may answer OK"),
    # A certificate served apart from tlsCert, and a name that only starts like the TLS options.
    ("smtpd_tls_chain_files", "/etc/ssl/other.pem", "serves a certificate apart from tlsCert/tlsKey"),
    ("smtpd_tls_eccert_file", "/etc/ssl/ec.pem", "serves a certificate apart from tlsCert/tlsKey"),
    ("smtpd_tls_myclass", "permit", "is not on the list"),
    ("smtpd_sasl_auth_enable", "YES", "only yes is known here"),
])
def test_risky(name, value, words):
    assert words in (risk(name, value) or "")


@pytest.mark.parametrize(("options", "setting", "words"), [
    ({"content_filter": None}, "content_filter", "null removes iRedMail's content filter"),
    ({"smtpd_client_restrictions": None}, "smtpd_client_restrictions", "main.cf's, made for port 25"),
])
def test_removing_the_filter_or_the_login_rule_needs_allow_options(options, setting, words):
    host = {"name": "mx1", "address": "10.0.0.1", "hostKey": KEY, "options": options}
    with pytest.raises(SettingsError) as refused:
        parse_host("dc1", {}, host)
    assert f"stack dc1, host mx1, setting options.{setting}: " in str(refused.value)
    assert words in str(refused.value) and f"allowOptions: [{setting}]" in str(refused.value)
    allowed = parse_host("dc1", {"allowOptions": [setting]}, host)
    assert setting not in dict(allowed.master.options)


def test_the_host_checks_what_only_it_knows_with_the_same_words():
    checks = host_filter_checks("smtp-amavis:[127.0.0.1]:10026")
    assert (checks["transport"], checks["port"]) == ("smtp-amavis", "10026")
    for key in ("no_transport", "listener"):
        assert checks[key].startswith("'smtp-amavis:[127.0.0.1]:10026': ")
        assert checks[key].endswith("; refused (to allow it on purpose: allowOptions: [content_filter])")
    assert host_filter_checks("smtp:[127.0.0.1]:10025") is None  # refused already by the settings


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
    ({"content_filter": ""}, "is not transport:[loopback address]:port"),
    ({"content_filter": "smtp:[127.0.0.1]:10025"}, "re-injection listener"),
    ({"content_filter": "$HOME"}, "Postfix expands $name"),
    ({"smtpd_proxy_filter": "[203.0.113.9]:25"}, "to a proxy"),
    ({"smtpd_milters": "inet:127.0.0.1:8891"}, "to milters"),
    ({"smtpd_client_restrictions": "permit"}, "has no permit_sasl_authenticated"),
])
def test_the_program_refuses_them_before_registering_anything(monkeypatch, options, words):
    from tests.test_hostile_input import NoNetwork, run_program

    network = NoNetwork(monkeypatch)
    host = {"name": "mail1", "address": "10.0.0.1", "hostKey": KEY, "options": options}
    refused, mocks = run_program({}, [host])
    assert refused is not None and "setting options." in str(refused) and words in str(refused)
    assert mocks.resources == [] and network.attempts == []


def test_the_host_check_is_in_the_apply_unless_the_filter_is_allowed_on_purpose():
    from smtps_iredmail.core import master_service
    from smtps_iredmail.core.templating import Action

    def apply(**extra):
        s = parse_host("dc1", {}, {"name": "mx1", "address": "10.0.0.1", "hostKey": KEY, **extra})
        return master_service.MODEL.script(s.name, (s.master, s.tls), Action.APPLY)

    def plan_step(text: str) -> str:
        return next(line for line in text.splitlines() if line.startswith("PLAN="))

    assert " --filter smtp-amavis 10026 " in plan_step(apply()) and 'case "$refuse" in' in apply()
    allowed = apply(options={"content_filter": "smtp:[127.0.0.1]:587"}, allowOptions=["content_filter"])
    assert "--filter" not in plan_step(allowed) and "-o content_filter=smtp:[127.0.0.1]:587" in allowed
    assert 'case "$refuse"' not in allowed
    # Removed on purpose: nothing to check.
    assert "--filter" not in plan_step(apply(options={"content_filter": None}, allowOptions=["content_filter"]))


def test_the_entrys_own_port_is_the_smtps_port():
    from smtps_iredmail.core.option_rules import OWN_PORT
    from smtps_iredmail.core.settings import SMTPS_PORT

    assert OWN_PORT == SMTPS_PORT


# What the host's filter check reads (postconf -M): a master.cf whose listeners are written with leading zeros, as
# Postfix accepts them (it reads 0010026 as port 10026), and by name (/etc/services: submission is 587).
HOST_MASTER_CF = "\n".join([
    "smtp inet n - n - 1 postscreen", "submission inet n - n - - smtpd", "127.0.0.1:0010026 inet n - n - - smtpd",
    "127.0.0.1:00 inet n - n - - smtpd", "127.0.0.1:99999999999999999999999 inet n - n - - smtpd",
    "smtp-amavis unix - - n - 2 smtp", ""])


@pytest.mark.parametrize(("port", "refused"), [("10026", True), ("587", True), ("10027", False), ("2", False)])
def test_the_host_compares_ports_as_numbers(port, refused, tmp_path):
    """A listener written `127.0.0.1:0010026` is port 10026 to Postfix: the host's check refuses a filter on 10026
    (before the fix, the ports were compared as text and it passed). The apply's plan step as rendered, run in dash
    with python3, as on a Debian host (tests/test_master_cf.py has the plan on data)."""
    from smtps_iredmail.core import master_service
    from smtps_iredmail.core.templating import Action
    from tests.test_master_cf import run_plan

    value = f"smtp-amavis:[127.0.0.1]:{port}"
    s = parse_host("dc1", {}, {"name": "mx1", "address": "10.0.0.1", "hostKey": KEY,
                               "options": {"content_filter": value}})
    text = master_service.MODEL.script(s.name, (s.master, s.tls), Action.APPLY)
    out = run_plan(text, HOST_MASTER_CF, tmp_path, "echo PASSED\n")
    if refused:
        assert out.returncode == 1 and f"port {port} is a Postfix listener of this host's master.cf" in out.stdout
    else:
        assert (out.returncode, out.stdout.strip()) == (0, "PASSED"), out.stdout + out.stderr
    # A transport that is no SMTP client: refused with its own words.
    out = run_plan(text, HOST_MASTER_CF.replace("2 smtp", "2 lmtp"), tmp_path, "echo PASSED\n")
    assert out.returncode == 1 and "is not a master.cf unix service whose command is smtp" in out.stdout


def test_an_option_nobody_listed_needs_allow_options_naming_it():
    """The review's proof: smtpd_authorized_xclient_hosts let any client relay with no login (XCLIENT), and
    smtpd_sasl_path pointed the logins at a server that accepts any password. Both passed preview before."""
    host = {"name": "mx1", "address": "10.0.0.1", "hostKey": KEY,
            "options": {"smtpd_authorized_xclient_hosts": "0.0.0.0/0", "smtpd_sasl_path": "inet:127.0.0.1:12345",
                        "smtpd_banner": "hello"}}
    with pytest.raises(SettingsError) as refused:
        parse_host("dc1", {}, host)
    lines = str(refused.value).splitlines()
    assert lines == [
        "stack dc1, host mx1, setting options.smtpd_authorized_xclient_hosts: '0.0.0.0/0': lets the clients it lists "
        "tell smtpd another client address and login (XCLIENT): they relay without logging in; refused (to allow it "
        "on purpose: allowOptions: [smtpd_authorized_xclient_hosts])",
        "stack dc1, host mx1, setting options.smtpd_sasl_path: 'inet:127.0.0.1:12345': hands the logins to another "
        "authentication server, which may accept any password; refused (to allow it on purpose: allowOptions: "
        "[smtpd_sasl_path])",
        "stack dc1, host mx1, setting options.smtpd_banner: 'hello': is not on the list of options known to be "
        "harmless on a 465 submission entry (docs/settings.md, \"Options\"): an option this check does not know may "
        "open relaying, let clients in without logging in, or send mail around the content filter; refused (to allow "
        "it on purpose: allowOptions: [smtpd_banner])",
    ]
    allowed = parse_host("dc1", {"allowOptions": ["smtpd_authorized_xclient_hosts", "smtpd_sasl_path",
                                                  "smtpd_banner"]}, host)
    assert dict(allowed.master.options)["smtpd_authorized_xclient_hosts"] == "0.0.0.0/0"


def test_a_restriction_class_needs_allow_options_for_the_classes_and_for_the_class_itself():
    options = {"smtpd_restriction_classes": "myclass", "myclass": "check_client_access,cidr:/etc/postfix/ok",
               "smtpd_sender_restrictions": "myclass"}
    host = {"name": "mx1", "address": "10.0.0.1", "hostKey": KEY, "options": options}
    with pytest.raises(SettingsError) as refused:
        parse_host("dc1", {}, host)
    assert "setting options.smtpd_restriction_classes: 'myclass': defines restriction classes" in str(refused.value)
    assert "setting options.myclass: 'check_client_access,cidr:/etc/postfix/ok': check_client_access may answer OK" \
        in str(refused.value)
    # The classes allowed: the class itself is still an option of its own, off the list.
    with pytest.raises(SettingsError) as refused:
        parse_host("dc1", {"allowOptions": ["smtpd_restriction_classes"]}, host)
    assert str(refused.value).count("\n") == 0 and "setting options.myclass: " in str(refused.value)
    assert "allowOptions: [myclass]" in str(refused.value)
    both = parse_host("dc1", {"allowOptions": ["smtpd_restriction_classes", "myclass"]}, host)
    assert dict(both.master.options)["myclass"] == "check_client_access,cidr:/etc/postfix/ok"


def test_every_option_of_the_default_entry_and_of_the_example_stacks_is_on_the_list():
    from pathlib import Path

    from smtps_iredmail.core import stacks
    from smtps_iredmail.core.master_service import IREDMAIL_OPTIONS
    from smtps_iredmail.core.option_rules import known

    assert all(known(name) for name, _ in IREDMAIL_OPTIONS)
    root = Path(__file__).parent.parent
    for name in stacks.stack_names(root):
        for host in stacks.from_files(root, name).hosts:
            unknown = [o for o, _ in host.master.options if not known(o) and o not in host.master.allowed]
            assert unknown == [], (name, host.name, unknown)
