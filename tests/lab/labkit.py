"""Helpers for tests that run a real lab: the CLI as a user runs it, commands inside hosts, leftover checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import require_lab

REPO = Path(__file__).resolve().parents[2]
# The tests' labs have a name and subnet of their own, so a demo lab on the same machine is never touched. Two test
# runs on one machine (two checkouts) each set their own: SMTPS_TEST_LAB and SMTPS_TEST_SUBNET (a /24 of the lab range).
# `make test` runs the tests in two processes (pytest-xdist, one test file at a time each): each process has a lab
# of its own, its name and subnet made from the worker's number (gw0, gw1, ...).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_NUMBER = int(_WORKER[2:]) if _WORKER.startswith("gw") and _WORKER[2:].isdigit() else None


def _per_worker(name: str, subnet: str) -> tuple[str, str]:
    if _NUMBER is None:
        return name, subnet
    octets = subnet.split(".")
    # A letter, not a digit: a lab's links are its name and a host's number, so "smtpstest" + "01" would be lab
    # "smtpstest0"'s link 1 too, and one lab's `down` would take another's.
    return f"{name}{chr(ord('a') + _NUMBER)}", ".".join([*octets[:2], str(int(octets[2]) + 20 * (_NUMBER + 1)),
                                                        octets[3]])


TEST_LAB, TEST_SUBNET = _per_worker(os.environ.get("SMTPS_TEST_LAB", "smtpstest"),
                                    os.environ.get("SMTPS_TEST_SUBNET", "10.231.1.0/24"))
# The first three octets of the test subnet, as hosts' addresses start in messages ("mail1 (10.231.1.").
TEST_PREFIX = TEST_SUBNET.rsplit(".", 1)[0] + "."


@dataclass
class Lab:
    state_dir: Path
    name: str = TEST_LAB
    subnet: str = TEST_SUBNET
    recorded_netns: dict[str, tuple[int, int]] = field(default_factory=dict)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, SMTPS_LAB_DIR=str(self.state_dir), SMTPS_LAB_NAME=self.name,
                   SMTPS_LAB_SUBNET=self.subnet)
        result = subprocess.run([sys.executable, "-m", "lab", *args], cwd=REPO, env=env, text=True,
                                capture_output=True, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(
                f"lab {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    @property
    def inventory(self) -> dict:
        return json.loads((self.state_dir / "inventory.json").read_text())

    def hosts(self) -> list[dict]:
        return self.inventory["hosts"]

    def sh(self, host: str, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a shell script inside a host (as the host's root, via nsenter)."""
        result = self.cli("exec", host, "--", "/bin/sh", "-c", script, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{host}: {script!r} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def ssh(self, host: dict, command: str, known_hosts: Path | None = None) -> subprocess.CompletedProcess[str]:
        """SSH from the machine with the deploy key, the host key pinned (StrictHostKeyChecking=yes)."""
        if known_hosts is None:
            known_hosts = self.state_dir.parent / f"pinned-{host['name']}"
            known_hosts.write_text(f"{host['address']} {host['host_key']}\n")
        return subprocess.run(
            ["ssh", "-i", self.inventory["private_key_path"], "-p", str(host["port"]),
             "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
             "-o", "ConnectTimeout=5", f"{host['user']}@{host['address']}", command],
            text=True, capture_output=True, timeout=60,
        )

    def record_namespaces(self) -> None:
        """Remember the identity of each host's network namespace, to look for survivors after `down`."""
        for host in self.hosts():
            st = os.stat(f"/run/netns/{host['netns']}")
            self.recorded_netns[host["netns"]] = (st.st_dev, st.st_ino)


@contextmanager
def running_lab(tmp_path_factory, label: str, *up_args: str) -> Iterator[Lab]:
    """A lab for one test module: up with `up_args`, namespaces recorded, always taken down at the end."""
    require_lab()
    lab = Lab(tmp_path_factory.mktemp(label) / "state")
    try:
        lab.cli("up", *up_args)
        lab.record_namespaces()
        yield lab
    finally:
        lab.cli("down", check=False)


def _tasks(proc: Path) -> list[Path]:
    try:
        return list((proc / "task").iterdir())
    except OSError:  # gone meanwhile
        return []


def _in(task: Path, idents: set[tuple[int, int]]) -> bool:
    try:
        # A zombie has no namespaces left to hold and waits to be reaped: not a survivor.
        if (task / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        st = os.stat(task / "ns" / "net")
    except (OSError, IndexError):
        return False
    return (st.st_dev, st.st_ino) in idents


def leftovers(lab: Lab) -> list[str]:
    """Everything of the lab still on the machine: namespaces, links, processes, mounts, files."""
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"namespace {line.split()[0]}" for line in netns.splitlines() if line.startswith(f"{lab.name}-")]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in links.splitlines():
        name = line.split(":", 2)[1].strip().split("@")[0]
        if name.startswith(lab.name):
            found.append(f"link {name}")
    routes = subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    found += [f"route {line}" for line in routes.splitlines() if lab.subnet.rsplit(".", 1)[0] + "." in line]
    # A deleted namespace's inode number goes to the next namespace the machine makes (the lowest free one): one
    # named for another lab now (its host booted since) is that lab's, not a survivor of this one.
    others = set()
    for line in netns.splitlines():
        name = line.split()[0]
        if not name.startswith(f"{lab.name}-"):
            try:
                st = os.stat(f"/run/netns/{name}")
            except OSError:
                continue
            others.add((st.st_dev, st.st_ino))
    idents = set(lab.recorded_netns.values()) - others
    state = str(lab.state_dir)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        # Each thread: one enters a namespace alone (setns), and a process whose main thread exited shows as a
        # zombie while its other threads run on.
        if any(_in(task, idents) for task in _tasks(proc)):
            found.append(f"process {proc.name} in a lab namespace")
        try:
            if state in (proc / "mountinfo").read_text():
                found.append(f"mount of {state} seen by process {proc.name}")
        except OSError:
            continue
    if lab.state_dir.exists():
        found.append(f"state dir {lab.state_dir}")
    return found
