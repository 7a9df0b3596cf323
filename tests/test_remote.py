"""The one remote layer (smtps/remote.py): the deploy key's one loader, and the one parser of the host's answers."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

from smtps_iredmail.core import remote
from smtps_iredmail.core.credentials import SSH_KEY_FILE_ENV
from smtps_iredmail.core.settings import Connection

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def test_answer_lines_are_parsed_once_and_each_reader_takes_what_it_trusts():
    said = remote.answers("smtps: mail1: warning: x=y said as prose\nsmtps-firewall=nftables\nk=1\nnoise\nk=2\n"
                          "smtps-firewall=firewalld\nempty=\n")
    assert said.all("k") == ("1", "2") and said.last("k") == "2" and said.first("smtps-firewall") == "nftables"
    assert said.last("empty") == "" and said.last("missing") is None and said.latest()["k"] == "2"
    # A line without `=` is no answer, and a warning's words are never a key.
    assert "noise" not in said.values and said.first("smtps: mail1: warning: x") == "y said as prose"


def test_the_deploy_key_is_the_secret_at_hand_else_the_file_else_the_secret_asked_for(monkeypatch, tmp_path):
    monkeypatch.delenv(SSH_KEY_FILE_ENV, raising=False)
    key = tmp_path / "key"
    key.write_text("FROM-FILE")
    asked = []
    assert remote.deploy_key("GIVEN") == "GIVEN"
    assert remote.deploy_key(lambda: asked.append(1) or "ASKED", "dc1") == "ASKED" and asked == [1]
    monkeypatch.setenv(SSH_KEY_FILE_ENV, str(key))
    assert remote.deploy_key("GIVEN") == "GIVEN"
    assert remote.deploy_key(lambda: pytest.fail("decrypted although a file is set"), "dc1") == "FROM-FILE"
    assert remote.deploy_key(None) == "FROM-FILE"
    monkeypatch.setenv(SSH_KEY_FILE_ENV, str(tmp_path / "nope"))
    with pytest.raises(remote.SshError, match=f"^stack dc1: {SSH_KEY_FILE_ENV}=.*/nope cannot be read: No such"):
        remote.deploy_key(lambda: None, "dc1")
    with pytest.raises(remote.SshError, match=f"^the SSH private key file {SSH_KEY_FILE_ENV}=.*/nope cannot be"):
        remote.deploy_key(None)
    monkeypatch.delenv(SSH_KEY_FILE_ENV)
    with pytest.raises(remote.SshError, match="^stack dc1: no deploy key: "):
        remote.deploy_key(lambda: None, "dc1")
    with pytest.raises(remote.SshError, match="^no SSH private key: set SMTPS_SSH_KEY_FILE to a key file, or the "
                                              "stack's secret with `pulumi config set --secret sshPrivateKey`"):
        remote.deploy_key(None)


def test_a_provider_process_loads_no_paramiko_until_it_connects():
    """Preview and a no-op up start every provider process but never open SSH: paramiko is imported on first use."""
    code = ("import sys, smtps_iredmail.base, smtps_iredmail.verification, smtps_iredmail.kinds\n"
            "assert 'paramiko' not in sys.modules, 'paramiko imported at start-up'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_paramiko_is_loaded_without_invoke_and_invoke_stays_importable():
    """paramiko imports `invoke` only for ssh_config's `Match exec`, which nothing here reads: the provider's import
    of it leaves invoke out (half of paramiko's import), and only for that import."""
    code = ("import sys\nfrom smtps_iredmail.core import remote\nparamiko = remote._paramiko()\n"
            "assert 'invoke' not in sys.modules and paramiko.config.invoke is None\n"
            "assert paramiko.SSHClient and remote._paramiko() is paramiko\n"
            "import invoke\nassert invoke.run\n")
    subprocess.run([sys.executable, "-c", code], check=True)


class _Transport:
    def __init__(self, on_open: Callable[[_Transport], None] | None = None) -> None:
        self.active, self.on_open = True, on_open

    def is_active(self) -> bool:
        return self.active

    def open_channel(self, *_args: object, **_kwargs: object) -> object:
        if self.on_open:
            self.on_open(self)
        return object()


class _Client:
    def __init__(self, transport: _Transport) -> None:
        self.transport, self.closed = transport, False

    def get_transport(self) -> _Transport:
        return self.transport

    def close(self) -> None:
        self.closed, self.transport.active = True, False


def test_a_call_that_finds_its_bastion_gone_does_not_close_the_connection_another_call_made_since(monkeypatch):
    """A provider process serves up to 32 hosts at once, many behind one bastion: a call whose channel failed
    because the bastion's connection died forgets that connection, not the one another call has made since (which
    every host behind the bastion now uses)."""
    import paramiko

    pool = object.__new__(remote.Pool)
    pool._clients, pool._locks, pool._guard = {}, {}, threading.Lock()  # noqa: SLF001
    jump = Connection("192.0.2.10", 22, "root", KEY, name="bastion")
    made: list[_Client] = []

    def dies_then_another_call_connects_again(transport: _Transport) -> None:
        transport.active = False  # the bastion's connection drops under this call's channel
        pool._client("mail2's bastion", jump)  # noqa: SLF001  meanwhile another host's call connects again
        raise paramiko.SSHException("channel closed")

    def connect(_host: str, _conn: Connection) -> _Client:
        made.append(_Client(_Transport(None if made else dies_then_another_call_connects_again)))
        return made[-1]

    monkeypatch.setattr(pool, "_connect", connect)
    with pytest.raises(remote.SshError, match="could not open a connection"):
        pool._forward("mail1", jump, "192.0.2.11", 22)  # noqa: SLF001
    assert len(made) == 2 and not made[1].closed
    assert pool._client("mail3's bastion", jump) is made[1]  # noqa: SLF001  still the pooled one
    pool.forget(jump, made[0])  # the broken one, named: not the pooled one
    assert not made[1].closed
    pool.forget(jump)
    assert made[1].closed

