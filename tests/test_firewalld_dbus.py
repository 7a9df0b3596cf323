"""The scripts' calls of firewalld's D-Bus API (dbus-send, where firewall-cmd would be a Python start each): which
method each asks with which arguments, how a refusal reads, and the active zones in firewall-cmd's own words (the
rollback reads them so). Run by dash against a dbus-send stand-in that logs its calls and answers as firewalld
does."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from smtps_iredmail.core.templating import render
from tests.conftest import require

# What `dbus-send --print-reply` prints for firewalld's zone.getActiveZones (a{sa{sas}}).
ACTIVE_ZONES = """method return time=1700000000.1 sender=:1.3 -> destination=:1.9 serial=55 reply_serial=2
   array [
      dict entry(
         string "iredmail"
         array [
            dict entry(
               string "interfaces"
               array [
                  string "eth0"
                  string "eth1"
               ]
            )
            dict entry(
               string "sources"
               array [
                  string "10.0.0.0/8"
               ]
            )
         ]
      )
      dict entry(
         string "trusted"
         array [
            dict entry(
               string "sources"
               array [
                  string "ipset:admins"
               ]
            )
         ]
      )
   ]
"""


def functions(*names: str) -> str:
    text = render("_prologue.sh.j2", kind="k", host="h", action="apply", snapshot_id="", reloads_firewalld=True,
                  confirm_seconds=120, firewalld_pending="refuse", guard="")
    start = text.index('FWD=""')
    found = [text[start:text.index("fwd() {", start)]]
    for name in names:
        match = re.search(rf"^{name}\(\) \{{.*?^\}}$", text, re.S | re.M)
        assert match, name
        found.append(match.group(0))
    return "\n".join(found)


@pytest.fixture
def bus(tmp_path: Path):
    """A dbus-send stand-in: logs its method and arguments; answers getZoneByName with a zone's object, getActiveZones
    as above, and refuses as firewalld does what the file `refuse` names (ALREADY_ENABLED, INVALID_ZONE...)."""
    require(shutil.which("dash") is not None, "dash (Debian's /bin/sh) is needed")
    (tmp_path / "active").write_text(ACTIVE_ZONES)
    stub = tmp_path / "dbus-send"
    stub.write_text(f"""#!/bin/sh
shift 4
echo "$*" >> {tmp_path}/calls
if [ -s {tmp_path}/refuse ]; then
    echo "Error org.fedoraproject.FirewallD1.Exception: $(cat {tmp_path}/refuse)" >&2
    exit 1
fi
case "$2" in
    *.config.getZoneByName) printf 'method return\\n   object path "/org/fedoraproject/FirewallD1/config/zone/6"\\n' ;;
    *.zone.getActiveZones) cat {tmp_path}/active ;;
    *) echo "method return" ;;
esac
""")
    stub.chmod(0o755)
    return tmp_path


def run(bus: Path, script: str) -> subprocess.CompletedProcess:
    return subprocess.run([shutil.which("dash"), "-c", f"set -eu\n{script}"], capture_output=True, text=True,
                          check=False, env={"PATH": f"{bus}:/usr/bin:/bin"})


def calls(bus: Path) -> list[str]:
    path = bus / "calls"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize(("change", "asked"), [
    ("permanent add service smtps iredmail",
     ["/org/fedoraproject/FirewallD1/config org.fedoraproject.FirewallD1.config.getZoneByName string:iredmail",
      "/org/fedoraproject/FirewallD1/config/zone/6 org.fedoraproject.FirewallD1.config.zone.addService string:smtps"]),
    ("permanent remove port 465/tcp iredmail",
     ["/org/fedoraproject/FirewallD1/config org.fedoraproject.FirewallD1.config.getZoneByName string:iredmail",
      "/org/fedoraproject/FirewallD1/config/zone/6 org.fedoraproject.FirewallD1.config.zone.removePort "
      "string:465 string:tcp"]),
    ("runtime add service smtps iredmail",
     ["/org/fedoraproject/FirewallD1 org.fedoraproject.FirewallD1.zone.addService string:iredmail string:smtps "
      "int32:0"]),
    ("runtime add port 465/tcp iredmail",
     ["/org/fedoraproject/FirewallD1 org.fedoraproject.FirewallD1.zone.addPort string:iredmail string:465 "
      "string:tcp int32:0"]),
    ("runtime remove service smtps iredmail",
     ["/org/fedoraproject/FirewallD1 org.fedoraproject.FirewallD1.zone.removeService string:iredmail string:smtps"]),
])
def test_each_zone_change_is_one_call_of_firewalld(bus, change, asked):
    result = run(bus, f"{functions('fwd', 'zone_op')}\nzone_op {change}")
    assert result.returncode == 0, result.stderr
    assert calls(bus) == asked


@pytest.mark.parametrize(("refusal", "ok"), [("ALREADY_ENABLED: smtps", True), ("NOT_ENABLED: smtps", True),
                                             ("INVALID_SERVICE: smtps", False)])
def test_a_change_already_made_is_no_failure_as_with_firewall_cmd(bus, refusal, ok):
    (bus / "refuse").write_text(refusal)
    result = run(bus, f"{functions('fwd', 'zone_op')}\nzone_op runtime add service smtps iredmail")
    assert (result.returncode == 0) is ok
    assert result.stderr == ("" if ok else f"Error: {refusal}\n")


@pytest.mark.parametrize("bad", ["permanent add service 'smtps;x' iredmail", "runtime add port 465 iredmail",
                                 "both add service smtps iredmail", "runtime drop service smtps iredmail"])
def test_words_from_a_journal_are_checked_before_firewalld_sees_them(bus, bad):
    result = run(bus, f"{functions('fwd', 'zone_op')}\nzone_op {bad}")
    assert result.returncode == 2 and calls(bus) == []


def test_the_active_zones_read_as_firewall_cmd_prints_them_and_as_the_rollback_reads_them(bus):
    result = run(bus, f"{functions('fwd', 'fw_active_zones', 'bindings_of')}\n"
                      f"fw_active_zones > {bus}/bindings\ncat {bus}/bindings\necho ---\nbindings_of {bus}/bindings")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("iredmail\n  interfaces: eth0 eth1\n  sources: 10.0.0.0/8\n"
                             "trusted\n  sources: ipset:admins\n---\n"
                             "iredmail interface eth0\niredmail interface eth1\niredmail source 10.0.0.0/8\n"
                             "trusted source ipset:admins\n")
    assert calls(bus) == ["/org/fedoraproject/FirewallD1 org.fedoraproject.FirewallD1.zone.getActiveZones"]


def test_check_config_and_reload_ask_firewalld_and_a_refusal_reads_as_firewall_cmds(bus):
    result = run(bus, f"{functions('fwd', 'fw_check_config', 'fw_reload_now')}\nfw_check_config\nfw_reload_now")
    assert result.returncode == 0 and result.stdout == ""
    assert calls(bus) == ["/org/fedoraproject/FirewallD1 org.fedoraproject.FirewallD1.checkPermanentConfig",
                          "/org/fedoraproject/FirewallD1 org.fedoraproject.FirewallD1.reload"]
    (bus / "refuse").write_text("INVALID_ZONE: public.xml: bad")
    checked = run(bus, f"{functions('fwd', 'fw_check_config')}\ncheck=$(fw_check_config) || echo \"failed: $check\"")
    assert checked.stdout == "failed: Error: INVALID_ZONE: public.xml: bad\n"


def test_without_dbus_send_each_call_is_firewall_cmds_as_before(tmp_path: Path):
    # A host without dbus-send: the same functions ask firewall-cmd, with the arguments and words the scripts used
    # before they spoke D-Bus (no lab host lacks dbus-send: this is the only run of that path).
    require(shutil.which("dash") is not None, "dash (Debian's /bin/sh) is needed")
    stub = tmp_path / "firewall-cmd"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\n'
                    'case "$*" in --check-config) echo "Error: INVALID_ZONE: public.xml: bad"; exit 1 ;;\n'
                    '    --get-active-zones) printf "public\\n  interfaces: eth0\\n" ;; esac\n')
    stub.chmod(0o755)
    for tool in ("sed", "awk", "cat", "grep"):  # only these programs: the machine's own dbus-send must not be found
        (tmp_path / tool).symlink_to(shutil.which(tool))
    script = (f"{functions('fwd', 'zone_op', 'fw_check_config', 'fw_reload_now', 'fw_active_zones', 'bindings_of')}\n"
              "zone_op permanent add service smtps iredmail\nzone_op runtime remove port 465/tcp iredmail\n"
              "fw_reload_now\nfw_active_zones > bindings\nbindings_of bindings\n"
              'check=$(fw_check_config) || echo "failed: $check"\n')
    result = subprocess.run([shutil.which("dash"), "-c", f"set -eu\n{script}"], capture_output=True, text=True,
                            check=False, cwd=tmp_path, env={"PATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "public interface eth0\nfailed: Error: INVALID_ZONE: public.xml: bad\n"
    assert (tmp_path / "calls").read_text().splitlines() == [
        "--permanent --zone=iredmail --add-service=smtps", "--zone=iredmail --remove-port=465/tcp", "--reload",
        "--get-active-zones", "--check-config"]
