"""The benchmarks' hosts: one lab, or several side by side when a stack wants more hosts than one lab takes (the lab
numbers its hosts 1 to 50, four addresses each in one /24), all reached with one deploy key so that one stack
reaches them all.

BENCH_LAB and BENCH_SUBNET name the first lab (default smtpsbench, 10.231.2.0/24); lab k (k = 1, 2...) after it is
named with a letter added ("smtpsbenchb") and takes the /24 100 * k above (10.231.102.0/24). BENCH_HOSTS_PER_LAB
(default: the lab's most, 50) makes smaller labs, to try the several-lab case with a few hosts. The stack names
its hosts mail1, mail2... across the labs (lab 2's mail1 is the stack's mail51), so a size is always "the first N".
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.enginekit import Project
from tests.lab.labkit import Lab

LAB = os.environ.get("BENCH_LAB", "smtpsbench")
SUBNET = os.environ.get("BENCH_SUBNET", "10.231.2.0/24")
HOSTS_PER_LAB = int(os.environ.get("BENCH_HOSTS_PER_LAB", "50"))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Reading counters runs a program inside each host: a few at a time, so that reading them does not flood the
# machine that the next step is timed on.
READERS = 8


def lab_layout(count: int, name: str = LAB, subnet: str = SUBNET, per_lab: int = HOSTS_PER_LAB) -> list[
        tuple[str, str, int]]:
    """(lab name, subnet, hosts) of each lab that `count` hosts take."""
    octets = subnet.split(".")
    layout = []
    for k in range((count + per_lab - 1) // per_lab):
        third = int(octets[2]) + 100 * k
        if third > 255:
            raise ValueError(f"{count} hosts need {k + 1} labs of {per_lab}: no /24 left above {subnet}")
        layout.append((name + ("" if k == 0 else chr(ord("a") + k)), ".".join([*octets[:2], str(third), octets[3]]),
                       min(per_lab, count - k * per_lab)))
    return layout


def stack_name(lab_index: int, host_name: str, per_lab: int = HOSTS_PER_LAB) -> str:
    """The stack's name of a lab's host: lab 0's mail1 is mail1, lab 1's mail1 is mail<per_lab + 1>."""
    return f"mail{lab_index * per_lab + int(host_name.removeprefix('mail'))}"


@dataclass
class Fleet:
    folder: Path
    count: int
    labs: list[Lab] = field(default_factory=list)
    # The stack's name of each host -> its lab and the lab's name of it.
    where: dict[str, tuple[Lab, str]] = field(default_factory=dict)
    inventory: dict[str, dict] = field(default_factory=dict)

    def up(self, variant: str = "") -> None:
        """Bring up every lab; `variant` (e.g. iredmail-debian) for all hosts, or the lab's default."""
        for k, (name, subnet, hosts) in enumerate(lab_layout(self.count)):
            lab = Lab(self.folder / f"lab{k}", name=name, subnet=subnet)
            self.labs.append(lab)
            if k:  # the first lab's key, so that the stack's one key reaches every lab
                lab.state_dir.mkdir(parents=True, exist_ok=True)
                for part in ("deploy_key", "deploy_key.pub"):
                    shutil.copy2(self.labs[0].state_dir / part, lab.state_dir / part)
            variants = ",".join(f"mail{i}={variant}" for i in range(1, hosts + 1)) if variant else ""
            lab.cli("up", "--hosts", str(hosts), "--variants", variants)
            for host in lab.hosts():
                stack = stack_name(k, host["name"])
                self.where[stack] = (lab, host["name"])
                self.inventory[stack] = host

    def down(self) -> None:
        for lab in self.labs:
            lab.cli("down", check=False)

    def names(self, size: int) -> list[str]:
        return [f"mail{i}" for i in range(1, size + 1)]

    @property
    def private_key_path(self) -> str:
        return self.labs[0].inventory["private_key_path"]

    def known_hosts_path(self, name: str) -> str:
        return self.where[name][0].inventory["known_hosts_path"]

    def project(self, folder: Path) -> Project:
        return Project.for_lab(folder, self.labs[0])

    def write_stack(self, project: Project, stack: str, names: list[str]) -> None:
        """A stack of the named hosts (written by `python -m lab stack`, for its key and defaults, then its hosts
        set from every lab's inventory)."""
        project.run_module("lab", "stack", "-s", stack)
        path = project.folder / "stacks" / f"Pulumi.{stack}.yaml"
        data = yaml.safe_load(path.read_text())
        data["config"]["smtps-iredmail:hosts"] = [
            {"name": n, "address": self.inventory[n]["address"], "hostKey": self.inventory[n]["host_key"]}
            for n in names]
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def sh(self, name: str, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        lab, local = self.where[name]
        return lab.sh(local, script, check=check)

    def each(self, names: list[str], script: str) -> dict[str, str]:
        """`script`'s output on each host, run a few hosts at a time."""
        with ThreadPoolExecutor(max_workers=READERS) as workers:
            return dict(zip(names, workers.map(lambda n: self.sh(n, script, check=False).stdout, names),
                            strict=True))

    def host_cpu(self, names: list[str]) -> dict[str, float]:
        return {n: host_cpu(self.inventory[n]["netns"]) for n in names}


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


def mean(values) -> float:
    values = list(values)
    return statistics.mean(values) if values else 0.0
