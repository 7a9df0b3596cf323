"""`make venv` takes nothing from the user's environment, which on a CI runner an earlier job may have written: the
exact command lines of its recipe (`make -n`) run against a home folder with a planted usercustomize.py and pip.conf,
and PIP_* variables. Each plant is first shown to work on the plain commands (`python3 -m venv`, `pip`), so the
test fails if the recipe loses its isolation. Nothing here reaches an index: the pip step runs as `pip list`."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require

REPO = Path(__file__).resolve().parent.parent
PYTHON = shutil.which("python3") or sys.executable

USERCUSTOMIZE = """\
import os, sys
open(os.environ["PLANT_MARK"], "a").write("usercustomize ran in " + sys.executable + "\\n")
for root, _dirs, _files in os.walk(os.environ["PLANT_VENV"]):
    if root.endswith("site-packages"):
        open(os.path.join(root, "zz_planted.pth"), "w").write("import sys; sys.stderr.write('PLANTED')\\n")
"""


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> tuple[list[str], Path]:
    """The recipe's lines, for a virtualenv in a folder of the test's own: the venv line and the pip line."""
    require(shutil.which("make") is not None, "make is not installed")
    venv = tmp_path_factory.mktemp("venv") / ".venv"
    dry = subprocess.run(["make", "-n", "--no-print-directory", "venv", f"VENV={venv}", f"PYTHON={PYTHON}"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout.splitlines()
    lines = [line for line in dry if not line.startswith("#")]
    create = next(line for line in lines if " -m venv " in line)
    pip = next(line for line in lines if "pip" in line and " -r requirements.txt" in line)
    return [create, re.sub(r" install\b.* -r requirements\.txt", " list", pip)], venv


@pytest.fixture
def planted(tmp_path: Path) -> dict[str, str]:
    """An environment whose home holds what an earlier job could leave: a usercustomize.py in the user's
    site-packages, a pip.conf that sends pip to another index and logs, and PIP_* variables to the same end."""
    home = tmp_path / "home"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PIP_", "PYTHON")) and key not in ("XDG_CONFIG_HOME", "VIRTUAL_ENV")}
    env.update(HOME=str(home), PLANT_MARK=str(tmp_path / "usercustomize-ran"))
    site = subprocess.run([PYTHON, "-c", "import site; print(site.getusersitepackages())"], env=env,
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site).mkdir(parents=True)
    (Path(site) / "usercustomize.py").write_text(USERCUSTOMIZE)
    (home / ".config" / "pip").mkdir(parents=True)
    (home / ".config" / "pip" / "pip.conf").write_text(
        f"[global]\nindex-url = http://127.0.0.1:9/planted-index/simple\nlog = {tmp_path / 'pip-conf-log'}\n")
    (tmp_path / "env.conf").write_text(f"[global]\nlog = {tmp_path / 'pip-config-file-log'}\n")
    env.update(PIP_CONFIG_FILE=str(tmp_path / "env.conf"), PIP_LOG=str(tmp_path / "pip-env-log"),
               PIP_INDEX_URL="http://127.0.0.1:9/planted-env-index/simple")
    return env


def run(line: str, env: dict[str, str], venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", line], cwd=REPO, env={**env, "PLANT_VENV": str(venv)}, capture_output=True,
                          text=True, timeout=120)


def test_the_venv_line_runs_no_usercustomize_and_plants_no_pth(recipe, planted, tmp_path):
    (create, _pip), venv = recipe
    mark = Path(planted["PLANT_MARK"])
    # The plant works: the plain command runs it, and it drops its .pth into the new virtualenv.
    control = tmp_path / "control"
    assert run(f"{shlex.quote(PYTHON)} -m venv --without-pip {control}", planted, control).returncode == 0
    assert mark.exists()
    mark.unlink()
    shutil.rmtree(venv, ignore_errors=True)
    created = run(create, planted, venv)
    assert created.returncode == 0, created.stderr
    assert not mark.exists(), mark.read_text()
    assert not any(p.name == "zz_planted.pth" for p in venv.rglob("*.pth"))
    started = run(f"{venv}/bin/python -c 'print(1)'", planted, venv)
    assert started.stdout == "1\n" and "PLANTED" not in started.stderr and not mark.exists()


def test_the_pip_line_reads_no_pip_conf_no_pip_variables_and_no_user_site(recipe, planted, tmp_path):
    (create, pip), venv = recipe
    if not (venv / "bin" / "python").exists():
        assert run(create, planted, venv).returncode == 0
    mark = Path(planted["PLANT_MARK"])
    logs = [tmp_path / "pip-conf-log", tmp_path / "pip-config-file-log", tmp_path / "pip-env-log"]
    # The plants work: pip as usually run logs where PIP_LOG says; without it, where the file PIP_CONFIG_FILE names
    # says; without that, where the user's pip.conf says; and a Python with the user's site runs usercustomize.
    for index, drop in enumerate([(), ("PIP_LOG",), ("PIP_LOG", "PIP_CONFIG_FILE")]):
        env = {k: v for k, v in planted.items() if k not in drop}
        assert run(f"{venv}/bin/python -m pip list", env, venv).returncode == 0
        assert logs[2 - index].exists(), logs[2 - index]
    assert run(f"{shlex.quote(PYTHON)} -c pass", planted, venv).returncode == 0 and mark.exists()
    for path in [*logs, mark]:
        path.unlink()

    listed = run(pip, planted, venv)
    assert listed.returncode == 0, listed.stderr
    assert "pip" in listed.stdout
    assert [path for path in [*logs, mark] if path.exists()] == []
    assert "planted" not in listed.stdout + listed.stderr
    assert " --no-cache-dir " in pip and " --isolated " in pip
