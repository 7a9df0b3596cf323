"""firewalld_running (templates/_firewalld_running.sh.j2), run by the real /bin/sh against stand-in dbus-send and
firewall-cmd programs that log how they were called: it answers as `firewall-cmd --state` would, and never asks
firewalld itself before the bus says firewalld is there (a call to a name nobody owns can start it by D-Bus
activation)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


def _run(tmp_path: Path, owner: str | None, state: str, firewall_cmd_exit: int = 0) -> tuple[bool, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    if owner is not None:
        (bin_dir / "dbus-send").write_text(
            "#!/bin/sh\n"
            f'echo "dbus-send $*" >> {log}\n'
            'case "$*" in *NameHasOwner*) echo "   boolean ' + owner + '" ;;\n'
            f'*Properties.Get*) echo "   variant       {state}" ;; esac\n')
    (bin_dir / "firewall-cmd").write_text(f'#!/bin/sh\necho "firewall-cmd $*" >> {log}\nexit {firewall_cmd_exit}\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    # Only these programs: the machine's own dbus-send must not be found where the host has none.
    (bin_dir / "grep").symlink_to("/usr/bin/grep")
    function = (Path(__file__).parent.parent / "templates" / "_firewalld_running.sh.j2").read_text()
    done = subprocess.run(["/bin/sh", "-c", f"{function}\nfirewalld_running"], capture_output=True, text=True,
                          env={"PATH": str(bin_dir)})
    calls = log.read_text().splitlines() if log.exists() else []
    return done.returncode == 0, calls


def test_running_is_asked_of_the_bus_first_then_of_firewalld(tmp_path):
    running, calls = _run(tmp_path, "true", "RUNNING")
    assert running and len(calls) == 2 and "NameHasOwner" in calls[0] and "Properties.Get" in calls[1]


def test_nobody_on_the_bus_is_not_running_and_firewalld_is_never_called(tmp_path):
    running, calls = _run(tmp_path, "false", "RUNNING")
    assert not running and len(calls) == 1 and "NameHasOwner" in calls[0]


@pytest.mark.parametrize("state", ["FAILED", "INIT", ""])
def test_any_state_but_running_is_not_running(tmp_path, state):
    assert _run(tmp_path, "true", state)[0] is False


@pytest.mark.parametrize(("exit_status", "running"), [(0, True), (252, False)])
def test_without_dbus_send_firewall_cmd_answers(tmp_path, exit_status, running):
    found, calls = _run(tmp_path, None, "", exit_status)
    assert found is running and calls == ["firewall-cmd --state"]

