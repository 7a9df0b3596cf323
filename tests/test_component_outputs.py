"""SmtpsHost with values that are Outputs of another resource, through the real engine: each bad value is refused by
the providers' `check` as soon as it is known, in the same words as the same value written plainly, and no host is
contacted (a listener on the SSH port sees no connection)."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from tests.enginekit import Project

pytestmark = pytest.mark.engine
GOOD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"


class Listener:
    """A TCP listener on loopback that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()


@pytest.fixture
def listener():
    found = Listener()
    yield found
    found.sock.close()


@pytest.mark.parametrize(("address", "host_key", "message"), [
    ("0x7f000001", GOOD_KEY,
     "stack t1, host mx1, setting address: '0x7f000001' is read by the resolver as the IPv4 address 127.0.0.1: "
     "write 127.0.0.1"),
    ("127.0.0.1", "garbage", "stack t1, host mx1, setting hostKey: 'garbage' is not a public host key like "
                             "'ssh-ed25519 AAAA...'"),
])
def test_a_bad_value_from_another_resource_is_refused_before_any_connection(tmp_path, listener, address, host_key,
                                                                            message):
    project = Project.create(tmp_path / "project", SMTPS_PROGRAM="tests.engine_fixture:smtps_host_from_outputs",
                             SMTPS_SSH_KEY_FILE=str(tmp_path / "no-key-needed"))
    project.pulumi("stack", "init", "t1", "--secrets-provider", "passphrase")
    for key, value in (("address", address), ("hostKey", host_key), ("sshPort", str(listener.port))):
        project.pulumi("config", "set", "-s", "t1", key, value)

    # At preview the values are not known yet: every SMTPS resource is planned.
    preview = project.smtps("preview", "-s", "t1")
    assert "mx1-master" in preview.stdout and "mx1-verify" in preview.stdout, preview.stdout

    up = project.smtps("up", "-s", "t1", "--yes", check=False)
    assert up.returncode != 0
    assert message in up.stdout + up.stderr, up.stdout + up.stderr
    state = json.loads(project.pulumi("stack", "export", "-s", "t1").stdout)
    made = [r["urn"].rsplit("::", 1)[1] for r in state["deployment"].get("resources") or []]
    assert "server" in made and not [name for name in made if name.startswith("mx1-")], made
    assert listener.accepted == 0


def test_the_same_value_written_plainly_fails_when_the_program_runs_in_the_same_words(tmp_path, listener):
    project = Project.create(tmp_path / "project", SMTPS_PROGRAM="tests.engine_fixture:smtps_host_plain")
    project.pulumi("stack", "init", "t1", "--secrets-provider", "passphrase")
    project.pulumi("config", "set", "-s", "t1", "address", "0x7f000001")
    project.pulumi("config", "set", "-s", "t1", "sshPort", str(listener.port))
    preview = project.smtps("preview", "-s", "t1", check=False)
    assert preview.returncode != 0
    assert ("stack t1, host mx1, setting address: '0x7f000001' is read by the resolver as the IPv4 address "
            "127.0.0.1: write 127.0.0.1") in preview.stdout + preview.stderr
    assert listener.accepted == 0
