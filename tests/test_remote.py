"""The one remote layer (smtps/remote.py): the deploy key's one loader, and the one parser of the host's answers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from smtps_iredmail.core import remote
from smtps_iredmail.core.credentials import SSH_KEY_FILE_ENV


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
