"""A kind is its module smtps/<kind>.py, its template templates/<kind>.sh.j2 and one line in smtps/kinds.py: checked
here without adding one. Everything that is about every kind (a host's settings and their defaults, the program's
arguments, the Pulumi binding, drift) reads the list and imports no kind's module; the few files that import one do
so for a reason named below, and a kind outside the first four has none. The first four keep the provider classes
their states name, pickled byte for byte as before."""

from __future__ import annotations

import ast
import base64
import pickletools
from dataclasses import fields
from pathlib import Path

import dill
import pulumi
from pulumi.dynamic.dynamic import serialize_provider

from smtps_iredmail import SmtpsHost, SmtpsHostArgs
from smtps_iredmail import kinds as bound
from smtps_iredmail.base import PROVIDER_KEY, HostProvider
from smtps_iredmail.binding import KindProvider, resource_for
from smtps_iredmail.core import kinds
from smtps_iredmail.core.firewall import SETTING
from smtps_iredmail.core.hosts import DEFAULTS, HostSettings, parse_host
from smtps_iredmail.core.model import Model
from tests.test_components import KEY, Mocks
from tests.test_structure import _imports

REPO = Path(__file__).resolve().parent.parent
CORE = "smtps_iredmail.core"
# The four kinds bound before the generic binding: their provider classes, as every state since names them.
FIRST = ("master_service", "firewalld_service", "zone_membership", "nftables_rule")
# Files outside the kinds' own modules that import one kind's module, and why: none of them is about every kind.
REASONS = {
    "master_service": {
        f"{CORE}.cli": "verify reads the certificate 465 serves, the master.cf kind's report",
        "smtps_iredmail.host": "the public API's TLS files become the entry's options",
    },
    "nftables_rule": {
        f"{CORE}.rollback": "a rollback puts back the chain of this run's snapshot",
        "smtps_iredmail.verification": "which checks the rollback's chain",
    },
    "zone_membership": {f"{CORE}.rollback": "a rollback puts back the zone of this run's snapshot"},
}
# The provider of each of the first four as the engine pickles it into the state (before the generic binding).
PICKLED = {
    "master_service":
        "gASVPgAAAAAAAACMHXNtdHBzX2lyZWRtYWlsLm1hc3Rlcl9zZXJ2aWNllIwVTWFzdGVyU2VydmljZVByb3ZpZGVylJOUKYGULg==",
    "firewalld_service":
        "gASVRAAAAAAAAACMIHNtdHBzX2lyZWRtYWlsLmZpcmV3YWxsZF9zZXJ2aWNllIwYRmlyZXdhbGxkU2VydmljZVByb3ZpZGVylJOUKYGULg==",
    "zone_membership":
        "gASVQAAAAAAAAACMHnNtdHBzX2lyZWRtYWlsLnpvbmVfbWVtYmVyc2hpcJSMFlpvbmVNZW1iZXJzaGlwUHJvdmlkZXKUk5QpgZQu",
    "nftables_rule":
        "gASVPAAAAAAAAACMHHNtdHBzX2lyZWRtYWlsLm5mdGFibGVzX3J1bGWUjBROZnRhYmxlc1J1bGVQcm92aWRlcpSTlCmBlC4=",
}


def _settings() -> HostSettings:
    return parse_host("dc1", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": KEY})


def test_every_kind_in_the_list_is_its_module_and_its_template():
    assert kinds.MODULES[:len(FIRST)] == FIRST
    assert len(set(kinds.MODULES)) == len(kinds.MODULES)
    for module, model in zip(kinds.MODULES, kinds.KINDS, strict=True):
        source = (REPO / "smtps" / f"{module}.py").read_text()
        assert isinstance(model, Model) and type(model).__module__ == f"{CORE}.{module}"
        assert f'"{module}.sh.j2"' in source, f"{module}: renders no templates/{module}.sh.j2"
        assert (REPO / "templates" / f"{module}.sh.j2").is_file()
        assert model.name and model.resource and model.kind
        assert kinds.named(model.name) is model
    assert len({m.name for m in kinds.KINDS}) == len({m.resource for m in kinds.KINDS}) == len(kinds.KINDS)


def test_a_hosts_settings_and_their_defaults_come_from_the_list():
    for model in kinds.KINDS:
        assert DEFAULTS.items() >= model.inputs.defaults().items(), model.name
    settings = _settings()
    assert [name for name, _ in settings.parts] == [m.name for m in kinds.KINDS]
    # Each part (or its pieces) reads as an attribute, by one name, none of them a field of every host's.
    views = [name for model in kinds.KINDS for name in model.views(settings.part(model.name))]
    assert len(set(views)) == len(views)
    assert not set(views) & {f.name for f in fields(HostSettings)} and SETTING not in views
    for model in kinds.KINDS:
        for name, value in model.views(settings.part(model.name)).items():
            assert getattr(settings, name) is value
        assert model.part(settings) is settings.part(model.name)


def test_nothing_about_every_kind_imports_a_kind():
    """Which product modules import each kind's module: its own (and other kinds'), and the files of REASONS. So a
    new kind touches no file but its own module, its template and its line in smtps/kinds.py."""
    graph = _imports()
    own = {f"{CORE}.{module}" for module in kinds.MODULES}
    bindings = {f"smtps_iredmail.{module}" for module in FIRST}  # the first four's provider classes (PICKLED)
    for module in kinds.MODULES:
        target = f"{CORE}.{module}"
        importers = {name for name, imported in graph.items() if target in imported} - own
        if module in FIRST:
            importers -= {f"smtps_iredmail.{module}"}
        assert importers == set(REASONS.get(module, {})), module
    for about_every_kind in (f"{CORE}.hosts", f"{CORE}.drift", "smtps_iredmail.program", "smtps_iredmail.binding"):
        assert not graph[about_every_kind] & (own | bindings), about_every_kind
    assert graph["smtps_iredmail.kinds"] & own == set()


def test_a_new_kind_needs_no_module_in_components():
    """Only the first four have a provider class of their own; every other kind is bound by the generic one."""
    with_providers = set()
    for path in (REPO / "components").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(getattr(b, "id", "") == "HostProvider" for b in node.bases):
                with_providers.add(path.stem)
    assert with_providers == {*FIRST, "binding"}
    assert [kind.model for kind in bound.KINDS] == list(kinds.KINDS)
    assert set(bound.OWN_CLASSES) == {m.name for m in kinds.KINDS[:len(FIRST)]}


def test_the_first_four_keep_their_pickled_providers_byte_for_byte():
    for module, kind in zip(FIRST, bound.KINDS, strict=False):
        provider = kind.resource.new_provider()
        assert type(provider).__module__ == f"smtps_iredmail.{module}"
        assert serialize_provider(provider) == PICKLED[module]
        assert kind.type_token() == f"pulumi-python:dynamic/smtps:{kind.model.resource}"


def test_the_generic_binding_keeps_one_class_and_the_kinds_name():
    for model in kinds.KINDS:
        resource = resource_for(model)
        assert resource.type_token == f"pulumi-python:dynamic/smtps:{model.resource}"
        provider = resource.new_provider()
        assert isinstance(provider, KindProvider) and isinstance(provider, HostProvider)
        assert provider.model is model and provider.settings == model.keys
        raw = base64.b64decode(serialize_provider(provider))
        strings = {arg for _, arg, _ in pickletools.genops(raw) if isinstance(arg, str)}
        assert strings == {"smtps_iredmail.binding", "KindProvider", "kind_name", model.name}
        assert dill.loads(raw).model is model  # noqa: S301 - the pickle this test just made


@pulumi.runtime.test
def test_a_host_of_generically_bound_kinds_registers_the_same_resources(monkeypatch):
    """Every kind bound as a new one would be (binding.py): the host's resources keep their names, types and inputs,
    and each keeps in its state the generic provider and its kind's name."""
    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, project="smtps-iredmail", stack="dc1", preview=False)
    monkeypatch.setattr(bound, "KINDS", tuple(bound.Kind(m, resource_for(m)) for m in kinds.KINDS))
    host = SmtpsHost("mail1", SmtpsHostArgs(address="10.0.0.1", host_key=KEY, firewall="auto"))

    def check(_):
        made = {r.name: r for r in mocks.resources if r.typ.startswith("pulumi-python:dynamic/smtps:")}
        for model in kinds.KINDS:
            resource = made[f"mail1-{model.name}"]
            assert resource.typ == f"pulumi-python:dynamic/smtps:{model.resource}"
            # The wanted inputs (those not None: None crosses as nothing).
            wanted = {k: v for k, v in model.wanted(model.part(_settings())).props().items() if v is not None}
            assert {k: v for k, v in resource.inputs.items() if k in model.keys} == wanted
            raw = base64.b64decode(resource.inputs[PROVIDER_KEY])
            assert dill.loads(raw).model is model  # noqa: S301 - the pickle this program just made

    return host.verification.id.apply(check)

