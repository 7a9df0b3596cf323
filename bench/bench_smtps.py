"""Benchmark: the host-side SMTPS scripts on lab hosts: first converge, no-op converge and destroy.

Prints numbers; asserts nothing about them. Run as root: `make bench-smtps` (or `python -m bench.bench_smtps 10`).
Hosts converge in parallel, as Pulumi would run their resources; each host runs its three scripts in order over
three SSH sessions.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.lab.labkit import Lab
from tests.lab.smtpskit import converge, destroy, settings_for


def timed(lab: Lab, step, names: list[str]) -> tuple[float, list[float]]:
    def one(name: str) -> float:
        started = time.monotonic()
        step(lab, settings_for(lab, name))
        return time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        per_host = list(pool.map(one, names))
    return time.monotonic() - started, per_host


def main(size: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-smtps-") as tmp:
        lab = Lab(Path(tmp) / "state")
        try:
            lab.cli("up", "--hosts", str(size))
            names = [h["name"] for h in lab.hosts()]
            print(f"{size} hosts, in parallel; per host: 3 scripts over 3 SSH sessions")
            print(f"{'step':<16} {'wall (s)':>9} {'host mean (s)':>14} {'host max (s)':>13}")
            for label, step in (("first converge", converge), ("no-op converge", converge), ("destroy", destroy)):
                wall, per_host = timed(lab, step, names)
                print(f"{label:<16} {wall:>9.2f} {statistics.mean(per_host):>14.2f} {max(per_host):>13.2f}",
                      flush=True)
        finally:
            lab.cli("down", check=False)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
