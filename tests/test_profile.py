"""SMTPS_PROFILE (smtps/profile.py): off, nothing is written; on, one JSON line per note, with names and times only."""

from __future__ import annotations

import json
import os
import re
import stat
from types import SimpleNamespace

import pytest

from smtps_iredmail.core import cli, events, profile
from smtps_iredmail.core.profile import PROFILE_ENV, ProfileError, script_label
from smtps_iredmail.core.remote import Result


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
    from smtps_iredmail.core.remote import Pool

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
    collected = events.EngineEvents({})
    none = dict.fromkeys(("resource_pre_event", "res_outputs_event", "res_op_failed_event", "diagnostic_event",
                          "summary_event"))
    collected.on_event(SimpleNamespace(**{**none, "resource_pre_event": SimpleNamespace(metadata=meta)}))
    collected.on_event(SimpleNamespace(**{**none, "res_outputs_event": SimpleNamespace(metadata=meta)}))
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


def test_an_existing_file_is_made_0600_and_kept_appending(tmp_path, monkeypatch):
    out = tmp_path / "profile.jsonl"
    out.write_text('{"t": 1}\n')
    out.chmod(0o666)
    monkeypatch.setenv(PROFILE_ENV, str(out))
    profile.check()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    out.chmod(0o644)
    profile.note(kind="engine", what="start")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and len(out.read_text().splitlines()) == 2


@pytest.mark.parametrize("kind", ["hard link", "another user's file"])
def test_a_file_with_a_second_name_or_of_another_user_is_refused_and_left_as_it_was(tmp_path, monkeypatch, kind):
    theirs = tmp_path / "theirs"
    theirs.write_text("theirs\n")
    theirs.chmod(0o644)
    out = tmp_path / "profile.jsonl"
    if kind == "hard link":
        os.link(theirs, out)
        said = "has 2 names (hard links)"
    else:
        out = theirs
        # This process stands in for another user: the file is then not its own.
        monkeypatch.setattr(profile.os, "geteuid", lambda: os.getuid() + 4242)
        said = f"belongs to user {os.getuid()}, not to this one"
    monkeypatch.setenv(PROFILE_ENV, str(out))
    for call in (profile.check, lambda: profile.note(kind="engine", what="start")):
        with pytest.raises(ProfileError, match=re.escape(said)):
            call()
    assert theirs.read_text() == "theirs\n" and stat.S_IMODE(theirs.stat().st_mode) == 0o644


def test_a_folder_on_the_way_that_is_another_users_link_is_refused(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "mine").symlink_to(real)
    (tmp_path / "mine2").symlink_to("mine")  # relative, through another link
    # Links of root or of this user are followed (a system's /home -> /var/home; the user's own choice).
    for name in ("mine", "mine2"):
        monkeypatch.setenv(PROFILE_ENV, str(tmp_path / name / "p.jsonl"))
        profile.check()
    assert (real / "p.jsonl").exists()
    (real / "p.jsonl").unlink()
    # The same links owned by another user: as root, given to one; else this process stands in as yet another.
    if os.geteuid() == 0:
        for name in ("mine", "mine2"):
            os.lchown(tmp_path / name, 4242, 4242)
    else:
        me = os.geteuid()
        monkeypatch.setattr(profile.os, "geteuid", lambda: me + 4242)
    for name in ("mine", "mine2"):
        monkeypatch.setenv(PROFILE_ENV, str(tmp_path / name / "p.jsonl"))
        with pytest.raises(ProfileError, match=f"the folder {tmp_path / name} on the way is a symbolic link of user"):
            profile.check()
    assert list(real.iterdir()) == []
