"""`smtps fleet` (smtps/fleet.py) without an engine: each stack's run stands in as a process that writes the summary
a real `smtps preview|up --summary` writes (smtps/events.py). What the fleet starts, at most how many at once, what
it keeps of each, the table and failures it shows, and its exit status. (tests/lab/test_fleet.py runs it for real.)"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from smtps_iredmail.core import fleet, stacks
from smtps_iredmail.core.fleet import StackJob
from smtps_iredmail.core.settings import SettingsError


class Runs:
    """subprocess.run for the stacks' processes: each stack's answer (exit status, summary or None, output)."""

    def __init__(self, answers: dict[str, tuple[int, dict | None, str]], linger: float = 0.0) -> None:
        self.answers = answers
        # Each run lasts until every stack has started, or this long: all the fleet lets start at once do.
        self.linger = linger
        self.calls: list[tuple[list[str], dict]] = []
        self.running = 0
        self.most = 0
        self.changed = threading.Condition()

    def __call__(self, argv, **kwargs):
        with self.changed:
            self.calls.append((argv, kwargs))
            self.running += 1
            self.most = max(self.most, self.running)
            self.changed.notify_all()
            self.changed.wait_for(lambda: len(self.calls) == len(self.answers), timeout=self.linger)
        code, summary, output = self.answers[argv[argv.index("-s") + 1]]
        if summary is not None:
            Path(argv[argv.index("--summary") + 1]).write_text(json.dumps(summary))
        with self.changed:
            self.running -= 1
        return subprocess.CompletedProcess(argv, code, output, "stderr of the run\n")

    def argv(self, stack: str) -> list[str]:
        return next(argv for argv, _ in self.calls if argv[argv.index("-s") + 1] == stack)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The project folder the fleet runs in, and each stack's hosts as its files give them."""
    monkeypatch.setenv("SMTPS_PROJECT_DIR", str(tmp_path))
    hosts = {"dc1": 3, "dc2": 1, "dc3": 2}

    def from_files(folder: Path, name: str):
        assert folder == tmp_path
        if name not in hosts:
            raise SettingsError(f"stack {name}: no stacks/Pulumi.{name}.yaml")
        return SimpleNamespace(hosts=[object()] * hosts[name])

    monkeypatch.setattr(stacks, "from_files", from_files)
    return tmp_path


def summary(changes: dict[str, int], *failures: tuple[str, str, str, str]) -> dict:
    return {"changes": changes,
            "failures": [dict(zip(("host", "resource", "step", "message"), f, strict=True)) for f in failures]}


def test_each_stack_runs_as_its_own_smtps_process_in_the_project(project, monkeypatch, capsys):
    runs = Runs({"dc1": (0, summary({"create": 4}), "dc1 out\n"), "dc2": (0, summary({}), "")})
    monkeypatch.setattr(subprocess, "run", runs)
    assert fleet.across_stacks("up", ["dc1", "dc2"], 2, ["--refresh"]) == 0
    for stack in ("dc1", "dc2"):
        # up without prompts (nobody reads them), the summary to a file of the stack's own, the extra flags last.
        assert runs.argv(stack) == [sys.executable, "-m", "smtps_iredmail", "up", "-s", stack, "--yes",
                                    "--summary", str(project / ".fleet" / f"up-{stack}.json"), "--refresh"]
    for _, kwargs in runs.calls:
        assert kwargs["cwd"] == project and kwargs["stdin"] == subprocess.DEVNULL and kwargs["check"] is False
    # Each stack's whole output is kept.
    assert (project / ".fleet" / "up-dc1.log").read_text() == "dc1 out\nstderr of the run\n"
    out = capsys.readouterr().out
    assert "fleet up: 2 stack(s), 2 worker(s)" in out and ".fleet/up-dc1.log" in out


@pytest.mark.parametrize(("argv", "extra"), [
    (["up"], []), (["up", "--refresh", "--no-canary"], ["--refresh", "--no-canary"]),
    (["preview", "--refresh"], ["--refresh"])])
def test_the_fleets_flags_reach_each_stacks_run(argv, extra, project, monkeypatch):
    from smtps_iredmail.core import cli

    ran = []
    monkeypatch.setattr(fleet, "across_stacks", lambda *a: ran.append(a) or 0)
    assert cli.cmd_fleet(cli.parser().parse_args(["fleet", *argv, "--stacks", "dc1,dc2"])) == 0
    assert ran == [(argv[0], ["dc1", "dc2"], 2, extra)]


def test_no_canary_is_for_up_alone(project, monkeypatch, capsys):
    from smtps_iredmail.core import cli

    monkeypatch.setattr(fleet, "across_stacks", lambda *a: pytest.fail("a stack ran"))
    assert cli.cmd_fleet(cli.parser().parse_args(["fleet", "preview", "--no-canary", "--stacks", "dc1"])) == 2
    assert "--no-canary is for up" in capsys.readouterr().err


def test_preview_is_not_given_yes(project, monkeypatch):
    runs = Runs({"dc1": (0, summary({}), "")})
    monkeypatch.setattr(subprocess, "run", runs)
    assert fleet.across_stacks("preview", ["dc1"], 1, []) == 0
    assert runs.argv("dc1") == [sys.executable, "-m", "smtps_iredmail", "preview", "-s", "dc1",
                                "--summary", str(project / ".fleet" / "preview-dc1.json")]


def test_one_failed_stack_fails_the_fleet_and_its_failures_are_shown_safely(project, monkeypatch, capsys):
    hostile = "certificate missing\x1b[2J"
    runs = Runs({"dc1": (0, summary({"update": 2}), ""),
                 "dc2": (1, summary({"update": 1}, ("mx9", "master.cf service", "update", hostile)), "")})
    monkeypatch.setattr(subprocess, "run", runs)
    assert fleet.across_stacks("up", ["dc1", "dc2"], 2, []) == 1
    out = capsys.readouterr().out
    # One line per failure, naming its stack, with what the host said escaped (smtps/shown.py).
    assert "dc2: mx9: master.cf service: update: certificate missing\\x1b[2J" in out
    assert "\x1b[2J" not in out
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│ dc")}
    assert "FAILED" in rows["dc2"] and "~ 1" in rows["dc2"] and "ok" in rows["dc1"] and "~ 2" in rows["dc1"]


def test_counts_come_from_this_runs_summary_never_an_earlier_one(project, monkeypatch, capsys):
    """A run that died before writing its summary shows no changes, not those of the run before it."""
    (project / ".fleet").mkdir()
    (project / ".fleet" / "up-dc1.json").write_text(json.dumps(summary({"create": 9})))
    runs = Runs({"dc1": (1, None, "Traceback ...\n")})
    monkeypatch.setattr(subprocess, "run", runs)
    assert fleet.across_stacks("up", ["dc1"], 1, []) == 1
    assert not (project / ".fleet" / "up-dc1.json").exists()
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│ dc1")]
    assert row.split("│")[3].strip() == "none" and "FAILED" in row and "+ 9" not in row


def test_a_failed_exit_status_fails_the_stack_whatever_its_summary_says(project, monkeypatch):
    monkeypatch.setattr(subprocess, "run", Runs({"dc1": (2, summary({}), "")}))
    assert fleet.across_stacks("preview", ["dc1"], 1, []) == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_at_most_workers_stacks_run_at_once_and_all_of_them_run(project, monkeypatch, workers):
    names = ["dc1", "dc2", "dc3", "dc4"]
    runs = Runs({name: (0, summary({}), "") for name in names}, linger=0.5)
    monkeypatch.setattr(subprocess, "run", runs)
    assert fleet.across_stacks("preview", names, workers, []) == 0
    assert sorted(argv[argv.index("-s") + 1] for argv, _ in runs.calls) == names
    assert runs.most == workers


def test_no_workers_still_runs_one_at_a_time(project, monkeypatch):
    runs = Runs({"dc1": (0, summary({}), ""), "dc2": (0, summary({}), "")})
    monkeypatch.setattr(subprocess, "run", runs)
    assert fleet.across_stacks("preview", ["dc1", "dc2"], 0, []) == 0
    assert len(runs.calls) == 2 and runs.most == 1


def test_the_table_counts_hosts_from_the_stack_files_and_says_when_it_cannot(project, monkeypatch, capsys):
    runs = Runs({"dc1": (0, summary({}), ""), "broken": (0, summary({}), "")})
    monkeypatch.setattr(subprocess, "run", runs)
    fleet.across_stacks("preview", ["dc1", "broken"], 1, [])
    rows = {line.split()[1]: line.split("│") for line in capsys.readouterr().out.splitlines()
            if line.startswith("│ ")}
    assert rows["dc1"][2].strip() == "3" and rows["broken"][2].strip() == "?"


def test_changes_read_in_the_engines_order_and_omit_what_did_not_happen():
    assert StackJob("dc1").changes == "none"
    assert StackJob("dc1", counts={"delete": 1, "same": 7, "create": 2}).changes == "+ 2 - 1"
    assert StackJob("dc1", counts={"replace": 1, "update": 3, "create": 0}).changes == "~ 3 +- 1"
    assert StackJob("dc1", counts={"create": 1, "update": 2, "replace": 3, "delete": 4}).changes == "+ 1 ~ 2 +- 3 - 4"
