"""The lab's secret files (the SASL password, the inventory that holds it, private keys, the SASL database) are
root's alone from their creation: made with their mode, never written readable and tightened by a chmod after.

Each case runs with umask 0 (the loosest a caller can give) and with every chmod made to fail: a mode of 0600 can
then only come from how the file was created."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from lab import host as hostops
from lab import lab
from lab.render import HostPaths
from lab.spec import build_spec
from tests.conftest import require


@pytest.fixture
def no_chmod(monkeypatch):
    def refused(*_args, **_kwargs):
        raise AssertionError("a secret file was made readable first and tightened by a chmod after")

    monkeypatch.setattr(os, "chmod", refused)
    monkeypatch.setattr(os, "fchmod", refused)
    monkeypatch.setattr(Path, "chmod", refused)
    old = os.umask(0)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_sasl_password_and_the_inventory_are_0600_from_their_creation(tmp_path, no_chmod):
    spec = build_spec(tmp_path / "lab", 2)
    for h in spec.hosts:
        paths = HostPaths(spec.host_dir(h))
        paths.host_key.parent.mkdir(parents=True)
        paths.host_key.with_suffix(".pub").write_text(f"ssh-ed25519 AAAA{h.index} root@{h.fqdn}\n")
    password = lab._sasl_password(spec)  # noqa: SLF001
    assert mode(spec.state_dir / "sasl_password") == 0o600
    lab.write_inventory(spec, password)
    assert mode(spec.inventory_path) == 0o600
    assert password in spec.inventory_path.read_text()


def test_a_link_at_a_secret_path_is_replaced_never_followed(tmp_path, no_chmod):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("theirs")
    target = tmp_path / "inventory.tmp"
    target.symlink_to(elsewhere)
    hostops.write_secret(target, "secret")
    assert elsewhere.read_text() == "theirs"
    assert not target.is_symlink() and target.read_text() == "secret" and mode(target) == 0o600


@pytest.mark.parametrize("tool", ["ssh-keygen", "openssl", "saslpasswd2"])
def test_the_tools_that_write_secrets_run_with_the_secret_umask(tmp_path, no_chmod, tool):
    require(shutil.which(tool) is not None, f"the lab needs {tool}")
    if tool == "ssh-keygen":
        hostops.run([tool, "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "key")], secret=True)
        made = [tmp_path / "key", tmp_path / "key.pub"]
    elif tool == "openssl":
        hostops.run([tool, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-subj", "/CN=x", "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                    secret=True)
        made = [tmp_path / "key.pem", tmp_path / "cert.pem"]
    else:
        hostops.run([tool, "-p", "-c", "-f", str(tmp_path / "sasldb2"), "-u", "example.lab", "user"],
                    input=b"secret", secret=True)
        made = [tmp_path / "sasldb2"]
    for path in made:
        assert mode(path) & 0o077 == 0, (path.name, oct(mode(path)))
    # The same tool without `secret` (umask 0 here) leaves a file others can read: the umask is what closes it.
    if tool == "saslpasswd2":
        hostops.run([tool, "-p", "-c", "-f", str(tmp_path / "open"), "-u", "example.lab", "user"], input=b"x")
        assert mode(tmp_path / "open") & 0o077, oct(mode(tmp_path / "open"))


def test_a_secret_file_left_readable_is_made_0600_on_every_read(tmp_path):
    """A state folder from before the files were made 0600: its sasl_password (and inventory) stay readable unless
    the read itself tightens them."""
    spec = build_spec(tmp_path / "lab", 2)
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    path = spec.state_dir / "sasl_password"
    path.write_text("old-password")
    for loose in (0o644, 0o666, 0o640):
        path.chmod(loose)
        assert lab._sasl_password(spec) == "old-password"  # noqa: SLF001 - the same password, kept
        assert mode(path) == 0o600
    inventory = spec.state_dir / "inventory.json"
    inventory.write_text('{"lab": "x"}')
    inventory.chmod(0o644)
    assert lab.read_inventory(spec.state_dir) == {"lab": "x"} and mode(inventory) == 0o600


@pytest.mark.parametrize("kind", ["link", "hard link"])
def test_a_secret_file_that_is_a_link_is_refused_and_left_as_it_was(tmp_path, kind):
    spec = build_spec(tmp_path / "lab", 2)
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    theirs = tmp_path / "theirs"
    theirs.write_text("theirs")
    theirs.chmod(0o644)
    path = spec.state_dir / "sasl_password"
    if kind == "link":
        path.symlink_to(theirs)
    else:
        os.link(theirs, path)
    with pytest.raises(hostops.LabError, match="symbolic link" if kind == "link" else "has 2 names"):
        lab._sasl_password(spec)  # noqa: SLF001
    assert theirs.read_text() == "theirs" and mode(theirs) == 0o644
