"""Which stacks the front end takes as held by this project's file backend, without `pulumi stack select` (the
engine's own run of it: tests/test_engine.py): the layout the backend's meta.yaml names, and only that one."""

from __future__ import annotations

import pytest

from smtps_iredmail.core import engine


def _backend(folder, version, *files):
    root = folder / engine.STATE / ".pulumi"
    (root / "stacks").mkdir(parents=True)
    if version is not None:
        (root / "meta.yaml").write_text(f"version: {version}\n")
    for name in files:
        (root / "stacks" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "stacks" / name).write_text("{}")


@pytest.fixture(autouse=True)
def _own_backend(monkeypatch):
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)


@pytest.mark.parametrize(("version", "files", "held"), [
    (1, ["smtps/dev.json"], True),
    (1, ["smtps/dev.json.gz"], True),
    (0, ["dev.json"], True),
    # A file of the other layout is not read by the engine ("no stack named 'dev' found" on `up --stack dev`):
    # the stack is to be made, as select does.
    (1, ["dev.json"], False),
    (0, ["smtps/dev.json"], False),
    (1, ["other/dev.json", "smtps/dev.json.bak"], False),  # another project's; a removed stack's backup
    (None, ["smtps/dev.json", "dev.json"], False),  # a layout not known: the CLI is asked
])
def test_held_only_in_the_layout_the_backend_names(tmp_path, version, files, held):
    _backend(tmp_path, version, *files)
    assert engine._held_here(tmp_path, "smtps", "dev") is held


def test_another_backend_and_a_fully_qualified_name_are_asked(tmp_path, monkeypatch):
    _backend(tmp_path, 1, "smtps/dev.json")
    assert engine._held_here(tmp_path, "smtps", "organization/smtps/dev") is False
    monkeypatch.setenv("PULUMI_BACKEND_URL", engine.backend_url(tmp_path))
    assert engine._held_here(tmp_path, "smtps", "dev") is False
