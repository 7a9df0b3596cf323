"""examples/lab-fleet as a user runs it here (`python -m lab.fleet_example`), with the real engine: the program makes
its mail hosts as Pulumi resources (lab/pulumi_host.py) and turns on SMTPS on each with the public component, whose
address and host key are those hosts' outputs. A preview of a fresh stack plans every SMTPS resource of every host
while the addresses are not known; one `up` makes the hosts and SMTPS (465 answers TLS from here); one `destroy`
takes SMTPS off each host before it removes the host, and leaves nothing of the lab on the machine."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pulumi.runtime.rpc import UNKNOWN

from lab import host as hostops
from lab.fleet_example import EXAMPLE
from smtps_iredmail.core import verify
from smtps_iredmail.core.firewall import Firewall
from smtps_iredmail.host import VERIFY_SUFFIX
from smtps_iredmail.kinds import kinds_for
from tests.conftest import require_lab
from tests.enginekit import Project
from tests.lab.labkit import Lab, leftovers

pytestmark = [pytest.mark.lab, pytest.mark.engine]
STACK = "fleettest"
# The example's default: two hosts, a firewalld one and a Debian one with nftables.
HOSTS = {"mail1": "firewalld", "mail2": "nftables"}
SMTPS_TYPE = "pulumi-python:dynamic/smtps:"
LAB_HOST_TYPE = "pulumi-python:dynamic/lab:LabHost"
LAB_TYPE = "pulumi-python:dynamic/lab:Lab"


@dataclass
class Example:
    project: Project
    lab: Lab

    def run(self, command: str, check: bool = True) -> tuple[str, list[dict]]:
        """The runner's output and the engine's resource events of one command."""
        events = self.project.folder / f"events-{command}.jsonl"
        events.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "lab.fleet_example", command, "-s", STACK, "--dir", str(self.project.folder),
                "--events", str(events), "--config", f"labName={self.lab.name}",
                "--config", f"labSubnet={self.lab.subnet}", "--config", f"stateDir={self.lab.state_dir}"]
        result = subprocess.run(argv, cwd=self.project.folder, env=self.project.env, text=True, capture_output=True,
                                timeout=600, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        lines = events.read_text().splitlines() if events.exists() else []
        return result.stdout + result.stderr, [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Iterator[Example]:
    require_lab()
    root = tmp_path_factory.mktemp("fleet")
    # The project's own folder: the example's two files, a backend and a passphrase of the test's own.
    project = Project.create(root / "lab-fleet")
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(EXAMPLE / name, project.folder / name)
    example = Example(project, Lab(root / "state"))
    assert not hostops.lab_namespaces(example.lab.name), f"lab {example.lab.name} is up already: take it down first"
    try:
        yield example
    finally:
        example.run("destroy", check=False)
        example.lab.cli("down", check=False)


def planned(events: list[dict], op: str) -> dict[str, dict]:
    """The resources the engine began a step `op` on, by name."""
    return {e["urn"].rsplit("::", 1)[1] + "@" + e["type"]: e for e in events if e["phase"] == "pre" and e["op"] == op}


def smtps_names(host: str) -> set[str]:
    """What SMTPS declares on a host whose firewall is set: one resource per kind of that firewall, and the check."""
    return {kind.child_name(host) for kind in kinds_for(Firewall(HOSTS[host]))} | {f"{host}-{VERIFY_SUFFIX}"}


def test_preview_plans_every_smtps_resource_while_the_addresses_are_not_known(example: Example):
    said, events = example.run("preview")
    creates = planned(events, "create")
    assert f"lab@{LAB_TYPE}" in creates
    for host in HOSTS:
        assert f"{host}@{LAB_HOST_TYPE}" in creates
        smtps = {key.split("@")[0]: e for key, e in creates.items() if e["type"].startswith(SMTPS_TYPE)
                 and key.startswith(f"{host}-")}
        assert set(smtps) == smtps_names(host), host
        # Every one of them reaches the host at the LabHost's address: an output of a host not made yet.
        assert {e["address"] for e in smtps.values()} == {UNKNOWN}, host
    assert len(smtps_names("mail1")) == 4 and len(smtps_names("mail2")) == 3
    assert re.search(r"address +: \[unknown\]", said)
    # A preview makes nothing.
    assert not hostops.lab_namespaces(example.lab.name) and not example.lab.state_dir.exists()


def test_one_up_makes_the_hosts_and_turns_on_smtps_on_each(example: Example):
    _, events = example.run("up")
    assert not [e for e in events if e["phase"] == "failed"]
    assert {f"{host}@{LAB_HOST_TYPE}" for host in HOSTS} <= set(planned(events, "create"))
    outputs = json.loads(example.project.pulumi("stack", "output", "-s", STACK, "--json", "hosts").stdout)
    assert sorted(outputs) == sorted(HOSTS)
    inventory = {h["name"]: h for h in example.lab.hosts()}
    for host, firewall in HOSTS.items():
        out = outputs[host]
        assert out["address"] == inventory[host]["address"] and out["firewall_used"] == firewall
        # From this machine, as a mail client would: TLS on 465, serving the certificate the stack reports.
        seen = verify.verify(out["address"], expect_sha256=out["cert_sha256"])
        assert seen.ok and seen.tls_version == out["tls_version"] and seen.tls_version in ("TLSv1.2", "TLSv1.3")
        # Which is the certificate file on the host itself.
        der = example.lab.sh(host, f"openssl x509 -in {inventory[host]['tls_cert']} -outform DER | sha256sum").stdout
        assert der.split()[0] == out["cert_sha256"]
    example.lab.record_namespaces()


def test_one_destroy_takes_smtps_off_then_removes_the_hosts_and_leaves_nothing(example: Example):
    _, events = example.run("destroy")
    assert not [e for e in events if e["phase"] == "failed"]
    done = {e["urn"].rsplit("::", 1)[1] + "@" + e["type"]: e["seq"] for e in events
            if e["phase"] == "done" and e["op"] == "delete"}
    began = planned(events, "delete")
    for host in HOSTS:
        smtps = {key: seq for key, seq in done.items() if key.startswith(f"{host}-") and SMTPS_TYPE in key}
        assert {key.split("@")[0] for key in smtps} == smtps_names(host)
        # The host is removed only once SMTPS is off it (its resources' removal ran there, over SSH).
        assert max(smtps.values()) < began[f"{host}@{LAB_HOST_TYPE}"]["seq"]
        assert done[f"{host}@{LAB_HOST_TYPE}"] < began[f"lab@{LAB_TYPE}"]["seq"]
    assert leftovers(example.lab) == []
    state = json.loads(example.project.pulumi("stack", "export", "-s", STACK).stdout)
    assert not state["deployment"].get("resources")
