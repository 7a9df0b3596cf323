"""A catalogue of hand edits, each through the real engine on lab hosts: `drift` reports it, `pulumi refresh
--preview-only` shows it as a change of the same field, `up --refresh` repairs it, and then `drift` is clean and
`preview --expect-no-changes` passes. Edits that `up` deliberately does not repair (a stopped daemon) are said in
words by both `drift` and `up`.

Four hosts take four edits at a time, one each: the rounds run in order on one stack (existingPortPolicy replace, so
that a raw 465 port is an edit too). `-s` prints the catalogue as a table."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
import yaml

from smtps_iredmail.core import verify
from tests.enginekit import Project
from tests.lab.faultkit import daemon_down
from tests.lab.labkit import Lab, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.engine]
STACK = "edits"
HOSTS = ("mail1", "mail2", "mail3", "mail4")
MASTER, SERVICE, ZONE = "master.cf service", "firewalld service", "zone membership"
FILE = "/etc/firewalld/services/smtps.xml"
RELOAD = " && postfix reload >/dev/null 2>&1"
COLUMNS = ("private", "unprivileged", "chroot", "wakeup", "maxproc", "command")
OPTIONS = ("syslog_name", "smtpd_tls_wrappermode", "smtpd_sasl_auth_enable", "smtpd_client_restrictions",
           "content_filter")


@dataclass(frozen=True)
class Edit:
    name: str
    shell: str
    fields: frozenset[tuple[str, str]]  # (resource, field) rows drift must report, and nothing else

    @classmethod
    def of(cls, name: str, shell: str, resource: str, *fields: str) -> Edit:
        return cls(name, shell, frozenset((resource, f) for f in fields))


EDITS = [
    # Not reloaded: Postfix's master refuses a private inet service (it would stop), and the file is the edit.
    Edit.of("master.cf column private (file only)", "postconf -F 465/inet/private=y", MASTER, "private"),
    Edit.of("master.cf column unprivileged", "postconf -F 465/inet/unprivileged=n" + RELOAD, MASTER, "unprivileged"),
    Edit.of("master.cf column chroot", "postconf -F 465/inet/chroot=y" + RELOAD, MASTER, "chroot"),
    Edit.of("master.cf column wakeup (file only)", "postconf -F 465/inet/wakeup=60", MASTER, "wakeup"),
    Edit.of("master.cf column maxproc", "postconf -F 465/inet/process_limit=7" + RELOAD, MASTER, "maxproc"),
    # By hand in the file, as with an editor (postconf -F would replace the -o overrides too).
    Edit.of("master.cf column command", "sed -i 's/^\\(465[[:space:]].*[[:space:]]smtpd\\)[[:space:]]*$/\\1 -v/' "
            "/etc/postfix/master.cf" + RELOAD, MASTER, "command"),
    Edit.of("master.cf option added", "postconf -P 465/inet/smtpd_tls_security_level=encrypt" + RELOAD, MASTER,
            "options.smtpd_tls_security_level"),
    Edit.of("master.cf option changed", "postconf -P 465/inet/syslog_name=postfix/other" + RELOAD, MASTER,
            "options.syslog_name"),
    Edit.of("master.cf option removed", "postconf -PX 465/inet/content_filter" + RELOAD, MASTER,
            "options.content_filter"),
    Edit.of("master.cf entry renamed to submissions",
            "E=$(postconf -M 465/inet | sed 's/^465 /submissions /') && postconf -MX 465/inet && "
            "postconf -M \"submissions/inet=$E\"" + RELOAD, MASTER, "serviceKey"),
    Edit.of("master.cf entry deleted", "postconf -MX 465/inet" + RELOAD, MASTER, "serviceKey", *COLUMNS,
            *(f"options.{o}" for o in OPTIONS)),
    Edit.of("master.cf second entry for 465 (smtps)",
            "postconf -M 'smtps/inet=smtps inet n - n - - smtpd'" + RELOAD, MASTER, "otherEntries"),
    Edit.of("service file short", f"sed -i 's|<short>.*</short>|<short>Edited</short>|' {FILE}", SERVICE,
            "serviceShort", "serviceFile"),
    Edit.of("service file description",
            f"sed -i 's|<description>.*</description>|<description>Edited.</description>|' {FILE}", SERVICE,
            "serviceDescription", "serviceFile"),
    Edit.of("service file ports", f"sed -i 's|port=\"465\"|port=\"4650\"|' {FILE}", SERVICE, "servicePorts",
            "serviceFile"),
    Edit.of("service file comment added", f"sed -i '1a <!-- edited by hand -->' {FILE}", SERVICE, "serviceFile"),
    Edit.of("service file mode", f"chmod 600 {FILE}", SERVICE, "serviceMode"),
    Edit.of("service file deleted", f"rm {FILE}", SERVICE, "serviceShort", "serviceDescription", "servicePorts",
            "serviceFile", "serviceMode"),
    Edit.of("zone membership removed, permanent only",
            "firewall-cmd --permanent --zone=iredmail --remove-service=smtps >/dev/null", ZONE, "permanent"),
    Edit.of("zone membership removed, runtime only",
            "firewall-cmd --zone=iredmail --remove-service=smtps >/dev/null", ZONE, "runtime"),
    Edit.of("zone membership removed, both layers",
            "firewall-cmd --permanent --zone=iredmail --remove-service=smtps >/dev/null && "
            "firewall-cmd --zone=iredmail --remove-service=smtps >/dev/null", ZONE, "permanent", "runtime"),
    Edit.of("465 opened by port instead of the service",
            "for p in --permanent ''; do firewall-cmd $p --zone=iredmail --remove-service=smtps >/dev/null && "
            "firewall-cmd $p --zone=iredmail --add-port=465/tcp >/dev/null; done", ZONE, "permanent", "runtime",
            "rawPort"),
]
CATALOGUE: list[tuple[str, str, str, str]] = []  # edit, drift rows, refresh fields, repaired


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory, "edits", "--hosts", str(len(HOSTS))) as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def project(lab: Lab, tmp_path_factory):
    project = Project.for_lab(tmp_path_factory.mktemp("edits") / "smtps", lab, STACK)
    replace_raw_ports(project)
    project.smtps("up", "-s", STACK, "--yes")
    yield project
    project.pulumi("cancel", "-s", STACK, "--yes", check=False)
    project.pulumi("destroy", "-s", STACK, "--yes", check=False)
    if CATALOGUE:
        print("\n| edit | drift rows | refresh fields | repaired |\n|---|---|---|---|")
        for row in CATALOGUE:
            print("| " + " | ".join(row) + " |")


def replace_raw_ports(project: Project) -> None:
    path = project.folder / "stacks" / f"Pulumi.{STACK}.yaml"
    data = yaml.safe_load(path.read_text())
    data["config"]["smtps-iredmail:defaults"] = {"existingPortPolicy": "replace", "firewall": "firewalld"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def drift_rows(project: Project) -> dict[str, set[tuple[str, str]]]:
    result = project.smtps("drift", "-s", STACK, "--json", check=False)
    rows: dict[str, set[tuple[str, str]]] = {}
    for row in json.loads(result.stdout or "[]"):
        rows.setdefault(row["host"], set()).add((row["resource"], row["field"]))
    assert (result.returncode == 1) is bool(rows), result.stdout + result.stderr
    return rows


def refresh_fields(text: str) -> dict[str, set[str]]:
    """Per resource name (mail1-master), the top-level inputs `pulumi refresh --preview-only --diff` shows changed,
    and the keys inside a changed mapping as `options.KEY`."""
    found: dict[str, set[str]] = {}
    current = None
    parent = None
    for line in text.splitlines():
        urn = re.search(r"\[urn=\S+::([\w.-]+)\]", line)
        if urn:
            current, parent = urn.group(1), None
            found.setdefault(current, set())
            continue
        change = re.match(r"^(\s*)([-+~]) (\w+)\s*:", line)
        if current and change:
            depth, name = len(change.group(1)), change.group(3)
            if parent and depth > parent[0]:
                found[current].add(f"{parent[1]}.{name}")
            else:
                parent = (depth, name) if line.rstrip().endswith("{") else None
                found[current].add(name)
    return found


SUFFIX = {MASTER: "master", SERVICE: "service", ZONE: "zone"}


def run_round(lab: Lab, project: Project, edits: list[Edit]) -> None:
    for host, edit in zip(HOSTS, edits, strict=False):
        lab.sh(host, edit.shell)
    rows = drift_rows(project)
    refresh = project.pulumi("refresh", "-s", STACK, "--preview-only", "--diff").stdout
    shown = refresh_fields(refresh)
    for host, edit in zip(HOSTS, edits, strict=False):
        assert rows.get(host, set()) == set(edit.fields), (edit.name, rows.get(host))
        for resource, field in edit.fields:
            # A mapping's entry shows under it (options.KEY); a top-level field by its name.
            assert field in shown.get(f"{host}-{SUFFIX[resource]}", set()), (edit.name, field, refresh)
    project.smtps("up", "-s", STACK, "--yes", "--refresh")
    assert drift_rows(project) == {}
    project.smtps("preview", "-s", STACK, "--expect-no-changes")
    for host, edit in zip(HOSTS, edits, strict=False):
        assert verify.verify(next(h for h in lab.hosts() if h["name"] == host)["address"]).ok, edit.name
        fields = ", ".join(sorted(f for _, f in edit.fields))
        CATALOGUE.append((edit.name, fields, fields, "yes"))  # both asserted above, field by field


@pytest.mark.parametrize("start", range(0, len(EDITS), len(HOSTS)))
def test_each_edit_is_seen_alike_by_drift_and_refresh_and_repaired_by_up_refresh(lab: Lab, project: Project, start):
    run_round(lab, project, EDITS[start:start + len(HOSTS)])


@pytest.mark.parametrize(("daemon", "resource", "words"), [
    ("postfix", MASTER, "postfix is not running: this tool does not start it"),
    ("firewalld", ZONE, "firewalld is not running: this tool does not start it"),
])
def test_a_stopped_daemon_is_reported_and_not_started_in_words(lab: Lab, project: Project, daemon, resource, words):
    with daemon_down(lab, "mail2", daemon):
        result = project.smtps("drift", "-s", STACK, "--json", check=False)
        rows = json.loads(result.stdout)
        assert {(r["host"], r["resource"], r["field"]) for r in rows} >= {("mail2", resource, daemon)}
        [row] = [r for r in rows if r["field"] == daemon]
        assert row["live"] == "stopped" and f"up does not start {'Postfix' if daemon == 'postfix' else daemon}" in \
            row["note"]
        table = project.smtps("drift", "-s", STACK, check=False).stdout
        assert f"mail2: {daemon} is stopped: up does not start" in table
        # The front end's refresh (the Automation API) shows it as the plain CLI's does.
        refresh = project.smtps("refresh", "-s", STACK, "--preview-only", "--diff").stdout
        assert re.search(rf"~ {daemon}\s*:\s*\"running\" => \"stopped\"", refresh), refresh
        up = project.smtps("up", "-s", STACK, "--yes", "--refresh", check=False)
        assert up.returncode != 0
        # The end of `up`: one line for the host, its resource and step, in the script's own words.
        assert re.search(rf"mail2: {resource}: update: .*{words}", up.stderr), up.stderr
        assert "Traceback" not in up.stderr.split("failure(s):", 1)[1]
    project.smtps("up", "-s", STACK, "--yes", "--refresh")
    assert drift_rows(project) == {}
    project.smtps("preview", "-s", STACK, "--expect-no-changes")
    CATALOGUE.append((f"{daemon} stopped", daemon, daemon, "no: said in words by drift and up"))


def test_rebuilt_hosts_are_converged_and_verified_again(lab: Lab, project: Project):
    """New machines at the same addresses (the lab rebuilt: new host keys, nothing of SMTPS on them), while the state
    says SMTPS is on them: `up` converges each and checks it from outside again."""
    old_keys = {h["name"]: h["host_key"] for h in lab.hosts()}
    lab.cli("down")
    lab.cli("up", "--hosts", str(len(HOSTS)))
    assert all(old_keys[h["name"]] != h["host_key"] for h in lab.hosts())
    assert not any(verify.verify(h["address"]).ok for h in lab.hosts())
    project.run_module("lab", "stack", "-s", STACK)  # the new host keys, as after `make lab-up`
    replace_raw_ports(project)
    up = project.smtps("up", "-s", STACK, "--yes")
    # Each host's three kinds and its check updated (plus the providers, whose deploy key the new lab changed).
    assert int(re.search(r"~ (\d+) updated", up.stdout).group(1)) >= 4 * len(HOSTS), up.stdout
    for host in lab.hosts():
        assert verify.verify(host["address"]).ok, host["name"]
        # The apply ran on the new machine: it has this tool's state folder again.
        assert lab.sh(host["name"], "test -d /var/lib/smtps-iredmail/master && echo yes").stdout.strip() == "yes"
    outputs = json.loads(project.pulumi("stack", "output", "-s", STACK, "--json", "hosts").stdout)
    assert all(outputs[name]["tlsVersion"].startswith("TLSv1") for name in HOSTS)
    assert drift_rows(project) == {}
    project.smtps("preview", "-s", STACK, "--expect-no-changes")


def test_destroy_through_the_front_end_takes_smtps_off_every_host(lab: Lab, project: Project):
    project.smtps("destroy", "-s", STACK, "--yes")
    for host in lab.hosts():
        assert not verify.verify(host["address"]).ok, host["name"]
        state = lab.sh(host["name"], "test -e /var/lib/smtps-iredmail && echo left || echo gone").stdout
        assert state.strip() == "gone"
    assert "465" not in lab.sh("mail1", "postconf -M").stdout.split()
