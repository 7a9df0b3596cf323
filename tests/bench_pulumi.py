"""Benchmark of the product on the lab, through the real engine: `make bench` (or `python -m tests.bench_pulumi
[SIZES...]`, as root; BENCH_RUNS sets the runs per size, default 3).

For 1, 5, 10 and 20 hosts, all with firewalld (RHEL family) and then all with nftables (Debian/Ubuntu; BENCH_FIREWALLS
picks, default "firewalld,nftables"), it times, several runs each:
  converge   `python -m smtps up` on hosts with no SMTPS (each run starts from `destroy`)
  no-op      `python -m smtps up` again: nothing changed
  preview    `python -m smtps preview`
  drift      `python -m smtps drift`
  floor      one SSH session running `true` on every host at once (paramiko, as the providers connect)
It counts, per host, the SSH connections and sessions each step opened and the reloads it caused (Postfix from its
log; firewalld by a runtime-only mark that any reload wipes; nftables hosts are never reloaded, "-"), and samples the
peak memory (PSS) of the whole process
tree: the front end, the Pulumi CLI and every provider process. It writes bench-pulumi.csv and prints medians and the
ratios 20 hosts : 1 host. It prints numbers and asserts nothing: targets are read from the table.
"""

from __future__ import annotations

import csv
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from smtps.settings import parse_host
from smtps.ssh import Pool
from tests.enginekit import Project
from tests.lab.labkit import Lab
from tests.lab.smtpskit import mark_runtime, postfix_reloads, runtime_mark_survived, ssh_counts

STEPS = ("converge", "no-op", "preview", "drift", "floor")


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


def run_measured(project: Project, *args: str) -> tuple[float, float]:
    """Wall seconds and peak PSS (MiB) of `python -m smtps ARGS` and everything it starts."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "smtps", *args], cwd=project.folder, env=project.env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
    if process.returncode not in (0, 1) or (process.returncode == 1 and args[0] != "drift"):
        raise RuntimeError(f"python -m smtps {' '.join(args)} failed:\n{output[-3000:]}")
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


def host_counters(lab: Lab, names: list[str]) -> dict[str, tuple[int, int, int]]:
    with ThreadPoolExecutor(max_workers=len(names)) as workers:
        return dict(zip(names, workers.map(lambda n: (*ssh_counts(lab, n), postfix_reloads(lab, n)), names),
                        strict=True))


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
                for run in range(1, runs + 1):
                    project.pulumi("destroy", "-s", stack, "--yes")
                    for step, args in (("converge", ("up", "-s", stack, "--yes")),
                                       ("no-op", ("up", "-s", stack, "--yes")),
                                       ("preview", ("preview", "-s", stack)),
                                       ("drift", ("drift", "-s", stack))):
                        for name in names if not nft else ():
                            mark_runtime(lab, name)
                        before = host_counters(lab, names)
                        wall, peak = run_measured(project, *args)
                        after = host_counters(lab, names)
                        fw: int | str = "-" if nft else sum(not runtime_mark_survived(lab, n) for n in names)
                        for name in names if not nft else ():
                            lab.sh(name, "firewall-cmd --zone=iredmail --remove-icmp-block=timestamp-request "
                                         ">/dev/null 2>&1 || true")
                        delta = [tuple(a - b for a, b in zip(after[n], before[n], strict=True)) for n in names]
                        rows.append({"firewall": firewall, "hosts": size, "run": run, "step": step,
                                     "seconds": round(wall, 3),
                                     "peak_mib": round(peak, 1),
                                     "ssh_connections_per_host": max(d[0] for d in delta),
                                     "ssh_sessions_per_host": max(d[1] for d in delta),
                                     "postfix_reloads_per_host": max(d[2] for d in delta),
                                     "hosts_firewalld_reloaded": fw})
                        print(rows[-1], flush=True)
                    rows.append({"firewall": firewall, "hosts": size, "run": run, "step": "floor",
                                 "seconds": round(floor(lab, names), 3), "peak_mib": 0,
                                 "ssh_connections_per_host": 1, "ssh_sessions_per_host": 1,
                                 "postfix_reloads_per_host": 0, "hosts_firewalld_reloaded": 0})
                    print(rows[-1], flush=True)
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
    table = Table("firewall", "hosts", "step", "median s", "peak MiB", "SSH conn/host", "SSH sessions/host",
                  "postfix reloads/host", "hosts fw reloaded", title=f"make bench (medians; raw runs in {out})")
    medians: dict[tuple[str, int, str], float] = {}
    firewalls = list(dict.fromkeys(r["firewall"] for r in rows))
    for firewall in firewalls:
        for size in sizes:
            for step in STEPS:
                group = [r for r in rows if (r["firewall"], r["hosts"], r["step"]) == (firewall, size, step)]
                if not group:
                    continue
                medians[firewall, size, step] = statistics.median(r["seconds"] for r in group)
                table.add_row(firewall, str(size), step, f"{medians[firewall, size, step]:.2f}",
                              f"{max(r['peak_mib'] for r in group):.0f}",
                              str(max(r["ssh_connections_per_host"] for r in group)),
                              str(max(r["ssh_sessions_per_host"] for r in group)),
                              str(max(r["postfix_reloads_per_host"] for r in group)),
                              str(max((r["hosts_firewalld_reloaded"] for r in group), key=str)))
    console = Console(width=160)
    console.print(table)
    small, big = min(sizes), max(sizes)
    ratios = Table("firewall", "ratio", "value", "target", title=f"{big} hosts : {small} host(s)")
    for firewall in firewalls:
        for step, target in (("no-op", "<= 1.5"), ("converge", "<= 3")):
            value = medians[firewall, big, step] / medians[firewall, small, step]
            ratios.add_row(firewall, f"{step} {big}:{small}", f"{value:.2f}", target)
        drift = medians[firewall, big, "drift"] / medians[firewall, big, "floor"]
        ratios.add_row(firewall, f"drift {big} : floor {big}", f"{drift:.2f}", "<= 2")
    console.print(ratios)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1, 5, 10, 20])
