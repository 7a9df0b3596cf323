"""SMTPS_PROFILE (smtps/profile.py): off, nothing is written; on, one JSON line per note, with names and times only."""

from __future__ import annotations

import json
import os
import stat
from types import SimpleNamespace

import pytest

from smtps import cli, events, profile
from smtps.profile import PROFILE_ENV, ProfileError, script_label
from smtps.ssh import Result


def test_without_the_variable_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with profile.span("ssh: x", "mail1"):
        pass
    profile.note(kind="engine", what="start")
    assert list(tmp_path.iterdir()) == []


def test_a_remote_command_is_noted_by_its_label_never_its_text(tmp_path, monkeypatch):
    out = tmp_path / "profile.jsonl"
    monkeypatch.setenv(PROFILE_ENV, str(out))
    script = ("#!/bin/sh\n# 'master.cf service' on mail1: apply. Rendered by smtps-iredmail: every value below was\n"
              "SECRET='do-not-log'\n")
    from smtps.ssh import Pool

    pool = Pool.__new__(Pool)
    pool._client = lambda host, conn: None  # noqa: SLF001 - no connection: only the note is under test
    pool._exec = lambda *args: Result(0, "", "")  # noqa: SLF001
    pool.run("mail1", SimpleNamespace(address="10.0.0.1"), script)
    (line,) = out.read_text().splitlines()
    note = json.loads(line)
    assert note["what"] == "ssh: master.cf service: apply" and note["host"] == "mail1"
    assert note["t0"] <= note["t"] and "do-not-log" not in line


def test_labels_name_the_step_not_the_host():
    confirm = "#!/bin/sh\n# Confirm the firewalld change on mail7: this runs over a fresh SSH login (a new TCP\n"
    assert script_label(confirm, "mail7") == "Confirm the firewalld change"
    assert script_label("true", "mail7") == "true"


def test_engine_steps_are_noted_begin_and_end(tmp_path, monkeypatch):
    out = tmp_path / "profile.jsonl"
    monkeypatch.setenv(PROFILE_ENV, str(out))
    meta = SimpleNamespace(urn="urn:pulumi:s::p::pulumi-python:dynamic:Resource::mail1-master", op="create")
    run = events.Run({})
    none = dict.fromkeys(("resource_pre_event", "res_outputs_event", "res_op_failed_event", "diagnostic_event",
                          "summary_event"))
    run.on_event(SimpleNamespace(**{**none, "resource_pre_event": SimpleNamespace(metadata=meta)}))
    run.on_event(SimpleNamespace(**{**none, "res_outputs_event": SimpleNamespace(metadata=meta)}))
    notes = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(n["kind"], n["op"]) for n in notes] == [("begin", "create"), ("end", "create")]


def test_the_file_is_made_0600_whatever_the_umask(tmp_path, monkeypatch):
    out = tmp_path / "profile.jsonl"
    monkeypatch.setenv(PROFILE_ENV, str(out))
    old = os.umask(0)
    try:
        profile.note(kind="engine", what="start")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["link to a file", "link to nowhere", "fifo"])
def test_a_link_or_a_fifo_at_the_path_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys, kind):
    target = tmp_path / "elsewhere"
    out = tmp_path / "profile.jsonl"
    if kind == "link to a file":
        target.write_text("")
        out.symlink_to(target)
    elif kind == "link to nowhere":
        out.symlink_to(target)
    else:
        os.mkfifo(out)
    monkeypatch.setenv(PROFILE_ENV, str(out))
    with pytest.raises(ProfileError) as refused:
        profile.note(kind="engine", what="start")
    assert str(out) in str(refused.value)
    # A FIFO nobody reads fails the non-blocking open itself (ENXIO); one with a reader is no regular file.
    wanted = ("symbolic link",) if kind.startswith("link") else ("not a regular file", "cannot be opened")
    assert any(words in str(refused.value) for words in wanted), refused.value
    assert not target.exists() or target.read_text() == ""
    # The front end refuses it before any command runs: `verify` would otherwise log in to hosts.
    monkeypatch.setattr(cli, "cmd_verify", lambda _args: pytest.fail("ran despite a bad SMTPS_PROFILE"))
    assert cli.main(["verify", "-s", "nowhere"]) == 2
    assert f"{PROFILE_ENV}={out}" in capsys.readouterr().err
