"""Existing stacks upgrade without replacement: a stack converged by the previous release, taken from this
repository's history, is upgraded to this code through the real engine against two lab hosts (mail1 firewalld, mail2
nftables).

The previous release (PREVIOUS) is the last before the library became the `smtps_iredmail` package: its modules were
the top-level `smtps` and `components`, and the command `python -m smtps`. The engine keeps each resource's provider
serialized in the state (`__provider`, dill, by module reference), so that state names `components.*`. This code's
first preview must show only in-place updates of that stored provider (no resource made, replaced or deleted: the
URNs, types and parents are the same, so no aliases are needed), its first `up` must store the new one and run nothing
on the hosts, and then refresh and destroy, which load the providers from the state, must work.

The previous release also spread hosts over 16 provider processes (`ssh-N`), this code over 4: a host whose slot
changes moves to another provider, which the engine does not take for a replacement (it asks the new provider whether
its configuration needs one, and a dynamic provider says not). The providers no host uses any more are deleted from
the state, the ones now used made: provider resources only, nothing on a host."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pickletools
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from lab import probe
from smtps_iredmail.core import verify
from smtps_iredmail.host import provider_slot
from tests.conftest import require
from tests.enginekit import REPO, Project
from tests.lab.labkit import Lab, running_lab
from tests.lab.smtpskit import mark_runtime, postfix_reloads, runtime_mark_survived, ssh_counts

pytestmark = [pytest.mark.lab, pytest.mark.engine]
STACK = "upgrade"
# The last commit before the package (its modules top-level `smtps` and `components`).
PREVIOUS = "2a5dbbe861ffeeb16f6234518a49358a7ebc639e"
PROVIDER = "__provider"
SLOTS_NOW = {f"ssh-{provider_slot(name)}" for name in ("mail1", "mail2")}
# A dotted module name as a pickle names a class's module (dill pickles the providers' classes by reference).
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")

# The engine's steps of a preview, from its own events (not its text): op, URN, the keys the engine says differ, the
# inputs that differ between the state and the program, and of those the ones not known at preview (an output of a
# resource the preview updates); by name only: the providers' inputs hold the key.
STEPS = """
import json, sys
from pulumi.runtime.rpc import UNKNOWN
from smtps_iredmail.core import engine

steps = []

def on_event(event):
    pre = event.resource_pre_event
    if pre is None:
        return
    meta = pre.metadata
    old = (meta.old.inputs if meta.old else None) or {}
    new = (meta.new.inputs if meta.new else None) or {}
    differ = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
    steps.append({"op": str(getattr(meta.op, "value", meta.op)), "urn": meta.urn, "diffs": sorted(meta.diffs or []),
                  "inputs": differ, "unknown": [k for k in differ if UNKNOWN in json.dumps(new.get(k))]})

engine.stack(sys.argv[1]).preview(on_event=on_event)
with open(sys.argv[2], "w") as out:
    json.dump(steps, out)
"""


def previous_tree(folder: Path) -> Path:
    """The previous release's files, from this repository's history, with the engine it looks for (`.tools`)."""
    have_git = shutil.which("git") is not None and (REPO / ".git").exists()
    require(have_git, f"the previous release is taken from this repository's git history: {REPO} is no git checkout")
    found = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{PREVIOUS}^{{commit}}"],
                           capture_output=True, text=True)
    require(found.returncode == 0,
            f"the previous release {PREVIOUS} is not in this clone's history (a shallow clone? `git fetch --unshallow`"
            f" or check out with full depth): the upgrade from it cannot be tested")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", PREVIOUS], capture_output=True,
                             check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    # Its engine.py runs the engine from .tools/bin beside its own code.
    (folder / ".tools").symlink_to(REPO / ".tools")
    assert (folder / "components" / "program.py").exists() and not (folder / "components" / "__main__.py").exists()
    return folder


@pytest.fixture(scope="module")
def old_tree(tmp_path_factory) -> Path:
    return previous_tree(tmp_path_factory.mktemp("previous") / "tree")


@pytest.fixture(scope="module")
def lab(tmp_path_factory, old_tree):  # old_tree first: without it there is nothing to test, so no lab is made
    with running_lab(tmp_path_factory, "upgrade", "--hosts", "2", "--variants", "mail2=iredmail-debian") as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def project(lab: Lab, old_tree: Path, tmp_path_factory):
    project = Project.for_lab(tmp_path_factory.mktemp("upgrade") / "smtps", lab, STACK)
    # This code as installed: nothing but the package on the path (PYTHONPATH was for `python -m lab stack`). With
    # the repository on it, a state's `components.*` would load this code's components/ folder under the old name.
    project.env.pop("PYTHONPATH")
    yield project
    if project.smtps("destroy", "-s", STACK, "--yes", check=False).returncode != 0:
        previous(project, old_tree, "destroy", "-s", STACK, "--yes")  # the state still names the old modules


@pytest.fixture(scope="module")
def found(lab: Lab, project: Project) -> dict[str, dict[str, str]]:
    """Each host as the lab made it, before the previous release's first run."""
    return {h["name"]: host_files(lab, h["name"]) for h in lab.hosts()}


def previous(project: Project, old_tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m smtps ARGS` of the previous release, in the same project (its folder, backend, passphrase). The
    provider processes the engine starts inherit PYTHONPATH, so they load its `components` too."""
    result = subprocess.run([sys.executable, "-m", "smtps", *args], cwd=project.folder,
                            env={**project.env, "PYTHONPATH": str(old_tree)}, text=True, capture_output=True,
                            timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"previous release: smtps {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def host_files(lab: Lab, name: str) -> dict[str, str]:
    """What a run may change on a host, by digest: master.cf, the firewalld zone and service files, the nftables
    file and the live ruleset (without counters), and this tool's state folder."""
    script = (
        "cd /etc && for f in postfix/master.cf postfix/main.cf nftables.conf; do "
        "if [ -e \"$f\" ]; then sha256sum \"$f\"; fi; done; "
        "for d in firewalld/zones firewalld/services; do if [ -d \"$d\" ]; then find \"$d\" -type f "
        "-exec sha256sum {} +; fi; done; "
        "printf '%s  state\\n' \"$( (find /var/lib/smtps-iredmail -printf '%y %m %p\\n' -type f "
        "-exec sha256sum {} + 2>/dev/null || true) | LC_ALL=C sort | sha256sum | cut -d' ' -f1)\"")
    out = lab.sh(name, script).stdout
    # The live ruleset table by table, in name order: a firewalld reload makes its tables again, listed last.
    tables = sorted("table " + block for block in lab.sh(name, "nft -s list ruleset").stdout.split("table ")[1:])
    return {**{path: digest for digest, path in (line.split("  ", 1) for line in out.splitlines())},
            "ruleset": hashlib.sha256("".join(tables).encode()).hexdigest()}


def run_snapshots(lab: Lab, name: str) -> list[str]:
    """The run snapshots on a host: a script that changes a file keeps it there first, under its run's name."""
    return lab.sh(name, "ls /run/smtps-iredmail/runs 2>/dev/null || true").stdout.split()


def state(project: Project) -> dict[str, dict]:
    """The stack's resources by URN, as its backend holds them."""
    exported = json.loads(project.pulumi("stack", "export", "-s", STACK).stdout)
    return {r["urn"]: r for r in exported["deployment"].get("resources") or []}


def provider_modules(resource: dict) -> set[str]:
    """The modules a resource's stored provider names (the pickle's strings, read, never loaded)."""
    serialized = (resource.get("outputs") or {}).get(PROVIDER)
    if not isinstance(serialized, str):
        return set()
    return {arg for _, arg, _ in pickletools.genops(base64.b64decode(serialized))
            if isinstance(arg, str) and _MODULE.fullmatch(arg)}


def without_provider(props: dict) -> dict:
    return {key: value for key, value in props.items() if key != PROVIDER}


def dynamic(resources: dict[str, dict]) -> dict[str, dict]:
    return {urn: r for urn, r in resources.items() if r["type"].startswith("pulumi-python:dynamic")}


def shape(resources: dict[str, dict]) -> dict[str, tuple]:
    """What makes a resource the same one to the engine: type, parent, provider (its URN and id), id."""
    return {urn: (r["type"], r.get("parent"), r.get("provider"), r.get("id")) for urn, r in resources.items()}


def test_the_previous_release_converges_the_stack(lab: Lab, project: Project, old_tree: Path, found):
    up = previous(project, old_tree, "up", "-s", STACK, "--yes")
    print(f"--- previous release: python -m smtps up -s {STACK} --yes\n{up.stdout}{up.stderr}")
    for host in lab.hosts():
        seen = verify.verify(host["address"])
        assert seen.ok, (host["name"], seen)
    resources = dynamic(state(project))
    # 2 hosts with firewall auto: 4 kinds and the check each.
    assert len(resources) == 10
    for urn, resource in resources.items():
        assert any(m.startswith("components.") for m in provider_modules(resource)), urn
    assert host_files(lab, "mail1")["firewalld/services/smtps.xml"]  # the firewalld host's service file was written
    assert host_files(lab, "mail2")["ruleset"] != found["mail2"]["ruleset"]  # the nftables host's rule went in


def test_the_first_preview_after_the_upgrade_updates_only_the_stored_provider(project: Project, tmp_path):
    summary = tmp_path / "summary.json"
    preview = project.smtps("preview", "-s", STACK, "--diff", "--summary", str(summary))
    print(f"--- this code: smtps preview -s {STACK} --diff\n{preview.stdout}{preview.stderr}")
    changes = json.loads(summary.read_text())["changes"]
    # Every dynamic resource (2 hosts x 5) is updated in place; nothing replaced; made or deleted only providers.
    assert changes.get("update") == 10 and set(changes) <= {"same", "update", "create", "delete"}, changes
    steps_file = tmp_path / "steps.json"
    subprocess.run([sys.executable, "-c", STEPS, STACK, str(steps_file)], cwd=project.folder, env=project.env,
                   check=True, capture_output=True, timeout=600)
    steps = json.loads(steps_file.read_text())
    print("--- the engine's steps (op, resource, inputs that differ, of those not known at preview):")
    for step in steps:
        print(f"  {step['op']:<7} {step['urn'].rsplit('::', 1)[-1]:<16} {step['inputs']} unknown={step['unknown']}")
    assert {step["op"] for step in steps} <= {"same", "update", "create", "delete"}, steps
    updated = [step for step in steps if step["op"] == "update"]
    assert len(updated) == 10 and all("pulumi-python:dynamic" in step["urn"] for step in updated)
    for step in updated:
        # Only the stored provider; the check's inputs that are its host resources' outputs are not known while
        # those are updated (a preview never runs an update), and the up below finds them as they were.
        assert set(step["inputs"]) - set(step["unknown"]) == {PROVIDER} and not step["diffs"], step
        assert not step["unknown"] or step["urn"].endswith("-verify"), step
    # The components and the stack: the same. The providers (ssh-N): the ones the hosts use now, made or kept, the
    # others deleted.
    others = {step["urn"]: step["op"] for step in steps if step not in updated}
    providers = {urn: op for urn, op in others.items() if "::pulumi:providers:pulumi-python::" in urn}
    assert all(op == "same" for urn, op in others.items() if urn not in providers), others
    assert {urn.rsplit("::", 1)[-1] for urn, op in providers.items() if op in ("same", "create")} == SLOTS_NOW
    assert set(providers.values()) <= {"same", "create", "delete"}, providers


def test_before_that_up_refresh_and_destroy_are_refused_saying_what_to_do(project: Project):
    before = state(project)
    for args in (("refresh", "--yes"), ("destroy", "--yes"), ("up", "--yes", "--refresh"), ("preview", "--refresh")):
        refused = project.smtps(args[0], "-s", STACK, *args[1:], check=False)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert (f"stack {STACK}: its state was written by the release before the package" in refused.stderr
                and f"run `smtps up -s {STACK}` once first, without --refresh" in refused.stderr), refused.stderr
    assert state(project) == before


def test_before_that_a_canary_up_is_refused_saying_what_to_do(project: Project):
    # An up limited to the canary (--target) cannot move mail1 from ssh-9 to ssh-1, and the engine would refuse it.
    assert provider_slot("mail2") == 3 and provider_slot("mail1") != 9
    before = state(project)
    refused = project.smtps("up", "-s", STACK, "--yes", "--canary", "mail2", check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert (f"stack {STACK}: host mail1, provider ssh-9: in the provider processes of an earlier release"
            in refused.stderr
            and f"`smtps up -s {STACK} --no-canary` once" in refused.stderr), refused.stderr
    assert state(project) == before


def test_the_first_up_stores_the_new_provider_and_runs_nothing_on_the_hosts(lab: Lab, project: Project, tmp_path):
    before = state(project)
    hosts = {}
    for host in lab.hosts():
        name = host["name"]
        if name == "mail1":  # the firewalld host
            mark_runtime(lab, name)
        hosts[name] = (host_files(lab, name), run_snapshots(lab, name), postfix_reloads(lab, name),
                       ssh_counts(lab, name))
    summary = tmp_path / "summary.json"
    up = project.smtps("up", "-s", STACK, "--yes", "--summary", str(summary))
    print(f"--- this code: smtps up -s {STACK} --yes\n{up.stdout}{up.stderr}")
    changes = json.loads(summary.read_text())["changes"]
    assert changes.get("update") == 10 and set(changes) <= {"same", "update", "create", "delete"}, changes
    for host in lab.hosts():
        name = host["name"]
        # Not one SSH connection: no script ran, no file changed, Postfix and firewalld were not reloaded.
        assert (host_files(lab, name), run_snapshots(lab, name), postfix_reloads(lab, name),
                ssh_counts(lab, name)) == hosts[name], name
    assert runtime_mark_survived(lab, "mail1"), "mail1: firewalld was reloaded"
    lab.sh("mail1", "firewall-cmd --zone=iredmail --remove-icmp-block=timestamp-request >/dev/null")
    after = state(project)
    # The same resources (type, parent, id), each now with the provider of its host's slot.
    def without_providers(resources: dict[str, dict]) -> dict[str, tuple]:
        return {urn: kept[:2] + kept[3:] for urn, kept in shape(resources).items() if "::pulumi:providers:" not in urn}

    assert without_providers(after) == without_providers(before)
    for urn, resource in dynamic(after).items():
        host = urn.rsplit("::", 1)[-1].rsplit("-", 1)[0]
        assert resource["provider"].split("::")[-2] == f"ssh-{provider_slot(host)}", (urn, resource["provider"])
    assert {urn.rsplit("::", 1)[-1] for urn in after if "::pulumi:providers:" in urn} == SLOTS_NOW
    for urn, resource in dynamic(after).items():
        modules = provider_modules(resource)
        assert not any(m.startswith("components.") for m in modules), (urn, modules)
        assert any(m.startswith("smtps_iredmail.") for m in modules), (urn, modules)
        # What the resource applied and saw (its revision, the check's findings) stands: only the provider changed.
        for field in ("inputs", "outputs"):
            old, new = before[urn][field], resource[field]
            assert without_provider(new) == without_provider(old), (urn, field)


def test_then_nothing_changes_and_refresh_reads_the_hosts_with_the_stored_providers(lab: Lab, project: Project):
    project.smtps("preview", "-s", STACK, "--expect-no-changes")
    counts = {h["name"]: ssh_counts(lab, h["name"]) for h in lab.hosts()}
    project.smtps("refresh", "-s", STACK, "--yes")
    # The refresh really read each host (over SSH, by the providers loaded from the state), and found it as applied.
    assert all(ssh_counts(lab, name)[0] > counts[name][0] for name in counts)
    project.smtps("preview", "-s", STACK, "--expect-no-changes")
    # Every host in its slot now: a canary's up goes through (nothing to change).
    canary = project.smtps("up", "-s", STACK, "--yes", "--canary", "mail2")
    assert "canary mail2 converged and verified" in canary.stderr, canary.stderr


def test_destroy_leaves_each_host_as_found(lab: Lab, project: Project, found):
    project.smtps("destroy", "-s", STACK, "--yes")
    for host in lab.hosts():
        name, now, before = host["name"], host_files(lab, host["name"]), dict(found[host["name"]])
        if name == "mail1":
            # The firewalld host's live ruleset lost the interface's runtime binding to the zone at the previous
            # release's reload, as any reload drops it (docs/lab.md: eth0 then falls into the default zone, the
            # same iredmail): its files, which are what firewalld loads, are compared.
            del now["ruleset"], before["ruleset"]
        assert now == before, name
        assert lab.sh(name, "test -e /var/lib/smtps-iredmail", check=False).returncode != 0
        assert probe.smtps(host["address"]).state != "tls", name
    assert not dynamic(state(project))
