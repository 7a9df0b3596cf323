"""Running the real Pulumi engine from tests: a project folder of the test's own (Pulumi.yaml, stacks/, a file
backend and a passphrase), the front end `smtps` and the plain `pulumi`, each as a user runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.conftest import require

REPO = Path(__file__).resolve().parent.parent
PULUMI = REPO / ".tools" / "bin" / "pulumi"


def require_engine() -> None:
    require(PULUMI.exists() and (PULUMI.parent / "pulumi-resource-pulumi-python").exists(),
            f"the Pulumi engine is not in {PULUMI.parent}: run `make tools`")


@dataclass
class Project:
    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    transcript: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, folder: Path, **env: str) -> Project:
        require_engine()
        (folder / "stacks").mkdir(parents=True)
        shutil.copy(REPO / "Pulumi.yaml", folder / "Pulumi.yaml")
        # Pulumi.yaml names the virtualenv `.venv`: plain CLI commands hand it to the provider plugin from there.
        (folder / ".venv").symlink_to(Path(sys.prefix))
        # CI and GITHUB_ACTIONS too: a project is an operator's machine (the lab stacks hold the deploy key as a
        # secret, which CI refuses) unless a test passes them to show what CI does.
        base = {key: value for key, value in os.environ.items()
                if key not in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE",
                               "CI", "GITHUB_ACTIONS")}
        # PYTHONPATH: the provider processes import tests' own programs too (the project's code is installed).
        (folder / "tmp").mkdir()
        # TMPDIR: Pulumi's own log files (glog) land in the project too, where the leak checks read them.
        return cls(folder, {**base, "SMTPS_PROJECT_DIR": str(folder), "PYTHONPATH": str(REPO),
                            "PULUMI_HOME": str(folder / ".pulumi-home"), "TMPDIR": str(folder / "tmp"), **env})

    @classmethod
    def for_lab(cls, folder: Path, lab, *stacks: str) -> Project:
        """A project whose `python -m lab stack` reaches `lab` (a tests.lab.labkit.Lab), with `stacks` written."""
        project = cls.create(folder, SMTPS_LAB_DIR=str(lab.state_dir), SMTPS_LAB_NAME=lab.name,
                             SMTPS_LAB_SUBNET=lab.subnet)
        for stack in stacks:
            project.run_module("lab", "stack", "-s", stack)
        return project

    def _run(self, argv: list[str], label: str, timeout: float) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = subprocess.run(argv, cwd=self.folder, env=self.env, text=True, capture_output=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
        self.timings.setdefault(label, time.monotonic() - started)  # the first call of each kind
        return result

    def smtps(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """`smtps ARGS` as a user runs it."""
        result = self._run([sys.executable, "-m", "smtps_iredmail", *args], " ".join(args[:1]), timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"smtps {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def run_module(self, module: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`python -m MODULE ARGS` in this project's environment (e.g. `lab stack`)."""
        result = self._run([sys.executable, "-m", module, *args], module, 600)
        if result.returncode != 0:
            raise AssertionError(f"python -m {module} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def pulumi(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """The plain Pulumi CLI, run through `smtps pulumi --` (the project's environment)."""
        return self.smtps("pulumi", "--", *args, check=check, timeout=timeout)

    def keep_hosts(self, stack: str, names: list[str]) -> None:
        """Trim a stack written by `python -m lab stack` to the named hosts."""
        path = self.folder / "stacks" / f"Pulumi.{stack}.yaml"
        data = yaml.safe_load(path.read_text())
        hosts = data["config"]["smtps-iredmail:hosts"]
        data["config"]["smtps-iredmail:hosts"] = [h for h in hosts if h["name"] in names]
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def secrets_everywhere(self) -> str:
        """Everything Pulumi wrote in the project folder (state, stack files, logs), for leak checks."""
        texts = []
        for path in self.folder.rglob("*"):
            if path.is_file() and path.name != ".pulumi-passphrase" and ".venv" not in path.parts:
                texts.append(path.read_bytes().decode(errors="replace"))
        return "\n".join(texts)
