"""Drift comparison on facts as the read script prints them (the lab tests read real hosts)."""

from __future__ import annotations

import base64
import subprocess

import pytest

from smtps_iredmail.core import drift, facts
from smtps_iredmail.core.firewalld_service import service_xml
from smtps_iredmail.core.hosts import parse_host

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"


def settings(**extra):
    return parse_host("dc1", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": KEY, **extra})


def converged(s, **changes) -> facts.HostFacts:
    lines = {
        "postfix": "running", "firewalld": "running", "zone": "present", "firewall": "firewalld",
        f"master.{s.master.key}": s.master.entry,
        "service.file": base64.b64encode(service_xml(s.service).encode()).decode(), "service.mode": "644",
        "zone.permanent.service": "yes", "zone.permanent.port": "no",
        "zone.runtime.service": "yes", "zone.runtime.port": "no",
    }
    lines.update(changes)
    return facts.parse("".join(f"{key}={value}\n" for key, value in lines.items()))


def fields(s, found) -> list[str]:
    return [d.field for d in drift.compare(s, found)]


def test_a_converged_host_has_no_drift():
    s = settings()
    assert drift.compare(s, converged(s)) == []


def test_the_read_script_output_parses():
    found = facts.parse("postfix=running\nmaster.465=465 inet n - y - 10 smtpd -o a=b\nnoise\nservice.file=\n")
    assert found.postfix == "running" and found.firewalld == "stopped"
    assert found.master["465"].columns["chroot"] == "y" and found.master["465"].options == {"a": "b"}
    assert found.service is not None and found.service.text == "" and found.service.ports is None
    assert facts.parse("service.file=-\n").service is None


OPTIONS = ["options.smtpd_sasl_auth_enable", "options.smtpd_client_restrictions", "options.content_filter"]


@pytest.mark.parametrize(("changes", "expected"), [
    ({"master.465": ""}, ["serviceKey", "private", "unprivileged", "chroot", "wakeup", "maxproc", "command",
                          *sorted(["options.syslog_name", "options.smtpd_tls_wrappermode", *OPTIONS])]),
    ({"master.465": "465 inet n - n - - smtpd -o syslog_name=postfix/smtps -o smtpd_tls_wrappermode=yes"},
     sorted(OPTIONS)),
    ({"master.smtps": "smtps inet n - n - - smtpd"}, ["otherEntries"]),
    ({"service.file": ""}, ["serviceShort", "serviceDescription", "servicePorts", "serviceFile"]),
    ({"service.mode": "600"}, ["serviceMode"]),
    ({"zone.runtime.service": "no"}, ["runtime"]),
    ({"firewalld": "stopped"}, ["firewalld"]),
    ({"postfix": "stopped"}, ["postfix"]),
])
def test_each_difference_is_named_by_its_input(changes, expected):
    s = settings()
    assert sorted(fields(s, converged(s, **changes))) == sorted(expected)


def test_extra_option_and_changed_columns():
    s = settings()
    entry = s.master.entry.replace("465 inet n - n", "465 inet n n y") + " -o smtpd_tls_security_level=encrypt"
    found = drift.compare(s, converged(s, **{"master.465": entry}))
    assert [str(d) for d in found] == [
        "mail1: master.cf service: options.smtpd_tls_security_level: want '(unset)', found 'encrypt'",
        "mail1: master.cf service: unprivileged: want '-', found 'n'",
        "mail1: master.cf service: chroot: want 'n', found 'y'",
    ]


def test_a_stopped_daemon_is_said_in_words():
    s = settings()
    [found] = drift.compare(s, converged(s, postfix="stopped"))
    assert "up does not start Postfix" in found.note


def test_port_policy_decides_what_a_raw_port_means():
    keep = settings()
    by_port = {"zone.permanent.service": "no", "zone.runtime.service": "no",
               "zone.permanent.port": "yes", "zone.runtime.port": "yes"}
    assert fields(keep, converged(keep, **by_port)) == []
    replace = settings(existingPortPolicy="replace", firewall="firewalld")
    assert fields(replace, converged(replace, **by_port)) == ["permanent", "runtime", "rawPort"]


@pytest.mark.parametrize(("compiled", "unusable"), [
    ("2.10.1", "Postfix 2.10.1 (mail_version) is older than 2.11"), ("3.7.11", ""),
])
def test_a_postfix_older_than_2_11_is_said_by_its_compiled_in_version(tmp_path, compiled, unusable):
    """The read script itself, with stand-ins for postconf and postfix first on its PATH: main.cf's
    `mail_version = 3.9.0` (what plain `postconf -h` shows) decides nothing; drift names the version, not a missing
    entry."""
    (tmp_path / "postconf").write_text(
        f'#!/bin/sh\ncase "$*" in "-dh mail_version") echo {compiled} ;; "-h mail_version") echo 3.9.0 ;; esac\n')
    (tmp_path / "postfix").write_text("#!/bin/sh\nexit 0\n")
    for tool in ("postconf", "postfix"):
        (tmp_path / tool).chmod(0o755)
    s = settings(firewall="nftables")  # nothing of the firewall read: Postfix's part alone
    script = facts.read_script("mail1", master=True)
    path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    assert path in script
    script = script.replace(path, f"PATH={tmp_path}:/usr/bin:/bin\n", 1)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    found = facts.parse(out)
    assert found.postfix_unusable.startswith(unusable) and bool(found.postfix_unusable) == bool(unusable)
    if unusable:
        assert [(d.field, d.have) for d in drift.compare(s, found)] == [("postfix", found.postfix_unusable)]
        assert "upgrade Postfix" in found.postfix_unusable
    else:
        assert "serviceKey" in fields(s, found)  # the stand-in has no entry: an ordinary missing entry
