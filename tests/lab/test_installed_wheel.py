"""The installed library, tested from outside: the wheel built from this repository, installed with its dependencies
into a fresh virtualenv outside it, then a Pulumi program of a user's own (tests/lab/own_program.py, copied out of
the repository) that builds an SmtpsHost whose address and host key come from another resource, run by the real
engine against a lab host: preview with both unknown, up, TLS on 465 seen from here, destroy leaving the host as
found. Nothing of the repository is on the path of that program or of the provider processes the engine starts.
The installed `smtps` command previews a stack of a project folder of its own, with the `pulumi` on PATH.

One virtualenv per test session (installing from the package index takes about a minute); each phase's time is
printed. Where pip cannot reach the index the tests skip, and fail under CI=true (tests/conftest.py)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require
from tests.enginekit import PULUMI, require_engine
from tests.lab.labkit import Lab, running_lab
from tests.lab.smtpskit import snapshot, ssh_counts

pytestmark = [pytest.mark.lab, pytest.mark.engine]

REPO = Path(__file__).resolve().parents[2]
PROGRAM = Path(__file__).with_name("own_program.py")
PYTHON = shutil.which("python3") or sys.executable
# pip as the Makefile's PIP runs it: no pip.conf of any kind, no PIP_* variables, no user site, no cache.
PIP_ENV = {"PIP_CONFIG_FILE": "/dev/null", "PYTHONNOUSERSITE": "1"}
PIP = ["-I", "-m", "pip", "--isolated", "--no-cache-dir", "--disable-pip-version-check"]
# What pip says when it cannot reach the index (it may go on to a misleading "conflicting dependencies").
OFFLINE = re.compile(r"NewConnectionError|Failed to establish a new connection|ConnectTimeoutError|ProxyError|"
                     r"Temporary failure in name resolution|Network is unreachable|connection broken by")
# The one installed name and its metadata; the repository's folders that must not be installed.
OWN = {"smtps_iredmail", "smtps_iredmail-0.1.0.dist-info"}
REPO_ONLY = {"components", "smtps", "templates", "lab", "tests", "bench", "tools"}
# The commands `smtps --help` lists.
COMMANDS = "{preview,up,refresh,destroy,key,verify,drift,fleet,pulumi}"
STACK = "own"
TIMINGS: dict[str, float] = {}


def timed(phase: str, started: float) -> None:
    TIMINGS[phase] = time.monotonic() - started
    print(f"installed wheel: {phase} took {TIMINGS[phase]:.1f} s")


def outside_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that could point Python or Pulumi at the repository."""
    dropped = ("PYTHON", "PIP_", "PULUMI_", "SMTPS_", "VIRTUAL_ENV")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(dropped)}, **extra}


def pip(python: Path | str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """pip, isolated; a failure to reach the index is a skip (a failure under CI=true), any other failure fails."""
    result = subprocess.run([str(python), *PIP, *args], cwd=cwd, env=outside_env(**PIP_ENV), text=True,
                            capture_output=True, timeout=900, stdin=subprocess.DEVNULL)
    said = result.stdout + result.stderr
    offline = [line for line in said.splitlines() if OFFLINE.search(line)]
    if result.returncode != 0 and offline:
        require(False, f"pip cannot reach the package index: {offline[-1].strip()[:300]}")
    assert result.returncode == 0, f"pip {' '.join(args)} failed:\n{said}"
    return result


def repo_state() -> tuple[str, dict[str, int]]:
    """What a build could leave in the repository: git's view, ignored files included (build/, a new *.egg-info),
    and the files of an egg-info already there (an editable install's), by modification time."""
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=REPO, text=True, capture_output=True,
                            check=True).stdout
    eggs = {str(p): p.stat().st_mtime_ns for p in REPO.glob("*.egg-info/**/*") if p.is_file()}
    return status, eggs


def build_wheel(into: Path) -> Path:
    """`pip wheel --no-deps` of the repository's files (tracked or new, as git lists them) copied out first:
    setuptools builds in the source folder (build/, *.egg-info), which must not be the repository."""
    source = into / "source"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():  # a tracked file deleted in the work tree is not built
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    pip(sys.executable, "wheel", "--no-deps", "--wheel-dir", str(into / "dist"), str(source), cwd=into)
    [wheel] = (into / "dist").glob("smtps_iredmail-*.whl")
    return wheel


@dataclass
class Installed:
    wheel: Path
    files: list[str]
    venv: Path
    site: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Installed:
    require(shutil.which("git") is not None, "building the wheel from the repository needs git")
    work = tmp_path_factory.mktemp("wheel")
    before = repo_state()
    started = time.monotonic()
    wheel = build_wheel(work)
    timed("building the wheel", started)
    assert repo_state() == before, "building the wheel changed the repository's tree"
    assert not (REPO / "build").exists()
    files = zipfile.ZipFile(wheel).namelist()
    print(f"installed wheel: {wheel.name} holds {len(files)} files:\n  " + "\n  ".join(files))

    venv = work / "venv"
    started = time.monotonic()
    subprocess.run([PYTHON, "-I", "-m", "venv", str(venv)], env=outside_env(PYTHONNOUSERSITE="1"), check=True)
    # The dependencies at the versions requirements.txt pins, so the run is the same each time.
    pip(venv / "bin" / "python", "install", "--constraint", str(REPO / "requirements.txt"), str(wheel), cwd=work)
    timed("creating the virtualenv and installing the wheel with its dependencies", started)
    [site] = venv.glob("lib/python3*/site-packages")
    return Installed(wheel, files, venv, site)


def run_installed(installed: Installed, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A command of the fresh virtualenv, from a folder outside the repository."""
    result = subprocess.run(argv, cwd=cwd, env=outside_env(), text=True, capture_output=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_the_wheel_installs_only_smtps_iredmail_and_runs_outside_the_repository(installed: Installed, tmp_path):
    assert {name.split("/")[0] for name in installed.files} == OWN
    # The package data and the host programs the providers read from the installed package.
    for name in ("smtps_iredmail/templates/master_service.sh.j2", "smtps_iredmail/core/firewalld_services.txt",
                 "smtps_iredmail/core/lockout_guard.py", "smtps_iredmail/host.py"):
        assert name in installed.files, name
    # What pip installed of this project, from its RECORD: the package and its metadata in site-packages, and the
    # `smtps` command in the virtualenv's bin/.
    [record] = installed.site.glob("smtps_iredmail-*.dist-info/RECORD")
    paths = [line.split(",")[0] for line in record.read_text().splitlines() if line]
    tops = {path.split("/")[0] for path in paths if not path.startswith("..")}
    assert tops == OWN
    assert {Path(path).name for path in paths if path.startswith("..")} == {"smtps"}
    assert not REPO_ONLY & {p.name for p in installed.site.iterdir()}, "a folder of the repository is installed"
    # Nothing in the virtualenv points back at the repository (an editable install's .pth would).
    for path in installed.site.glob("*.pth"):
        assert str(REPO) not in path.read_text(), path
    assert "No broken requirements" in run_installed(installed, str(installed.python), "-I", "-m", "pip", "check",
                                                     "--disable-pip-version-check", cwd=tmp_path).stdout

    for argv in ([str(installed.venv / "bin" / "smtps")], [str(installed.python), "-I", "-m", "smtps_iredmail"]):
        usage = run_installed(installed, *argv, "--help", cwd=tmp_path).stdout
        assert usage.startswith("usage: smtps [-h]") and COMMANDS in usage, usage
    # Every module of the package imports in the fresh virtualenv, from it.
    walk = ("import importlib, pkgutil, smtps_iredmail\n"
            "names = [m.name for m in pkgutil.walk_packages(smtps_iredmail.__path__, 'smtps_iredmail.')\n"
            "         if not m.name.endswith('__main__')]\n"
            "print('\\n'.join(importlib.import_module(n).__file__ for n in ['smtps_iredmail', *names]))\n")
    imported = run_installed(installed, str(installed.python), "-I", "-c", walk, cwd=tmp_path).stdout.split()
    assert len(imported) > 30 and all(path.startswith(str(installed.site)) for path in imported), imported


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    with running_lab(tmp_path_factory, "wheel", "--hosts", "1") as the_lab:
        yield the_lab


@dataclass
class Program:
    """own_program.py in a folder of its own, run by the fresh virtualenv's Python through the real engine."""

    folder: Path
    python: Path
    env: dict[str, str]
    destroyed: bool = False

    def run(self, action: str) -> dict[str, Any]:
        started = time.monotonic()
        result = subprocess.run([str(self.python), "-I", "own_program.py", action], cwd=self.folder, env=self.env,
                                text=True, capture_output=True, timeout=600, stdin=subprocess.DEVNULL)
        timed(f"pulumi {action}", started)
        assert result.returncode == 0, f"{action} failed:\n{result.stdout}\n{result.stderr}"
        self.destroyed = action == "destroy"
        return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def program(installed: Installed, lab: Lab, tmp_path_factory) -> Iterator[Program]:
    require_engine()
    folder = tmp_path_factory.mktemp("own-program")
    shutil.copy(PROGRAM, folder / "own_program.py")
    (folder / "tmp").mkdir()
    host = lab.hosts()[0]
    env = outside_env(
        OWN_WORK_DIR=str(folder), OWN_PULUMI_ROOT=str(PULUMI.parent.parent), OWN_STACK=STACK,
        OWN_ADDRESS=host["address"], OWN_HOST_KEY=host["host_key"],
        PULUMI_BACKEND_URL=f"file://{folder / 'state'}", PULUMI_CONFIG_PASSPHRASE=secrets.token_urlsafe(24),
        PULUMI_HOME=str(folder / "pulumi-home"), TMPDIR=str(folder / "tmp"),
        # The provider processes run the fresh virtualenv's Python, and so import the installed library.
        PULUMI_RUNTIME_VIRTUALENV=str(installed.venv),
        PULUMI_SKIP_UPDATE_CHECK="true", PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
        PATH=f"{PULUMI.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # The deploy key stays a file on this machine, as in CI: it never enters the program or the state.
        SMTPS_SSH_KEY_FILE=lab.inventory["private_key_path"],
    )
    (folder / "state").mkdir()
    the_program = Program(folder, installed.python, env)
    yield the_program
    if not the_program.destroyed:  # a test failed before destroy: take the change off the host all the same
        subprocess.run([str(installed.python), "-I", "own_program.py", "destroy"], cwd=folder, env=env,
                       capture_output=True, timeout=600, stdin=subprocess.DEVNULL, check=False)


@pytest.fixture(scope="module")
def before(lab: Lab, program: Program) -> dict[str, str]:
    return snapshot(lab, "mail1")


def served(address: str) -> tuple[str, str] | None:
    """(TLS version, SHA-256 of the certificate) that 465 answers with, as a client here sees it; None: no TLS."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((address, 465), timeout=5) as raw, context.wrap_socket(raw) as tls:
            return tls.version() or "", hashlib.sha256(tls.getpeercert(binary_form=True) or b"").hexdigest()
    except (OSError, ssl.SSLError):
        return None


def test_the_installed_smtps_command_previews_a_stack_of_a_project_folder_outside_the_repository(
        lab: Lab, installed: Installed, before, tmp_path):
    """`smtps` installed from the wheel: the project is the current folder, the engine the `pulumi` on PATH."""
    host = lab.hosts()[0]
    (tmp_path / "stacks").mkdir()
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    entry = {"name": host["name"], "address": host["address"], "hostKey": host["host_key"]}
    stack = {"config": {"smtps-iredmail:hosts": [entry]}}
    (tmp_path / "stacks" / "Pulumi.wheel.yaml").write_text(yaml.safe_dump(stack))
    sessions = ssh_counts(lab, "mail1")
    env = outside_env(PATH=f"{PULUMI.parent}{os.pathsep}{os.environ.get('PATH', '')}",
                      PULUMI_HOME=str(tmp_path / "pulumi-home"))
    started = time.monotonic()
    result = subprocess.run([str(installed.venv / "bin" / "smtps"), "preview", "-s", "wheel"], cwd=tmp_path, env=env,
                            text=True, capture_output=True, timeout=600, stdin=subprocess.DEVNULL)
    timed("smtps preview", started)
    said = result.stdout + result.stderr
    assert result.returncode == 0 and re.search(r"\+ 8 to create", said), said
    assert (tmp_path / ".pulumi-state").is_dir()  # the file backend of the folder it ran in
    assert ssh_counts(lab, "mail1") == sessions and snapshot(lab, "mail1") == before


CONNECTED = ("mail1-master", "mail1-service", "mail1-zone", "mail1-nftables", "mail1-verify")


def test_preview_runs_with_the_hosts_address_and_host_key_unknown_and_touches_no_host(lab: Lab, program: Program,
                                                                                     before):
    host = lab.hosts()[0]
    sessions = ssh_counts(lab, "mail1")
    preview = program.run("preview")
    assert preview["changes"] == {"create": 9}, preview["changes"]
    # The machine gets the address as a plain value; every resource of the host has it, and the host key, only as
    # an Output not known before the machine exists.
    assert preview["inputs"]["machine"]["givenAddress"] == host["address"]
    for name in CONNECTED:
        inputs = preview["inputs"][name]
        assert inputs["address"] == inputs["hostKey"] == preview["unknown"], name
    assert ssh_counts(lab, "mail1") == sessions and snapshot(lab, "mail1") == before


def test_up_turns_on_smtps_and_465_answers_with_tls_from_outside(lab: Lab, program: Program, installed: Installed):
    host = lab.hosts()[0]
    assert served(host["address"]) is None
    up = program.run("up")
    assert up["changes"] == {"create": 9}, up["changes"]
    for name in CONNECTED:
        assert (up["inputs"][name]["address"], up["inputs"][name]["hostKey"]) == (host["address"], host["host_key"])
    outputs = up["outputs"]
    # A provider process the engine started imported the library from the fresh virtualenv.
    assert outputs["library"] == str(installed.site / "smtps_iredmail" / "__init__.py")
    assert outputs["address"] == host["address"]
    # Seen from here, by a TLS client of the test's own: what the program's check reported.
    seen = served(host["address"])
    assert seen is not None and seen[0] in ("TLSv1.2", "TLSv1.3"), seen
    assert seen == (outputs["tlsVersion"], outputs["certSha256"])


def test_destroy_leaves_the_host_as_it_was_found(lab: Lab, program: Program, before):
    destroy = program.run("destroy")
    assert destroy["changes"] == {"delete": 9}, destroy["changes"]
    assert snapshot(lab, "mail1") == before
    assert lab.sh("mail1", "test -e /var/lib/smtps-iredmail", check=False).returncode != 0
    assert served(lab.hosts()[0]["address"]) is None
    print("installed wheel: timings: " + ", ".join(f"{phase} {took:.1f} s" for phase, took in TIMINGS.items()))
