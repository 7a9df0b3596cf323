"""`smtps fleet preview|up [--stacks a,b] [--workers N]`: many stacks (datacenters) at once.

Each stack runs as its own `smtps preview|up -s STACK` process (the Pulumi SDK's runtime state is per
process, so inline programs do not share one), at most `--workers` at a time. Progress shows live per stack; the
end is a table per stack (hosts, changes, failures, duration) and the exit status is non-zero if any stack failed.
The counts and failures come from each run's engine events (`--summary`, smtps/events.py), never from its text.
Each stack's whole output is kept in .fleet/<command>-<stack>.log, its summary in .fleet/<command>-<stack>.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import engine, stacks
from .settings import SettingsError
from .shown import shown


@dataclass
class StackJob:
    """One stack's `smtps preview|up` process, as the table shows it."""

    name: str
    hosts: str = "?"
    status: str = "queued"
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    log: Path | None = None

    @property
    def changes(self) -> str:
        parts = [f"{word} {self.counts[key]}" for key, word in
                 (("create", "+"), ("update", "~"), ("replace", "+-"), ("delete", "-")) if self.counts.get(key)]
        return " ".join(parts) or "none"


def _host_count(name: str) -> str:
    """How many hosts the stack has, from its files (nothing decrypted)."""
    try:
        return str(len(stacks.from_files(engine.project_dir(), name).hosts))
    except SettingsError:
        return "?"


def across_stacks(command: str, stacks: list[str], workers: int, extra: list[str]) -> int:
    """`smtps COMMAND -s STACK` for each stack, `workers` at a time, then the table; 1 if any stack failed."""
    jobs = {name: StackJob(name) for name in stacks}
    logs = engine.project_dir() / ".fleet"
    logs.mkdir(exist_ok=True)
    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=False) as progress:
        tasks = {name: progress.add_task(f"{name}: queued", total=None) for name in stacks}

        def one(name: str) -> None:
            job = jobs[name]
            job.status = "running"
            progress.update(tasks[name], description=f"{name}: {command} running")
            summary = logs / f"{command}-{name}.json"
            summary.unlink(missing_ok=True)
            argv = [sys.executable, "-m", "smtps_iredmail", command, "-s", name,
                    *(["--yes"] if command == "up" else []), "--summary", str(summary), *extra]
            started = time.monotonic()
            result = subprocess.run(argv, cwd=engine.project_dir(), capture_output=True, text=True, check=False,
                                    stdin=subprocess.DEVNULL)
            job.seconds = time.monotonic() - started
            job.log = logs / f"{command}-{name}.log"
            job.log.write_text(result.stdout + result.stderr)
            if summary.exists():
                events = json.loads(summary.read_text())
                job.counts = events["changes"]
                job.failures = [f"{f['host']}: {f['resource']}: {f['step']}: {f['message']}"
                                for f in events["failures"]]
            job.status = "ok" if result.returncode == 0 else "FAILED"
            job.hosts = _host_count(name)
            progress.update(tasks[name], description=f"{name}: {command} {job.status} ({job.changes})", total=1,
                            completed=1)

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(one, stacks))
        wall = time.monotonic() - started
    table = Table("stack", "hosts", "changes", "failures", "duration", "result", "log",
                  title=f"fleet {command}: {len(stacks)} stack(s), {workers} worker(s), {wall:.1f} s")
    for job in jobs.values():
        table.add_row(job.name, job.hosts, job.changes, str(len(job.failures)), f"{job.seconds:.1f} s",
                      job.status, str(job.log.relative_to(engine.project_dir())) if job.log else "")
    Console(width=160).print(table)
    for job in jobs.values():
        for line in job.failures:
            print(shown(f"{job.name}: {line}"))  # a failure's message is what a host said
    return 0 if all(job.status == "ok" for job in jobs.values()) else 1
