"""Drift comparison on states as the read script prints them (the lab tests read real hosts)."""

from __future__ import annotations

import base64

import pytest

from smtps import drift
from smtps.firewalld_service import service_xml
from smtps.settings import parse_host

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"


def settings(**extra):
    return parse_host("dc1", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": KEY, **extra})


def converged(s, **changes) -> dict[str, str]:
    state = {
        "postfix": "running", "firewalld": "running",
        f"master.{s.master.key}": s.master.entry,
        "service.file": base64.b64encode(service_xml(s.service).encode()).decode(),
        "zone.permanent.service": "yes", "zone.permanent.port": "no",
        "zone.runtime.service": "yes", "zone.runtime.port": "no",
    }
    state.update(changes)
    return state


def fields(s, state) -> list[str]:
    return [d.field for d in drift.compare(s, state)]


def test_a_converged_host_has_no_drift():
    s = settings()
    assert drift.compare(s, converged(s)) == []


def test_the_read_script_output_parses():
    assert drift.parse_state("postfix=running\nmaster.465=465 inet n\nnoise\nservice.file=\n") == {
        "postfix": "running", "master.465": "465 inet n", "service.file": ""}


@pytest.mark.parametrize(("changes", "expected"), [
    ({"master.465": ""}, ["master.cf 465/inet"]),
    ({"master.465": "465 inet n - n - - smtpd -o syslog_name=postfix/smtps -o smtpd_tls_wrappermode=yes"},
     ["master.cf 465/inet option smtpd_sasl_auth_enable", "master.cf 465/inet option smtpd_client_restrictions",
      "master.cf 465/inet option content_filter"]),
    ({"master.smtps": "smtps inet n - n - - smtpd"}, ["master.cf smtps/inet"]),
    ({"service.file": ""}, ["firewalld service file smtps.xml"]),
    ({"zone.runtime.service": "no"}, ["zone iredmail runtime service smtps"]),
    ({"firewalld": "stopped"}, ["firewalld"]),
    ({"postfix": "stopped"}, ["postfix"]),
])
def test_each_difference_is_named_by_field(changes, expected):
    s = settings()
    assert fields(s, converged(s, **changes)) == expected


def test_extra_option_and_changed_columns():
    s = settings()
    entry = s.master.entry.replace("465 inet n - n", "465 inet n - y") + " -o smtpd_tls_security_level=encrypt"
    found = drift.compare(s, converged(s, **{"master.465": entry}))
    assert [str(d) for d in found] == [
        "mail1: master.cf 465/inet option smtpd_tls_security_level: want '(unset)', found 'encrypt'",
        "mail1: master.cf 465/inet fields: want '465 inet n - n - - smtpd', found '465 inet n - y - - smtpd'",
    ]


def test_port_policy_decides_what_a_raw_port_means():
    keep = settings()
    by_port = {"zone.permanent.service": "no", "zone.runtime.service": "no",
               "zone.permanent.port": "yes", "zone.runtime.port": "yes"}
    assert fields(keep, converged(keep, **by_port)) == []
    replace = settings(existingPortPolicy="replace")
    assert fields(replace, converged(replace, **by_port)) == [
        "zone iredmail permanent service smtps", "zone iredmail permanent port 465/tcp",
        "zone iredmail runtime service smtps", "zone iredmail runtime port 465/tcp"]
