"""`python -m smtps fleet preview|up [--stacks a,b] [--workers N]`: many stacks (datacenters) at once.

Each stack runs as its own `python -m smtps preview|up -s STACK` process (the Pulumi SDK's runtime state is per
process, so inline programs do not share one), at most `--workers` at a time. Progress shows live per stack; the
end is a table per stack (hosts, changes, failures, duration) and the exit status is non-zero if any stack failed.
Each stack's whole output is kept in .fleet/<command>-<stack>.log.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import engine
from .settings import SettingsError

# The `Resources:` block of Pulumi's output: "+ 3 to create" (preview) or "+ 3 created" (up), "2 errored".
_COUNT = re.compile(r"^\s+(?:[-+~]+\s*)?(\d+) (to create|to update|to delete|to replace|created|updated|deleted|"
                    r"replaced|unchanged|errored)\s*$", re.MULTILINE)
_WORDS = {"to create": "create", "created": "create", "to update": "update", "updated": "update",
          "to delete": "delete", "deleted": "delete", "to replace": "replace", "replaced": "replace",
          "unchanged": "same", "errored": "errored"}


@dataclass
class StackRun:
    name: str
    hosts: str = "?"
    status: str = "queued"
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    log: Path | None = None

    @property
    def changes(self) -> str:
        parts = [f"{word} {self.counts[key]}" for key, word in
                 (("create", "+"), ("update", "~"), ("replace", "+-"), ("delete", "-")) if self.counts.get(key)]
        return " ".join(parts) or "none"


def counts(output: str) -> dict[str, int]:
    found: dict[str, int] = {}
    block = output.rsplit("Resources:", 1)[-1]
    for number, word in _COUNT.findall(block):
        found[_WORDS[word]] = found.get(_WORDS[word], 0) + int(number)
    return found


def project_stacks() -> list[str]:
    """The stacks with a file in stacks/, in name order."""
    files = sorted((engine.project_dir() / "stacks").glob("Pulumi.*.yaml"))
    return [f.name[len("Pulumi."):-len(".yaml")] for f in files]


def _host_count(name: str) -> str:
    from .cli import stack_settings  # the same parse as `verify` and `drift`

    try:
        return str(len(stack_settings(name)[0]))
    except (SettingsError, SystemExit):
        return "?"


def run(command: str, stacks: list[str], workers: int, extra: list[str]) -> int:
    runs = {name: StackRun(name) for name in stacks}
    logs = engine.project_dir() / ".fleet"
    logs.mkdir(exist_ok=True)
    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=False) as progress:
        tasks = {name: progress.add_task(f"{name}: queued", total=None) for name in stacks}

        def one(name: str) -> None:
            job = runs[name]
            job.status = "running"
            progress.update(tasks[name], description=f"{name}: {command} running")
            argv = [sys.executable, "-m", "smtps", command, "-s", name, *(["--yes"] if command == "up" else []),
                    *extra]
            started = time.monotonic()
            result = subprocess.run(argv, cwd=engine.project_dir(), capture_output=True, text=True, check=False,
                                    stdin=subprocess.DEVNULL)
            job.seconds = time.monotonic() - started
            job.log = logs / f"{command}-{name}.log"
            job.log.write_text(result.stdout + result.stderr)
            job.counts = counts(result.stdout)
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
    for job in runs.values():
        table.add_row(job.name, job.hosts, job.changes, str(job.counts.get("errored", 0)), f"{job.seconds:.1f} s",
                      job.status, str(job.log.relative_to(engine.project_dir())) if job.log else "")
    Console(width=160).print(table)
    return 0 if all(job.status == "ok" for job in runs.values()) else 1
