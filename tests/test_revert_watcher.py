"""The revert watcher of a commit-confirmed firewalld reload, and the settling of it by the next run, run in dash
(Debian's /bin/sh) on a folder tree of their own: the watcher checks each step, keeps its copies and leaves a mark
when a put-back fails, which the next run reports; it puts back only files still as the run left them; it is told
from another process at its pid by the token in its environment. The code is the rendered scripts' own: only the
absolute paths are moved under a temporary folder, and firewall-cmd and logger are stand-ins that write down how
they were called."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from smtps_iredmail.core import firewalld_service
from smtps_iredmail.core.hosts import parse_host
from smtps_iredmail.core.templating import Action
from tests.conftest import require

ARMED_WITH = "0123456789abcdef"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def prologue_part() -> str:
    """The watcher (REVERT) and everything the scripts settle it with, as the scripts render them."""
    settings = parse_host("lab", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": HOST_KEY})
    text = firewalld_service.MODEL.script("mail1", settings.service, Action.APPLY)
    start = text.index("ARM=/run/smtps-iredmail/confirm")
    end = text.index("pending_confirm\n", text.index("confirmed_state() {"))
    # (FWPY, in that part, is firewalld_python's answer: a function of the scripts' start.)
    return re.search(r"^firewalld_python\(\) \{.*?^\}\n", text, re.S | re.M).group(0) + text[start:end]


@pytest.fixture
def host(tmp_path: Path):
    """A folder tree standing in for the host: /etc/firewalld, /run/smtps-iredmail, /var/lib/smtps-iredmail, and
    a bin folder first in PATH with stand-ins that log their calls."""
    require(shutil.which("dash") is not None, "dash (Debian's /bin/sh) is needed")
    root = tmp_path / "h"
    for folder in ("etc/firewalld/services", "etc/firewalld/zones", "run/smtps-iredmail", "var/lib", "bin"):
        (root / folder).mkdir(parents=True)
    log = root / "calls"
    for tool in ("firewall-cmd", "logger"):
        stub = root / "bin" / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\n')
        stub.chmod(0o755)
    return root


def code_for(root: Path) -> str:
    text = prologue_part()
    for path in ("/etc/firewalld/", "/run/smtps-iredmail", "/var/lib/smtps-iredmail"):
        text = text.replace(path, f"{root}{path}")
    assert re.fullmatch(r"[A-Za-z0-9_./+-]+", str(root)), root  # the watcher refuses odd characters in paths
    return text


def arm(root: Path, found: str, left: str) -> Path:
    """An armed change of the service file: found as `found` before the run, left as `left` by it."""
    target = root / "etc/firewalld/services/smtps.xml"
    target.write_text(left)
    folder = root / "run/smtps-iredmail/confirm"
    folder.mkdir()
    (folder / "targets").write_text(f"{target}\n")
    (folder / "0").write_text(found)
    (folder / "left-0").write_text(left)
    (folder / "token").write_text(ARMED_WITH + "\n")
    return folder


def sh(root: Path, script: str, *args: str, failing_cp: bool = False,
       token: str = "") -> subprocess.CompletedProcess[str]:
    bin_dir = root / "bin"
    cp = bin_dir / "cp"
    if failing_cp:
        cp.write_text('#!/bin/sh\necho "cp: error writing: No space left on device" >&2\nexit 1\n')
        cp.chmod(0o755)
    elif cp.exists():
        cp.unlink()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(root), **({"SMTPS_REVERT": token} if token else {})}
    return subprocess.run(["dash", "-c", script, "smtps-revert", *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


def revert_code(root: Path) -> str:
    revert = re.search(r"^REVERT='(.*?)'$", code_for(root), re.S | re.M)
    assert revert
    return revert.group(1)


def watcher(root: Path, token: str = ARMED_WITH, **kwargs) -> subprocess.CompletedProcess[str]:
    """The watcher armed with `token`, run as a script holding the lock runs it ("held"), after 0 s."""
    return sh(root, revert_code(root), str(root / "run/smtps-iredmail/confirm"), "0", "held", token=token, **kwargs)


HARNESS = ('HOST=mail1\nSTATE="$ROOT/var/lib/smtps-iredmail"\nLOCK="$ROOT/run/smtps-iredmail/lock"\n'
           'RUN=""\nRUNDIR=/nonexistent\nexec 9>>"$LOCK"\nflock 9\n'
           "say() { printf 'smtps: %s: %s\\n' \"$HOST\" \"$*\"; }\n"
           "fail() { printf 'smtps: %s: %s\\n' \"$HOST\" \"$*\" >&2; exit 1; }\n")


def next_run(root: Path, note_every: int = 60, then: str = "", **kwargs) -> subprocess.CompletedProcess[str]:
    """The start of the next run on the host: it settles what an earlier change left (then runs `then`)."""
    code = code_for(root)
    assert "WAIT_NOTE=60\n" in code
    code = code.replace("WAIT_NOTE=60\n", f"WAIT_NOTE={note_every}\n")
    return sh(root, HARNESS.replace("$ROOT", str(root)) + code + "pending_confirm\necho settled\n" + then, **kwargs)


def arm_code(root: Path) -> str:
    """`arm` and `disarm` as the firewalld scripts render them, the paths moved under `root`."""
    settings = parse_host("lab", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": HOST_KEY})
    text = firewalld_service.MODEL.script("mail1", settings.service, Action.APPLY)
    found = [re.search(rf"^{name}\(\) \{{.*?^\}}$", text, re.S | re.M) for name in ("arm", "disarm")]
    assert all(found)
    code = "\n".join(f.group(0) for f in found if f)
    for path in ("/etc/firewalld/", "/run/smtps-iredmail", "/var/lib/smtps-iredmail"):
        code = code.replace(path, f"{root}{path}")
    return code + "\n"


def calls(root: Path) -> str:
    log = root / "calls"
    return log.read_text() if log.exists() else ""


def test_a_failing_cp_keeps_the_copies_and_a_mark_that_the_next_run_reports(host: Path):
    folder = arm(host, found="<service>before</service>\n", left="<service>this run</service>\n")
    target = host / "etc/firewalld/services/smtps.xml"
    failed = watcher(host, failing_cp=True)
    assert failed.returncode == 1, failed.stderr
    # Nothing half-done: the file as the run left it, no work copy, no reload; the copies and the mark stay.
    assert target.read_text() == "<service>this run</service>\n"
    assert not list(target.parent.glob("*.smtps-tmp"))
    assert sorted(p.name for p in folder.iterdir()) == ["0", "left-0", "report", "targets", "token.failed"]
    report = (folder / "report").read_text()
    assert f"reverting the unconfirmed firewalld change {ARMED_WITH} failed; putting back {target} failed" in report
    assert "firewall-cmd" not in calls(host) and f"logger -t smtps-iredmail {report.strip()}" in calls(host)
    # The next run, with or without a working cp: says what failed and how to settle it, and stops. It never
    # reloads firewalld itself: that would make live any edit left pending since, unjudged by the lockout guard.
    for cp_fails in (True, False):
        again = next_run(host, failing_cp=cp_fails)
        assert again.returncode == 1 and "settled" not in again.stdout, again.stdout
        assert again.stderr == (
            f"smtps: mail1: an earlier firewalld change here was never confirmed, and putting it back failed "
            f"({report.strip()}). Nothing was reloaded, and no run goes on here until this is settled by hand, from a "
            "console (SSH may be cut): this tool reloads firewalld only behind its lockout guard, with a revert "
            f"armed. The change's files: {target} (as it was before: {folder}/0); Either put it back: copy each kept "
            "file over its file (remove a file that had none before), then run firewall-cmd --check-config and "
            "firewall-cmd --reload; or accept the change as it stands. Then remove "
            f"{folder}.\n"), again.stderr
        assert (folder / "token.failed").exists() and (folder / "0").exists()
        assert target.read_text() == "<service>this run</service>\n"
        assert "firewall-cmd" not in calls(host)
    # Settled by hand (the change accepted, the folder removed): the next run goes on.
    shutil.rmtree(folder)
    assert "settled" in next_run(host).stdout


def test_a_failed_revert_of_a_remove_names_its_state_folder_both_ways(host: Path):
    folder = arm(host, found="<service>before</service>\n", left="<service>this run</service>\n")
    state = host / "var/lib/smtps-iredmail/firewalld-service"
    (folder / "state").write_text(f"{state}\n")
    (folder / "1").write_text("x\n")
    with (folder / "targets").open("a") as targets:
        targets.write(f"{host}/etc/firewalld/zones/iredmail.xml\n")
    (folder / "token").rename(folder / "token.failed")
    told = next_run(host)
    assert told.returncode == 1
    assert (f"{host}/etc/firewalld/zones/iredmail.xml (as it was before: {folder}/1); Either put it back" in
            told.stderr), told.stderr
    assert f"(remove a file that had none before), move {state}.pending back to {state}, then" in told.stderr
    assert f"or accept the change as it stands and remove {state}.pending. Then" in told.stderr
    (folder / "targets").unlink()
    assert "The change's files: (the list of files is missing) Either" in next_run(host).stderr


def test_a_file_changed_since_the_run_left_it_is_left_to_its_author_and_named(host: Path):
    folder = arm(host, found="<service>before</service>\n", left="<service>this run</service>\n")
    zone = host / "etc/firewalld/zones/iredmail.xml"
    zone.write_text("<zone>an admin's edit</zone>\n")
    with (folder / "targets").open("a") as targets:
        targets.write(f"{zone}\n")
    (folder / "1").write_text("<zone>before</zone>\n")
    (folder / "left-1").write_text("<zone>this run</zone>\n")
    done = watcher(host)
    assert done.returncode == 0, done.stderr
    assert (host / "etc/firewalld/services/smtps.xml").read_text() == "<service>before</service>\n"
    assert zone.read_text() == "<zone>an admin's edit</zone>\n"
    assert "firewall-cmd --reload" in calls(host)
    assert f"left as they are, changed by someone else since: {zone}" in (folder / "report").read_text()
    assert not (folder / "token").exists()  # nothing left to confirm
    told = next_run(host)
    assert told.returncode == 0 and f"changed by someone else since: {zone}" in told.stdout, told.stdout
    assert not folder.exists()


def test_a_target_that_is_no_firewalld_file_is_not_touched(host: Path):
    folder = arm(host, found="x\n", left="y\n")
    victim = host / "etc/passwd"
    victim.write_text("root:x:0:0\n")
    (folder / "targets").write_text(f"{victim}\n")
    failed = watcher(host)
    assert failed.returncode == 1 and victim.read_text() == "root:x:0:0\n"
    assert f"{victim} is no firewalld file, not touched" in (folder / "report").read_text()


def test_a_copy_that_is_a_link_is_not_followed(host: Path):
    folder = arm(host, found="x\n", left="<service>this run</service>\n")
    secret = host / "secret"
    secret.write_text("not for a firewalld file\n")
    (folder / "0").unlink()
    (folder / "0").symlink_to(secret)
    failed = watcher(host)
    target = host / "etc/firewalld/services/smtps.xml"
    assert failed.returncode == 1 and target.read_text() == "<service>this run</service>\n"
    assert f"the copy of {target} is a link, not followed" in (folder / "report").read_text()


def test_the_watcher_is_told_by_the_token_in_its_environment_not_by_its_name(host: Path):
    code = code_for(host)
    alive = re.search(r"^watcher_alive\(\) \{.*?^\}$", code, re.S | re.M)
    assert alive
    impostor = subprocess.Popen(["dash", "-c", "sleep 30", "smtps-revert"], env={"PATH": "/usr/bin:/bin"})
    real = subprocess.Popen(["dash", "-c", "sleep 30", "smtps-revert"],
                            env={"PATH": "/usr/bin:/bin", "SMTPS_REVERT": ARMED_WITH}, start_new_session=True)
    try:
        def check(pid: int) -> int:
            return sh(host, f'{alive.group(0)}\nwatcher_alive {pid} {ARMED_WITH}').returncode
        assert check(real.pid) == 0
        assert check(impostor.pid) != 0  # the same name and arguments, without the token
        assert sh(host, f'{alive.group(0)}\nwatcher_alive {real.pid} ""').returncode != 0
    finally:
        for proc in (impostor, real):
            proc.kill()
            proc.wait()


def test_the_next_run_waits_for_a_change_its_controller_is_confirming_and_reverts_one_never_confirmed(host: Path):
    """Another stack's run armed a change a moment ago: the next run waits (the lock released) until it is
    confirmed, and reverts nothing. One its watcher's time ran out on is put back."""
    watcher_stand_in = subprocess.Popen(["dash", "-c", "sleep 60", "smtps-revert"], start_new_session=True,
                                        env={"PATH": "/usr/bin:/bin", "SMTPS_REVERT": ARMED_WITH})
    try:
        folder = arm(host, found="<service>before</service>\n", left="<service>this run</service>\n")
        (folder / "pid").write_text(f"{watcher_stand_in.pid}\n")
        (folder / "until").write_text(f"{int(time.time()) + 30}\n")
        # Its controller confirms 2 s later, as confirm.sh does: the folder goes, under the lock.
        confirm = threading.Timer(2, lambda: subprocess.run(
            ["flock", str(host / "run/smtps-iredmail/lock"), "rm", "-rf", str(folder)], check=True))
        confirm.start()
        started = time.monotonic()
        waited = next_run(host, note_every=1)
        confirm.join()
        assert waited.returncode == 0 and "settled" in waited.stdout, waited.stderr
        assert 1.5 < time.monotonic() - started < 25
        # Said when the wait starts, and again every WAIT_NOTE seconds (1 here, 60 as rendered): the controller
        # gives up on a session silent for 300 s.
        notes = re.findall(rf"^smtps: mail1: waiting for another run's firewalld change \({ARMED_WITH}\) to be "
                           r"confirmed by its controller, or put back by its watcher, (\d+) s at most$",
                           waited.stdout, re.M)
        assert len(notes) >= 2 and 25 <= int(notes[0]) <= 30, waited.stdout
        assert int(notes[-1]) < int(notes[0])
        assert "never confirmed" not in waited.stdout
        assert (host / "etc/firewalld/services/smtps.xml").read_text() == "<service>this run</service>\n"
        # Armed again, and its time up: put back at once.
        folder = arm(host, found="<service>before</service>\n", left="<service>this run</service>\n")
        (folder / "pid").write_text(f"{watcher_stand_in.pid}\n")
        (folder / "until").write_text(f"{int(time.time()) - 1}\n")
        reverted = next_run(host)
        assert reverted.returncode == 0 and "never confirmed: its previous configuration is back" in reverted.stdout
        assert (host / "etc/firewalld/services/smtps.xml").read_text() == "<service>before</service>\n"
    finally:
        watcher_stand_in.kill()
        watcher_stand_in.wait()


def test_a_watcher_whose_change_was_settled_without_it_never_reverts_the_next_runs_change(host: Path):
    """Run 1 armed a change (its watcher waits 2 s); its folder was then settled without its watcher being stopped
    (here: its pid file lost, so the next run takes the change as stood). Run 2 arms its own change at the same
    path. Run 1's watcher wakes, finds a token not its own, and leaves run 2's change alone."""
    zone = host / "etc/firewalld/zones/iredmail.xml"
    folder = host / "run/smtps-iredmail/confirm"
    before = host / "before"
    step = ('CONFIRM={confirm}\ncp "{zone}" "{before}"\nprintf "<zone>{what}</zone>\\n" > "{zone}"\n'
            'arm "{zone}" "{before}"\necho "armed $ARMED"\n')
    zone.write_text("<zone>run1-before</zone>\n")
    run1 = next_run(host, then=arm_code(host) + step.format(confirm=2, zone=zone, before=before, what="run1-after"))
    assert run1.returncode == 0, run1.stderr
    first = re.search(r"armed ([0-9a-f]{16})", run1.stdout)
    assert first and (folder / "pid").read_text().strip().isdigit()  # the folder appears with its pid
    run1_watcher = int((folder / "pid").read_text())
    (folder / "pid").unlink()
    run2 = next_run(host, then=arm_code(host) + step.format(confirm=300, zone=zone, before=before, what="run2-after"))
    try:
        assert run2.returncode == 0, run2.stderr
        assert "its watcher is gone" in run2.stdout  # run 1's change taken as stood, and said
        second = re.search(r"armed ([0-9a-f]{16})", run2.stdout)
        assert second and second.group(1) != first.group(1)
        deadline = time.monotonic() + 20
        while Path(f"/proc/{run1_watcher}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not Path(f"/proc/{run1_watcher}").exists(), "run 1's watcher never woke"
        assert zone.read_text() == "<zone>run2-after</zone>\n"
        assert (folder / "token").read_text().strip() == second.group(1)
        assert "firewall-cmd" not in calls(host) and "logger" not in calls(host)
    finally:
        pid = int((folder / "pid").read_text()) if (folder / "pid").exists() else 0
        with contextlib.suppress(ProcessLookupError):
            if pid > 0 and os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGTERM)  # run 2's watcher: its own process group (setsid)


def test_a_change_whose_watcher_is_gone_stands_with_a_warning(host: Path):
    folder = arm(host, found="<service>before</service>\n", left="<service>this run</service>\n")
    gone = subprocess.Popen(["true"])
    gone.wait()
    (folder / "pid").write_text(f"{gone.pid}\n")
    (folder / "until").write_text(f"{int(time.time()) + 30}\n")
    stood = next_run(host)
    assert stood.returncode == 0 and "settled" in stood.stdout
    assert (f"smtps: mail1: warning: an earlier firewalld change here ({ARMED_WITH}) was never confirmed, and its "
            "watcher is gone (killed, or the host restarted) before it could put it back: the change stands"
            ) in stood.stdout
    assert not folder.exists() and "firewall-cmd" not in calls(host)
    assert (host / "etc/firewalld/services/smtps.xml").read_text() == "<service>this run</service>\n"


@pytest.mark.parametrize(("copy", "why"), [
    ("<service>before</service\n", "well-formed XML"),
    ("<service>" + "x" * 1048576 + "</service>\n", "at most 1 MiB"),
], ids=["not-well-formed", "over-1-MiB"])
def test_a_copy_that_is_no_firewalld_file_is_never_put_back(host: Path, copy: str, why: str):
    folder = arm(host, found=copy, left="<service>this run</service>\n")
    zone = host / "etc/firewalld/zones/iredmail.xml"
    zone.write_text("<zone>this run</zone>\n")
    with (folder / "targets").open("a") as targets:
        targets.write(f"{zone}\n")
    (folder / "1").write_text("<zone>before</zone>\n")
    (folder / "left-1").write_text("<zone>this run</zone>\n")
    failed = watcher(host)
    target = host / "etc/firewalld/services/smtps.xml"
    assert failed.returncode == 1
    # Checked before any goes back: the good copy of the zone file stays a copy too, and nothing is reloaded.
    assert target.read_text() == "<service>this run</service>\n" and zone.read_text() == "<zone>this run</zone>\n"
    assert "firewall-cmd" not in calls(host)
    report = (folder / "report").read_text()
    assert f"the copy of {target} is no firewalld file (a plain file of at most 1 MiB, well-formed XML)" in report
    assert str(zone) not in report and (folder / "token.failed").exists()


def test_an_armed_change_nobody_confirms_is_put_back_by_its_watcher_alone(host: Path):
    """The whole path as a run arms it: `arm` starts the watcher (detached, its own token and interpreter in its
    environment), nobody confirms, and after its seconds it takes the lock, checks the copy and puts it back."""
    zone = host / "etc/firewalld/zones/iredmail.xml"
    folder = host / "run/smtps-iredmail/confirm"
    zone.write_text("<zone>before</zone>\n")
    armed = next_run(host, then=arm_code(host) + f'CONFIRM=1\nFWPY=python3\ncp "{zone}" "{host}/before"\n'
                                                   f'printf "<zone>after</zone>\\n" > "{zone}"\n'
                                                   f'arm "{zone}" "{host}/before"\n')
    assert armed.returncode == 0, armed.stderr
    pid = int((folder / "pid").read_text())
    deadline = time.monotonic() + 20
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert zone.read_text() == "<zone>before</zone>\n"
    assert not folder.exists() and calls(host).count("firewall-cmd --reload") == 1


def _prologue_function(name: str) -> str:
    from smtps_iredmail.core.templating import render

    text = render("_prologue.sh.j2", kind="k", host="h", action="apply", snapshot_id="", reloads_firewalld=True,
                  confirm_seconds=120, firewalld_pending="refuse", guard="")
    found = re.search(rf"^{name}\(\) \{{.*?^\}}$", text, re.S | re.M)
    assert found, name
    return found.group(0)


def test_an_undo_whose_files_went_back_disarms_a_watcher_armed_before_the_reload(tmp_path):
    """Before the shared partial, the service's and the zone's undo disarmed whenever the files went back (RC 0),
    reloaded or not: a run stopped between `arm` and `RELOADED=yes` (a signal; a failing write in arm after the
    watcher started) took its armed change back. reload_back returns at once when RELOADED is not yes: the watcher
    stays armed for a change that is already undone, and the next run on the host waits for it (pending_confirm)."""
    require(shutil.which("dash") is not None, "dash (Debian's /bin/sh) is needed")
    script = "\n".join([
        _prologue_function("reload_back"),
        "disarm() { echo disarmed; }",
        "RELOADED=no ARMED=0123456789abcdef",
        'reload_back 0 || true',
    ])
    stub = tmp_path / "firewall-cmd"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    out = subprocess.run([shutil.which("dash"), "-c", script], capture_output=True, text=True, check=True,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"}).stdout
    assert out == "disarmed\n"
