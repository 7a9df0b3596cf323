"""Lab hosts made one by one (lab/pulumi_host.py, examples/lab-fleet) without a lab: the inventory several creates
share, the resources' checks, the example's config. (tests/lab/test_lab_fleet_example.py runs them for real.)"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pulumi.output import Unknown

from lab import host as hostops
from lab import lab
from lab.fleet_example import settings
from lab.pulumi_host import LabHostProvider, LabProvider
from lab.render import HostPaths
from lab.spec import SpecError, Variant, host_spec, lab_spec

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"


def made(spec, index: int, variant: str = "iredmail-1.4"):
    """A host as far as the inventory sees one: its folder with its public host key."""
    host = host_spec(spec, index, variant)
    key = HostPaths(spec.host_dir(host)).host_key.with_suffix(".pub")
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_text(f"{KEY} root@{host.fqdn}\n")
    return host


def test_hosts_recorded_at_once_all_stay_and_a_removed_one_leaves_a_gap(tmp_path):
    spec = lab_spec(tmp_path / "lab", "fleettest", "10.231.9.0/24")
    spec.state_dir.mkdir()
    hostops.write_secret(spec.state_dir / "sasl_password", "pw")
    hosts = [made(spec, i, "iredmail-debian" if i % 2 else "iredmail-1.5") for i in range(1, 9)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda h: lab.record_host(spec, h), hosts))
    assert lab.spec_from_inventory(spec.state_dir).hosts == tuple(hosts)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda h: lab.record_host(spec, h, present=False), hosts[1:7:2]))
    left = lab.spec_from_inventory(spec.state_dir)
    assert [h.name for h in left.hosts] == ["mail1", "mail3", "mail5", "mail7", "mail8"]
    assert left.hosts == tuple(h for h in hosts if h.index in (1, 3, 5, 7, 8))
    assert len(spec.known_hosts.read_text().splitlines()) == 5
    for h in left.hosts:
        lab.record_host(spec, h, present=False)
    assert not spec.inventory_path.exists() and lab.spec_from_inventory(spec.state_dir) is None


@pytest.mark.parametrize(("index", "variant", "message"), [
    (0, "iredmail-1.4", "host index 0: the lab numbers its hosts 1 to 50"),
    (51, "iredmail-1.4", "host index 51"),
    (True, "iredmail-1.4", "host index True"),
    (2, "iredmail-9", "host mail2: unknown variant 'iredmail-9' (allowed: iredmail-1.4,"),
])
def test_a_host_made_alone_is_checked_by_the_labs_rules(index, variant, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        host_spec(lab_spec(Path("/srv/lab")), index, variant)


LAB = {"lab": "fleettest", "subnet": "10.231.9.0/24", "state_dir": "/srv/lab"}


def test_the_resources_check_in_the_labs_words_and_leave_unknown_inputs_for_later():
    assert LabProvider().check({}, LAB).failures == []
    [failure] = LabProvider().check({}, {**LAB, "subnet": "10.0.0.0/24"}).failures
    assert "lab subnet 10.0.0.0/24: must be a /24 inside 10.231.0.0/16" in failure.reason
    host = {**LAB, "index": 2.0, "variant": "iredmail-debian"}  # a number crosses the engine as a float
    assert LabHostProvider().check({}, host).failures == []
    [failure] = LabHostProvider().check({}, {**host, "variant": "debian"}).failures
    assert "host mail2: unknown variant 'debian'" in failure.reason
    # At preview the lab's outputs are not known yet.
    assert LabHostProvider().check({}, {**host, "state_dir": Unknown(), "variant": "debian"}).failures == []
    [failure] = LabHostProvider().check({}, {**LAB, "variant": "iredmail-1.4"}).failures
    assert failure.property == "index"


def test_a_changed_host_is_replaced_the_old_one_removed_first():
    host = {**LAB, "index": 1, "variant": "iredmail-1.4"}
    assert not LabHostProvider().diff("id", host, host).changes
    result = LabHostProvider().diff("id", host, {**host, "variant": "iredmail-debian"})
    assert result.changes and result.replaces == ["variant"] and result.delete_before_replace


def test_the_examples_hosts_alternate_firewalls_unless_its_config_names_variants():
    config = {"labName": "fleettest", "labSubnet": "10.231.9.0/24", "stateDir": "state", "hosts": "3"}
    spec = settings(config.get, Path("/srv/example"))
    assert (spec.name, str(spec.subnet), spec.state_dir) == ("fleettest", "10.231.9.0/24", Path("/srv/example/state"))
    assert [h.variant for h in spec.hosts] == [Variant.IREDMAIL_14, Variant.IREDMAIL_DEBIAN, Variant.IREDMAIL_14]
    chosen = settings({**config, "variants": "mail1=iredmail-1.5"}.get, Path("/srv/example"))
    assert [h.variant.firewall for h in chosen.hosts] == ["firewalld", "nftables", "firewalld"]
    assert chosen.hosts[0].variant is Variant.IREDMAIL_15
    assert settings({}.get, Path("/srv/example")).deploy_key == Path("/srv/example/.lab/deploy_key")
    with pytest.raises(SpecError, match="hosts 'two': a whole number"):
        settings({"hosts": "two"}.get, Path("/srv/example"))
    with pytest.raises(SpecError, match="no host mail3 in a lab of 2"):
        settings({"variants": "mail3=iredmail-1.5"}.get, Path("/srv/example"))
