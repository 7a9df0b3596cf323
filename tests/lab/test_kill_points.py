"""Failures on the host scripts.

Kill points: the scripts interrupted at random moments, by dropping the SSH session or by SIGKILL of the remote
script with the tools it is running, across hosts and resources. After each interruption master.cf and the firewalld
files are the complete old or the complete new version and pass `postfix check` and `firewall-cmd --check-config`;
the next run converges and leaves nothing behind. At the end a real `up` and `destroy` through the engine converge
those hosts and leave them as they were. `make test` runs SMTPS_KILL_POINTS (default 8) interruptions;
`make test-full` runs 100.

Failing writes: each script, both directions, with the tool it changes the host through failing.
"""

from __future__ import annotations

import os
import random
import time

import pytest

from smtps_iredmail.core import firewalld_service, master_service, remote, rollback, zone_membership
from smtps_iredmail.core.templating import Action
from tests.enginekit import Project
from tests.lab.faultkit import failing_tool, kill_remote, start_script, wait_gone
from tests.lab.labkit import Lab, running_lab
from tests.lab.smtpskit import confirm_pending, settings_for

pytestmark = [pytest.mark.lab, pytest.mark.engine]
KILL_POINTS = int(os.environ.get("SMTPS_KILL_POINTS", "8"))
FILES = ("postfix/master.cf", "firewalld/zones/iredmail.xml", "firewalld/services/smtps.xml")
# One shell call per host: the files' digests, both daemons' own checks, and anything an interrupted run left.
INSPECT = """cd /etc
for f in postfix/master.cf firewalld/zones/iredmail.xml firewalld/services/smtps.xml; do
    if [ -e "$f" ]; then printf '%s %s\\n' "$f" "$(sha256sum < "$f" | cut -c1-16)"; else echo "$f absent"; fi
done
postfix check >/dev/null 2>&1 && echo "check postfix ok" || echo "check postfix FAILED"
firewall-cmd --check-config >/dev/null 2>&1 && echo "check firewalld ok" || echo "check firewalld FAILED"
for f in $(find /etc/postfix /etc/firewalld -name '*.smtps-tmp' -o -name '.smtps-work' 2>/dev/null) \\
         $(ls -d /var/lib/smtps-iredmail/*.new /var/lib/smtps-iredmail/*.gone 2>/dev/null); do
    echo "left $f"
done
"""


def inspect(lab: Lab, host: str) -> tuple[dict[str, str], list[str], list[str]]:
    digests, checks, left = {}, [], []
    for line in lab.sh(host, INSPECT).stdout.splitlines():
        word, rest = line.split(" ", 1)
        if word == "check":
            checks.append(rest)
        elif word == "left":
            left.append(rest)
        else:
            digests[word] = rest
    return digests, checks, left


def scripts(lab: Lab, host: str, action: Action) -> list[tuple[str, str]]:
    s = settings_for(lab, host)
    # A snapshot is kept as an engine operation keeps it: a kill may hit that too.
    snapshot_id = rollback.new_snapshot_id()
    steps = [("master", master_service.MODEL.script(host, (s.master, s.tls), action, None, snapshot_id)),
             ("service", firewalld_service.MODEL.script(host, s.service, action, None, snapshot_id)),
             ("zone", zone_membership.MODEL.script(host, s.zone, action, None, snapshot_id))]
    return steps if action is Action.APPLY else steps[::-1]


def run_whole(lab: Lab, host: dict, script: str) -> None:
    proc = start_script(lab, host, script)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"{host['name']}: {err}"
    confirm_pending(lab, host, remote.confirm_token(out))  # as the providers do after a firewalld reload


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory, "kill", "--hosts", "3") as the_lab:
        yield the_lab


def test_interrupted_runs_leave_old_or_new_and_the_next_run_converges(lab: Lab, tmp_path_factory):
    rng = random.Random(int(os.environ.get("SMTPS_KILL_SEED", "465")))
    hosts = {h["name"]: h for h in lab.hosts()}
    known: dict[str, dict[str, set[str]]] = {}
    pristine_of: dict[str, dict[str, str]] = {}
    converged_of: dict[str, dict[str, str]] = {}
    state: dict[str, Action] = {}
    for name, host in hosts.items():
        pristine = pristine_of[name] = inspect(lab, name)[0]
        for _, script in scripts(lab, name, Action.APPLY):
            run_whole(lab, host, script)
        converged = converged_of[name] = inspect(lab, name)[0]
        known[name] = {f: {pristine[f], converged[f]} for f in FILES}
        state[name] = Action.APPLY
    outcomes = {"session dropped": 0, "script killed": 0, "finished before the kill": 0}
    for point in range(KILL_POINTS):
        name = rng.choice(sorted(hosts))
        action = Action.REMOVE if state[name] is Action.APPLY else Action.APPLY
        steps = scripts(lab, name, action)
        victim = rng.randrange(len(steps))
        for _, script in steps[:victim]:
            run_whole(lab, hosts[name], script)
        kind, script = steps[victim]
        marker = script.splitlines()[1][:40]  # "# master.cf service on mail2: apply. ..."
        proc = start_script(lab, hosts[name], script)
        time.sleep(rng.uniform(0.05, 1.6))
        mode = rng.choice(["session dropped", "script killed"])
        if proc.poll() is not None:
            mode = "finished before the kill"
        elif mode == "session dropped":
            proc.kill()
        else:
            kill_remote(lab, name, marker)
        proc.wait(timeout=60)
        wait_gone(lab, name, marker)  # a dropped session's script may run on to its end
        # Killed after its reload, a script leaves its change armed to revert: the controller of a real run would
        # have confirmed it (or it reverts by itself). Confirm it here, as that controller would.
        confirm_pending(lab, hosts[name])
        outcomes[mode] += 1
        digests, checks, _ = inspect(lab, name)
        where = f"kill point {point}: {name} {kind} {action.value} ({mode})"
        assert checks == ["postfix ok", "firewalld ok"], f"{where}: {checks}"
        for f in FILES:
            assert digests[f] in known[name][f], f"{where}: {f} is neither the old nor the new version"
        # The next run converges, and nothing half-written or temporary is left.
        for _, rest in steps[victim:]:
            run_whole(lab, hosts[name], rest)
        digests, checks, left = inspect(lab, name)
        assert checks == ["postfix ok", "firewalld ok"] and left == [], f"{where}: {checks} {left}"
        wanted = pristine_of[name] if action is Action.REMOVE else converged_of[name]
        assert digests == wanted, f"{where}: the rerun did not end where it should"
        state[name] = action
    print(f"kill points: {KILL_POINTS} ({outcomes})")

    # The engine takes over from whatever the kill points left: up converges, destroy restores the pristine files.
    project = Project.for_lab(tmp_path_factory.mktemp("killproject") / "smtps", lab)
    for name, host in hosts.items():
        if state[name] is Action.APPLY:
            for _, script in scripts(lab, name, Action.REMOVE):
                run_whole(lab, host, script)
    project.run_module("lab", "stack", "-s", "kill")
    project.smtps("up", "-s", "kill", "--yes")
    project.smtps("drift", "-s", "kill")
    project.pulumi("destroy", "-s", "kill", "--yes")
    for name in hosts:
        digests, checks, left = inspect(lab, name)
        assert digests == pristine_of[name] and checks == ["postfix ok", "firewalld ok"] and left == [], name


# Each script, in both directions, with the tool it changes the host through failing at its first write: the
# host's files are exactly as before, nothing is left behind, and the message names the host and the cause.
FAILING_WRITES = [
    # (remove puts back master.cf as found by copying it: postconf writes only in apply)
    ("master", "/usr/sbin/postconf", "*' -M '*=*|*' -MX '*", "postconf: fault injected"),
    ("master", "/usr/sbin/postfix", "*' reload '*", "postfix reload failed"),
    # (the scripts ask firewalld over D-Bus with dbus-send where it is installed, as on the lab's hosts)
    ("service", "/usr/bin/dbus-send", "*'.FirewallD1.reload '*", "firewall-cmd --reload failed"),
    ("service", "/usr/bin/dbus-send", "*'.FirewallD1.checkPermanentConfig '*", "firewall-cmd --check-config failed"),
    ("zone", "/usr/bin/dbus-send", "*'.addService '*|*'.removeService '*|*'.FirewallD1.reload '*",
     "dbus-send: fault injected"),
    ("zone", "/usr/bin/dbus-send", "*'.FirewallD1.checkPermanentConfig '*", "firewall-cmd --check-config failed"),
]


# (the zone's apply reloads nothing, so it runs no --check-config: only its remove can fail there)
CASES = [(kind, tool, when, cause, action) for kind, tool, when, cause in FAILING_WRITES for action in Action
         if not (tool.endswith("postconf") and action is Action.REMOVE)
         and not (kind == "zone" and "checkPermanentConfig" in when and action is Action.APPLY)]


def _case(index: int, case: tuple) -> object:
    """`make test` fails each write in one direction (apply and remove by turns down FAILING_WRITES, or the only
    one it has); `make test-full` fails it in both."""
    kind, tool, when, _cause, action = case
    write = next(i for i, w in enumerate(FAILING_WRITES) if w[:3] == (kind, tool, when))
    directions = [c[4] for c in CASES if c[:3] == (kind, tool, when)]
    quick = directions[0] if len(directions) == 1 else list(Action)[write % 2]
    return pytest.param(*case, id=f"{kind}-{tool.rsplit('/', 1)[1]}-{action.value}-{index}",
                        marks=() if action is quick else pytest.mark.full)


@pytest.mark.parametrize(("kind", "tool", "when", "cause", "action"), [_case(i, c) for i, c in enumerate(CASES)])
def test_a_failing_write_leaves_the_host_as_before(lab: Lab, kind, tool, when, cause, action):
    name, host = "mail3", lab.hosts()[2]
    # Bring the host to the state this script starts from: nothing of ours for apply, converged for remove.
    for _, script in scripts(lab, name, Action.REMOVE if action is Action.APPLY else Action.APPLY):
        run_whole(lab, host, script)
    before = inspect(lab, name)
    script = dict(scripts(lab, name, action))[kind]
    with failing_tool(lab, name, tool, when):
        proc = start_script(lab, host, script)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert cause in err and f"smtps: {name}: " in err and "what this run changed is undone" in err, err
    assert inspect(lab, name) == before
    state = lab.sh(name, "ls /var/lib/smtps-iredmail 2>/dev/null || true").stdout.split()
    assert state == ([] if action is Action.APPLY else ["master", "service-smtps", "zone-iredmail"]), state
