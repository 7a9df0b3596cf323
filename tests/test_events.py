"""What one engine run did, from the engine's own events (smtps/events.py): failures one line per host and
resource in the script's own words, and the counts of changes, as the front end and `smtps fleet` read them."""

from __future__ import annotations

import json
import traceback

from pulumi.automation import events as ev

from smtps_iredmail.core.events import EngineEvents, Failure, error_of, message_of
from smtps_iredmail.core.remote import HostFailure

MASTER = ("urn:pulumi:dc1::smtps-iredmail::smtps-iredmail:index:SmtpsHost$pulumi-python:dynamic/smtps:MasterService"
          "::mx1-master")
STACK = "urn:pulumi:dc1::smtps-iredmail::pulumi:pulumi:Stack::smtps-iredmail-dc1"


def error(urn: str, message: str) -> ev.EngineEvent:
    return ev.EngineEvent(sequence=1, timestamp=0, diagnostic_event=ev.DiagnosticEvent(
        message=message, color="never", severity="error", urn=urn))


def step(urn: str, op: ev.OpType, failed: bool = False) -> ev.EngineEvent:
    meta = ev.StepEventMetadata(op=op, urn=urn, type="t", provider="p")
    if failed:
        return ev.EngineEvent(sequence=1, timestamp=0, res_op_failed_event=ev.ResOpFailedEvent(meta, 1, 1))
    return ev.EngineEvent(sequence=1, timestamp=0, resource_pre_event=ev.ResourcePreEvent(meta))


def test_failures_read_from_events_name_host_resource_step_and_the_scripts_words():
    collected = EngineEvents({"master": "master.cf service", "verify": "verification"})
    urn = ("urn:pulumi:dc1::smtps-iredmail::smtps-iredmail:index:SmtpsHost$pulumi-python:dynamic/smtps:MasterService"
           "::mx1-master")
    stack = "urn:pulumi:dc1::smtps-iredmail::pulumi:pulumi:Stack::smtps-iredmail-dc1"
    traceback = ("Exception calling application: Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n"
                 "    raise HostFailure(message)\n"
                 "smtps_iredmail.base.HostFailure: smtps: mx1: TLS certificate /etc/nope.crt does not exist\n")
    meta = ev.StepEventMetadata(op=ev.OpType.UPDATE, urn=urn, type="t", provider="p")
    for event in (ev.EngineEvent(sequence=1, timestamp=0, resource_pre_event=ev.ResourcePreEvent(meta)),
                  ev.EngineEvent(sequence=2, timestamp=0, diagnostic_event=ev.DiagnosticEvent(
                      message=traceback, color="never", severity="error", urn=urn)),
                  ev.EngineEvent(sequence=3, timestamp=0, diagnostic_event=ev.DiagnosticEvent(
                      message="update failed", color="never", severity="error", urn=stack))):
        collected.on_event(event)
    assert [str(f) for f in collected.failures()] == [
        "mx1: master.cf service: update: TLS certificate /etc/nope.crt does not exist"]
    assert [f.error for f in collected.failures()] == ["HostFailure"]
    program = EngineEvents({})
    for message in ("stack dc1: no deploy key", "an unhandled error occurred: stack dc1: no deploy key"):
        program.on_event(ev.EngineEvent(sequence=1, timestamp=0, diagnostic_event=ev.DiagnosticEvent(
            message=message, color="never", severity="error", urn=stack)))
    assert [str(f) for f in program.failures()] == ["program: stack dc1: no deploy key"]


def test_a_failed_step_without_a_message_of_its_own_and_a_check_naming_its_host_by_address():
    collected = EngineEvents({"master": "master.cf service", "verify": "verification"})
    verify = MASTER.replace("MasterService::mx1-master", "Verification::mx1-verify")
    for event in (step(MASTER, ev.OpType.CREATE), step(MASTER, ev.OpType.CREATE, failed=True),
                  step(verify, ev.OpType.UPDATE), error(verify, "mx1 (10.0.0.1): port 465 does not answer TLS"),
                  error(verify, "mx1 (10.0.0.1): port 465 does not answer TLS")):
        collected.on_event(event)
    # A resource with messages first, then one that failed without any; a message said twice shows once.
    assert collected.failures() == [Failure("mx1", "verification", "update", "port 465 does not answer TLS"),
                              Failure("mx1", "master.cf service", "create", "failed (see above)")]


def test_a_resource_of_no_known_kind_is_named_by_its_type():
    collected = EngineEvents({"master": "master.cf service"})
    other = "urn:pulumi:dc1::smtps-iredmail::pulumi:providers:pulumi-python::ssh-3"
    collected.on_event(error(other, "error: cannot connect"))
    assert [str(f) for f in collected.failures()] == ["ssh-3: pulumi:providers:pulumi-python: run: cannot connect"]


def test_the_exceptions_own_message_is_taken_from_a_traceback():
    traceback = ("Traceback (most recent call last):\n  File \"x.py\", line 3, in apply\n    raise HostFailure(m)\n"
                 "smtps_iredmail.base.HostFailure: smtps: mx1: the reload failed:\n  firewalld says no\n")
    assert message_of(traceback) == "smtps: mx1: the reload failed: firewalld says no"
    assert message_of("error: plain words\n") == "plain words"
    # A line that only looks like one, indented inside the traceback, is not the exception.
    assert message_of("Traceback (most recent call last):\n    ValueError: in the code\nKeyError: 'x'") == "'x'"


def test_counts_and_failures_written_as_the_fleet_reads_them(tmp_path):
    collected = EngineEvents({"master": "master.cf service"})
    collected.on_event(ev.EngineEvent(sequence=9, timestamp=0, summary_event=ev.SummaryEvent(
        maybe_corrupt=False, duration_seconds=3, policy_packs={},
        resource_changes={ev.OpType.CREATE: 4, ev.OpType.SAME: 2, ev.OpType.UPDATE: 1})))
    collected.on_event(step(MASTER, ev.OpType.UPDATE))
    collected.on_event(error(MASTER, "smtps: mx1: no such certificate"))
    path = tmp_path / "summary.json"
    collected.write(str(path))
    assert json.loads(path.read_text()) == {
        "changes": {"create": 4, "same": 2, "update": 1},
        "failures": [{"host": "mx1", "resource": "master.cf service", "step": "update",
                      "message": "no such certificate", "error": ""}]}


def _provider_traceback(monkeypatch, stderr: str) -> str:
    """What the engine's event carries when the check fails and the rollback fails with the host's words `stderr`:
    the provider's traceback, as pulumi.dynamic's server sends it (traceback.format_exc())."""
    from smtps_iredmail import verification
    from smtps_iredmail.core import rollback

    def failed_rollback(self, props):
        return rollback.Outcome(f"and rolling back this run's changes failed: {HostFailure(stderr, 1, stderr)}")

    monkeypatch.setattr(verification, "verify", lambda *_a, **_k: 1 / 0)
    monkeypatch.setattr(verification.VerificationProvider, "_roll_back", failed_rollback)
    try:
        verification.VerificationProvider()._verify({"host": "mail1", "address": "192.0.2.1", "port": 465})
    except verification.VerificationFailed as err:
        assert type(err) is verification.VerificationFailed  # the provider knows: not rolled back
        return traceback.format_exc()
    raise AssertionError("the check did not fail")


def test_a_hosts_words_cannot_make_a_failed_rollback_read_as_rolled_back(monkeypatch):
    """The front end reads hosts back into the state (and says "rolled back") by Failure.error == RolledBackFailure,
    taken from the LAST line of the traceback that looks like `Name...Failure: ...`. The failure's message holds the
    host's stderr (data), several lines: a line of it wins over the real exception's line."""
    tb = _provider_traceback(monkeypatch, "smtps: mail1: rollback: postfix check failed: x\nRolledBackFailure: y")
    assert error_of(tb) == "VerificationFailed"


def test_a_python_traceback_on_the_host_does_not_rename_the_exception(monkeypatch):
    """The same with an honest host: a host-side program's own traceback (the lockout guard's, master_cf.py's,
    passed on by `fail "$why"`) names the failure KeyError, not VerificationFailed."""
    tb = _provider_traceback(monkeypatch, "smtps: mail1: Traceback (most recent call last):\n  File x\nKeyError: 'a'")
    assert error_of(tb) == "VerificationFailed"


def test_the_state_a_preview_found_is_each_resources_first_recorded_state_as_an_export_shapes_it():
    # The front end shows each auto host's recorded firewall from a preview's events, with no export of the state:
    # the first old state seen of a resource (a refresh's, before the refreshed one), none of a new resource's.
    def pre(urn: str, op: ev.OpType, outputs: dict | None) -> ev.EngineEvent:
        old = None if outputs is None else ev.StepEventStateMetadata(
            type="smtps:MasterService", urn=urn, custom=True, delete=False, id="i", parent="", protect=False,
            inputs={}, outputs=outputs, provider="p")
        meta = ev.StepEventMetadata(op=op, urn=urn, type="smtps:MasterService", provider="p", old=old)
        return ev.EngineEvent(sequence=1, timestamp=0, resource_pre_event=ev.ResourcePreEvent(meta))

    new = MASTER.replace("mx1-master", "mx2-master")
    collected = EngineEvents({"master": "master.cf service"})
    for event in (pre(MASTER, ev.OpType.REFRESH, {"host": "mx1", "firewallUsed": "nftables"}),
                  pre(MASTER, ev.OpType.UPDATE, {"host": "mx1", "firewallUsed": "firewalld"}),
                  pre(new, ev.OpType.CREATE, None)):
        collected.on_event(event)
    assert collected.state() == {"resources": [
        {"urn": MASTER, "type": "smtps:MasterService", "outputs": {"host": "mx1", "firewallUsed": "nftables"}}]}
