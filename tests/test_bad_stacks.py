"""A corpus of bad stack files (tests/bad_stacks/<stack>.yaml, each a Pulumi.<stack>.yaml as an operator would
write it): every one is refused before any SSH connection, with a message that names the stack, the host (or
bastion) and the setting. Each file says what is wrong in its first comment and what the message must say in its
`# expect:` lines.

Twice: through the real program under Pulumi's mocks with every way out to the network booby-trapped (fast, and it
sees the bastions too); and through the real engine, `smtps up --yes` on each file, with a listener on
every host address of the corpus counting connection attempts."""

from __future__ import annotations

import ipaddress
import json
import selectors
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pytest
import yaml

from smtps_iredmail.core.reader import ipv4_inside
from smtps_iredmail.core.stacks import PROJECT
from tests.enginekit import Project
from tests.test_hostile_input import Mocks, NoNetwork

CORPUS = Path(__file__).parent / "bad_stacks"


@dataclass(frozen=True)
class BadStack:
    stack: str
    text: str
    config: dict
    expect: list[str]


def load(path: Path) -> BadStack:
    text = path.read_text()
    expect = [line.removeprefix("# expect: ") for line in text.splitlines() if line.startswith("# expect: ")]
    return BadStack(path.stem, text, yaml.safe_load(text)["config"], expect)


FILES = [load(path) for path in sorted(CORPUS.glob("*.yaml"))]


def assert_refused(bad: BadStack, message: str) -> None:
    for expected in bad.expect:
        assert f"stack {bad.stack}, {expected}" in message or f"stack {bad.stack}: {expected}" in message, (
            f"{bad.stack}: {expected!r} not in:\n{message}")


def test_the_corpus_is_at_least_thirty_files_each_expecting_stack_host_and_setting():
    assert len(FILES) >= 30
    for bad in FILES:
        assert bad.expect, f"{bad.stack}: no `# expect:` line"
        # Every file's expectation names a host (or bastion) and a setting: the stack is prefixed by the check.
        assert any(("host " in e or "bastion " in e) and "setting " in e for e in bad.expect), bad.stack
    cases = {bad.stack for bad in FILES}
    assert {"duplicate-host-name", "jump-to-unknown-bastion", "canary-not-a-host", "unknown-setting",
            "port-as-text"} <= cases


@pytest.mark.parametrize("bad", FILES, ids=[bad.stack for bad in FILES])
def test_a_bad_stack_file_is_refused_by_the_program_before_any_connection(bad: BadStack, monkeypatch):
    from smtps_iredmail.program import program

    network = NoNetwork(monkeypatch)
    mocks = Mocks()
    config = {key: json.dumps(value) for key, value in bad.config.items()}
    pulumi.runtime.set_all_config({**config, f"{PROJECT}:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----"},
                                  [f"{PROJECT}:sshPrivateKey"])
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=bad.stack, preview=False)
    try:
        with pytest.raises(pulumi.RunError) as refused:
            program()
    finally:
        pulumi.runtime.set_all_config({})
    message = str(refused.value)
    assert_refused(bad, message)
    # Every line of the message names the stack: nothing is said about a host without saying where it is.
    assert all(line.startswith(f"stack {bad.stack}") for line in message.splitlines()[1:]), message
    assert mocks.resources == [] and network.attempts == []


class Listener:
    """Accepts on one port of every corpus address and counts what connects (an SSH attempt would)."""

    def __init__(self, addresses: list[str]) -> None:
        self.port, self.attempts = 0, 0
        self.sockets: list[socket.socket] = []
        for address in addresses:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, self.port))
            self.port = self.port or sock.getsockname()[1]
            sock.listen()
            self.sockets.append(sock)
        self.selector = selectors.DefaultSelector()
        for sock in self.sockets:
            self.selector.register(sock, selectors.EVENT_READ)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            for key, _ in self.selector.select(timeout=0.2):
                conn, _ = key.fileobj.accept()
                self.attempts += 1
                conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def corpus_addresses() -> list[str]:
    found = set()
    for bad in FILES:
        for host in bad.config.get(f"{PROJECT}:hosts") or []:
            try:
                address = ipaddress.ip_address(host["address"])
            except (TypeError, KeyError, ValueError):
                continue  # an address that is itself the bad setting: never reached
            # An IPv6 spelling of an IPv4 address (IPv4-mapped, NAT64, ...) is that machine: its listener counts it.
            inside = ipv4_inside(address) if isinstance(address, ipaddress.IPv6Address) else None
            found.add(str(inside[1] if inside else address))
    return sorted(found)


def test_every_bad_stack_file_fails_up_through_the_real_engine_and_nothing_connects(tmp_path):
    listener = Listener(corpus_addresses())
    try:
        project = Project.create(tmp_path / "smtps")
        # Every host of the corpus (whose port is not the bad setting) would be reached on the listener's port.
        manifest = yaml.safe_load((project.folder / "Pulumi.yaml").read_text())
        manifest["config"][f"{PROJECT}:fleet"]["value"]["port"] = listener.port
        (project.folder / "Pulumi.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        for bad in FILES:
            (project.folder / "stacks" / f"Pulumi.{bad.stack}.yaml").write_text(bad.text)

        def up(bad: BadStack) -> tuple[BadStack, str, int]:
            result = project.smtps("up", "-s", bad.stack, "--yes", check=False)
            return bad, result.stdout + result.stderr, result.returncode

        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(up, FILES))
    finally:
        listener.close()
    for bad, output, status in results:
        # 1: the program refused it inside the engine; 2: the front end refused it first (a stack's canaries
        # are checked before the canary phase is planned).
        assert status in (1, 2), f"{bad.stack}: exit {status}\n{output}"
        assert "bad SMTPS settings" in output or "smtps: bad settings" in output, output
        assert_refused(bad, output)
        # The program stopped before registering anything but the stack itself: no provider (so no process that
        # could open SSH), no host component, no resource.
        assert "pulumi-python" not in output and "SmtpsHost" not in output, output
    assert listener.attempts == 0
