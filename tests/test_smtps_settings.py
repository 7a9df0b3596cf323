"""SMTPS settings are parsed once and refused early, with stack, host and setting named."""

from __future__ import annotations

import pytest

from smtps_iredmail.core.hosts import parse_stack
from smtps_iredmail.core.master_service import IREDMAIL_OPTIONS
from smtps_iredmail.core.settings import PortPolicy, SettingsError

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"
KEY2 = KEY[:-1] + "Y"  # another machine's key: one host key on two hosts is refused


def host(**extra):
    return {"name": "mail1", "address": "10.231.0.6", "hostKey": KEY, **extra}


def test_defaults_are_iredmails_stanza():
    [h] = parse_stack("dc1", {}, [host()])
    assert h.master.key == "465" and h.master.options == IREDMAIL_OPTIONS
    assert h.master.entry == (
        "465 inet n - n - - smtpd -o syslog_name=postfix/smtps -o smtpd_tls_wrappermode=yes "
        "-o smtpd_sasl_auth_enable=yes -o smtpd_client_restrictions=permit_sasl_authenticated,reject "
        "-o content_filter=smtp-amavis:[127.0.0.1]:10026")
    # No tlsCert/tlsKey: the entry names no certificate, so 465 serves main.cf's (the apply reads and reports it).
    assert (h.tls.cert, h.tls.key) == (None, None)
    assert (h.check.min_days, h.check.tls_name, h.check.ca_bundle) == (14, None, None)


def test_a_named_certificate_and_key_become_the_entrys_own():
    [h] = parse_stack("dc1", {"tlsCert": "/etc/ssl/mx.crt"}, [host(tlsKey="/etc/ssl/mx.key")])
    options = dict(h.master.options)
    assert (options["smtpd_tls_cert_file"], options["smtpd_tls_key_file"]) == ("/etc/ssl/mx.crt", "/etc/ssl/mx.key")
    assert h.master.entry.endswith("-o smtpd_tls_cert_file=/etc/ssl/mx.crt -o smtpd_tls_key_file=/etc/ssl/mx.key")
    with pytest.raises(SettingsError, match="setting options.smtpd_tls_cert_file: set the file with tlsCert"):
        parse_stack("dc1", {}, [host(options={"smtpd_tls_wrappermode": "yes", "smtpd_tls_cert_file": "/x.crt"})])
    assert (h.zone.zone, h.zone.service, h.zone.port_policy) == ("iredmail", "smtps", PortPolicy.KEEP)
    assert (h.connection.port, h.connection.user) == (22, "root")


def test_host_overrides_stack_which_overrides_defaults_and_options_merge_by_parameter():
    stack = {"serviceKey": "submissions", "options": {"syslog_name": "postfix/submissions"}, "zone": "public"}
    other = host(name="mail2", address="mail2.example.com", hostKey=KEY2, zone="iredmail",
                 options={"content_filter": "smtp:[127.0.0.1]:10024"})
    [a, b] = parse_stack("dc1", stack, [host(), other])
    assert a.master.key == b.master.key == "submissions"
    assert dict(a.master.options)["syslog_name"] == "postfix/submissions"
    assert dict(b.master.options)["syslog_name"] == "postfix/submissions"
    assert dict(b.master.options)["content_filter"] == "smtp:[127.0.0.1]:10024"
    assert (a.zone.zone, b.zone.zone) == ("public", "iredmail")


def test_null_removes_a_default_option():
    # Without the content filter submitted mail goes unfiltered: only on purpose (smtps/option_rules.py).
    [h] = parse_stack("dc1", {"options": {"content_filter": None}, "allowOptions": ["content_filter"]}, [host()])
    assert "content_filter" not in dict(h.master.options)
    assert len(h.master.options) == len(IREDMAIL_OPTIONS) - 1


@pytest.mark.parametrize(("extra", "message"), [
    ({"serviceKey": "smtp"}, "host mail1, setting serviceKey: 'smtp' is not one of 465, smtps, submissions"),
    ({"port": "22x"}, "setting port: expected a whole number"),
    ({"port": 70000}, "setting port: 70000 is outside 1 to 65535"),
    ({"port": True}, "setting port: expected a whole number"),
    ({"user": "root; rm -rf /"}, "setting user:"),
    ({"address": "mail server"}, "setting address: 'mail server' is not an IP address or a DNS name"),
    ({"hostKey": "AAAA"}, "setting hostKey:"),
    ({"tlsCert": "relative/path.crt"}, "setting tlsCert: 'relative/path.crt' is not an absolute path"),
    ({"tlsKey": "/etc/x y.key"}, "setting tlsKey:"),
    ({"options": {"smtpd_client_restrictions": "permit_sasl_authenticated, reject"}},
     "setting options.smtpd_client_restrictions: 'permit_sasl_authenticated, reject': master.cf -o values"),
    ({"options": {"Bad-Name": "x"}}, "setting options.Bad-Name: not a Postfix parameter name"),
    ({"options": {"smtpd_tls_wrappermode": "no"}}, "setting options.smtpd_tls_wrappermode: must be 'yes'"),
    ({"options": {"content_filter": "$(reboot)"}}, "setting options.content_filter:"),
    ({"serviceShort": "<b>"}, "setting serviceShort:"),
    ({"existingPortPolicy": "merge"}, "setting existingPortPolicy: 'merge' is not one of keep, replace"),
    ({"chroot": "maybe"}, "setting chroot:"),
    ({"zone": "../etc"}, "setting zone:"),
    ({"sshPort": 22}, "setting sshPort: unknown setting"),
])
def test_bad_values_are_refused_naming_stack_host_and_setting(extra, message):
    with pytest.raises(SettingsError) as err:
        parse_stack("dc1", {}, [host(**extra)])
    assert str(err.value).startswith("stack dc1, host mail1, setting ")
    assert message in str(err.value)


def test_stack_level_errors():
    with pytest.raises(SettingsError, match="stack dc1: setting hosts: expected a non-empty list"):
        parse_stack("dc1", {}, [])
    with pytest.raises(SettingsError, match=r"stack dc1, host mail1 \(#2\), setting name: mail1 appears twice "
                                            r"\(first as host #1, mail1\)"):
        parse_stack("dc1", {}, [host(), host(address="10.231.0.10")])
    with pytest.raises(SettingsError, match=r"stack dc1, host mail2 \(#2\), setting address: 10.231.0.6 appears twice"):
        parse_stack("dc1", {}, [host(), host(name="mail2")])
    with pytest.raises(SettingsError, match="stack dc1, host mail1, setting serviceKey"):
        parse_stack("dc1", {"serviceKey": 465}, [host()])
