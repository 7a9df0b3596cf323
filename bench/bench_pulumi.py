"""Benchmark of the product on the lab, through the real engine: `make bench` (or `python -m bench.bench_pulumi
[SIZES...]`, as root; BENCH_RUNS sets the runs per size, default 3).

For 1, 5, 10 and 20 hosts, all with firewalld (RHEL family) and then all with nftables (Debian/Ubuntu; BENCH_FIREWALLS
picks, default "firewalld,nftables"), it times, several runs each:
  converge   `smtps up` on hosts with no SMTPS (each run ends with `destroy`)
  no-op      `smtps up` again: nothing changed
  preview    `smtps preview`
  drift      `smtps drift`
  destroy    `smtps destroy --yes`: SMTPS taken off every host again
  floor      one SSH session running `true` on every host at once (paramiko, as the providers connect)
It counts, per host, the SSH connections and sessions each step opened and the reloads it caused (Postfix from its
log; firewalld by a runtime-only mark that any reload wipes; nftables hosts are never reloaded, "-"), and samples the
peak memory (PSS) of the whole process
tree: the front end, the Pulumi CLI and every provider process. CPU seconds too: on each host (every process in its
network namespace, with its ended children: what transfers to a real fleet, where each host has its own CPU), and
on the controller (the front end, the CLI, the provider processes). It writes bench-pulumi.csv and prints medians
and the ratios 20 hosts : 1 host. It prints numbers and asserts nothing: targets are read from the table.
"""

from __future__ import annotations

import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import bench_pyinfra
from smtps_iredmail.core.hosts import parse_host
from smtps_iredmail.core.remote import Pool
from tests.enginekit import Project
from tests.lab.labkit import Lab
from tests.lab.smtpskit import mark_runtime, postfix_reloads, runtime_mark_survived, ssh_counts

STEPS = ("converge", "no-op", "preview", "drift", "destroy", "floor")


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def host_cpu(netns: str) -> float:
    """CPU seconds used so far by a lab host's processes (every process in its network namespace), with what their
    ended children used: what ran over SSH (the scripts, firewall-cmd, python) is counted in sshd's children when it
    ends, the reloads in firewalld's and Postfix's own time, the check from outside in smtpd's. A delta across a step
    is the host-side CPU of that step."""
    pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, check=True).stdout.split()
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile: counted in its parent
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime, stime, cutime, cstime
    return total / CLOCK_TICKS


def controller_cpu() -> float:
    """CPU seconds of this process's ended children and theirs: the front end, the Pulumi CLI and every provider
    process it started (each waited for by its parent)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(project: Project, *args: str) -> tuple[float, float]:
    """Wall seconds and peak PSS (MiB) of `smtps ARGS` and everything it starts."""
    # drift exits 1 when it finds drift: a number, not a failure.
    return measure([sys.executable, "-m", "smtps_iredmail", *args], project.folder, project.env,
                   (0, 1) if args[0] == "drift" else (0,))


def measure(argv: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """Wall seconds and peak PSS (MiB) of a command and everything it starts."""
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, sum(_pss_kib(pid) for pid in _tree(process.pid)))
            done.wait(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    output, _ = process.communicate()
    wall = time.monotonic() - started
    done.set()
    sampler.join()
    if process.returncode not in ok:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{output[-3000:]}")
    return wall, peak / 1024


def floor(lab: Lab, names: list[str]) -> float:
    """One SSH session running `true` on every host at once, each over a new connection."""
    key = Path(lab.inventory["private_key_path"]).read_text()
    hosts = {h["name"]: h for h in lab.hosts()}
    pool = Pool(key)
    settings = [parse_host("bench", {}, {"name": n, "address": hosts[n]["address"], "hostKey": hosts[n]["host_key"]})
                for n in names]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(names)) as workers:
        results = list(workers.map(lambda s: pool.run(s.name, s.connection, "true"), settings))
    wall = time.monotonic() - started
    pool.close()
    assert all(r.status == 0 for r in results)
    return wall


def host_counters(lab: Lab, names: list[str]) -> dict[str, tuple[float, ...]]:
    """Per host: SSH connections and sessions so far, Postfix reloads so far, CPU seconds so far."""
    netns = {h["name"]: h["netns"] for h in lab.hosts()}
    with ThreadPoolExecutor(max_workers=len(names)) as workers:
        return dict(zip(names, workers.map(
            lambda n: (*ssh_counts(lab, n), postfix_reloads(lab, n), host_cpu(netns[n])), names), strict=True))


def step_row(lab: Lab, names: list[str], firewall: str, tool: str, run: int, step: str,
             call: Callable[[], tuple[float, float]]) -> dict:
    """Run one timed step and count what it did on the hosts: one row of the table."""
    nft = firewall == "nftables"
    for name in names if not nft else ():
        mark_runtime(lab, name)
    before, cpu = host_counters(lab, names), controller_cpu()
    wall, peak = call()
    cpu = controller_cpu() - cpu
    after = host_counters(lab, names)
    fw: int | str = "-" if nft else sum(not runtime_mark_survived(lab, n) for n in names)
    for name in names if not nft else ():
        lab.sh(name, "firewall-cmd --zone=iredmail --remove-icmp-block=timestamp-request >/dev/null 2>&1 || true")
    delta = [tuple(a - b for a, b in zip(after[n], before[n], strict=True)) for n in names]
    row = {"tool": tool, "firewall": firewall, "hosts": len(names), "run": run, "step": step,
           "seconds": round(wall, 3), "peak_mib": round(peak, 1),
           "ssh_connections_per_host": max(d[0] for d in delta), "ssh_sessions_per_host": max(d[1] for d in delta),
           "postfix_reloads_per_host": max(d[2] for d in delta), "hosts_firewalld_reloaded": fw,
           "host_cpu_s_per_host": round(statistics.mean(d[3] for d in delta), 3), "controller_cpu_s": round(cpu, 2)}
    print(row, flush=True)
    return row


def main(sizes: list[int]) -> None:
    rows: list[dict] = []
    for firewall in os.environ.get("BENCH_FIREWALLS", "firewalld,nftables").split(","):
        rows += bench(sizes, firewall)
    report(rows, sizes)


def bench(sizes: list[int], firewall: str) -> list[dict]:
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    rows: list[dict] = []
    nft = firewall == "nftables"
    variants = ",".join(f"mail{i}=iredmail-debian" for i in range(1, max(sizes) + 1)) if nft else ""
    with tempfile.TemporaryDirectory(prefix="bench-pulumi-") as tmp:
        lab = Lab(Path(tmp) / "state", name="smtpsbench", subnet="10.231.2.0/24")
        try:
            lab.cli("up", "--hosts", str(max(sizes)), "--variants", variants)
            project = Project.for_lab(Path(tmp) / "project", lab)
            for size in sizes:
                names = [f"mail{i}" for i in range(1, size + 1)]
                stack = f"bench{size}"
                project.run_module("lab", "stack", "-s", stack)
                project.keep_hosts(stack, names)
                project.pulumi("destroy", "-s", stack, "--yes")
                for run in range(1, runs + 1):
                    for step, args in (("converge", ("up", "-s", stack, "--yes")),
                                       ("no-op", ("up", "-s", stack, "--yes")),
                                       ("preview", ("preview", "-s", stack)),
                                       ("drift", ("drift", "-s", stack)),
                                       ("destroy", ("destroy", "-s", stack, "--yes"))):
                        rows.append(step_row(lab, names, firewall, "smtps", run, step,
                                             lambda args=args: run_measured(project, *args)))
                    rows.append({"tool": "floor", "firewall": firewall, "hosts": size, "run": run, "step": "floor",
                                 "seconds": round(floor(lab, names), 3), "peak_mib": 0,
                                 "ssh_connections_per_host": 1, "ssh_sessions_per_host": 1,
                                 "postfix_reloads_per_host": 0, "hosts_firewalld_reloaded": 0,
                                 "host_cpu_s_per_host": 0, "controller_cpu_s": 0})
                    print(rows[-1], flush=True)
                if bench_pyinfra.binary() is not None:
                    inventory = bench_pyinfra.write_inventory(lab, names, firewall, Path(tmp))
                    for run in range(1, runs + 1):
                        for step in bench_pyinfra.STEPS:
                            argv = bench_pyinfra.command(inventory, size, step)
                            rows.append(step_row(lab, names, firewall, "pyinfra", run, step,
                                                 lambda argv=argv: measure(argv, Path(tmp), dict(os.environ))))
                        bench_pyinfra.undo(lab, names, firewall)
                project.pulumi("destroy", "-s", stack, "--yes")
        finally:
            lab.cli("down", check=False)
    return rows


def report(rows: list[dict], sizes: list[int]) -> None:
    out = Path("bench-pulumi.csv")
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = Table("firewall", "hosts", "tool", "step", "median s", "host CPU s/host", "controller CPU s", "peak MiB",
                  "SSH conn/host", "SSH sessions/host", "postfix reloads/host", "hosts fw reloaded",
                  title=f"make bench (medians; raw runs in {out})")
    med: dict[tuple[str, int, str, str], dict[str, float]] = {}
    firewalls = list(dict.fromkeys(r["firewall"] for r in rows))
    for firewall in firewalls:
        for size in sizes:
            for tool in ("smtps", "floor", "pyinfra"):
                for step in STEPS:
                    group = [r for r in rows if (r["firewall"], r["hosts"], r["tool"], r["step"]) ==
                             (firewall, size, tool, step)]
                    if not group:
                        continue
                    m = {key: statistics.median(r[key] for r in group)
                         for key in ("seconds", "host_cpu_s_per_host", "controller_cpu_s")}
                    med[firewall, size, tool, step] = m
                    table.add_row(firewall, str(size), tool, step, f"{m['seconds']:.2f}",
                                  f"{m['host_cpu_s_per_host']:.2f}", f"{m['controller_cpu_s']:.1f}",
                                  f"{max(r['peak_mib'] for r in group):.0f}",
                                  str(max(r["ssh_connections_per_host"] for r in group)),
                                  str(max(r["ssh_sessions_per_host"] for r in group)),
                                  str(max(r["postfix_reloads_per_host"] for r in group)),
                                  str(max((r["hosts_firewalld_reloaded"] for r in group), key=str)))
    console = Console(width=200)
    console.print(table)
    small, big = min(sizes), max(sizes)
    ratios = Table("firewall", "ratio", "value", "target", title="scaling, and against pyinfra (same lab, same run)")
    for firewall in firewalls:
        for step, target in (("no-op", "<= 1.5"), ("converge", "<= 3")):
            value = med[firewall, big, "smtps", step]["seconds"] / med[firewall, small, "smtps", step]["seconds"]
            ratios.add_row(firewall, f"{step} {big}:{small} hosts", f"{value:.2f}", target)
        drift = med[firewall, big, "smtps", "drift"]["seconds"] / med[firewall, big, "floor", "floor"]["seconds"]
        ratios.add_row(firewall, f"drift : floor, {big} hosts", f"{drift:.2f}", "<= 2")
        for size in sizes:
            if (firewall, size, "pyinfra", "converge") not in med:
                continue
            for step, what, target in (("converge", "seconds", "<= 1.0"), ("converge", "host_cpu_s_per_host", "<= 1.0"),
                                       ("no-op", "seconds", "<= 0.5"), ("preview", "seconds", "<= 0.5")):
                ours, theirs = med[firewall, size, "smtps", step][what], med[firewall, size, "pyinfra", step][what]
                label = "host CPU/host" if what != "seconds" else "wall"
                value = f"{ours / theirs:.2f}" if theirs else "-"
                ratios.add_row(firewall, f"{step} {label}, {size} hosts: smtps / pyinfra", value, target)
    console.print(ratios)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1, 5, 10, 20])
