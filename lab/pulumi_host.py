"""Lab hosts as Pulumi resources, for programs that make their mail hosts and turn on SMTPS on them in one run
(examples/lab-fleet):

- `Lab`: what every host of one lab shares, made once before the first host and removed after the last: the
  subnet's guard route, the deploy key, the SASL password (all in the lab's state dir, none in Pulumi's state);
- `LabHost`: one mail host of that lab (a network namespace with sshd, firewalld or nftables by variant, Postfix),
  made and removed without touching the lab's other hosts. Its outputs `address` and `host_key` (the host's SSH
  public host key, `ssh-ed25519 AAAA...`) are what `SmtpsHostArgs` takes.

Both are dynamic resources: the engine's `pulumi-python` plugin runs their providers in a Python process of its
own, which unpickles them from this module by name. So that process must import `lab`: the repository must be on
its PYTHONPATH (lab/fleet_example.py sets it). The lab is this repository's test bed, not part of `smtps_iredmail`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, Resource, ResourceProvider

from smtps_iredmail.base import unknown

from . import host as hostops
from . import lab
from .spec import HostSpec, LabSpec, SpecError, host_spec, lab_spec

# The inputs that say which lab: a Lab's, and every LabHost's (from its Lab's outputs).
LAB_INPUTS = ("lab", "subnet", "state_dir")
# And which host of it.
HOST_INPUTS = (*LAB_INPUTS, "index", "variant")


def _lab(props: dict[str, Any]) -> LabSpec:
    return lab_spec(Path(props["state_dir"]), props["lab"], props["subnet"])


def _host(props: dict[str, Any]) -> tuple[LabSpec, HostSpec]:
    spec = _lab(props)
    index = props["index"]
    # Numbers cross the engine as floats.
    return spec, host_spec(spec, int(index) if isinstance(index, float) and index.is_integer() else index,
                           props["variant"])


def _check(news: dict[str, Any], keys: tuple[str, ...], parse: Any) -> CheckResult:
    """The inputs as given, or the lab's own words for the first bad one; an input not known yet (at preview,
    another resource's output) is checked when it is."""
    if any(unknown(news.get(key)) for key in keys):
        return CheckResult(news, [])
    missing = [key for key in keys if news.get(key) is None]
    if missing:
        return CheckResult(news, [CheckFailure(key, f"{key} is required") for key in missing])
    try:
        parse(news)
    except SpecError as err:
        return CheckResult(news, [CheckFailure(keys[0], str(err))])
    return CheckResult(news, [])


def _diff(olds: dict[str, Any], news: dict[str, Any], keys: tuple[str, ...]) -> DiffResult:
    """Any change makes another lab or host: replaced, the old one removed first (the new one takes its names)."""
    changed = [key for key in keys if olds.get(key) != news.get(key)]
    return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=True)


class _Provider(ResourceProvider):
    """A lab resource's provider: its inputs are checked by parsing them (`parse`), and any change replaces it."""

    # Nothing secret is captured: the state stays free of secrets (docs/safety.md, "Secrets"), as for the SMTPS
    # providers.
    serialize_as_secret_always = False
    inputs: ClassVar[tuple[str, ...]]
    parse: ClassVar[Callable[[dict[str, Any]], Any]]

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return _check(news, self.inputs, type(self).parse)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return _diff(olds, news, self.inputs)


class LabProvider(_Provider):
    inputs = LAB_INPUTS
    parse = staticmethod(_lab)

    def create(self, props: dict[str, Any]) -> CreateResult:
        spec = _lab(props)
        # A lab of this name made otherwise (`python -m lab up`, another stack) is not this resource's to share or
        # to remove.
        running = hostops.lab_namespaces(spec.name)
        if running:
            raise hostops.LabError(
                f"lab {spec.name}: hosts of that name already run ({', '.join(running)}): take that lab down "
                f"(python -m lab --name {spec.name} down) or give this one another name")
        lab.prerequisites(spec)
        return CreateResult(spec.name, {**props, "state_dir": str(spec.state_dir),
                                        "deploy_key_file": str(spec.deploy_key)})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        # After every LabHost of it (they depend on it): what is left is the lab-wide part, and whatever a host
        # that failed half-way left behind.
        spec = _lab(props)
        lab.down(spec.state_dir, spec.name, str(spec.subnet))


class LabHostProvider(_Provider):
    inputs = HOST_INPUTS
    parse = staticmethod(_host)

    def create(self, props: dict[str, Any]) -> CreateResult:
        spec, host = _host(props)
        pubkey, password = lab.prerequisites(spec)
        try:
            lab.create_host(spec, host, pubkey, password, log=lambda _line: None)
            lab.record_host(spec, host)
        except BaseException:
            # The engine records nothing of a create that failed: nothing of the host may stay behind either.
            lab.remove_host(spec, host)
            raise
        return CreateResult(host.netns, {**props, **lab.host_entry(spec, host)})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        spec, host = _host(props)
        lab.record_host(spec, host, present=False)
        lab.remove_host(spec, host)


class Lab(Resource, module="lab", name="Lab"):
    """What the hosts of one lab share. `spec` names the lab, its subnet and its state dir (lab/spec.py's
    `lab_spec` checks them)."""

    lab: pulumi.Output[str]
    subnet: pulumi.Output[str]
    state_dir: pulumi.Output[str]
    deploy_key_file: pulumi.Output[str]
    """The deploy key's private half, authorized on every host of the lab (SMTPS_SSH_KEY_FILE for the SMTPS run)."""

    def __init__(self, resource_name: str, spec: LabSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"lab": spec.name, "subnet": str(spec.subnet), "state_dir": str(spec.state_dir),
                 "deploy_key_file": None}
        super().__init__(LabProvider(), resource_name, props, opts)


class LabHost(Resource, module="lab", name="LabHost"):
    """One mail host of `lab`: mail<index>, like iRedMail of `variant` (lab/spec.py's Variant)."""

    address: pulumi.Output[str]
    """Where to reach it: SSH on 22, mail on 25, 587 and (once turned on) 465."""
    host_key: pulumi.Output[str]
    """Its SSH public host key, `ssh-ed25519 AAAA...`: the one to pin."""
    tls_cert: pulumi.Output[str]
    """The certificate iRedMail's installer made on it (by platform), and its key."""
    tls_key: pulumi.Output[str]
    firewall: pulumi.Output[str]
    """firewalld or nftables, by its variant."""
    netns: pulumi.Output[str]

    def __init__(self, resource_name: str, lab: Lab, index: int, variant: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        # The lab's outputs as inputs: the engine makes the Lab first and removes it last.
        props = {"lab": lab.lab, "subnet": lab.subnet, "state_dir": lab.state_dir, "index": index, "variant": variant,
                 **dict.fromkeys(("address", "host_key", "tls_cert", "tls_key", "firewall", "netns"))}
        super().__init__(LabHostProvider(), resource_name, props, opts)
