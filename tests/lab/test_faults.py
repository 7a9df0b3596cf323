"""Faults during `smtps up` on four lab hosts, through the real engine. For each: the fault is on one
host; the other hosts converge; the run fails naming the host and the cause; the host's files are as they were or
complete; and once the fault is gone a re-run converges it. Also the lockout guard, and Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from smtps_iredmail.core import verify
from tests.enginekit import Project
from tests.lab.faultkit import daemon_down, failing_tool, full_disk, host_pids, wrapped_tool
from tests.lab.labkit import TEST_PREFIX, Lab, running_lab
from tests.lab.smtpskit import snapshot

pytestmark = [pytest.mark.lab, pytest.mark.engine]
STACK = "faults"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory, "faults", "--hosts", "4") as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def project(lab: Lab, tmp_path_factory):
    project = Project.for_lab(tmp_path_factory.mktemp("faults") / "smtps", lab, STACK)
    yield project
    project.pulumi("cancel", "-s", STACK, "--yes", check=False)
    project.pulumi("destroy", "-s", STACK, "--yes", check=False)


@contextlib.contextmanager
def while_applying(lab: Lab, host: str, action, wait: int):
    """`action()` strikes while the host's master.cf change runs (postconf made slow by `wait` seconds)."""
    with wrapped_tool(lab, host, "/usr/sbin/postconf", "*' -M '*=*", f"sleep {wait}"):
        def strike() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not host_pids(lab, host, f"sleep\x00{wait}"):
                time.sleep(0.05)
            action()

        striker = threading.Thread(target=strike)
        striker.start()
        try:
            yield
        finally:
            striker.join()


def dropped_connection(lab: Lab, host: str):
    """The host's SSH connection dies while its master.cf change runs (the connection's sshd processes killed), as
    when a network path fails mid-run."""
    def cut() -> None:
        for pid in host_pids(lab, host, "sshd: root"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    return while_applying(lab, host, cut, 4)


@contextlib.contextmanager
def silent_host(lab: Lab, host: str):
    """The host stops answering mid-run, as when it hangs or its network dies: once its master.cf change is under
    way, every packet into the host is dropped (a table of its own, first in line), until the fault is over."""
    def silence() -> None:
        lab.sh(host, "nft add table inet smtpslost && nft add chain inet smtpslost input "
                     "'{ type filter hook input priority -400 ; policy drop ; }'")

    try:
        with while_applying(lab, host, silence, 2):
            yield
    finally:
        lab.sh(host, "nft delete table inet smtpslost", check=False)


ALL = ("postfix/master.cf", "firewalld/zones/iredmail.xml", "firewalld/services/smtps.xml")
FIREWALLD = ALL[1:]
# name: (host, the fault, what the error must say, the files that must be exactly as before the run). Where the
# master.cf step succeeded before the fault struck (the firewalld steps come after it), master.cf is new and whole.
FAULTS = {
    "sshd down": ("mail2", lambda lab: daemon_down(lab, "mail2", "sshd"), "cannot connect", ALL),
    "connection dropped mid-run": ("mail3", lambda lab: dropped_connection(lab, "mail3"), f"mail3 ({TEST_PREFIX}",
                                   FIREWALLD),
    # firewall: auto refuses it before any change: a stopped firewalld is never taken for another firewall.
    "firewalld stopped": ("mail4", lambda lab: daemon_down(lab, "mail4", "firewalld"),
                          "firewalld is installed but not running", FIREWALLD),
    "postfix stopped": ("mail1", lambda lab: daemon_down(lab, "mail1", "postfix"), "postfix is not running", ALL),
    "disk full": ("mail2", lambda lab: full_disk(lab, "mail2"), "No space left on device", ALL),
    "postconf fails": ("mail3", lambda lab: failing_tool(lab, "mail3", "/usr/sbin/postconf", "*' -M '*=*"),
                       "postconf: fault injected", ALL),
    # The scripts ask firewalld's reload over D-Bus with dbus-send (installed on the lab's hosts, as on RHEL's).
    "firewall-cmd --reload fails": ("mail4", lambda lab: failing_tool(lab, "mail4", "/usr/bin/dbus-send",
                                                                       "*'.FirewallD1.reload '*"),
                                    "firewall-cmd --reload failed", FIREWALLD),
    # CentOS 7's Postfix: refused before any change, by its version.
    "postfix older than 2.11": ("mail3", lambda lab: wrapped_tool(lab, "mail3", "/usr/sbin/postconf",
                                                                  "*' -dh mail_version '*", "echo 2.10.1; exit 0"),
                                "Postfix 2.10.1 (mail_version) is older than 2.11", ALL),
    "openssl fails": ("mail1", lambda lab: failing_tool(lab, "mail1", "/usr/bin/openssl", "*"),
                      "is not a PEM certificate", ALL),
    "host stops answering mid-run": ("mail4", lambda lab: silent_host(lab, "mail4"), f"mail4 ({TEST_PREFIX}",
                                     FIREWALLD),
    "ssh allowed at runtime only (lockout guard)": (
        "mail2", lambda lab: runtime_only_ssh(lab, "mail2"), "a firewalld reload would cut SSH", FIREWALLD),
}


@contextlib.contextmanager
def runtime_only_ssh(lab: Lab, host: str):
    lab.sh(host, "firewall-cmd --permanent --zone=iredmail --remove-service=ssh >/dev/null")
    try:
        yield
    finally:
        lab.sh(host, "firewall-cmd --permanent --zone=iredmail --add-service=ssh >/dev/null")


def files(lab: Lab, host: str) -> dict[str, str]:
    return snapshot(lab, host)


# What another test already fails the same way (tests/lab/test_kill_points.py fails each write of each script) runs
# in `make test-full` only.
ALSO_ELSEWHERE = ("postconf fails", "firewall-cmd --reload fails")


@pytest.mark.parametrize("fault", [pytest.param(f, marks=pytest.mark.full) if f in ALSO_ELSEWHERE else f
                                   for f in FAULTS])
def test_a_fault_on_one_host_fails_it_alone_and_a_rerun_converges(lab: Lab, project: Project, fault: str):
    host, make_fault, cause, unchanged = FAULTS[fault]
    project.pulumi("destroy", "-s", STACK, "--yes")
    with make_fault(lab):
        before = files(lab, host)  # with the fault in place (making one may itself edit a file)
        started = time.monotonic()
        up = project.smtps("up", "-s", STACK, "--yes", check=False)
        took = time.monotonic() - started
        print(f"{fault}: the run ended after {took:.1f} s")
        text = up.stdout + up.stderr
        assert up.returncode != 0, text
        assert cause in text and f"{host}" in text, text
        for other in lab.hosts():
            if other["name"] != host:
                assert verify.verify(other["address"]).ok, (fault, other["name"])
        after = files(lab, host)
        assert {f: after.get(f) for f in unchanged} == {f: before.get(f) for f in unchanged}, fault
        assert lab.sh(host, "ls -d /etc/postfix/.smtps-work /var/lib/smtps-iredmail/*.new 2>/dev/null; "
                            "find /etc/postfix /etc/firewalld -name '*.smtps-tmp'").stdout.strip() == ""
        # A host that stops answering is given up on within seconds, not held on for minutes (the command timeout
        # is 300 s): the liveness check drops it after 5 + 15 s without an answer.
        assert took < 90, f"{fault}: the run took {took:.0f} s"
        if fault != "postfix stopped":
            lab.sh(host, "postfix status >/dev/null 2>&1")  # Postfix still runs on the failed host
        if fault == "postfix older than 2.11":  # drift says why in words, not "no entry"
            drift = project.smtps("drift", "-s", STACK, check=False)
            assert drift.returncode != 0 and cause in drift.stdout + drift.stderr, drift.stdout + drift.stderr
    project.smtps("up", "-s", STACK, "--yes")
    assert project.smtps("drift", "-s", STACK).returncode == 0
    assert all(verify.verify(h["address"]).ok for h in lab.hosts())


def test_ctrl_c_during_up_stops_cleanly_and_a_rerun_converges(lab: Lab, project: Project):
    project.pulumi("destroy", "-s", STACK, "--yes")
    up = subprocess.Popen([sys.executable, "-m", "smtps_iredmail", "up", "-s", STACK, "--yes"], cwd=project.folder,
                          env=project.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
    # The providers are applying (the engine says it creates a resource) before the interrupt: a fixed wait could
    # strike before the engine has started, on a busy machine.
    lines: list[str] = []
    applying = threading.Event()

    def read() -> None:
        for line in up.stdout:
            lines.append(line)
            if "creating" in line.lower():
                applying.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert applying.wait(timeout=240), "".join(lines)
    os.killpg(up.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    up.wait(timeout=300)
    reader.join(timeout=30)
    out = "".join(lines)
    print(out[-2500:])
    assert up.returncode != 0, out
    # The CLI got the interrupt and cancelled: it finished the steps in flight instead of dying mid-step.
    assert "smtps: interrupted" in out and "cancel" in out.lower(), out
    for host in lab.hosts():
        checks = lab.sh(host["name"], "postfix check && firewall-cmd --check-config", check=False)
        assert checks.returncode == 0, checks.stderr
    again = project.smtps("up", "-s", STACK, "--yes", check=False)
    if again.returncode != 0 and "locked" in again.stdout + again.stderr:
        project.pulumi("cancel", "-s", STACK, "--yes")
        again = project.smtps("up", "-s", STACK, "--yes", check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert project.smtps("drift", "-s", STACK).returncode == 0
