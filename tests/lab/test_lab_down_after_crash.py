"""`lab down` after an `up` that died half-way: it still finds and removes everything, by name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lab import host as hostops
from tests.conftest import require_lab
from tests.lab.labkit import REPO, Lab, leftovers

pytestmark = pytest.mark.lab


def _namespaces(name: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{name}-")]


def _a_lab_with_an_empty_host(tmp_path) -> tuple[Lab, str]:
    require_lab()
    lab = Lab(tmp_path / "state")
    netns = f"{lab.name}-mail1"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    st = os.stat(f"/run/netns/{netns}")
    lab.recorded_netns[netns] = (st.st_dev, st.st_ino)
    return lab, netns


def test_down_after_up_was_killed_half_way(tmp_path):
    require_lab()
    lab = Lab(tmp_path / "state")
    env = dict(os.environ, SMTPS_LAB_DIR=str(lab.state_dir), SMTPS_LAB_NAME=lab.name, SMTPS_LAB_SUBNET=lab.subnet)
    up = subprocess.Popen([sys.executable, "-m", "lab", "up", "--hosts", "3"], cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Kill `up` once the first host boots (its namespace exists and holds processes) and before it finishes.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and up.poll() is None:
            names = _namespaces(lab.name)
            if names and subprocess.run(["ip", "netns", "pids", names[0]], capture_output=True,
                                        text=True).stdout.split():
                break
            time.sleep(0.02)
        assert up.poll() is None, "lab up finished before the test could interrupt it"
        up.send_signal(signal.SIGKILL)
        up.wait()
        assert not (lab.state_dir / "inventory.json").exists()  # it really died before the end
        for name in _namespaces(lab.name):
            st = os.stat(f"/run/netns/{name}")
            lab.recorded_netns[name] = (st.st_dev, st.st_ino)
        assert lab.recorded_netns
    finally:
        if up.poll() is None:
            up.kill()
        # Debris of another kind: a veth pair still in the machine's namespace, as if `up` died right after
        # creating it.
        subprocess.run(["ip", "link", "add", f"{lab.name}9", "type", "veth", "peer", "name", f"{lab.name}9i"],
                       check=True)
        lab.cli("down")
    assert leftovers(lab) == []


@pytest.mark.parametrize("held", ["by its name", "through a bind mount of it elsewhere"])
def test_down_stops_a_process_that_was_on_its_way_into_a_host(tmp_path, held):
    """What `up` leaves when it dies while a host boots: an `ip netns exec` it started has opened the namespace and
    enters it a moment later, after `down` looked inside and found nobody. Here the moment is made long: a shell
    holds the namespace open and enters it (and starts a process there) only once `down` has deleted it."""
    lab, netns = _a_lab_with_an_empty_host(tmp_path)
    path, wait = Path(f"/run/netns/{netns}"), ""
    if held != "by its name":
        # It enters a second later: long after `down`'s looks for a process inside.
        path, wait = tmp_path / "bound ns", "sleep 1; "
        path.touch()
        subprocess.run(["mount", "--bind", f"/run/netns/{netns}", path], check=True)
    script = (f"exec 9<'{path}'; echo ready; while [ -e /run/netns/{netns} ]; do sleep 0.01; done; {wait}"
              "exec nsenter --net=/proc/self/fd/9 sleep 300")
    late = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert late.stdout.readline() == "ready\n"
        lab.cli("down")
        # Without `down` seeing it, the shell now enters the deleted namespace: give it the time to.
        try:
            late.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        assert leftovers(lab) == []
        assert late.returncode == -signal.SIGTERM  # stopped by `down`, not by the end of its sleep
    finally:
        if late.poll() is None:
            late.kill()
        late.wait()
        if held != "by its name":
            subprocess.run(["umount", path], check=False)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def test_down_leaves_alone_a_namespace_made_just_after_it_deleted_one(tmp_path, monkeypatch):
    """A deleted namespace's inode number goes to the next namespace the machine makes (the kernel hands out the
    lowest free one): another lab's host booting in the moment `down` looks again after its delete. That host's
    processes are not the lab's, and are left alone."""
    require_lab()
    lab = Lab(tmp_path / "state")
    netns = f"{lab.name}-mail1"
    run = hostops.run
    foreign: list[subprocess.Popen] = []

    def run_then_another_lab_boots(argv, **kwargs):
        result = run(argv, **kwargs)
        if argv[:3] == ["ip", "netns", "del"]:
            time.sleep(0.1)  # the kernel frees the namespace, unless something holds it
            foreign.append(subprocess.Popen(["unshare", "--net", "sleep", "60"]))
            time.sleep(0.05)
        return result

    monkeypatch.setattr(hostops, "run", run_then_another_lab_boots)
    try:
        for _ in range(3):
            run(["ip", "netns", "add", netns])
            hostops.stop_namespace(netns)
        assert [p.poll() for p in foreign] == [None] * 3
    finally:
        for p in foreign:
            p.kill()
            p.wait()
        run(["ip", "netns", "del", netns], check=False)


# A thread enters a namespace alone (setns): /proc/PID/ns is the main thread's, and it is gone once the main thread
# has exited while the others run on. Go programs and threaded tools enter namespaces this way.
_A_THREAD_ENTERS = """
import ctypes, os, sys, threading, time
def inside():
    fd = os.open(sys.argv[1], os.O_RDONLY)
    assert ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) == 0  # CLONE_NEWNET
    os.close(fd)
    print("in", flush=True)
    time.sleep(300)
threading.Thread(target=inside).start()
"""
_THE_MAIN_THREAD_EXITS = """
import ctypes, threading, time
threading.Thread(target=time.sleep, args=(300,)).start()
print("in", flush=True)
ctypes.CDLL(None).pthread_exit(None)
"""


@pytest.mark.parametrize("how", ["a thread entered", "its main thread exited"])
def test_down_stops_a_process_with_only_some_threads_in_a_host(tmp_path, how):
    lab, netns = _a_lab_with_an_empty_host(tmp_path)
    if how == "a thread entered":
        argv = [sys.executable, "-c", _A_THREAD_ENTERS, f"/run/netns/{netns}"]
    else:
        argv = ["ip", "netns", "exec", netns, sys.executable, "-c", _THE_MAIN_THREAD_EXITS]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "in\n"
        lab.cli("down")
        assert leftovers(lab) == []
        assert process.wait(timeout=5) < 0  # stopped by `down`
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


_A_LOOK_NOW_AND_THEN = """
import os, sys, time
first = True
while True:
    try:
        fd = os.open(sys.argv[1], os.O_RDONLY)
    except FileNotFoundError:
        sys.exit(0)
    if first:
        print("looking", flush=True)
        first = False
    time.sleep(0.3)
    os.close(fd)
    time.sleep(0.4)
"""


@pytest.mark.parametrize("who", ["another process's look", "a child of this process before its exec"])
def test_down_leaves_alone_what_holds_a_namespace_only_a_moment(tmp_path, who):
    """Not every process that holds a namespace open is on its way in: `ip netns list` opens every namespace
    (another lab's `up` and `down` run it), and a child that another thread of the process forks has the pin
    of `stop_namespace` until its exec (`up` boots hosts in threads). Such moments are made long here."""
    require_lab()
    netns = f"{Lab(tmp_path / 'state').name}-mail1"
    statuses: list[int] = []
    done = threading.Event()

    def fork_now_and_then():
        while not done.is_set():
            pid = os.fork()
            if pid == 0:
                time.sleep(0.1)
                os.execv("/bin/true", ["true"])  # noqa: S606 - what subprocess does, the moment made long
            statuses.append(os.waitpid(pid, 0)[1])
            time.sleep(0.25)

    looker = forker = None
    try:
        if who == "another process's look":
            subprocess.run(["ip", "netns", "add", netns], check=True)
            looker = subprocess.Popen([sys.executable, "-c", _A_LOOK_NOW_AND_THEN, f"/run/netns/{netns}"],
                                      stdout=subprocess.PIPE, text=True)
            assert looker.stdout.readline() == "looking\n"
            hostops.stop_namespace(netns)
            assert looker.wait(timeout=5) == 0  # it saw the namespace go, and was not signalled
        else:
            forker = threading.Thread(target=fork_now_and_then)
            forker.start()
            for _ in range(3):
                subprocess.run(["ip", "netns", "add", netns], check=True)
                hostops.stop_namespace(netns)
            done.set()
            forker.join()
            assert statuses and set(statuses) == {0}
    finally:
        done.set()
        if forker:
            forker.join()
        if looker and looker.poll() is None:
            looker.kill()
            looker.wait()
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)

