"""Beyond the issue's table: `make bench-scale` (or `python -m bench.bench_scale [SIZES...]`, as root).

Firewalld hosts enough for the largest size (default 10, 50 and 100; above 50 the hosts come from several labs,
bench/fleet.py; a lab host takes about 45 MiB and 1.3 s to bring up, docs/benchmark.md), and for each size a stack
of that many: converge (`up` on hosts without SMTPS), no-op `up`, then `destroy`; one run each. Per size: wall
times, the engine's state after the converge (the stack's checkpoint in the file backend), the peak memory of the
whole process tree, controller CPU and host CPU, each per host, so that growth with the stack shows (the issue
wants the controller's CPU per host the same, within 20 %, at 10, 50 and 100 hosts), and the most SSH sessions a
no-op opened on any host (0 expected). Then the converge's time split into the controller's CPU, the hosts' CPU
and waiting, and the figures extrapolated to a 500-host stack. It prints numbers and asserts nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.bench_pulumi import CONTROLLER_CPU_TARGET, COUNTS, controller_cpu, read_counts, run_measured
from bench.fleet import Fleet, mean
from tests.enginekit import Project

SIZES = (10, 50, 100)
EXTRAPOLATE_TO = 500
FLAT = 0.2  # the "the same (±20 %)" for controller CPU per host across sizes


def state_bytes(project: Project, stack: str) -> int:
    """The stack's checkpoint in the project's file backend (the whole engine state of the stack)."""
    found = [p for p in (project.folder / ".pulumi-state").rglob(f"{stack}.json*")
             if ".pulumi/stacks/" in str(p) and not p.name.endswith(".bak")]
    return max(p.stat().st_size for p in found)


def measure_size(fleet: Fleet, project: Project, size: int) -> dict[str, float]:
    names = fleet.names(size)
    stack = f"scale{size}"
    fleet.write_stack(project, stack, names)
    row: dict[str, float] = {"hosts": size}
    for step, args in (("converge", ("up", "-s", stack, "--yes")), ("no-op", ("up", "-s", stack, "--yes")),
                       ("destroy", ("destroy", "-s", stack, "--yes"))):
        before = fleet.each(names, COUNTS) if step == "no-op" else {}
        sessions = {n: read_counts(out)[0][1] for n, out in before.items()}
        hosts_before, cpu = fleet.host_cpu(names), controller_cpu()
        wall, peak = run_measured(project, *args)
        row[f"{step} controller CPU"] = controller_cpu() - cpu  # before the counters' own programs run
        hosts_after = fleet.host_cpu(names)
        row[f"{step} host CPU"] = sum(hosts_after[n] - hosts_before[n] for n in names)
        row[step] = wall
        row[f"{step} MiB"] = peak
        if sessions:
            after = fleet.each(names, COUNTS)
            row["no-op sessions"] = max(read_counts(out)[0][1] - sessions[n] for n, out in after.items())
        if step == "converge":
            row["state"] = state_bytes(project, stack)
        print(size, step, f"{wall:.2f} s", f"controller CPU {row[f'{step} controller CPU']:.1f} s", flush=True)
    return row


def fit(points: list[tuple[float, float]], degree: int = 2) -> list[float]:
    """Least-squares polynomial through (x, y) points, coefficients from the constant up: of degree 2 from three
    points on (a fixed part, a part per host, and a part growing with the stack, as a state rewritten after every
    step grows), 1 from two, 0 from one; `degree` caps it."""
    degree = min(degree, len(points) - 1)
    size = degree + 1
    # The normal equations, solved by Gaussian elimination (a 3x3 system at most).
    matrix = [[sum(x ** (i + j) for x, _ in points) for j in range(size)] + [sum(y * x ** i for x, y in points)]
              for i in range(size)]
    for col in range(size):
        pivot = max(range(col, size), key=lambda r: abs(matrix[r][col]))
        matrix[col], matrix[pivot] = matrix[pivot], matrix[col]
        for r in range(size):
            if r != col and matrix[col][col]:
                factor = matrix[r][col] / matrix[col][col]
                matrix[r] = [a - factor * b for a, b in zip(matrix[r], matrix[col], strict=True)]
    return [matrix[i][size] / matrix[i][i] if matrix[i][i] else 0.0 for i in range(size)]


def trend(points: list[tuple[float, float]]) -> list[float]:
    """`fit`, less a part that shrinks with the stack: three sizes fit a curve exactly, and one bending down (the
    fixed part's share falling from 10 to 100 hosts) would make 500 hosts cost less than 100. A line through the
    sizes then: a fixed part and a part per host."""
    curve = fit(points)
    return fit(points, degree=1) if len(curve) == 3 and curve[2] < 0 else curve


def at(coefficients: list[float], x: float) -> float:
    return sum(c * x ** i for i, c in enumerate(coefficients))


def slope(coefficients: list[float], x: float) -> float:
    """What one more host adds at x."""
    return sum(i * c * x ** (i - 1) for i, c in enumerate(coefficients) if i)


def split(row: dict[str, float], cores: int) -> tuple[float, float, float]:
    """The converge's wall time split on this machine: the controller's CPU and the hosts' CPU, each spread over
    its cores, and the rest, waiting (network, locks, sleeps, one host's chain waiting for its own steps)."""
    controller = row["converge controller CPU"] / cores
    hosts = row["converge host CPU"] / cores
    return controller, hosts, max(0.0, row["converge"] - controller - hosts)


def growth_lines(rows: list[dict[str, float]], cores: int) -> list[str]:
    """Per host at each size, the flatness of the controller's CPU, the converge's split and the extrapolation."""
    lines = [f"per host at each size (converge controller CPU target <= {CONTROLLER_CPU_TARGET} s, the same "
             f"within ±{FLAT:.0%} at every size):"]
    per_host = {r["hosts"]: r["converge controller CPU"] / r["hosts"] for r in rows}
    for r in rows:
        n = r["hosts"]
        lines.append(f"  {n:>4.0f} hosts: controller CPU/host converge {per_host[n]:.3f} s, "
                     f"no-op {r['no-op controller CPU'] / n:.3f} s; "
                     f"host CPU/host converge {r['converge host CPU'] / n:.2f} s; "
                     f"state {r['state'] / n / 1024:.1f} KiB/host; "
                     f"peak MiB/host converge {r['converge MiB'] / n:.2f}, no-op {r['no-op MiB'] / n:.2f}; "
                     f"no-op SSH sessions/host {r['no-op sessions']:.0f}")
    middle = mean(per_host.values())
    spread = max(abs(v - middle) / middle for v in per_host.values()) if middle else 0.0
    lines.append(f"  controller CPU/host across sizes: {min(per_host.values()):.3f} to {max(per_host.values()):.3f} s,"
                 f" at most {spread:.0%} from their mean: {'flat (met)' if spread <= FLAT else 'NOT flat'}")
    lines.append(f"converge split on this machine ({cores} cores shared by the controller and every host): "
                 "controller CPU / cores + host CPU / cores + waiting = wall (waiting: network, sleeps, locks, "
                 "and whatever else the machine ran meanwhile)")
    for r in rows:
        controller, hosts, waiting = split(r, cores)
        lines.append(f"  {r['hosts']:>4.0f} hosts: {controller:.1f} + {hosts:.1f} + {waiting:.1f} = "
                     f"{r['converge']:.1f} s (controller {r['converge controller CPU']:.1f} s of CPU, "
                     f"hosts {r['converge host CPU']:.1f} s)")
    n = EXTRAPOLATE_TO
    lines.append(f"{n} hosts, extrapolated (each total fitted as fixed + per host + growing with the stack, "
                 "through the sizes' totals; a line where the sizes show no growth):")
    for key, unit, scale in (("converge controller CPU", "s", 1), ("no-op controller CPU", "s", 1),
                             ("converge host CPU", "s", 1), ("state", "KiB", 1024), ("converge MiB", "MiB", 1),
                             ("no-op MiB", "MiB", 1), ("converge", "s wall here", 1), ("no-op", "s wall here", 1)):
        curve = trend([(r["hosts"], r[key] / scale) for r in rows])
        if at(curve, n) <= 0:
            lines.append(f"  {key}: no trend in these sizes (too few, too small, or too noisy)")
            continue
        lines.append(f"  {key}: {at(curve, n):.0f} {unit} in all, {at(curve, n) / n:.3f} per host, "
                     f"{slope(curve, n):.3f} per host added at {n}")
    curve = trend([(r["hosts"], r["converge controller CPU"]) for r in rows])
    lines.append(f"  a converge where each host has its own CPU is bound by the controller's {at(curve, n):.0f} s "
                 f"of CPU: {at(curve, n) / cores:.0f} s on {cores} cores")
    return lines


def main(sizes: list[int]) -> None:
    console = Console(width=200)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        fleet = Fleet(Path(tmp), max(sizes))
        try:
            fleet.up()
            project = fleet.project(Path(tmp) / "project")
            for size in sizes:
                rows.append(measure_size(fleet, project, size))
        finally:
            fleet.down()
    table = Table("hosts", "converge s", "no-op s", "destroy s", "state KiB", "peak MiB (converge / no-op)",
                  "controller CPU s (converge / no-op)", "host CPU s/host (converge)",
                  title="make bench-scale: firewalld hosts, one run each")
    for r in rows:
        table.add_row(f"{r['hosts']:.0f}", f"{r['converge']:.2f}", f"{r['no-op']:.2f}", f"{r['destroy']:.2f}",
                      f"{r['state'] / 1024:.0f}", f"{r['converge MiB']:.0f} / {r['no-op MiB']:.0f}",
                      f"{r['converge controller CPU']:.1f} / {r['no-op controller CPU']:.1f}",
                      f"{r['converge host CPU'] / r['hosts']:.2f}")
    console.print(table)
    print("\n".join(growth_lines(rows, os.cpu_count() or 1)), flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or list(SIZES))
