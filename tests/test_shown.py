"""Host and SMTP text is printed as `shown` makes it: no control or invisible character reaches a terminal or a CI
log, and no line of it starts a GitHub Actions workflow command. `shown` on hostile strings, then each place the
front end prints what hosts said: the engine's streamed output, the failure lines, the drift and verify tables."""

from __future__ import annotations

import argparse
import json
import re
import unicodedata
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtps_iredmail.core import cli
from smtps_iredmail.core.drift import Drift
from smtps_iredmail.core.events import EngineEvents
from smtps_iredmail.core.shown import shown, shown_json
from smtps_iredmail.core.verify import SeenFromOutside

HOSTILE = {
    "clear screen": "postconf: fatal: \x1b[2J\x1b[Hall good",
    "OSC 8 link": "\x1b]8;;https://evil.example/\x1b\\click here\x1b]8;;\x1b\\",
    "OSC with BEL": "\x1b]0;pwned title\x07",
    "carriage return": "error: disk full\rok: all fine     ",
    "add-mask": "::add-mask::secret",
    "set-env after a newline": "first line\n::set-env name=LD_PRELOAD::/tmp/x.so",
    "indented command": "   ::stop-commands::token",
    "legacy command": "##[set-output name=x;]y",
    "legacy command mid-line": "550 5.7.1 relay denied ##[add-mask]550",
    "legacy command after text": "banner: mail.example ##[error title=fake]host is fine",
    "legacy command in a run of #": "x ###[stop-commands]tok",
    "bidi override": "cert for \u202eexample.com\u202c ok",
    "bidi isolate": "\u2067admin\u2069 \u2066x\u2069",
    "C1 CSI": "\x9b2J",
    "line separator": "a\u2028::add-mask::b\u2029c",
    "zero width": "mail\u200b1",
    "tag characters": "ok\U000e0041\U000e0042",
    "undecodable byte": b"caf\xff".decode(errors="surrogateescape"),
}
HIDDEN = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co"}
# What a GitHub runner reads as a command: `::` at a line's start (after white space), `##[` anywhere in a line.
COMMAND = re.compile(r"^\s*::|##\[", re.MULTILINE)


def safe(text: str) -> bool:
    """Nothing a terminal acts on or hides, and no line that a runner reads as a command."""
    return not any(unicodedata.category(c) in HIDDEN for c in text if c != "\n") and not COMMAND.search(text)


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_text_is_escaped_on_one_line(text):
    out = shown(text)
    assert safe(out) and "\n" not in out, out
    assert not safe(text)  # the case is hostile to begin with


def test_what_the_escapes_look_like():
    assert shown("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert shown("x\r\ny\tz") == "x\\r\\ny\\tz"
    assert shown("\u202egnp.exe") == "\\u202egnp.exe"
    assert shown("::add-mask::x") == "\\x3a:add-mask::x"
    assert shown("  ##[error]x") == "  \\x23#[error]x"
    assert shown("ok: a::b, #1, ## c") == "ok: a::b, #1, ## c"  # not a command: plain text, untouched
    assert shown("x ##[error]y ###[z") == "x \\x23#[error]y #\\x23#[z"  # `##[` anywhere, and in a run of `#`
    assert shown("café, straße, 日本, C:\\path") == "café, straße, 日本, C:\\path"
    assert shown(42) == "42"


@given(st.text())
def test_any_text_comes_out_safe(text):
    assert safe(shown(text))


def test_the_engines_streamed_output_is_shown(capsys):
    cli._engine_out("    error: mail1: \x1b[2J::add-mask::x")
    cli._engine_err("::set-env name=A::b")
    out, err = capsys.readouterr()
    assert out == "    error: mail1: \\x1b[2J::add-mask::x\n" and err == "\\x3a:set-env name=A::b\n"


def test_failure_lines_are_shown(capsys):
    from pulumi import automation as auto
    from pulumi.automation._cmd import CommandResult

    collected = EngineEvents({"verify": "verification"})
    urn = "urn:pulumi:s::smtps-iredmail::smtps:index:Host$pulumi-python:dynamic:Resource::mail1-verify"
    collected.errors[urn] = ["mail1 (10.0.0.1): verification failed: 554 \x1b]8;;http://x\x07hi\n::add-mask::y"]
    collected.failed[urn] = "update"

    def failing(_events):
        raise auto.CommandError(CommandResult("", "", 1))

    assert cli._engine_call(failing, events=collected) == 1
    err = capsys.readouterr().err
    assert "  mail1: verification: update: verification failed: 554 \\x1b]8;;http://x\\x07hi ::add-mask::y" in err
    assert safe(err)


def drift_or_verify(monkeypatch, found):
    host = SimpleNamespace(name="mail1", connection=None)
    monkeypatch.setattr(cli, "stack_settings", lambda _name: SimpleNamespace(hosts=(host,)))
    monkeypatch.setattr(cli, "_pool", lambda _stack: SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(cli, "_in_parallel", lambda _hosts, _each: [found(host)])


def test_the_drift_table_and_its_notes_show_host_text(monkeypatch, capsys):
    live = "\x1b[2J\u202e[link=https://evil.example]x[/link]\r\n::add-mask::z"
    drift_or_verify(monkeypatch, lambda _h: [Drift("mail1", "zone", "firewalld", "running", live)])
    assert cli.cmd_drift(argparse.Namespace(stack="s", json=False)) == 1
    out = capsys.readouterr().out
    assert safe(out) and "\\x1b[2J\\u202e" in out
    assert "[link=https://evil.example]x[/link]" in out  # printed as text, not taken as rich markup


def test_the_verify_table_shows_host_text(monkeypatch, capsys):
    seen = SeenFromOutside("10.0.0.1", 465, False, "TLSv1.3\x1b[31m", auth="PLAIN\u202e", relay_anonymous="250 \x07ok",
                        problem="no implicit TLS on 465: \x1b]8;;http://evil\x1b\\x\n::set-env name=A::b")
    monkeypatch.setattr(cli.engine, "stack_secret", lambda _stack, _name: None)
    drift_or_verify(monkeypatch, lambda h: cli.Checked(h, seen, "", "cat: \x1b[2J", frozenset({25}), ""))
    assert cli.cmd_verify(argparse.Namespace(stack="s", json=False, warn_days=None)) == 1
    out = capsys.readouterr().out
    assert safe(out) and "\\x1b[31m" in out and "\\x1b]8;;http://evil" in out


JSON_HOSTILE = ["x ##[warning]fake", "ok ###[add-mask]y", "::add-mask::z", "a\n::set-env name=A::b", "\x1b[2J",
                "\u2028::stop-commands::t", "\u202e#[#"]


@pytest.mark.parametrize("indent", [None, 2])
def test_json_output_decodes_the_same_and_starts_no_command(indent):
    value = {"host ##[error]": JSON_HOSTILE, "n": 1}
    text = shown_json(value, indent=indent)
    assert safe(text), text
    assert json.loads(text) == value


@given(st.recursive(st.text() | st.integers() | st.none(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=8))
def test_any_json_output_is_safe(value):
    text = shown_json(value, indent=2)
    assert safe(text) and json.loads(text) == value


def test_drift_json_holds_no_command(monkeypatch, capsys):
    drift_or_verify(monkeypatch, lambda _h: [Drift("mail1", "zone", "firewalld", "running ##[error]x",
                                                   "::add-mask::z ##[warning]y")])
    assert cli.cmd_drift(argparse.Namespace(stack="s", json=True)) == 1
    out = capsys.readouterr().out
    assert safe(out), out
    assert json.loads(out)[0]["live"] == "::add-mask::z ##[warning]y"


def test_verify_json_holds_no_command(monkeypatch, capsys):
    seen = SeenFromOutside("10.0.0.1", 465, False, "TLSv1.3", cert_subject="CN=mail ##[set-output name=ok;]true",
                        problem="550 ##[add-mask]550")
    monkeypatch.setattr(cli.engine, "stack_secret", lambda _stack, _name: None)
    drift_or_verify(monkeypatch, lambda h: cli.Checked(h, seen, "", "", frozenset({25}), ""))
    assert cli.cmd_verify(argparse.Namespace(stack="s", json=True, warn_days=None)) == 1
    out = capsys.readouterr().out
    assert safe(out), out
    assert json.loads(out)["mail1"]["cert_subject"] == "CN=mail ##[set-output name=ok;]true"


def test_the_verify_modules_json_holds_no_command(monkeypatch, capsys):
    from smtps_iredmail.core import verify as module

    seen = SeenFromOutside("10.0.0.1", 465, False, "", problem="banner ##[error]fake")
    monkeypatch.setattr(module, "verify", lambda _address, _port: seen)
    assert module.main(["10.0.0.1", "--json"]) == 1
    out = capsys.readouterr().out
    assert safe(out) and json.loads(out)["problem"] == "banner ##[error]fake", out
