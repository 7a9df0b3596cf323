"""Canary rollout: `smtps up -s STACK --canary HOST[,HOST]` converges and verifies the canaries first, and
goes on with the rest only if they pass."""

from __future__ import annotations

import pytest

from smtps_iredmail.core import verify
from tests.enginekit import Project
from tests.lab.labkit import TEST_PREFIX, Lab, running_lab
from tests.lab.smtpskit import snapshot, ssh_counts

pytestmark = [pytest.mark.lab, pytest.mark.engine]
STACK = "canary"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory, "canary", "--hosts", "3") as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def project(lab: Lab, tmp_path_factory):
    project = Project.for_lab(tmp_path_factory.mktemp("canary") / "smtps", lab, STACK)
    yield project
    project.pulumi("destroy", "-s", STACK, "--yes", check=False)


def test_a_canary_that_is_not_a_host_is_refused_before_anything_runs(lab: Lab, project: Project):
    before = {h["name"]: ssh_counts(lab, h["name"]) for h in lab.hosts()}
    result = project.smtps("up", "-s", STACK, "--yes", "--canary", "mail1,mail9", check=False)
    assert result.returncode == 2
    # The same check, and the same words, as a canary in the stack file gets.
    assert "stack canary, host mail9, setting canaries: not a host of this stack" in result.stderr, result.stderr
    assert {h["name"]: ssh_counts(lab, h["name"]) for h in lab.hosts()} == before


def test_a_canary_that_fails_verification_stops_the_rollout(lab: Lab, project: Project):
    # A bad change: AUTH switched off on 465 (allowed on purpose: only yes is on the options' allow-list). The canary
    # converges, its check from outside fails, and the others are never touched.
    project.pulumi("config", "set", "-s", STACK, "--path", "defaults.options.smtpd_sasl_auth_enable", "no")
    project.pulumi("config", "set", "-s", STACK, "--path", "defaults.allowOptions[0]", "smtpd_sasl_auth_enable")
    others = {name: (snapshot(lab, name), ssh_counts(lab, name)) for name in ("mail2", "mail3")}
    result = project.smtps("up", "-s", STACK, "--yes", "--canary", "mail1", check=False)
    text = result.stdout + result.stderr
    assert result.returncode == 1
    assert f"mail1 ({TEST_PREFIX}" in text and "verification failed: EHLO does not offer AUTH" in text, text
    assert "smtps: canary mail1 failed (see above): the rest of stack canary is left as it was" in text
    assert {name: (snapshot(lab, name), ssh_counts(lab, name)) for name in ("mail2", "mail3")} == others


def test_a_passing_canary_goes_on_with_the_rest(lab: Lab, project: Project):
    project.pulumi("config", "rm", "-s", STACK, "--path", "defaults.options.smtpd_sasl_auth_enable")
    project.pulumi("config", "rm", "-s", STACK, "--path", "defaults.allowOptions")
    result = project.smtps("up", "-s", STACK, "--yes", "--canary", "mail1")
    assert "smtps: canary mail1 converged and verified: now the rest of stack canary" in result.stderr
    # The canary's phase touched mail1 only; the second converged the rest.
    first, _, second = result.stdout.partition("Resources:")
    assert "mail1-verify" in first and "mail2-master" not in first and "mail3-master" not in first
    assert "mail2-verify" in second and "mail3-verify" in second
    assert all(verify.verify(h["address"]).ok for h in lab.hosts())
