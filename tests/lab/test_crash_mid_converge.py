"""A controller that dies in the middle of a converge (SIGKILL of the front end, the Pulumi CLI and its providers).

The engine writes the state once at the end of a run (PULUMI_SKIP_CHECKPOINTS, smtps/engine.py), so the kill leaves
the state as the last run wrote it, whole, while some hosts were already changed: configured, not recorded. After
the documented recovery (`pulumi cancel` drops the killed run's lock), `up --refresh` converges every host, adopting
those already done (their create re-runs the idempotent apply) without a failure or a second copy of anything; the
state then holds each host's resources once, no pending operation, and `drift` finds nothing. On 20 hosts (about
2.5 minutes; SMTPS_CRASH_HOSTS sets another count).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.enginekit import Project
from tests.lab.labkit import Lab, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.engine]
HOSTS = int(os.environ.get("SMTPS_CRASH_HOSTS", "20"))
STACK = "crash"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory, "crash", "--hosts", str(HOSTS)) as the_lab:
        yield the_lab


def _controller(project: Project) -> list[int]:
    """The processes of this project's run: the front end, the Pulumi CLI and the provider processes (each in a
    process group of its own), found by the environment they all inherit."""
    mark = f"SMTPS_PROJECT_DIR={project.folder}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and mark in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue  # ended meanwhile, or a zombie
    return found


def _changed(lab: Lab, name: str) -> bool:
    """Whether a run has applied anything on the host (its state folder holds what it applied)."""
    return bool(lab.sh(name, "ls /var/lib/smtps-iredmail 2>/dev/null || true").stdout.split())


def _state(project: Project) -> dict:
    return json.loads(project.pulumi("stack", "export", "-s", STACK).stdout)["deployment"]


def test_a_converge_killed_half_way_is_finished_by_the_next_up(lab: Lab, tmp_path_factory):
    started = time.monotonic()
    names = [h["name"] for h in lab.hosts()]
    project = Project.for_lab(tmp_path_factory.mktemp("crashproject") / "smtps", lab, STACK)
    assert project.env.get("PULUMI_SKIP_CHECKPOINTS") is None  # the product's default, not the test's

    up = subprocess.Popen([sys.executable, "-m", "smtps_iredmail", "up", "-s", STACK, "--yes"], cwd=project.folder,
                          env={**project.env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL, start_new_session=True)
    # Killed once resources for half the hosts are made: several hosts changed, the run far from its end.
    created, seen = 0, []
    assert up.stdout is not None
    for line in up.stdout:
        seen.append(line)
        created += "pulumi-python:dynamic/smtps:" in line and " created" in line  # a kind applied on a host
        if created >= max(2, HOSTS // 2):
            break
    assert up.poll() is None, "up finished before the test could kill it:\n" + "".join(seen)
    while victims := _controller(project):
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    up.wait(timeout=30)
    up.stdout.close()

    changed = [name for name in names if _changed(lab, name)]
    killed = _state(project)
    recorded = {r["urn"] for r in killed.get("resources", [])}
    assert changed, "the kill came before any host was changed:\n" + "".join(seen)
    assert len(changed) < len(names) or not recorded, "every host was converged and recorded before the kill"
    # The state is the last run's (here: none), whole: no operation left pending on any host.
    assert not killed.get("pending_operations"), killed.get("pending_operations")

    # The killed run's lock stays (it was killed, it released nothing): removed as docs/fleet-and-ci.md says.
    refused = project.smtps("up", "-s", STACK, "--yes", "--refresh", check=False)
    assert refused.returncode != 0 and "locked" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    project.pulumi("cancel", "-s", STACK, "--yes")
    project.smtps("up", "-s", STACK, "--yes", "--refresh")

    state = _state(project)
    assert not state.get("pending_operations"), state.get("pending_operations")
    urns = Counter(r["urn"] for r in state["resources"])
    assert [urn for urn, count in urns.items() if count > 1] == []
    per_host = {name: sorted(urn.rsplit("::", 1)[1].removeprefix(name) + "@" + urn.split("::")[2]
                             for urn in urns if urn.rsplit("::", 1)[1].split("-")[0] == name) for name in names}
    assert per_host[names[0]], sorted(urns)
    assert all(kinds == per_host[names[0]] for kinds in per_host.values()), per_host
    assert all(_changed(lab, name) for name in names)
    drift = project.smtps("drift", "-s", STACK, "--json", check=False)
    assert drift.returncode == 0 and json.loads(drift.stdout) == [], drift.stdout + drift.stderr
    project.smtps("preview", "-s", STACK, "--expect-no-changes")
    print(f"crash mid-converge: {HOSTS} hosts, {len(changed)} changed before the kill, "
          f"{len(recorded)} resources recorded then, {len(urns)} after; {time.monotonic() - started:.0f} s")
