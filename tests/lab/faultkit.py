"""Faults on lab hosts, made the way they happen on real ones, and only ever inside one host's own namespaces:
a tool that fails, a daemon that is down, a full disk, a remote script or SSH session killed mid-run."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.lab.labkit import Lab

FAULTS = "/run/lab/fault"  # a tmpfs of the host's own (/run), gone with the host


@contextmanager
def wrapped_tool(lab: Lab, host: str, tool: str, when: str, action: str) -> Iterator[None]:
    """Inside `host` only, `tool` (an absolute path) first runs the shell `action` when its arguments match the
    `case` pattern `when` (matched against " ARGS "), then the real tool. A bind mount in the host's private mount
    namespace: the machine and the other hosts keep the real tool."""
    name = Path(tool).name
    wrapper = f"#!/bin/sh\ncase \" $* \" in {when}) {action};; esac\nexec {FAULTS}/{name}.real \"$@\"\n"
    lab.sh(host, f"mkdir -p {FAULTS} && cp -p {tool} {FAULTS}/{name}.real && "
                 f"printf '%s' {shlex.quote(wrapper)} > {FAULTS}/{name} && chmod 755 {FAULTS}/{name} && "
                 f"mount --bind {FAULTS}/{name} {tool}")
    try:
        yield
    finally:
        lab.sh(host, f"umount {tool}", check=False)


def failing_tool(lab: Lab, host: str, tool: str, when: str):
    """`tool` fails with '<name>: fault injected' when its arguments match `when`."""
    return wrapped_tool(lab, host, tool, when, f'echo "{Path(tool).name}: fault injected" >&2; exit 1')


@contextmanager
def full_disk(lab: Lab, host: str, folder: str = "/etc/postfix") -> Iterator[None]:
    """`folder` on a small tmpfs holding its files and no room to spare. The tmpfs stays (with whatever was
    written to it) after the fault is gone; only the filler goes."""
    lab.sh(host, f"""set -e
        mounted=$(awk '$2 == "{folder}" && $3 == "tmpfs"' /proc/mounts)
        if [ -z "$mounted" ]; then
            cp -a {folder} {FAULTS}-copy
            mount -t tmpfs -o size=2m tmpfs {folder}
            cp -a {FAULTS}-copy/. {folder}/
            rm -rf {FAULTS}-copy
        fi
        dd if=/dev/zero of={folder}/.filler bs=4k 2>/dev/null || true""")
    try:
        yield
    finally:
        lab.sh(host, f"rm -f {folder}/.filler")


def _host_netns(lab: Lab, host: str) -> tuple[int, int]:
    st = os.stat(f"/run/netns/{lab.name}-{host}")
    return st.st_dev, st.st_ino


def host_pids(lab: Lab, host: str, marker: str) -> list[int]:
    """PIDs of the processes running inside `host` whose command line contains `marker`."""
    netns, found = _host_netns(lab, host), []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            st = os.stat(proc / "ns" / "net")
            if (st.st_dev, st.st_ino) == netns and marker.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def kill_remote(lab: Lab, host: str, marker: str) -> int:
    """SIGKILL the process group of every process in `host` whose command line has `marker` (the script and the
    tools it is running). Returns how many groups were killed."""
    groups = set()
    for pid in host_pids(lab, host, marker):
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            continue
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(groups)


def wait_gone(lab: Lab, host: str, marker: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while host_pids(lab, host, marker):
        if time.monotonic() > deadline:
            raise AssertionError(f"{host}: processes with {marker!r} still running")
        time.sleep(0.05)


@contextmanager
def daemon_down(lab: Lab, host: str, daemon: str) -> Iterator[None]:
    """sshd, firewalld or postfix stopped in `host` (as `systemctl stop` would), started again afterwards."""
    if daemon == "postfix":
        lab.sh(host, "postfix stop >/dev/null 2>&1")
        try:
            yield
        finally:
            lab.sh(host, "postfix start >/dev/null 2>&1")
        return
    # sshd retitles its listener "sshd: /usr/sbin/sshd -D -f ... [listener] ...": the command line is in the title.
    marker = {"sshd": "[listener]", "firewalld": "firewalld\0--nofork"}[daemon]
    [pid] = host_pids(lab, host, marker)
    title = Path(f"/proc/{pid}/cmdline").read_bytes()
    if daemon == "sshd":
        argv = shlex.split(title.decode().split("sshd: ", 1)[1].split(" [listener]", 1)[0])
    else:
        argv = [a.decode() for a in title.split(b"\0") if a]
    os.kill(pid, signal.SIGTERM)
    wait_gone(lab, host, marker)
    try:
        yield
    finally:
        log = "/run/lab/log/sshd.log" if daemon == "sshd" else "/run/lab/log/firewalld.log"
        lab.sh(host, f"setsid {shlex.join(argv)} >>{log} 2>&1 </dev/null &")
        if daemon == "firewalld":
            lab.sh(host, "for i in $(seq 100); do firewall-cmd --state >/dev/null 2>&1 && break; sleep 0.1; done; "
                         "firewall-cmd --zone=iredmail --change-interface=eth0 >/dev/null")
        else:
            lab.sh(host, "for i in $(seq 50); do [ -n \"$(ss -ltn 'sport = :22' | tail -n +2)\" ] && break; "
                         "sleep 0.1; done")


def ssh_argv(lab: Lab, host: dict, command: str) -> list[str]:
    known = lab.state_dir.parent / f"pinned-{host['name']}"
    known.write_text(f"{host['address']} {host['host_key']}\n")
    return ["ssh", "-i", lab.inventory["private_key_path"], "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known}", "-o", "ConnectTimeout=5", f"root@{host['address']}", command]


def start_script(lab: Lab, host: dict, script: str) -> subprocess.Popen:
    """The script running on the host over SSH, as the providers run it (one command string)."""
    return subprocess.Popen(ssh_argv(lab, host, "exec /bin/sh -c " + shlex.quote(script)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
