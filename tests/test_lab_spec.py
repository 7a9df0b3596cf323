"""Lab settings are checked before anything is created, with the setting named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.spec import SpecError, Variant, build_spec


def test_defaults_name_hosts_and_addresses():
    spec = build_spec(Path("/srv/lab"), 3)
    assert [h.name for h in spec.hosts] == ["mail1", "mail2", "mail3"]
    assert [h.variant for h in spec.hosts] == [Variant.IREDMAIL_14] * 3
    first = spec.hosts[0]
    assert (first.fqdn, first.netns, first.veth_outer) == ("mail1.lab", "smtpslab-mail1", "smtpslab1")
    assert (first.outer_address, first.address) == ("10.231.0.5", "10.231.0.6")
    assert spec.hosts[2].address == "10.231.0.14"


def test_fifty_hosts_fit_in_the_subnet_and_link_names_fit_the_kernel_limit():
    spec = build_spec(Path("/srv/lab"), 50, name="abcdefghijkl")
    assert len({h.address for h in spec.hosts}) == 50
    assert spec.hosts[-1].address == "10.231.0.202"
    assert max(len(h.veth_inner_tmp) for h in spec.hosts) <= 15


def test_hosts_behind_a_bastion():
    spec = build_spec(Path("/srv/lab"), 4, behind="mail3=mail1, 4=1")
    assert [h.bastion for h in spec.hosts] == [None, None, 1, 1]


def test_variants_by_host():
    spec = build_spec(Path("/srv/lab"), 3, "mail2=iredmail-1.5, 3=iredmail-1.5")
    assert [h.variant.value for h in spec.hosts] == ["iredmail-1.4", "iredmail-1.5", "iredmail-1.5"]
    assert spec.hosts[1].variant.has_smtps and not spec.hosts[0].variant.has_smtps


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"count": 0}, "HOSTS=0"),
    ({"count": 51}, "HOSTS=51"),
    ({"count": 2, "variants": "mail3=iredmail-1.5"}, "no host mail3"),
    ({"count": 2, "variants": "mail2=iredmail-9"}, "unknown variant 'iredmail-9'"),
    ({"count": 2, "variants": "mail2"}, "expected mailN=VARIANT"),
    ({"count": 2, "name": "Bad-Name"}, "lab name 'Bad-Name'"),
    ({"count": 2, "name": "waytoolongname"}, "lab name"),
    ({"count": 2, "subnet": "192.168.1.0/24"}, "inside 10.231.0.0/16"),
    ({"count": 2, "subnet": "10.231.0.0/16"}, "must be a /24"),
    ({"count": 2, "subnet": "nonsense"}, "lab subnet 'nonsense'"),
    ({"count": 2, "name": "lab1"}, "lab name 'lab1': 1 to 12 lower-case letters and digits, starting and ending"),
    ({"count": 2, "behind": "mail2"}, "expected mailN=mailB"),
    ({"count": 2, "behind": "mail2=mail3"}, "no host mail3"),
    ({"count": 2, "behind": "mail2=mail2"}, "cannot be its own bastion"),
    ({"count": 3, "behind": "mail2=mail1,mail3=mail2"}, "is itself behind mail1"),
])
def test_bad_settings_are_refused_with_the_setting_named(kwargs, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        build_spec(Path("/srv/lab"), **kwargs)


@pytest.mark.parametrize("state_dir", ["/etc/lab", "/var/tmp/lab", "/run/lab"])
def test_state_dir_must_not_be_under_an_overlaid_tree(state_dir):
    with pytest.raises(SpecError, match="must not lie under"):
        build_spec(Path(state_dir), 1)


@pytest.mark.parametrize("state_dir", ["/srv/my lab", "/srv/a,b", "/srv/a:b", "/srv/it's"])
def test_state_dir_with_characters_that_break_mount_options_or_sshd_config(state_dir):
    with pytest.raises(SpecError, match="use only letters"):
        build_spec(Path(state_dir), 1)
