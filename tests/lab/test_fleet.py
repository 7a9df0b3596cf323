"""`smtps fleet`: three stacks (datacenters) of 3, 3 and 4 lab hosts, run together through the real
engine with a bounded number of workers."""

from __future__ import annotations

import pytest

from smtps_iredmail.core import verify
from tests.enginekit import Project
from tests.lab.labkit import Lab, running_lab
from tests.lab.smtpskit import ssh_counts

pytestmark = [pytest.mark.lab, pytest.mark.engine]
STACKS = {"dc-a": ["mail1", "mail2", "mail3"], "dc-b": ["mail4", "mail5", "mail6"],
          "dc-c": ["mail7", "mail8", "mail9", "mail10"]}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory, "fleet", "--hosts", "10") as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def project(lab: Lab, tmp_path_factory):
    project = Project.for_lab(tmp_path_factory.mktemp("fleet") / "smtps", lab)
    for stack, names in STACKS.items():
        project.run_module("lab", "stack", "-s", stack)
        project.keep_hosts(stack, names)
    yield project
    for stack in STACKS:
        project.pulumi("destroy", "-s", stack, "--yes", check=False)


def table_rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0] in STACKS:
            rows[cells[0]] = cells
    return rows


def test_fleet_preview_shows_each_stack_and_touches_no_host(lab: Lab, project: Project):
    before = {h["name"]: ssh_counts(lab, h["name"]) for h in lab.hosts()}
    result = project.smtps("fleet", "preview", "--stacks", ",".join(STACKS), "--workers", "3")
    rows = table_rows(result.stdout)
    assert [rows[s][1] for s in STACKS] == ["3", "3", "4"]  # hosts
    assert all(rows[s][2].startswith("+ ") and rows[s][5] == "ok" for s in STACKS), rows
    assert {h["name"]: ssh_counts(lab, h["name"]) for h in lab.hosts()} == before
    print(next(line.strip() for line in result.stdout.splitlines() if "fleet preview:" in line))


def test_fleet_up_converges_every_stack(lab: Lab, project: Project):
    result = project.smtps("fleet", "up", "--stacks", ",".join(STACKS), "--workers", "3")
    rows = table_rows(result.stdout)
    assert all(rows[s][5] == "ok" and rows[s][3] == "0" for s in STACKS), rows
    assert all(verify.verify(h["address"]).ok for h in lab.hosts())
    print(next(line.strip() for line in result.stdout.splitlines() if "fleet up:" in line))


def test_a_failing_stack_fails_the_fleet_alone(lab: Lab, project: Project):
    project.pulumi("config", "set", "-s", "dc-b", "--path", "hosts[1].tlsCert", "/etc/pki/tls/certs/missing.crt")
    project.pulumi("config", "set", "-s", "dc-b", "--path", "defaults.options.syslog_name", "postfix/dc-b")
    project.pulumi("config", "set", "-s", "dc-a", "--path", "defaults.options.syslog_name", "postfix/dc-a")
    result = project.smtps("fleet", "up", "--stacks", ",".join(STACKS), "--workers", "2", check=False)
    assert result.returncode == 1
    rows = table_rows(result.stdout)
    assert rows["dc-b"][5] == "FAILED" and int(rows["dc-b"][3]) >= 1, rows
    assert rows["dc-a"][5] == rows["dc-c"][5] == "ok", rows
    assert rows["dc-a"][2] == "~ 3" or rows["dc-a"][2].startswith("~ "), rows
    # Under the table, each failure in one line, from the stack run's engine events.
    assert "dc-b: mail5: master.cf service: update: TLS certificate /etc/pki/tls/certs/missing.crt does not exist" \
        in result.stdout, result.stdout
    log = (project.folder / rows["dc-b"][6]).read_text()
    assert "mail5: TLS certificate /etc/pki/tls/certs/missing.crt does not exist" in log
    project.pulumi("config", "rm", "-s", "dc-b", "--path", "hosts[1].tlsCert")
    assert project.smtps("fleet", "up", "--stacks", "dc-b").returncode == 0
