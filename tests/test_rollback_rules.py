"""The rollback's controller side as plain functions: what the host's answer means, and when it is switched off."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from smtps_iredmail.core import rollback
from smtps_iredmail.core.nftables_rule import NftablesSettings
from tests.conftest import require


@pytest.mark.parametrize(("stdout", "meaning"), [
    ("smtps: mail1: rolled back: master.cf (postfix reloaded);\nsmtps-rollback=done\n", "done"),
    ("smtps: mail1: nothing of this run to undo here\nsmtps-rollback=none\n", "none"),
    ("smtps-rollback=partial: /etc/postfix/master.cf\n", "partial: /etc/postfix/master.cf"),
    ("smtps-confirm=0123456789abcdef\nsmtps-rollback=done\n", "done"),
    ("rolled back\n", None),  # no answer line: not taken as a rollback
    ("smtps-rollback=done; rm -rf /\n", None),  # only the words the script prints
])
def test_the_hosts_answer(stdout, meaning):
    assert rollback.result(stdout) == meaning


def test_no_rollback_is_an_environment_switch(monkeypatch):
    monkeypatch.delenv(rollback.NO_ROLLBACK_ENV, raising=False)
    assert rollback.enabled()
    monkeypatch.setenv(rollback.NO_ROLLBACK_ENV, "1")
    assert not rollback.enabled()
    monkeypatch.setenv(rollback.NO_ROLLBACK_ENV, "0")
    assert rollback.enabled()


def test_a_snapshot_id_is_16_hex_digits_and_nothing_else_renders():
    assert len(rollback.new_snapshot_id()) == 16 and rollback.new_snapshot_id() != rollback.new_snapshot_id()
    for bad in ("", "0123456789abcde", "0123456789abcdefg", "0123456789ABCDEF", "01234567 9abcdef"):
        with pytest.raises(ValueError, match="malformed snapshot id"):
            rollback.script("mail1", bad)


# --- the snapshot read as data: the rollback script's own checks, run in dash against stand-ins -------------------

def checks_of(script: str) -> str:
    """The rollback script's reading of its snapshot: from its refusal to the last check before it changes
    anything (`same_as_found`), as rendered."""
    start = script.index("refuse() {")
    return script[start:script.index("same_as_found() {", start)]


def bindings_of(script: str) -> str:
    found = re.search(r"^bindings_of\(\) \{.*?^\}$", script, re.S | re.M)
    assert found
    return found.group(0)


@pytest.fixture
def snapshot(tmp_path: Path):
    """A run's snapshot folder, and a firewall-cmd stand-in: trusted and docker accept everything."""
    require(shutil.which("dash") is not None, "dash (Debian's /bin/sh) is needed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "firewall-cmd").write_text(
        '#!/bin/sh\ncase "$*" in\n'
        '    --get-zones) echo block dmz docker drop external home internal public trusted work ;;\n'
        '    *--zone=trusted*--get-target) echo ACCEPT ;;\n'
        '    *--zone=docker*--get-target) echo ACCEPT ;;\n'
        '    *--zone=drop*--get-target) echo DROP ;;\n'
        '    *--zone=block*--get-target) echo "%%REJECT%%" ;;\n'
        '    *--get-target) echo default ;;\n'
        '    *) exit 1 ;;\nesac\n')
    (bin_dir / "firewall-cmd").chmod(0o755)
    run = tmp_path / "run"
    run.mkdir()
    (run / "targets").write_text("")
    return run


def check(run: Path, script: str, bindings: list[str] | None = None, dropped: list[str] | None = None,
          journal: str = "") -> subprocess.CompletedProcess[str]:
    """The checks on this snapshot: `bindings` (ZONE KIND NAME) as `firewall-cmd --get-active-zones` printed them
    before the run's first reload, `dropped` those the reload dropped (all of them unless given)."""
    active = "".join(f"{zone}\n  {kind}s: {' '.join(names)}\n"
                     for zone, kind, *names in (b.split() for b in bindings or []))
    (run / "bindings").write_text(active)
    (run / "dropped").write_text("".join(f"{line}\n" for line in (bindings if dropped is None else dropped) or []))
    (run / "journal").write_text(journal)
    harness = (f'HOST=mail1\nRUNDIR={run}\nFWPY=python3\nMASTER=/etc/postfix/master.cf\n'
               'fail() { printf "%s\\n" "$*" >&2; exit 1; }\n'
               'say() { printf "smtps: mail1: %s\\n" "$*"; }\n'
               'py() { py_bin=$1; shift; "$py_bin" -I "$@"; }\n')
    tail = 'printf "rebind:%s\\n" "$REBIND"\nprintf "accepting:%s\\n" "$ACCEPTING"\n'
    env = {"PATH": f"{run.parent / 'bin'}:/usr/bin:/bin"}
    return subprocess.run(["dash", "-c", harness + script_vars(script) + bindings_of(script) + "\n" +
                           checks_of(script) + tail], capture_output=True, text=True, env=env, timeout=30, check=False)


def script_vars(script: str) -> str:
    """The settings the script was rendered with (ZONE= ... NFT_CHAIN=)."""
    return "".join(line + "\n" for line in script.splitlines()
                   if re.match(r"^(ZONE|SERVICE|PORT|NFT_CHAIN)=", line))


FIREWALLD = rollback.script("mail1", "0123456789abcdef", zone="iredmail", service="smtps")
NFTABLES = rollback.script("mail1", "0123456789abcdef", zone="iredmail", service="smtps",
                           nft=NftablesSettings("inet", "filter", "input"))


@pytest.mark.parametrize("binding", [
    "trusted source 0.0.0.0/0", "trusted source 0.0.0.0/000", "public source 0.0.0.0/0.0.0.0",
    "public source 255.0.0.0/255.0.0.0", "public source ::/000", "public source 0.0.0.0/1",
    "public source 128.0.0.0/1", "public source ::/1", "public source 10.0.0.0/7", "public source 2001:db8::/31",
    "public source ipset:all", "public source 10.0.0.0/33", "public source 10.0.0.300",
    "public source 10.0.0.0/+8", "public interface eth+", "public interface +",
    "nosuchzone interface eth0", "public interface eth0 extra",
])
def test_a_binding_that_could_open_the_host_is_refused_whole(snapshot: Path, binding: str):
    done = check(snapshot, FIREWALLD, [binding])
    assert done.returncode == 1, done.stdout
    assert "rebind:" not in done.stdout
    assert done.stderr.startswith("the snapshot of this run holds a binding ")
    assert done.stderr.endswith(": nothing was rolled back\n") and binding.split()[2] in done.stderr


def test_a_binding_its_reload_did_not_drop_is_refused(snapshot: Path):
    done = check(snapshot, FIREWALLD, ["public interface eth0"], dropped=["public interface eth1"])
    assert done.returncode == 1 and "(public interface eth1)" in done.stderr


def test_bindings_firewalld_could_have_dropped_are_made_again_except_into_a_zone_that_accepts_everything(
        snapshot: Path):
    kept = ["public interface eth0", "internal source 10.1.0.0/16", "public source 192.0.2.7",
            "drop source 2001:db8::/32", "block source 00:11:22:33:44:55", "work interface ens3.10@ens3",
            "trusted interface eth1", "docker interface docker0", "home source 10.0.0.0/8"]
    done = check(snapshot, FIREWALLD, kept)
    assert done.returncode == 0, done.stderr
    rebind = done.stdout.split("rebind:", 1)[1].split("accepting:", 1)[0]
    accepting = ("trusted", "docker")
    assert [line for line in rebind.splitlines() if line] == [b for b in kept if not b.startswith(accepting)]
    assert done.stdout.strip().endswith(
        "accepting:; interface eth1 to zone trusted; interface docker0 to zone docker (target ACCEPT)")


@pytest.mark.parametrize(("script", "line", "accepted"), [
    (NFTABLES, "nft add inet filter input", True),
    (NFTABLES, "nft delete inet filter input", True),
    (NFTABLES, "nft add inet filter forward", False),
    (NFTABLES, "nft add inet firewalld filter_INPUT", False),
    (NFTABLES, "nft delete ip nat POSTROUTING", False),
    (NFTABLES, "nft flush inet filter input", False),
    (FIREWALLD, "nft add inet filter input", False),
    (FIREWALLD, "nft add inet firewalld filter_INPUT", False),
    (FIREWALLD, "permanent add port 465/tcp iredmail", True),
    (FIREWALLD, "permanent add port 1-65535/tcp iredmail", False),
], ids=lambda value: {id(NFTABLES): "nftables-host", id(FIREWALLD): "firewalld-host"}.get(id(value), str(value)))
def test_an_nftables_journal_line_names_only_the_chain_of_an_nftables_host(snapshot: Path, script, line, accepted):
    done = check(snapshot, script, journal=line + "\n")
    assert (done.returncode == 0) is accepted, done.stderr
    if not accepted:
        assert f"holds a journal line that is no change of this tool's ({line})" in done.stderr


def test_the_nftables_chain_renders_quoted_and_only_for_an_nftables_host():
    assert "NFT_CHAIN=''\n" in FIREWALLD and "NFT_CHAIN='inet filter input'\n" in NFTABLES


@pytest.mark.parametrize(("copy", "why"), [
    ("<zone>before</zone\n", "that is not well-formed XML"),
    ("<zone>" + "x" * 1048576 + "</zone>\n", "larger than 1 MiB"),
], ids=["not-well-formed", "over-1-MiB"])
def test_a_copy_that_is_no_firewalld_file_is_refused(snapshot: Path, copy: str, why: str):
    (snapshot / "targets").write_text("/etc/firewalld/zones/iredmail.xml\n")
    (snapshot / "0").write_text(copy)
    done = check(snapshot, FIREWALLD)
    assert done.returncode == 1
    assert done.stderr == f"the snapshot of this run holds a copy of /etc/firewalld/zones/iredmail.xml {why}: " \
                          "nothing was rolled back\n"
    (snapshot / "0").write_text("<zone>before</zone>\n")
    assert check(snapshot, FIREWALLD).returncode == 0
