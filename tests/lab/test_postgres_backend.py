"""Shared state for a team: Pulumi's PostgreSQL DIY backend (`postgres://`) on a real PostgreSQL server (Debian's
package, a private cluster started by this test), with a lab stack: up, preview and destroy against it, and two
concurrent `up` on one stack: the second is refused on the stack's lock, and the state stays intact.

The database password travels as PGPASSWORD, never in the backend URL (Pulumi prints that URL in lock messages)."""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require
from tests.enginekit import Project
from tests.lab.faultkit import FAULTS, wrapped_tool
from tests.lab.labkit import Lab, running_lab
from tests.lab.smtpskit import snapshot

pytestmark = [pytest.mark.lab, pytest.mark.engine]
STACK = "dc-shared"
# Pulumi's default table in the backend's database (`?table=` in the URL picks another).
KEYS = "SELECT key FROM pulumi_state ORDER BY key"


@dataclass
class Postgres:
    bin_dir: Path
    data: Path
    port: int
    password: str

    def psql(self, sql: str, database: str = "postgres", user: str = "postgres") -> str:
        env = {**os.environ, "PGPASSWORD": self.password} if user != "postgres" else dict(os.environ)
        result = subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin_dir / "psql"), "-X", "-q", "-A", "-t", "-v",
             "ON_ERROR_STOP=1", "-h", "127.0.0.1" if user != "postgres" else str(self.data), "-p", str(self.port),
             "-U", user, "-d", database, "-c", sql],
            capture_output=True, text=True, env=env, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def keys(self) -> list[str]:
        return self.psql(KEYS, "pulumi", "smtps").splitlines()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A cluster of its own (initdb as the postgres user), on 127.0.0.1 and a socket in its data folder; a database
    `pulumi` owned by a role `smtps` with a password, as a team's DBA would give it. Stopped and removed after."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    require(bool(found), "PostgreSQL is not installed: run `make system-deps` (Debian's postgresql package)")
    bin_dir = Path(found[-1]).parent
    # Not under pytest's tmp folders: the postgres user must be able to reach its data folder.
    data = Path(tempfile.mkdtemp(prefix="smtps-pg-", dir="/var/tmp"))
    shutil.chown(data, "postgres", "postgres")
    cluster = Postgres(bin_dir, data, _free_port(), secrets.token_urlsafe(16))

    def as_postgres(*argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, text=True)

    try:
        as_postgres(str(bin_dir / "initdb"), "-D", str(data / "db"), "-A", "scram-sha-256", "--auth-local=trust",
                    "-U", "postgres")
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "log"), "-w", "-o",
                    f"-c listen_addresses=127.0.0.1 -p {cluster.port} -k {data}", "start")
        # token_urlsafe: letters, digits, - and _ only, so the literal needs no escaping.
        cluster.psql(f"CREATE ROLE smtps LOGIN PASSWORD '{cluster.password}'")  # noqa: S608
        cluster.psql("CREATE DATABASE pulumi OWNER smtps")
        yield cluster
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-w",
                        "-m", "fast", "stop"], capture_output=True, check=False)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory, "postgres", "--hosts", "3") as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def project(lab: Lab, postgres: Postgres, tmp_path_factory) -> Iterator[Project]:
    folder = tmp_path_factory.mktemp("postgres") / "smtps"
    project = Project.create(folder, SMTPS_LAB_DIR=str(lab.state_dir), SMTPS_LAB_NAME=lab.name,
                             SMTPS_LAB_SUBNET=lab.subnet, PGPASSWORD=postgres.password,
                             PULUMI_BACKEND_URL=f"postgres://smtps@127.0.0.1:{postgres.port}/pulumi?sslmode=disable")
    project.run_module("lab", "stack", "-s", STACK)
    yield project
    project.pulumi("destroy", "-s", STACK, "--yes", check=False)


@pytest.fixture(scope="module")
def before(lab: Lab):
    return {h["name"]: snapshot(lab, h["name"]) for h in lab.hosts()}


def resources(project: Project) -> list[str]:
    state = json.loads(project.pulumi("stack", "export", "-s", STACK).stdout)
    return sorted(r["urn"].rsplit("::", 1)[1] for r in state["deployment"].get("resources") or [])


def test_the_stack_lives_in_postgres_and_up_preview_work_against_it(project: Project, postgres: Postgres, before):
    assert "postgres://" in project.pulumi("whoami", "-v").stdout
    project.smtps("up", "-s", STACK, "--yes")
    assert project.smtps("preview", "-s", STACK, "--expect-no-changes").returncode == 0
    # The state is rows of the team's database, not files here.
    assert any(key.endswith(f"/{STACK}.json") for key in postgres.keys()), postgres.keys()
    assert not (project.folder / ".pulumi-state").exists()
    assert len([name for name in resources(project) if name.endswith("-verify")]) == 3


def test_a_second_concurrent_up_is_refused_and_the_state_stays_intact(lab: Lab, project: Project,
                                                                      postgres: Postgres):
    intact = resources(project)
    # A change on every host; mail1's `postfix reload` waits for a word from this test, so the first up is
    # certainly still running (and holding the lock) when the second starts.
    project.pulumi("config", "set", "-s", STACK, "--path", "defaults.options.syslog_name", "postfix/submissions")
    release = f"{FAULTS}/release"
    hold = f"i=0; while [ ! -e {release} ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done"
    first: dict[str, subprocess.CompletedProcess[str]] = {}
    with wrapped_tool(lab, "mail1", "/usr/sbin/postfix", '*" reload "*', hold):
        runner = threading.Thread(target=lambda: first.setdefault("up", project.smtps("up", "-s", STACK, "--yes",
                                                                                       check=False)))
        runner.start()
        deadline = time.monotonic() + 60
        while not any("/locks/" in key for key in postgres.keys()):
            assert time.monotonic() < deadline and runner.is_alive(), "the first up never took the stack's lock"
            time.sleep(0.05)
        second = project.smtps("up", "-s", STACK, "--yes", check=False)
        assert runner.is_alive(), "the first up ended before the second was refused"
        lab.sh("mail1", f"touch {release}")
        runner.join()
    lab.sh("mail1", f"rm -f {release}")
    assert second.returncode != 0
    assert "the stack is currently locked by 1 lock(s)" in second.stdout + second.stderr, second.stdout
    assert postgres.password not in second.stdout + second.stderr
    assert first["up"].returncode == 0, first["up"].stdout + first["up"].stderr
    # The first one's result is the state: whole, unlocked, every host converged to the new option.
    assert resources(project) == intact
    assert not any("/locks/" in key for key in postgres.keys())
    state = json.loads(project.pulumi("stack", "export", "-s", STACK).stdout)
    masters = [r for r in state["deployment"]["resources"] if r["type"].endswith("smtps:MasterService")]
    assert {r["outputs"]["options"]["syslog_name"] for r in masters} == {"postfix/submissions"}
    assert all(not r.get("pendingReplacement") for r in state["deployment"]["resources"])
    assert "pending_operations" not in state["deployment"]
    assert project.smtps("preview", "-s", STACK, "--expect-no-changes").returncode == 0


def test_destroy_against_postgres_leaves_the_hosts_as_they_were(lab: Lab, project: Project, before):
    project.pulumi("destroy", "-s", STACK, "--yes")
    assert resources(project) == []
    assert {h["name"]: snapshot(lab, h["name"]) for h in lab.hosts()} == before
