"""Beyond the lab's usual size: `make bench-scale` (or `python -m bench.bench_scale [SIZES...]`, as root).

One lab of the largest size (default 50 firewalld hosts; memory per host: docs/benchmark.md), and for each size
(default 1, 10, 20, 50) a stack of that many hosts: converge (`up` on hosts without SMTPS), no-op `up`, `preview`,
then `destroy`; one run each. Beside the wall times: the engine's state after the converge (the stack's checkpoint
in the file backend, bytes), the peak memory of the whole process tree, controller CPU, and the most SSH sessions a
no-op or preview opened on any host (0 expected). Then the growth per host between the smallest and the largest
size, which is what a bigger datacenter's stack adds. It prints numbers and asserts nothing.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.bench_pulumi import controller_cpu, host_counters, run_measured
from tests.enginekit import Project
from tests.lab.labkit import Lab

SIZES = (1, 10, 20, 50)


def state_bytes(project: Project, stack: str) -> int:
    """The stack's checkpoint in the project's file backend (the whole engine state of the stack)."""
    found = [p for p in (project.folder / ".pulumi-state").rglob(f"{stack}.json*")
             if ".pulumi/stacks/" in str(p) and not p.name.endswith(".bak")]
    return max(p.stat().st_size for p in found)


def main(sizes: list[int]) -> None:
    console = Console(width=160)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        lab = Lab(Path(tmp) / "state", name="smtpsbench", subnet="10.231.2.0/24")
        try:
            lab.cli("up", "--hosts", str(max(sizes)))
            project = Project.for_lab(Path(tmp) / "project", lab)
            for size in sizes:
                names = [f"mail{i}" for i in range(1, size + 1)]
                stack = f"scale{size}"
                project.run_module("lab", "stack", "-s", stack)
                project.keep_hosts(stack, names)
                row: dict[str, float] = {"hosts": size}
                for step, args in (("converge", ("up", "-s", stack, "--yes")), ("no-op", ("up", "-s", stack, "--yes")),
                                   ("preview", ("preview", "-s", stack))):
                    before, cpu = host_counters(lab, names), controller_cpu()
                    wall, peak = run_measured(project, *args)
                    # Before the counters are read again: their own commands are children of this process too.
                    row[f"{step} controller CPU"] = controller_cpu() - cpu
                    after = host_counters(lab, names)
                    row[step] = wall
                    row[f"{step} MiB"] = peak
                    row[f"{step} sessions"] = max(after[n][1] - before[n][1] for n in names)
                    if step == "converge":
                        row["state"] = state_bytes(project, stack)
                    print(size, step, round(wall, 2), flush=True)
                wall, _ = run_measured(project, "destroy", "-s", stack, "--yes")
                row["destroy"] = wall
                rows.append(row)
        finally:
            lab.cli("down", check=False)
    table = Table("hosts", "converge s", "no-op s", "preview s", "destroy s", "state KiB", "state KiB/host",
                  "peak MiB (converge / no-op)", "controller CPU s (converge / no-op)",
                  "SSH sessions/host (no-op, preview)", title="make bench-scale: firewalld hosts, one run each")
    for r in rows:
        table.add_row(str(r["hosts"]), f"{r['converge']:.2f}", f"{r['no-op']:.2f}", f"{r['preview']:.2f}",
                      f"{r['destroy']:.2f}", f"{r['state'] / 1024:.0f}", f"{r['state'] / 1024 / r['hosts']:.1f}",
                      f"{r['converge MiB']:.0f} / {r['no-op MiB']:.0f}",
                      f"{r['converge controller CPU']:.1f} / {r['no-op controller CPU']:.1f}",
                      f"{r['no-op sessions']:.0f}, {r['preview sessions']:.0f}")
    console.print(table)
    small, big = rows[0], rows[-1]
    span = big["hosts"] - small["hosts"]
    if span:
        growth = Table("per added host", "value", title=f"growth from {small['hosts']} to {big['hosts']} hosts")
        for key, unit in (("state", "KiB"), ("preview", "s"), ("no-op", "s"), ("converge", "s"),
                          ("no-op controller CPU", "s CPU"), ("no-op MiB", "MiB")):
            scale = 1024 if key == "state" else 1
            growth.add_row(f"{key} ({unit})", f"{(big[key] - small[key]) / span / scale:.3f}")
        console.print(growth)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or list(SIZES))
