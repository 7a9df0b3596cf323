"""A new stack by docs/servers.md's steps, through the real engine, with no lab: a stack file written by hand, a preview
(no key needed), an `up` without a key (refused in this project's words, naming the stack and the command), the key
stored with `smtps key` (which creates the stack), and an `up` whose host does not answer: its failure is
one line naming host, resource, step and the reason, drawn from the engine's events."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.enginekit import Project

pytestmark = pytest.mark.engine
STACK = "handmade"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def project(tmp_path: Path):
    project = Project.create(tmp_path / "project")
    config = {"smtps-iredmail:hosts": [{"name": "mx1", "address": "127.0.0.1", "port": closed_port(),
                                        "hostKey": HOST_KEY}]}
    text = "# Datacenter handmade: written by hand.\n" + yaml.safe_dump({"config": config})
    (project.folder / "stacks" / f"Pulumi.{STACK}.yaml").write_text(text)
    yield project
    project.pulumi("cancel", "-s", STACK, "--yes", check=False)


def test_a_new_stack_by_the_readme_steps(project: Project, tmp_path: Path):
    preview = project.smtps("preview", "-s", STACK)
    assert "mx1-master" in preview.stdout

    up = project.smtps("up", "-s", STACK, "--yes", check=False)
    assert up.returncode != 0
    said = up.stdout + up.stderr
    assert f"stack {STACK}: no deploy key: store it in the stack with `smtps key -s {STACK} --file " \
           "KEYFILE`" in said
    assert "Missing required configuration" not in said and "Traceback" not in said

    key = tmp_path / "deploy"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    stored = project.smtps("key", "-s", STACK, "--file", str(key))
    assert "deploy key stored" in stored.stderr
    stack_file = (project.folder / "stacks" / f"Pulumi.{STACK}.yaml").read_text()
    assert "secure:" in stack_file and "PRIVATE KEY" not in stack_file  # encrypted, next to the hand-written hosts
    assert "smtps-iredmail:hosts" in stack_file and "# Datacenter handmade: written by hand." in stack_file

    up = project.smtps("up", "-s", STACK, "--yes", check=False)
    assert up.returncode != 0
    # The end of the output: one line for the host, in words, with no traceback in it.
    tail = up.stderr.split("failure(s):", 1)[1]
    assert re.search(r"^  mx1: master\.cf service: create: .*(refused|cannot connect|Connection)", tail, re.M), tail
    assert "Traceback" not in tail and len(tail.strip().splitlines()) == 1

    bad = project.smtps("key", "-s", STACK, "--file", str(key) + ".pub", check=False)
    assert bad.returncode == 2 and "is not a private key" in bad.stderr
