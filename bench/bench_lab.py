"""Benchmark: time of `lab up` for 1, 5, 10 and 20 hosts, and the memory each host uses.

Prints numbers; asserts nothing about them. Run as root: `make bench-lab` (or `python -m bench.bench_lab 1 5`).
Memory is the proportional set size (PSS) of every process in a host's network namespace, so pages shared between
hosts (the same binaries) are split fairly between them.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.lab.labkit import Lab

SIZES = [1, 5, 10, 20]


def pss_kib(pid: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def host_memory_mib(netns: str) -> tuple[float, int]:
    pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split()
    return sum(pss_kib(pid) for pid in pids) / 1024, len(pids)


def main(sizes: list[int]) -> None:
    print(f"{'hosts':>5} {'lab up (s)':>10} {'per host (s)':>12} {'PSS/host MiB':>13} {'procs/host':>10}")
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-lab-") as tmp:
            lab = Lab(Path(tmp) / "state")
            try:
                started = time.monotonic()
                lab.cli("up", "--hosts", str(size))
                elapsed = time.monotonic() - started
                memory = [host_memory_mib(h["netns"]) for h in lab.hosts()]
                mib = statistics.mean(m for m, _ in memory)
                procs = statistics.mean(n for _, n in memory)
                print(f"{size:>5} {elapsed:>10.1f} {elapsed / size:>12.2f} {mib:>13.1f} {procs:>10.1f}", flush=True)
            finally:
                lab.cli("down", check=False)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or SIZES)
