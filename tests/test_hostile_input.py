"""Hostile and careless input: every bad value is refused by the settings parser with one error naming stack, host
and setting, before any resource is registered or any connection is attempted; nothing else ever escapes.

Each corpus value runs through the real program (components.program) under Pulumi's mocks, with every way out to
the network booby-trapped; the property test feeds arbitrary data to the parser itself."""

from __future__ import annotations

import base64
import ipaddress
import json
import socket

import paramiko
import pulumi
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from smtps_iredmail.core import drift, firewalld_service, master_service, zone_membership
from smtps_iredmail.core.hosts import KNOWN, HostSettings, parse_stack
from smtps_iredmail.core.settings import SettingsError
from smtps_iredmail.core.templating import Action

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"
RSA_BLOB = base64.b64encode(b"\x00\x00\x00\x07ssh-rsa" + b"\x01" * 40).decode()


HUGE = 10 ** 5000  # an int too long to format: Python refuses more than 4300 digits

# (setting, value, what the message must say after "setting <setting>")
CORPUS = [
    ("name", "mail1\n", "is not a host name"), ("name", "", "is not a host name"), ("name", 7, "expected a string"),
    ("name", "-mail", "is not a host name"), ("name", "m" * 64, "is not a host name"),
    ("name", "mail 1", "is not a host name"), ("name", "mäil", "is not a host name"),
    ("name", None, "expected a string"), ("name", True, "expected a string"),
    ("address", 0, "expected a string"), ("address", True, "expected a string"),
    ("address", "10.231.0.06", "is not an IP address or a DNS name"),
    ("address", "0x0a.0.0.1", "is not an IP address or a DNS name"),
    ("address", "fe80::1%eth0", "scope id"), ("address", "fe80::1%$(reboot)", "scope id"),
    ("address", "mail server", "is not an IP address"), ("address", "a" * 254, "is not an IP address"),
    ("address", "10.0.0.1\n", "is not an IP address"), ("address", ["10.0.0.1"], "expected a string"),
    ("address", "-oProxyCommand=sh", "is not an IP address"),
    # What the system resolver (inet_aton) reads as IPv4: one machine under two spellings would be two hosts.
    ("address", "0x0ae70006", "is read by the resolver as the IPv4 address 10.231.0.6"),
    ("address", "0x1d1", "as the IPv4 address 0.0.1.209"), ("address", "10.1", "is not an IP address or a DNS name"),
    ("address", "012.0.0.1", "is not an IP address or a DNS name"), ("address", "0X7f000001", "127.0.0.1"),
    ("address", "4294967295", "is not an IP address or a DNS name"),
    # IPv4-mapped IPv6: a dual-stack connect reaches the IPv4 machine, which would appear as two hosts.
    ("address", "::ffff:10.231.0.6", "is the IPv4 address 10.231.0.6 written as IPv6"),
    ("address", "::ffff:0ae7:0006", "two hosts): write 10.231.0.6"),
    ("address", "0:0:0:0:0:FFFF:7F00:1", "is the IPv4 address 127.0.0.1 written as IPv6"),
    # The other ways IPv6 writes an IPv4 address: IPv4-compatible, NAT64's well-known prefix, 6to4.
    ("address", "::10.231.0.6", "is the IPv4 address 10.231.0.6 written as IPv6 (IPv4-compatible; one machine"),
    ("address", "64:ff9b::10.231.0.6", "10.231.0.6 written as IPv6 (NAT64 well-known prefix; one machine"),
    ("address", "2002:ae7:6::1", "is the IPv4 address 10.231.0.6 written as IPv6 (6to4; one machine would"),
    ("address", "2002:0ae7:0006:1::5", "two hosts): write 10.231.0.6"),
    # Characters that do not show (bidi controls, zero-width, separators, private use, non-ASCII spaces).
    ("serviceShort", "Enable\u202eSPTMS", "holds U+202E RIGHT-TO-LEFT OVERRIDE, a character that does not show"),
    ("serviceDescription", "Enable\u200bSMTPS.", "holds U+200B ZERO WIDTH SPACE"),
    ("serviceDescription", "Enable\u00a0SMTPS.", "holds U+00A0 NO-BREAK SPACE"),
    ("serviceDescription", "Enable\u3000SMTPS.", "holds U+3000 IDEOGRAPHIC SPACE"),
    ("serviceShort", "a\u2028b", "holds U+2028 LINE SEPARATOR"), ("serviceShort", "a\u2029", "U+2029 PARAGRAPH"),
    ("serviceShort", "a\ue000", "holds U+E000 Co"), ("serviceShort", "a\x85", "holds U+0085"),
    ("serviceShort", "a\u3164", "holds U+3164 HANGUL FILLER"), ("serviceShort", "a\ufe0f", "holds U+FE0F"),
    ("serviceShort", "a\u2800b", "holds U+2800 BRAILLE PATTERN BLANK"), ("serviceShort", "a\U000e0041", "U+E0041"),
    ("serviceShort", "\u2066SMTPS\u2069", "holds U+2066 LEFT-TO-RIGHT ISOLATE"),
    ("name", "mail1\u200d", "holds U+200D ZERO WIDTH JOINER"), ("zone", "iredmail\u2067", "holds U+2067"),
    ("address", "10.0.0.1\u200e", "holds U+200E LEFT-TO-RIGHT MARK"), ("user", "root\ufeff", "holds U+FEFF"),
    ("hostKey", KEY + "\u200b", "holds U+200B"), ("firewall", "auto\u202c", "holds U+202C"),
    ("tlsCert", "/etc/ssl/mx\u00a0.crt", "holds U+00A0"), ("jump", "bastion\u202e", "holds U+202E"),
    ("allowOptions", ["content_filter\u200b"], "holds U+200B"),
    ("options.syslog_name", {"syslog_name": "postfix/smtps\u202e"}, "holds U+202E"),
    ("confirmSeconds", 5, "outside 15 to 600"), ("confirmSeconds", "60s", "expected a whole number"),
    ("confirmSeconds", 10**9, "outside 15 to 600"), ("confirmSeconds", True, "expected a whole number"),
    ("firewalldPending", "drop", "'drop' is not one of refuse, drop-runtime-only"),
    ("firewalldPending", True, "True is not one of refuse, drop-runtime-only"),
    ("firewalldPending", "Refuse", "is not one of refuse, drop-runtime-only"),
    ("port", "²", "expected a whole number"), ("port", "9" * 10000, "expected a whole number"),
    ("port", HUGE, "outside 1 to 65535"), ("port", True, "expected a whole number"),
    ("port", 0, "outside 1 to 65535"), ("port", 65536, "outside 1 to 65535"),
    ("port", 22.0, "expected a whole number"), ("port", "22\n", "expected a whole number"),
    ("port", -1, "outside 1 to 65535"),
    ("user", "root\n", "is not a user name"), ("user", "Root", "is not a user name"),
    ("user", "root; rm -rf /", "is not a user name"), ("user", "", "is not a user name"),
    ("user", "u" * 33, "is not a user name"),
    ("hostKey", KEY + "\n", "is not a public host key"), ("hostKey", "ssh-dss AAAAB3NzaC1kc3MAAACBAP", "is not a"),
    ("hostKey", f"ssh-ed25519 {RSA_BLOB}", "is not a ssh-ed25519 key"),
    ("hostKey", "ssh-ed25519 !!!!AAAAAAAAAAAAAAAAAAAAAAAA", "is not a public host key"),
    ("hostKey", KEY + " root@mail1", "is not a public host key"), ("hostKey", HUGE, "expected a string"),
    ("serviceKey", "smtp", "is not one of 465, smtps, submissions"), ("serviceKey", 465, "is not one of"),
    ("serviceKey", "465\n", "is not one of"),
    ("options", "x", "expected a mapping"), ("options", [], "expected a mapping"),
    ("allowOptions", "content_filter", "expected a list of Postfix parameter names"),
    ("certMinDays", -1, "outside 0 to 3650"), ("certMinDays", "14 days", "expected a whole number"),
    ("tlsName", "mail 1.example", "is not a DNS name"), ("tlsName", 7, "expected a string"),
    ("caBundle", "ca.pem", "is not an absolute path"), ("caBundle", "/etc/$(id).pem", "is not an absolute path"),
    ("allowOptions", ["content filter"], "expected a list of Postfix parameter names"),
    ("options.syslog_name", {"syslog_name": "a b"}, "take no white space"),
    ("options.syslog_name", {"syslog_name": "postfix/smtps\n"}, "take no white space"),
    ("options.Bad", {"Bad": "x"}, "not a Postfix parameter name"),
    ("options.smtpd_tls_wrappermode", {"smtpd_tls_wrappermode": "no"}, "must be 'yes'"),
    ("options.content_filter", {"content_filter": "$(reboot)"}, "take no white space"),
    ("options.x", {"x": 1}, "take no white space"), ("options.1", {1: "x"}, "not a Postfix parameter name"),
    ("options.syslog_name", {"syslog_name": "{a}"}, "or braces"),
    ("options.syslog_name", {"syslog_name": '"q"'}, "quotes"),
    ("chroot", "maybe", "is not one of y, n, -"), ("chroot", True, "is not one of"),
    ("maxproc", "1000000", "is not '-' or a number"), ("maxproc", 5, "expected a string"),
    ("maxproc", "-\n", "is not '-' or a number"),
    ("tlsCert", "relative.crt", "is not an absolute path"), ("tlsCert", "/etc/../shadow", "is not an absolute"),
    ("tlsCert", "/etc/x y.crt", "is not an absolute path"), ("tlsCert", "/etc/x.crt\n", "is not an absolute"),
    ("tlsKey", "/etc/./k.key", "is not an absolute path"), ("tlsKey", "", "is not an absolute path"),
    ("tlsKey", "/", "is not an absolute path"), ("tlsKey", "//etc/k.key", "is not an absolute path"),
    ("firewalldService", "smtps.x", "is not a firewalld service name"),
    ("firewalldService", "smtps/x", "is not a firewalld service name"),
    ("firewalldService", "", "is not a firewalld service name"),
    ("firewalldService", "smtps\n", "is not a firewalld service name"),
    # firewalld's own services for other ports: a file of that name would close SSH (ssh) or mail (smtp).
    ("firewalldService", "ssh", "is firewalld's own service for 22/tcp"),
    ("firewalldService", "smtp", "is firewalld's own service for 25/tcp"),
    ("firewalldService", "imaps", "is firewalld's own service for 993/tcp"),
    ("firewalldService", "http", "is firewalld's own service for 80/tcp"),
    ("serviceShort", "a\uffff", "one line of text XML can carry"),
    ("serviceShort", "a\ud800", "holds U+D800 Cs, a character that does not show"),
    ("serviceShort", "<b>", "one line of text"), ("serviceShort", "x\ny", "one line of text"),
    ("serviceShort", "", "one line of text"), ("serviceDescription", "d" * 201, "one line of text"),
    ("serviceDescription", "&amp;", "one line of text"), ("serviceDescription", "\x7f", "one line of text"),
    ("zone", "iredmail.x", "is not a firewalld zone name"), ("zone", "z" * 18, "is not a firewalld zone name"),
    ("zone", "../etc", "is not a firewalld zone name"), ("zone", "pub lic", "is not a firewalld zone name"),
    ("existingPortPolicy", "merge", "is not one of keep, replace"),
    ("existingPortPolicy", None, "is not one of keep, replace"),
    ("jump", "bastion-9", "is not a bastion of this stack"), ("jump", 7, "is not a bastion of this stack"),
    ("jump", {"address": "10.0.0.9"}, "is not a bastion of this stack"),
    ("sshPort", 22, "unknown setting"),
    ("firewall", "iptables", "is not one of auto, firewalld, nftables"), ("firewall", None, "is not one of"),
    ("nftFamily", "bridge", "is not one of inet, ip, ip6"), ("nftTable", "filter; flush ruleset", "nftables name"),
    ("nftTable", "1filter", "is not an nftables name"), ("nftChain", "in put", "is not an nftables name"),
    ("nftChain", "input\n", "is not an nftables name"), ("nftChain", "c" * 65, "is not an nftables name"),
]


def host(**extra) -> dict:
    return {"name": "mail1", "address": "10.0.0.1", "hostKey": KEY, **extra}


def bad_host(setting: str, value) -> dict:
    if setting.startswith("options."):
        return host(options=value)
    return host(**{setting: value})


class NoNetwork:
    """Fails the test at the first attempt to connect anywhere, by socket or by paramiko."""

    def __init__(self, monkeypatch) -> None:
        self.attempts: list[str] = []

        def refuse(*args, **kwargs):
            self.attempts.append(repr(args[:2]))
            raise AssertionError("a connection was attempted")

        monkeypatch.setattr(socket.socket, "connect", refuse)
        monkeypatch.setattr(socket, "create_connection", refuse)
        monkeypatch.setattr(paramiko.SSHClient, "connect", refuse)


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[str] = []

    def new_resource(self, args):
        self.resources.append(args.name)
        return f"{args.name}-id", args.inputs

    def call(self, args):
        return {}


def run_program(defaults: dict, hosts: list) -> tuple[Exception | None, Mocks]:
    """The real program under mocks: it must refuse before registering anything."""
    from smtps_iredmail.program import program

    mocks = Mocks()
    pulumi.runtime.set_all_config({
        "smtps-iredmail:defaults": json.dumps(defaults),
        "smtps-iredmail:hosts": json.dumps(hosts),
        "smtps-iredmail:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----",
    }, ["smtps-iredmail:sshPrivateKey"])
    pulumi.runtime.set_mocks(mocks, project="smtps-iredmail", stack="dc1", preview=True)
    try:
        program()
    except pulumi.RunError as err:
        return err, mocks
    finally:
        pulumi.runtime.set_all_config({})
    return None, mocks


def test_the_corpus_is_large_and_covers_every_setting():
    assert len(CORPUS) >= 60
    covered = {setting.split(".")[0] for setting, _, _ in CORPUS}
    assert KNOWN <= covered, KNOWN - covered


@pytest.mark.parametrize(("setting", "value", "message"), CORPUS,
                         ids=[f"{s}-{i}" for i, (s, _, _) in enumerate(CORPUS)])
def test_a_bad_value_is_refused_naming_stack_host_and_setting_and_nothing_connects(monkeypatch, setting, value,
                                                                                    message):
    network = NoNetwork(monkeypatch)
    with pytest.raises(SettingsError) as err:
        parse_stack("dc1", {}, [bad_host(setting, value)])
    text = str(err.value)
    who = "host mail1" if setting != "name" else "host #1"
    shown = setting if setting != "options.1" else "options.1"
    assert f"stack dc1, {who}, setting {shown}: " in text, text
    assert message in text, text
    if value is not HUGE and not (isinstance(value, dict) and any(type(k) is not str for k in value)):
        # Through the program too (JSON is how Pulumi config carries values).
        refused, mocks = run_program({}, [bad_host(setting, value)])
        assert refused is not None and message in str(refused)
        assert mocks.resources == []
    assert network.attempts == []


def test_one_error_lists_every_problem_of_every_host():
    with pytest.raises(SettingsError) as err:
        parse_stack("dc1", {"zone": "a.b", "name": "x"},
                    [host(port=0, user="Root"), host(name="mail2", address="10.0.0.1", tlsCert="x"), "nonsense"])
    lines = str(err.value).splitlines()
    assert lines == [
        "stack dc1: setting defaults.name: belongs to each host, not to the defaults",
        "stack dc1, host mail1, setting port: 0 is outside 1 to 65535",
        "stack dc1, host mail1, setting user: 'Root' is not a user name",
        "stack dc1, host mail1, setting zone: 'a.b' is not a firewalld zone name (letters, digits, _ -; at most 17)",
        "stack dc1, host mail2, setting tlsCert: 'x' is not an absolute path (letters, digits, . _ + -; no segment "
        "starting with a dot)",
        "stack dc1, host mail2, setting zone: 'a.b' is not a firewalld zone name (letters, digits, _ -; at most 17)",
        "stack dc1, host #3: expected a mapping",
    ]


@pytest.mark.parametrize("setting", sorted(KNOWN))
def test_every_text_setting_refuses_a_character_that_does_not_show_naming_the_setting(setting):
    value = "mail\u202e1"
    value = {"syslog_name": value} if setting == "options" else [value] if setting == "allowOptions" else value
    with pytest.raises(SettingsError) as err:
        parse_stack("dc1", {}, [host(**{setting: value})])
    shown = "options.syslog_name" if setting == "options" else setting
    who = "host mail1" if setting != "name" else "host #1"
    text = str(err.value)
    if setting in ("port", "confirmSeconds", "certMinDays"):
        assert f"stack dc1, {who}, setting {shown}: expected a whole number" in text  # numbers: never text
    else:
        assert f"stack dc1, {who}, setting {shown}: 'mail\\u202e1' holds U+202E RIGHT-TO-LEFT OVERRIDE" in text
    # The message itself carries no such character: it is shown escaped.
    assert "\u202e" not in text


def test_a_bidi_option_name_or_unknown_setting_is_shown_escaped():
    with pytest.raises(SettingsError) as err:
        parse_stack("dc1", {}, [host(options={"syslog\u202e_name": "x", "smtpd_tls_wrappermode": "yes"},
                                     **{"zone\u202e": "x"})])
    text = str(err.value)
    assert "setting options.'syslog\\u202e_name': 'syslog\\u202e_name' holds U+202E" in text
    assert "setting 'zone\\u202e': unknown setting" in text and "\u202e" not in text


def test_one_host_key_on_two_hosts_is_refused_naming_both():
    with pytest.raises(SettingsError) as err:
        parse_stack("dc1", {}, [host(), host(name="mail2", address="10.0.0.2"),
                                host(name="mail3", address="10.0.0.3", hostKey=KEY[:-1] + "Y")])
    assert str(err.value).startswith("stack dc1, host mail2 (#2), setting hostKey: the host key 'ssh-ed25519 ")
    assert str(err.value).endswith("appears twice (first as host #1, mail1)")
    assert "mail3" not in str(err.value)
    # The same key with padding base64 does not need is the same key.
    with pytest.raises(SettingsError, match=r"host mail2 \(#2\), setting hostKey: .* appears twice"):
        parse_stack("dc1", {}, [host(), host(name="mail2", address="10.0.0.2", hostKey=KEY + "==")])


def test_an_ipv4_mapped_address_collides_with_the_ipv4_host_before_anything_connects(monkeypatch):
    network = NoNetwork(monkeypatch)
    with pytest.raises(SettingsError) as err:
        parse_stack("dc1", {}, [host(address="10.231.0.6"),
                                host(name="mail2", address="::ffff:0ae7:0006", hostKey=KEY[:-1] + "Y")])
    assert str(err.value) == ("stack dc1, host mail2, setting address: '::ffff:0ae7:0006' is the IPv4 address "
                              "10.231.0.6 written as IPv6 (IPv4-mapped; one machine would appear as two hosts): write "
                              "10.231.0.6")
    assert network.attempts == []


@pytest.mark.parametrize(("spelling", "how"), [
    ("::ffff:10.231.0.6", "IPv4-mapped"), ("::10.231.0.6", "IPv4-compatible"), ("::ae7:6", "IPv4-compatible"),
    ("64:ff9b::10.231.0.6", "NAT64 well-known prefix"), ("64:FF9B::AE7:6", "NAT64 well-known prefix"),
    ("2002:ae7:6::1", "6to4"), ("2002:ae7:6:ffff::", "6to4"),
])
def test_every_ipv6_spelling_of_an_ipv4_address_is_refused_for_hosts_and_bastions(spelling, how):
    words = f"is the IPv4 address 10.231.0.6 written as IPv6 ({how}; one machine would appear as two hosts): " \
            "write 10.231.0.6"
    with pytest.raises(SettingsError) as err:
        parse_stack("dc1", {}, [host(address="10.231.0.6"),
                                host(name="mail2", address=spelling, hostKey=KEY[:-1] + "Y")])
    assert str(err.value) == f"stack dc1, host mail2, setting address: {spelling!r} {words}"
    bastion = {"name": "jump1", "address": spelling, "hostKey": KEY[:-1] + "Y"}
    with pytest.raises(SettingsError) as err:
        parse_stack("dc1", {}, [host(jump="jump1")], bastions=[bastion])
    assert f"stack dc1, bastion jump1, setting address: {spelling!r} {words}" in str(err.value)


def test_ipv6_addresses_that_hold_no_ipv4_address_stay_hosts():
    for address in ("::1", "2001:db8::10.231.0.6", "64:ff9b:1::a", "fd00::ae7:6", "2003:ae7:6::1"):
        [parsed] = parse_stack("dc1", {}, [host(address=address)])
        assert parsed.connection.address == str(ipaddress.ip_address(address))


def test_spellings_of_one_address_are_one_address():
    other = KEY[:-1] + "Y"
    with pytest.raises(SettingsError, match="setting address: 2001:db8::1 appears twice"):
        parse_stack("dc1", {}, [host(address="2001:DB8:0::1"),
                                host(name="mail2", address="2001:db8::1", hostKey=other)])
    with pytest.raises(SettingsError, match="setting address: mx.example.com appears twice"):
        parse_stack("dc1", {}, [host(address="MX.example.com"), host(name="mail2", address="mx.example.com",
                                                                      hostKey=other)])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
SETTING_VALUE = JSON | st.sampled_from(["465", "smtps", "n", "-", "keep", "replace", "/etc/x.crt", "iredmail",
                                        "10.0.0.1", KEY, "mail1", "yes"])
PERTURBED = st.dictionaries(st.sampled_from(sorted(KNOWN)) | st.text(max_size=6), SETTING_VALUE, max_size=3)
# A valid host with a few settings changed to anything (named apart, so several can be valid together).
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# One machine's key per host number (one key on two hosts is refused): the key's last two characters encode it.
NEAR_VALID = st.builds(lambda n, extra: {**host(name=f"mail{n}", address=f"10.0.0.{n}",
                                                hostKey=KEY[:-2] + B64[n // 64] + B64[n % 64]), **extra},
                       st.integers(1, 250),
                       st.just({}) | st.dictionaries(st.sampled_from(sorted(KNOWN)), SETTING_VALUE, max_size=1))
HOST = NEAR_VALID | PERTURBED | JSON


def _render_all(h: HostSettings) -> None:
    for action in Action:
        master_service.MODEL.script(h.name, (h.master, h.tls), action)
        firewalld_service.MODEL.script(h.name, h.service, action)
        zone_membership.MODEL.script(h.name, h.zone, action)
    drift.read_host_script(h)


@settings(suppress_health_check=[HealthCheck.too_slow])  # examples: the profile's (tests/conftest.py)
@given(defaults=st.just({}) | st.dictionaries(st.sampled_from(sorted(KNOWN)), SETTING_VALUE, max_size=3) | JSON,
       hosts=st.lists(NEAR_VALID, min_size=1, max_size=3) | st.lists(HOST, max_size=3) | JSON)
def test_any_data_either_parses_into_valid_settings_or_raises_the_settings_error(defaults, hosts):
    try:
        parsed = parse_stack("dc1", defaults, hosts)
    except SettingsError as err:
        assert str(err).startswith("stack dc1")
        return
    event(f"parsed {len(parsed)} host(s)")
    for h in parsed:
        # Whatever got through renders, and its master.cf entry is one line of single-space-separated words.
        _render_all(h)
        assert "\n" not in h.master.entry and "  " not in h.master.entry
