"""The programs shipped inside the scripts for Python on the mail host run on Python 3.6: RHEL 8's firewalld runs on
its platform-python (3.6), where python3 is often absent, and Ubuntu 18.04's python3 is 3.6 (docs/servers.md). The
tests here run them under the controller's Python, so what only an older one refuses is found by reading them:
vermin (requirements.txt) gives the lowest Python each construct needs, and any above 3.6 fails."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST_PROGRAMS = ("smtps/zone_probe.py", "smtps/master_cf.py", "smtps/nft_rule.py", "smtps/lockout_guard.py")
# Annotations count (3.6 evaluates them: the programs do not use `from __future__ import annotations`, itself 3.7),
# and `X | Y` unions are looked for too (vermin leaves that heuristic off unless asked).
VERMIN = ("--target=3.6-", "--violations", "--eval-annotations", "--feature", "union-types", "--no-tips")
# What went wrong before: each of these needs 3.7 or later.
TOO_NEW = """\
from __future__ import annotations
import subprocess
from dataclasses import dataclass

def run(argv: list[str], extra: dict | None = None) -> str:
    return subprocess.run(argv, capture_output=True, text=True).stdout
"""


def vermin(*paths: str | Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; from vermin import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *VERMIN, *map(str, paths)], capture_output=True, text=True,
                          check=False, cwd=REPO)


def test_the_host_programs_need_no_python_newer_than_3_6():
    done = vermin(*HOST_PROGRAMS)
    assert done.returncode == 0, done.stdout + done.stderr


# Methods newer than 3.6 that vermin finds only when called on a literal (it cannot know a variable's type).
NEWER_METHODS = re.compile(r"\.(removeprefix|removesuffix|isascii|fromisoformat|reconfigure|is_relative_to)\(")


def test_the_host_programs_call_no_method_newer_than_3_6_on_a_variable():
    found = [f"{path}:{number}: {line.strip()}" for path in HOST_PROGRAMS
             for number, line in enumerate((REPO / path).read_text().splitlines(), 1) if NEWER_METHODS.search(line)]
    assert not found, found


def test_the_check_finds_what_3_6_cannot_run(tmp_path: Path):
    # So that a vermin whose options or findings changed cannot pass the programs by finding nothing.
    sample = tmp_path / "too_new.py"
    sample.write_text(TOO_NEW)
    done = vermin(sample)
    assert done.returncode != 0
    for construct in ("__future__.annotations", "dataclasses", "capture_output", "text", "list[..]", "X | Y"):
        assert construct in done.stdout, (construct, done.stdout)
