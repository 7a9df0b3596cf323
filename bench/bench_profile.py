"""One host's converge and no-op, step by step: `make bench-profile` (or `python -m bench.bench_profile`, as root).

A lab of two hosts, one firewalld (RHEL family) and one nftables (Debian), each in a stack of its own. For each it
runs `smtps up` on a host without SMTPS, then again (nothing to do), with SMTPS_PROFILE set: the front end
notes when each engine step begins and ends, the providers note each remote command and probe (smtps/profile.py).
Meanwhile this process samples, every 20 ms, the CPU seconds used so far on the host (every process in its network
namespace, with its ended children) and on the controller (the front end and everything it started). Each row is a
stretch of the run with its wall time and the CPU spent in it on each side; indented rows are the remote commands
and probes inside an engine step, and the row after them is the rest of that step (engine and provider overhead).
Each converge and no-op runs BENCH_RUNS times (default 3); the tables show the medians. Then one more converge
with strace following the host's sshd lists the programs it ran there; and, where `perf` is installed, one more
with the kernel's scheduler counting each program's CPU on the host (every process in its network namespace and
what they start), per engine step. BENCH_FIREWALLS (default firewalld,nftables) picks the hosts. It prints numbers
and asserts nothing.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.fleet import LAB, SUBNET
from tests.enginekit import Project
from tests.lab.labkit import Lab

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SAMPLE_EVERY = 0.02


def _cpu(pid: str) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLOCK_TICKS


def _netns_inode(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


class Sampler:
    """Cumulative CPU seconds of the host's processes and of the controller's process tree, every SAMPLE_EVERY s."""

    def __init__(self, netns: str, root: int) -> None:
        self.netns_inode = os.stat(f"/run/netns/{netns}").st_ino
        self.root = root
        self.samples: list[tuple[float, float, float]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop)

    def _once(self) -> tuple[float, float, float]:
        parents: dict[str, str] = {}
        host = 0.0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                parents[entry] = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]
            except (OSError, IndexError):
                continue
            if _netns_inode(entry) == self.netns_inode:
                host += _cpu(entry)
        tree, todo = set(), [str(self.root)]
        children: dict[str, list[str]] = {}
        for pid, ppid in parents.items():
            children.setdefault(ppid, []).append(pid)
        while todo:
            pid = todo.pop()
            tree.add(pid)
            todo.extend(children.get(pid, []))
        return time.time(), host, sum(_cpu(pid) for pid in tree)

    def _loop(self) -> None:
        while not self.done.is_set():
            self.samples.append(self._once())
            self.done.wait(SAMPLE_EVERY)

    def at(self, t: float) -> tuple[float, float]:
        """(host, controller) CPU seconds used by time t: the last sample taken at or before it."""
        index = max(0, bisect.bisect_right([s[0] for s in self.samples], t) - 1)
        return self.samples[index][1], self.samples[index][2]

    def between(self, a: float, b: float) -> tuple[float, float]:
        (h0, c0), (h1, c1) = self.at(a), self.at(b)
        return max(0.0, h1 - h0), max(0.0, c1 - c0)


def _sshd(netns: str) -> str:
    """The host's listening sshd: the one whose parent is not an sshd."""
    for pid in subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split():
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            if comm == "sshd" and Path(f"/proc/{parent}/comm").read_text().strip() != "sshd":
                return pid
        except OSError:
            continue
    raise RuntimeError(f"no sshd in {netns}")


def programs(trace: Path) -> list[tuple[str, int, float]]:
    """From `strace -f -tt -e trace=execve`: per program the host ran over SSH, how many times and for how long
    (exec to exit, under strace: slower than without, but in proportion)."""
    started: dict[str, tuple[float, str]] = {}
    totals: dict[str, list[float]] = {}
    for line in trace.read_text().splitlines():
        pid, _, rest = line.partition(" ")
        rest = rest.strip()
        clock, _, event = rest.partition(" ")
        if not pid.isdigit() or ":" not in clock:
            continue
        h, m, sec = clock.split(":")
        t = int(h) * 3600 + int(m) * 60 + float(sec)
        if event.startswith("execve(") and event.endswith("= 0"):
            argv = re.findall(r'"((?:[^"\\]|\\.)*)"', event.split("[", 1)[1])
            name = argv[0].rsplit("/", 1)[-1] if argv else "?"
            if name in ("sh", "bash", "sshd", "postfix"):
                continue  # the shells and sshd hold the others; postfix execs postfix-script in the same process
            if name == "firewall-cmd":
                name += " " + next((a for a in argv[1:] if a.startswith("-") and a != "--permanent"), "")
            elif name == "postfix-script":
                name += " " + next((a for a in argv[1:] if not a.startswith("-")), "")
            started[pid] = (t, name.strip())
        elif event.startswith("+++ exited") and pid in started:
            t0, name = started.pop(pid)
            totals.setdefault(name, []).append(t - t0)
    return sorted(((name, len(ts), sum(ts)) for name, ts in totals.items()), key=lambda r: -r[2])


def cpu_by_program(data: Path, host_pids: set[int], steps: list[tuple[float, float, str]],
                   offset: float) -> list[tuple[str, int, float, dict[str, float]]]:
    """From `perf record` of the scheduler's events (fork, exec, runtime): per program that ran on the host (a
    process of its network namespace when the run began, or one started from them), how many ran, its CPU seconds,
    and those per engine step (`steps`: wall-clock spans; `offset`: wall clock minus the monotonic clock perf
    used)."""
    out = subprocess.run(["perf", "script", "-i", str(data), "-F", "tid,time,event,trace"], capture_output=True,
                         text=True).stdout
    inside = set(host_pids)
    program: dict[int, str] = {}
    started: dict[str, int] = {}
    totals: dict[str, float] = {}
    per_step: dict[str, dict[str, float]] = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 4 or not fields[0].isdigit():
            continue
        tid, event = int(fields[0]), fields[2]
        values = dict(f.split("=", 1) for f in fields[3:] if "=" in f)
        if event == "sched:sched_process_fork:":
            parent, child = int(values["pid"]), int(values["child_pid"])
            if parent in inside:
                inside.add(child)
                program[child] = program.get(parent, values["comm"])
        elif event == "sched:sched_process_exec:" and tid in inside:
            name = values["filename"].rsplit("/", 1)[-1]
            program[tid] = name
            started[name] = started.get(name, 0) + 1
        elif event == "sched:sched_stat_runtime:" and int(values["pid"]) in inside:
            pid = int(values["pid"])
            name = program.get(pid) or values["comm"]
            seconds = int(values["runtime"]) / 1e9
            totals[name] = totals.get(name, 0.0) + seconds
            t = float(fields[1].rstrip(":")) + offset
            step = next((label for t0, t1, label in steps if t0 <= t <= t1), "between steps")
            per_step.setdefault(name, {})
            per_step[name][step] = per_step[name].get(step, 0.0) + seconds
    return sorted(((name, started.get(name, 0), cpu, per_step.get(name, {})) for name, cpu in totals.items()),
                  key=lambda r: -r[2])


def profiled(project: Project, lab: Lab, host: str, stack: str, path: Path, trace: Path | None = None,
             perf: Path | None = None) -> tuple[list[tuple], float]:
    """Run `up` with SMTPS_PROFILE=path, sampling CPU: the rows of the profile, and the total wall time. With
    `trace`, strace follows the host's sshd instead (its programs, not its CPU: strace slows what it follows). With
    `perf`, `perf record` notes the scheduler's events machine-wide (the programs' CPU: cpu_by_program), and the
    rows are then (host pids, steps, clock offset) for it."""
    netns = {h["name"]: h["netns"] for h in lab.hosts()}[host]
    path.unlink(missing_ok=True)
    tracer = None
    if trace is not None:
        tracer = subprocess.Popen(["strace", "-f", "-tt", "-s", "256", "-e", "trace=execve", "-e", "signal=none",
                                   "-o", str(trace), "-p", _sshd(netns)], stderr=subprocess.DEVNULL)
        time.sleep(1)
    host_pids: set[int] = set()
    if perf is not None:
        host_pids = {int(pid) for pid in subprocess.run(["ip", "netns", "pids", netns], capture_output=True,
                                                        text=True).stdout.split()}
        tracer = subprocess.Popen(["perf", "record", "-q", "-a", "-k", "mono", "-o", str(perf), "-e",
                                   "sched:sched_stat_runtime", "-e", "sched:sched_process_fork", "-e",
                                   "sched:sched_process_exec"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
    env = {**project.env, "SMTPS_PROFILE": str(path)}
    started = time.time()
    process = subprocess.Popen([sys.executable, "-m", "smtps_iredmail", "up", "-s", stack, "--yes"], cwd=project.folder,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(netns, process.pid)
    sampler.samples.append((started, *sampler._once()[1:]))
    sampler.thread.start()
    output, _ = process.communicate()
    ended = time.time()
    time.sleep(SAMPLE_EVERY * 3)  # a last sample after the end: the CPU of what ended with the run
    sampler.done.set()
    sampler.thread.join()
    if tracer is not None:
        tracer.send_signal(signal.SIGINT) if perf is not None else tracer.terminate()
        tracer.wait()
    if process.returncode != 0:
        raise RuntimeError(f"up -s {stack} failed:\n{output[-3000:]}")
    notes = [json.loads(line) for line in path.read_text().splitlines()]
    if perf is not None:
        return [(host_pids, engine_steps(notes), time.time() - time.monotonic())], ended - started
    return rows(notes, sampler, started, ended), ended - started


def _name(urn: str) -> str:
    kind, name = urn.split("::")[-2], urn.split("::")[-1]
    if kind.startswith("pulumi:providers:"):
        return f"provider {name}"
    return name


def engine_steps(notes: list[dict]) -> list[tuple[float, float, str]]:
    """(start, end, label) of each engine step but the stack's and the host component's (they span the run)."""
    begins: dict[str, tuple[float, str]] = {}
    steps: list[tuple[float, float, str]] = []
    for n in notes:
        if n["kind"] == "begin":
            begins[n["urn"]] = (n["t"], n["op"])
        elif n["kind"] == "end" and n["urn"] in begins:
            t0, op = begins.pop(n["urn"])
            kind = n["urn"].split("::")[-2]
            if kind.endswith(("pulumi:Stack", "SmtpsHost")):
                continue  # they span the whole run
            steps.append((t0, n["t"], f"{_name(n['urn'])} ({op})"))
    return sorted(steps)


def rows(notes: list[dict], sampler: Sampler, started: float, ended: float) -> list[tuple]:
    """(label, start offset, wall, host CPU, controller CPU, indent) for each stretch of the run."""
    out: list[tuple] = []

    def add(label: str, a: float, b: float, indent: int = 0) -> None:
        host, controller = sampler.between(a, b)
        out.append((label, a - started, b - a, host, controller, indent))

    engine = [n["t"] for n in notes if n["kind"] == "engine"]
    steps = engine_steps(notes)
    spans = sorted((n["t0"], n["t"], n["what"]) for n in notes if n["kind"] == "span")
    add("front end: start, settings, to the engine call", started, engine[0])
    first = steps[0][0] if steps else engine[-1]
    add("engine: start-up, program, plan (before the first step)", engine[0], first)
    previous_end = first
    for t0, t1, label in steps:
        if t0 > previous_end + 0.05:
            add("engine: between steps", previous_end, t0)
        add(label, t0, t1)
        inside = [s for s in spans if t0 <= s[0] and s[1] <= t1 + 0.01]
        for s0, s1, what in inside:
            add(what, s0, s1, 1)
        if inside:
            busy = sum(s1 - s0 for s0, s1, _ in inside)
            host, controller = sampler.between(t0, t1)
            sub = [sampler.between(s0, s1) for s0, s1, _ in inside]
            out.append(("rest of the step: engine, provider", 0.0, t1 - t0 - busy, host - sum(h for h, _ in sub),
                        controller - sum(c for _, c in sub), 1))
        previous_end = max(previous_end, t1)
    add("engine: after the last step (state written, exit)", previous_end, engine[-1])
    add("front end: after the engine, exit", engine[-1], ended)
    return out


def medians(runs: list[tuple[list[tuple], float]]) -> tuple[list[tuple], float, tuple[float, float]]:
    """Row by row (the first run's rows, matched by label and position among rows of that label), the median of
    each number across the runs; the total wall time and the sums of the top rows' CPU likewise."""

    def keyed(found: list[tuple]) -> dict[tuple[str, int], tuple]:
        seen: dict[str, int] = {}
        out = {}
        for row in found:
            seen[row[0]] = seen.get(row[0], 0) + 1
            out[row[0], seen[row[0]]] = row
        return out

    all_keyed = [keyed(found) for found, _ in runs]
    rows_out = []
    for key, row in all_keyed[0].items():
        same = [k[key] for k in all_keyed if key in k]
        rows_out.append((row[0], *(statistics.median(r[i] for r in same) for i in (1, 2, 3, 4)), row[5]))
    tops = [[r for r in found if r[5] == 0] for found, _ in runs]
    cpu = (statistics.median(sum(r[3] for r in top) for top in tops),
           statistics.median(sum(r[4] for r in top) for top in tops))
    return rows_out, statistics.median(total for _, total in runs), cpu


def show(console: Console, title: str, found: list[tuple], total: float, sampler_total: tuple[float, float]) -> None:
    table = Table("stretch", "from s", "wall s", "host CPU s", "controller CPU s", title=title)
    for label, start, wall, host, controller, indent in found:
        table.add_row(("    " * indent) + label, "" if indent and not start else f"{start:.2f}", f"{wall:.2f}",
                      f"{host:.2f}", f"{controller:.2f}")
    table.add_row("total", "", f"{total:.2f}", f"{sampler_total[0]:.2f}", f"{sampler_total[1]:.2f}")
    console.print(table)


def main() -> None:
    console = Console(width=160)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        lab = Lab(Path(tmp) / "state", name=LAB, subnet=SUBNET)
        try:
            lab.cli("up", "--hosts", "2", "--variants", "mail2=iredmail-debian")
            project = Project.for_lab(Path(tmp) / "project", lab)
            wanted = os.environ.get("BENCH_FIREWALLS", "firewalld,nftables").split(",")
            for host, firewall in (("mail1", "firewalld"), ("mail2", "nftables")):
                if firewall not in wanted:
                    continue
                stack = f"profile-{firewall}"
                project.run_module("lab", "stack", "-s", stack)
                project.keep_hosts(stack, [host])
                project.pulumi("destroy", "-s", stack, "--yes")
                runs: dict[str, list[tuple[list[tuple], float]]] = {"converge": [], "no-op": []}
                for run in range(RUNS):
                    if run:
                        project.pulumi("destroy", "-s", stack, "--yes")
                    for found in runs.values():
                        found.append(profiled(project, lab, host, stack, Path(tmp) / "profile.jsonl"))
                for step, found in runs.items():
                    show(console, f"one {firewall} host, {step}: `smtps up` (median of {RUNS} runs)",
                         *medians(found))
                # Once more, with strace following the host's sshd: which programs the converge ran there.
                project.pulumi("destroy", "-s", stack, "--yes")
                trace = Path(tmp) / "strace.txt"
                profiled(project, lab, host, stack, Path(tmp) / "profile.jsonl", trace)
                table = Table("program", "runs", "seconds (under strace)",
                              title=f"one {firewall} host, converge: the programs it ran on the host")
                for name, runs, seconds in programs(trace)[:15]:
                    table.add_row(name, str(runs), f"{seconds:.2f}")
                console.print(table)
                if shutil.which("perf"):
                    project.pulumi("destroy", "-s", stack, "--yes")
                    data = Path(tmp) / "perf.data"
                    [(host_pids, steps, offset)], _ = profiled(project, lab, host, stack, Path(tmp) / "profile.jsonl",
                                                               perf=data)
                    found = cpu_by_program(data, host_pids, steps, offset)
                    table = Table("program", "started", "CPU s", "by step (CPU s)",
                                  title=f"one {firewall} host, converge: CPU of each program on the host (perf)")
                    for name, count, cpu, by_step in found:
                        table.add_row(name, str(count), f"{cpu:.3f}", ", ".join(
                            f"{step} {seconds:.3f}" for step, seconds in sorted(by_step.items(), key=lambda i: -i[1])))
                    table.add_row("total", str(sum(r[1] for r in found)), f"{sum(r[2] for r in found):.3f}", "")
                    console.print(table)
                project.pulumi("destroy", "-s", stack, "--yes")
        finally:
            lab.cli("down", check=False)


if __name__ == "__main__":
    main()
