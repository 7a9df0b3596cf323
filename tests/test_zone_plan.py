"""The zone script's plan (smtps/zone_probe.py, `plan`): the zone's two layers and what this tool kept of it in,
the plan out, no host. One case for each way the script can go, under existingPortPolicy keep and replace, on apply
and on remove; then the reader of the state folder, the program's lines, and the script reading them."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from smtps_iredmail.core import zone_membership, zone_probe
from smtps_iredmail.core.hosts import parse_host
from smtps_iredmail.core.templating import Action
from smtps_iredmail.core.zone_probe import Change, Facts, Kept, Layer, Plan, Wanted, Zone, kept, plan, plan_lines
from tests.conftest import require

PORT = "465/tcp"
NONE, SERVICE, PORT_ONLY, BOTH = Layer(), Layer(service=True), Layer(port=True), Layer(service=True, port=True)
# This tool never changed the zone; it changed it and the file is as it left it; someone changed the file since.
NEVER = Kept(file=True)
LEFT = Kept(state=True, orig=True, applied=True, file=True, file_is_applied=True)
EDITED = Kept(state=True, orig=True, applied=True, file=True)


def apply(permanent: Layer, runtime: Layer, found: Kept = NEVER, policy: str = "keep") -> Plan:
    return plan(Facts(Zone("running", "present", permanent, runtime), found), Wanted("apply", policy, "smtps", PORT))


def remove(permanent: Layer, runtime: Layer, found: Kept) -> Plan:
    return plan(Facts(Zone("running", "present", permanent, runtime), found), Wanted("remove", "keep", "smtps", PORT))


def add(layer: str, what: str) -> Change:
    return Change(layer, "add", what, "smtps" if what == "service" else PORT)


def take(layer: str, what: str) -> Change:
    return Change(layer, "remove", what, "smtps" if what == "service" else PORT)


@pytest.mark.parametrize("action", ["apply", "remove"])
@pytest.mark.parametrize(("zone", "refuse"), [(Zone("stopped", "present", BOTH), "stopped"),
                                              (Zone("stopped", "unknown"), "stopped"),
                                              (Zone("stopped", "missing"), "stopped"),
                                              (Zone("running", "missing"), "missing")])
def test_a_stopped_firewalld_or_a_missing_zone_is_refused_before_anything(action, zone, refuse):
    assert plan(Facts(zone, LEFT), Wanted(action, "keep", "smtps", PORT)) == Plan(refuse=refuse)


# apply


def test_the_first_apply_adds_the_service_in_both_layers_and_keeps_the_zone_as_found():
    assert apply(NONE, NONE) == Plan(outcome="add", found="first",
                                     changes=(add("permanent", "service"), add("runtime", "service")))
    # No zone file in /etc yet (the package's zone): the same; the script keeps that there was none.
    assert apply(NONE, NONE, Kept()) == apply(NONE, NONE)


def test_only_the_layer_without_the_service_gets_it():
    assert apply(SERVICE, NONE).changes == (add("runtime", "service"),)
    assert apply(NONE, SERVICE).changes == (add("permanent", "service"),)


@pytest.mark.parametrize("found", [NEVER, LEFT, Kept(state=True, file=True), Kept(state=True)])
def test_the_service_in_both_layers_is_up_to_date(found):
    result = apply(SERVICE, SERVICE, found)
    # An earlier run changed it and was interrupted before recording the result (applied): recorded now.
    assert result == Plan(outcome="current", record=found == Kept(state=True, file=True))


def test_keep_a_raw_port_in_both_layers_does_the_services_work_and_is_kept():
    assert apply(PORT_ONLY, PORT_ONLY) == Plan(outcome="kept")
    assert apply(BOTH, PORT_ONLY, LEFT) == Plan(outcome="kept")


def test_keep_a_raw_port_in_the_permanent_layer_only_is_opened_at_runtime_too():
    # iRedMail >= 1.5 writes the port; a runtime layer that lost it (a reload of an older file) gets it back.
    assert apply(PORT_ONLY, NONE) == Plan(outcome="runtime", changes=(add("runtime", "port"),))
    assert apply(PORT_ONLY, SERVICE, LEFT) == Plan(outcome="runtime", changes=(add("runtime", "port"),))


def test_keep_a_raw_port_at_runtime_only_is_no_membership_and_stays():
    assert apply(NONE, PORT_ONLY) == Plan(outcome="add", found="first",
                                          changes=(add("permanent", "service"), add("runtime", "service")))


def test_replace_takes_the_raw_port_out_of_each_layer_that_has_it_after_the_service_went_in():
    # The service goes in before the port comes out: a kill in between leaves 465 open twice, never closed.
    assert apply(PORT_ONLY, PORT_ONLY, policy="replace") == Plan(
        outcome="add", found="first", had_port=True,
        changes=(add("permanent", "service"), add("runtime", "service"), take("permanent", "port"),
                 take("runtime", "port")))
    assert apply(NONE, PORT_ONLY, policy="replace").changes == (
        add("permanent", "service"), add("runtime", "service"), take("runtime", "port"))
    assert apply(NONE, PORT_ONLY, policy="replace").had_port is False


def test_replace_with_the_service_in_and_a_port_left_takes_only_the_port_out():
    assert apply(BOTH, SERVICE, LEFT, policy="replace") == Plan(outcome="add", had_port=True,
                                                                changes=(take("permanent", "port"),))
    assert apply(SERVICE, SERVICE, LEFT, policy="replace") == Plan(outcome="current")


def test_a_zone_file_as_this_tool_left_or_found_it_keeps_what_was_found():
    assert apply(NONE, SERVICE, LEFT).found == ""
    assert apply(NONE, SERVICE, Kept(state=True, orig=True, file=True, file_is_orig=True)).found == ""


def test_a_zone_file_someone_changed_since_is_the_new_as_found_while_our_service_is_not_in_it():
    assert apply(NONE, SERVICE, EDITED).found == "refound"
    # A zone file that went away since: nothing to keep; what was found stays.
    assert apply(NONE, SERVICE, Kept(state=True, orig=True, applied=True)).found == ""


def test_a_zone_file_someone_changed_since_with_our_service_in_it_is_no_longer_as_found():
    assert apply(SERVICE, NONE, EDITED).found == "forget"


def test_a_raw_port_this_tool_took_out_and_that_is_not_back_keeps_remove_on_its_part_by_part_path():
    took = Kept(state=True, orig=True, applied=True, had_port=True, file=True)
    assert apply(NONE, NONE, took, policy="replace").found == "forget"
    assert apply(PORT_ONLY, NONE, took, policy="replace").found == "refound"


@pytest.mark.parametrize("before", [Kept(before_is_orig=True), Kept(before_is_applied=True)])
def test_a_change_from_an_interrupted_run_of_ours_is_its_own_not_someone_elses(before):
    found = Kept(state=True, orig=True, applied=True, file=True, before_is_orig=before.before_is_orig,
                 before_is_applied=before.before_is_applied)
    assert apply(NONE, SERVICE, found).found == ""


# remove


def test_remove_with_nothing_of_ours_does_nothing():
    assert remove(SERVICE, SERVICE, NEVER) == Plan(outcome="none")


@pytest.mark.parametrize("found", [
    LEFT,  # as this tool left it
    Kept(state=True, orig=True, applied=True, file=True, file_is_orig=True),  # put back by an interrupted remove
    Kept(state=True, absent=True, applied=True, file=True, file_is_applied=True),  # there was none, as left
    Kept(state=True, absent=True, applied=True),  # there was none, and none is there (an interrupted remove)
])
def test_remove_of_a_zone_file_nobody_changed_puts_it_back_byte_for_byte(found):
    assert remove(SERVICE, SERVICE, found) == Plan(outcome="restore")


@pytest.mark.parametrize("found", [
    EDITED,  # someone changed the file since
    Kept(state=True, applied=True, file=True, file_is_applied=True),  # nothing is as found (forget)
    Kept(state=True, absent=True, applied=True, file=True),  # there was none; someone wrote one since
])
def test_remove_after_someone_changed_the_zone_takes_out_only_our_service(found):
    assert remove(SERVICE, SERVICE, found) == Plan(outcome="take-out", changes=(take("permanent", "service"),
                                                                               take("runtime", "service")))
    assert remove(NONE, SERVICE, found).changes == (take("runtime", "service"),)
    assert remove(NONE, NONE, found) == Plan(outcome="take-out")


def test_remove_puts_back_the_raw_port_it_took_out_before_the_service_goes():
    took = Kept(state=True, orig=True, applied=True, had_port=True, file=True)
    assert remove(SERVICE, SERVICE, took).changes == (add("permanent", "port"), add("runtime", "port"),
                                                      take("permanent", "service"), take("runtime", "service"))
    assert remove(BOTH, SERVICE, took).changes == (add("runtime", "port"), take("permanent", "service"),
                                                   take("runtime", "service"))


# the reader, the program, the script


def test_the_state_folder_and_the_zone_file_read_as_the_script_tested_them(tmp_path):
    state, zfile = tmp_path / "zone-iredmail", tmp_path / "iredmail.xml"
    assert kept(str(state), str(zfile)) == Kept()
    state.mkdir()
    (state / "orig").write_text("<zone>found</zone>")
    (state / "applied").write_text("<zone>ours</zone>")
    (state / "had-port").write_text("")
    zfile.write_text("<zone>ours</zone>")
    assert kept(str(state), str(zfile)) == Kept(state=True, orig=True, applied=True, had_port=True, file=True,
                                                file_is_applied=True)
    (tmp_path / "zone-iredmail.before").write_text("<zone>found</zone>")
    zfile.write_text("<zone>theirs</zone>")
    found = kept(str(state), str(zfile))
    assert found.before_is_orig and not found.file_is_applied and not found.before_is_applied
    (state / "absent").write_text("")
    zfile.unlink()
    assert kept(str(state), str(zfile)).absent and not kept(str(state), str(zfile)).file


def test_the_program_prints_the_facts_then_the_plan(tmp_path, monkeypatch, capsys):
    zone = Zone("running", "present", PORT_ONLY, NONE)
    monkeypatch.setattr(zone_probe, "read", lambda *args: zone)
    zone_probe.main("iredmail", "smtps", PORT, "apply", "keep", str(tmp_path / "zone-iredmail"),
                    str(tmp_path / "iredmail.xml"))
    assert capsys.readouterr().out.splitlines() == [
        "firewalld=running", "zone=present", "zone.permanent.service=no", "zone.permanent.port=yes",
        "zone.runtime.service=no", "zone.runtime.port=no",
        "plan.refuse=", "plan.outcome=runtime", "plan.record=no", "plan.found=", "plan.had_port=no",
        "plan.change=runtime add port 465/tcp"]
    zone_probe.main("iredmail", "smtps", PORT)
    assert capsys.readouterr().out.splitlines()[-1] == "zone.runtime.port=no"  # the facts alone


HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"


@pytest.mark.parametrize("action", list(Action))
def test_the_script_reads_the_plan_as_planned(action):
    """The script as rendered: its plan step leaves the shell each field of the plan, and the changes in order."""
    require(shutil.which("dash") is not None, "dash is needed to run the script's plan step")
    s = parse_host("dc1", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": HOST_KEY})
    script = zone_membership.MODEL.script(s.name, s.zone, action)
    head = "\n".join(line for line in script.splitlines()
                     if line.startswith(("ZONE=", "SERVICE=", "POLICY=", "PORT=", "ZFILE=", "S=")))
    step = head + re.search(r"\nread_plan\(\) \{.*?\n\}\n", script, re.S).group(0) + f"read_plan {action}\n"
    result = Plan(outcome="add", record=True, found="refound", had_port=True,
                  changes=(add("permanent", "service"), take("runtime", "port")))
    lines = "\n".join(["firewalld=running", "zone=present", *plan_lines(result)])
    probe = f"zone_probe() {{ cat <<'EOF'\n{lines}\nEOF\n}}\n"
    show = 'printf "%s|%s|%s|%s\\n" "$outcome" "$record" "$found" "$had_port"; printf "%s" "$CHANGES"\n'
    prelude = "set -eu\nSTATE=/state\nfail() { echo \"REFUSED: $*\"; exit 1; }\n"
    program = f"{prelude}{probe}{step}{show}"
    out = subprocess.run(["dash", "-c", program], capture_output=True, text=True, check=False)
    assert out.stdout == "add|yes|refound|yes\npermanent add service smtps\nruntime remove port 465/tcp\n", out
    for refuse, said in (("stopped", "firewalld is not running"), ("missing", "does not exist")):
        probe = f"zone_probe() {{ printf '%s\\n' plan.refuse={refuse} plan.outcome=; }}\n"
        out = subprocess.run(["dash", "-c", prelude + probe + step], capture_output=True, text=True, check=False)
        assert out.returncode == 1 and out.stdout.startswith("REFUSED: ") and said in out.stdout
