"""A kind's input keys are written once, as its inputs fields: the readers, `live` and DEFAULTS all go through them."""

from __future__ import annotations

import pytest

from smtps_iredmail.core import firewall as fw
from smtps_iredmail.core.firewalld_service import FirewalldServiceInputs
from smtps_iredmail.core.hosts import DEFAULTS
from smtps_iredmail.kinds import KINDS


def test_a_key_is_its_field_camelcased_and_a_misspelt_one_fails():
    assert FirewalldServiceInputs.key.service_short == "serviceShort"
    assert FirewalldServiceInputs.found(service_short="x", service_mode="644") == {"serviceShort": "x",
                                                                                   "serviceMode": "644"}
    with pytest.raises(AttributeError):
        _ = FirewalldServiceInputs.key.service_shrot
    with pytest.raises(TypeError, match="service_shrot"):
        FirewalldServiceInputs.found(service_shrot="x")


def test_each_default_is_declared_by_one_kind_at_most_and_reaches_defaults():
    declared: dict[str, str] = {}
    for kind in KINDS:
        for key, default in kind.model.inputs.defaults().items():
            assert key not in declared, f"{key}: default declared by {declared[key]} and {kind.model.kind}"
            declared[key] = kind.model.kind
            assert DEFAULTS[key] == default


def test_upgrade_gives_older_state_of_a_firewall_kind_its_firewall_and_leaves_the_rest():
    for kind in KINDS:
        olds = {"revision": 1}
        upgraded = kind.model.upgrade(olds)
        if len(kind.model.firewalls) == 1:
            assert upgraded == {"revision": 1, fw.SETTING: kind.model.firewalls[0].value}
        else:
            assert upgraded == olds
        # State that has the setting is left as it is.
        assert kind.model.upgrade({fw.SETTING: "auto"}) == {fw.SETTING: "auto"}
    assert olds == {"revision": 1}  # never changed in place
