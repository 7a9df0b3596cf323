"""A Pulumi program of a user's own, as someone who installed the wheel writes it: it imports nothing of this
repository but the installed `smtps_iredmail`, and gets the host's address and host key from another resource, so
both are unknown at preview (as a new VM's would be).

tests/lab/test_installed_wheel.py copies this file into a folder outside the repository and runs it there with the
fresh virtualenv's Python (`python own_program.py preview|up|destroy`): the Automation API serves `program` inline,
and the `Machine` provider, defined in __main__, is serialized by value into the state. Settings come from OWN_*
variables; the operation's result is printed as one JSON line on stdout, Pulumi's own output goes to stderr."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pulumi
from pulumi import automation as auto
from pulumi.dynamic import CreateResult, Resource, ResourceProvider

from smtps_iredmail import SmtpsHost, SmtpsHostArgs

# The resource the host's connection comes from, and the host's name.
MACHINE = "machine"
HOST = "mail1"


class MachineProvider(ResourceProvider):
    """Stands in for a cloud VM: `create` returns the address and host key it was given, under other names, so the
    engine cannot know them before it has run (at preview)."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        # Where this provider process, started by the engine, imports the library from: the fresh virtualenv.
        import smtps_iredmail

        return CreateResult(MACHINE, {**props, "address": props["givenAddress"], "hostKey": props["givenHostKey"],
                                      "library": smtps_iredmail.__file__})


class Machine(Resource):
    address: pulumi.Output[str]
    hostKey: pulumi.Output[str]  # noqa: N815 - the output's name
    library: pulumi.Output[str]

    def __init__(self, name: str, address: str, host_key: str) -> None:
        super().__init__(MachineProvider(), name, {"givenAddress": address, "givenHostKey": host_key,
                                                  "address": None, "hostKey": None, "library": None})


def program() -> None:
    machine = Machine(MACHINE, os.environ["OWN_ADDRESS"], os.environ["OWN_HOST_KEY"])
    host = SmtpsHost(HOST, SmtpsHostArgs(address=machine.address, host_key=machine.hostKey))
    pulumi.export("address", host.address)
    pulumi.export("tlsVersion", host.tls_version)
    pulumi.export("certSha256", host.cert_sha256)
    pulumi.export("library", machine.library)


def stack() -> auto.Stack:
    work = os.environ["OWN_WORK_DIR"]
    options = auto.LocalWorkspaceOptions(
        work_dir=work,
        pulumi_command=auto.PulumiCommand(root=os.environ["OWN_PULUMI_ROOT"], skip_version_check=True),
        project_settings=auto.ProjectSettings(name="own-smtps", runtime="python"),
        secrets_provider="passphrase",
    )
    return auto.create_or_select_stack(stack_name=os.environ["OWN_STACK"], project_name="own-smtps",
                                       program=program, opts=options)


class Seen:
    """The inputs each resource step began with, by resource name (the engine's events)."""

    def __init__(self) -> None:
        self.inputs: dict[str, dict[str, Any]] = {}

    def __call__(self, event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is not None and pre.metadata.new is not None:
            self.inputs[pre.metadata.urn.rsplit("::", 1)[1]] = dict(pre.metadata.new.inputs or {})


def run(action: str) -> dict[str, Any]:
    the_stack, seen = stack(), Seen()
    output = {"on_output": lambda line: print(line, file=sys.stderr), "on_event": seen}
    if action == "preview":
        result = the_stack.preview(**output)
        return {"changes": dict(result.change_summary), "inputs": seen.inputs}
    if action == "up":
        result = the_stack.up(**output)
        return {"changes": dict(result.summary.resource_changes or {}), "inputs": seen.inputs,
                "outputs": {key: value.value for key, value in result.outputs.items()}}
    result = the_stack.destroy(**output)
    return {"changes": dict(result.summary.resource_changes or {})}


if __name__ == "__main__":
    print(json.dumps({"unknown": pulumi.runtime.rpc.UNKNOWN, **run(sys.argv[1])}))
