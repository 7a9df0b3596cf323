"""Host programs run from `/`, isolated from whoever logs in: the command line the SSH session runs, and the `py`
helper every rendered script starts Python through. Run here with /bin/sh, from a folder and an environment that
are full of traps; the lab test (tests/lab/test_bastion_and_sudo.py) does the same on real hosts through sshd and
sudo."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from smtps_iredmail.core import drift, master_service, remote, rollback
from smtps_iredmail.core.firewall import Firewall
from smtps_iredmail.core.firewall import script as firewall_script
from smtps_iredmail.core.master_service import TlsSettings
from smtps_iredmail.core.remote import remote_command
from smtps_iredmail.core.templating import Action, render
from tests.conftest import require
from tests.test_smtps_render import _scripts, _settings

# A module that notes who imported it, under every name a Python program here would look up.
PLANT = "import os\nwith open(os.environ.get('PLANT_LOG', '/dev/null'), 'a') as f: f.write(__file__ + '\\n')\n"
PLANTED = ("json.py", "os.py", "sitecustomize.py", "usercustomize.py", "site.py", "smtps_plant.pth")


def trap_folder(folder: Path) -> Path:
    """A login's folder as a hostile one looks: modules that shadow the standard library's, a user site folder,
    a .pth file; returns the marker file every one of them writes to."""
    log = folder / "imported.log"
    plant = PLANT.replace("'/dev/null'", repr(str(log)))
    for where in (folder, folder / "pythonpath"):
        where.mkdir(exist_ok=True)
        for name in PLANTED:
            (where / name).write_text("import smtps_plant_pth\n" if name.endswith(".pth") else plant)
        (where / "smtps_plant_pth.py").write_text(plant)
    for version in ("3.9", "3.10", "3.11", "3.12", "3.13"):
        site = folder / ".local" / "lib" / f"python{version}" / "site-packages"
        site.mkdir(parents=True)
        (site / "usercustomize.py").write_text(plant)
        (site / "smtps_plant.pth").write_text("import usercustomize\n")
    return log


def hostile_env(folder: Path, log: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(folder), "PYTHONPATH": str(folder / "pythonpath"),
            "PYTHONSTARTUP": str(folder / "json.py"), "PYTHONINSPECT": "", "PLANT_LOG": str(log),
            "MAIL_CONFIG": str(folder), "OPENSSL_CONF": str(folder / "openssl.cnf"), "SSH_CONNECTION": "a 1 b 22"}


PROBE = render("_env.sh.j2") + """py python3 - <<'EOF'
import json, os, sys
print(json.dumps({"cwd": os.getcwd(), "path": sys.path, "flags": [sys.flags.isolated, sys.flags.ignore_environment,
                  sys.flags.no_user_site], "env": sorted(os.environ)}))
EOF
"""


def run_as_login(command: str, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`command` as an SSH session runs it: by the login shell, in the login's folder, with its environment."""
    return subprocess.run(["/bin/sh", "-c", command], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=30, check=False)


@pytest.mark.parametrize("user", ["root", "deploy"])
def test_a_script_runs_from_slash_with_a_clean_environment_and_imports_nothing_of_the_login(tmp_path, user):
    require(shutil.which("python3") is not None, "the host side of every script is Python 3")
    log = trap_folder(tmp_path)
    env = hostile_env(tmp_path, log)
    if user != "root":
        # sudo as it is: runs the command it is given, in the caller's folder (the environment it would reset is
        # passed on here, to show the command line does not rely on sudo for that).
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "sudo").write_text('#!/bin/sh\n[ "$1 $2" = "-n --" ] || exit 99\nshift 2\nexec "$@"\n')
        (bin_dir / "sudo").chmod(0o755)
        env["PATH"] = f"{bin_dir}:{env['PATH']}"
    # The traps work: the same Python, started plainly in that folder, imports them.
    plain = run_as_login("echo 'import json' | python3 -", tmp_path, env)
    assert plain.returncode == 0 and log.read_text().count("\n") >= 2, plain.stderr
    log.unlink()

    result = run_as_login(remote_command(PROBE, user), tmp_path, env)
    assert result.returncode == 0, result.stderr
    seen = __import__("json").loads(result.stdout)
    assert not log.exists(), log.read_text()
    assert seen["cwd"] == "/"
    assert seen["flags"] == [1, 1, 1], seen["flags"]
    assert not [p for p in seen["path"] if p in ("", ".") or p.startswith(str(tmp_path))], seen["path"]
    # Only what the command line sets (sh adds PWD and OLDPWD, Python's locale coercion LC_CTYPE).
    assert set(seen["env"]) - {"PWD", "OLDPWD", "LC_CTYPE"} == {"HOME", "PATH", "SSH_CONNECTION"}, seen["env"]


def test_an_interpreter_without_minus_i_gets_minus_e_minus_s(tmp_path):
    """Python 2 (firewalld's on older hosts) has no -I: py asks the interpreter, and falls back to -E -s."""
    old = tmp_path / "python2"
    calls = tmp_path / "calls"
    old.write_text(f'#!/bin/sh\necho "$*" >> {calls}\ncase "$1" in -I) echo "Unknown option: -I" >&2; exit 2;; esac\n')
    old.chmod(0o755)
    result = subprocess.run(["/bin/sh", "-c", render("_env.sh.j2") + f"py {old} - a b </dev/null"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == ["-I -c ", "-E -s - a b"]


def scripts() -> dict[str, str]:
    """Every kind of script the tool runs on a host, rendered now: each resource's apply and remove, the rollback,
    the facts of a firewalld and an nftables host, and the read-only ones."""
    found = {}
    for action in Action:
        for kind, text in _scripts(_settings(), action).items():
            found[f"{kind}.{action.value}"] = text
    found["rollback"] = rollback.script("mail1", "0123456789abcdef")
    for firewall in ("auto", "firewalld", "nftables"):
        found[f"facts.{firewall}"] = drift.read_host_script(_settings(firewall=firewall))
    found["confirm"] = remote.confirm_script("mail1", "0123456789abcdef")
    found["firewall"] = firewall_script("mail1", Firewall.AUTO)
    found["certificate"] = master_service.certificate_script("mail1", TlsSettings(cert=None, key=None))
    return found


def test_every_script_starts_from_slash_and_every_python_is_started_isolated():
    # A Python started by name, by firewalld's ($FWPY) or by host_python's choice. Each goes through `py`, which asks
    # the interpreter for -I (Python 2 has none), or is a program for Python 3 alone started with -I itself.
    starts = re.compile(r'(^|[\s;|&(!])(python3?|"?\$FWPY"?|platform-python|"\$\(host_python\)")\s')
    found = scripts()
    assert len(found) == 15
    for name, text in found.items():
        lines = text.splitlines()
        # `cd /` before anything other than options and PATH.
        first = next(i for i, line in enumerate(lines) if line and not line.startswith(("#", "set ", "umask ",
                                                                                            "PATH=", "trap ")))
        assert lines[first] == "cd /", (name, lines[first])
        heredoc = None  # the end word of the here-document being skipped (a program's text, not shell)
        for line in lines:
            if heredoc is not None:
                heredoc = None if line == heredoc else heredoc
                continue
            if (opened := re.search(r"<<'(\w+)'", line)) is not None:
                heredoc = opened.group(1)
            code = line.split("#", 1)[0]
            for match in starts.finditer(code):
                before = code[:match.start(2)].rstrip()
                after = code[match.end(2):].split()
                assert before.endswith(("py", "command -v")) or "FWPY=" in code or after[:1] == ["-I"], (name, line)
