"""`python -m lab.fleet_example preview|up|destroy`: runs examples/lab-fleet (lab hosts made by Pulumi, SMTPS
turned on each with the public component) through the Automation API, with the engine in .tools/bin, where no
Python language host is installed.

    python -m lab.fleet_example up [-s STACK] [--dir FOLDER] [--config KEY=VALUE ...] [--events FILE]

The workspace is the example's folder (or FOLDER, a copy of it): its Pulumi.yaml, its stack files, and the backend
and passphrase `smtps_iredmail.core.engine` gives every project (a file backend in the folder and a generated
passphrase, unless PULUMI_BACKEND_URL or PULUMI_CONFIG_PASSPHRASE[_FILE] say otherwise). `--config` sets the stack's
config first (`hosts`, `variants`, `labName`, `labSubnet`, `stateDir`: `settings`). Two variables reach the provider
processes the engine starts: PYTHONPATH names this repository (they unpickle lab.pulumi_host's providers, so they
import `lab`), and SMTPS_SSH_KEY_FILE names the lab's deploy key (the SMTPS providers read it at their first SSH
connection; the key never enters Pulumi). Needs root, as the lab does.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smtps_iredmail.core import cli, engine
from smtps_iredmail.core.credentials import SSH_KEY_FILE_ENV
from smtps_iredmail.core.shown import shown

from .spec import LabSpec, SpecError, Variant, build_spec

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "lab-fleet"
DEFAULT_STACK = "dev"
# The example's own lab, apart from the demo's (smtpslab, 10.231.0.0/24) and the tests' defaults.
LAB_NAME = "fleet"
LAB_SUBNET = "10.231.200.0/24"
HOSTS = 2
# Without `variants`, hosts alternate: a RHEL-family one with firewalld, a Debian one with nftables.
ALTERNATE = (Variant.IREDMAIL_14, Variant.IREDMAIL_DEBIAN)


def settings(get: Callable[[str], str | None], folder: Path) -> LabSpec:
    """The example's lab and hosts from its config (`get(key)`: a value or None), checked by the lab's own rules. A
    relative `stateDir` is the project folder's."""
    try:
        count = int(get("hosts") or HOSTS)
    except ValueError:
        raise SpecError(f"hosts {get('hosts')!r}: a whole number") from None
    defaults = ",".join(f"mail{i}={ALTERNATE[(i - 1) % len(ALTERNATE)].value}" for i in range(1, count + 1))
    variants = ",".join(filter(None, (defaults, get("variants"))))  # a later item for a host wins
    state_dir = folder / (get("stateDir") or ".lab")
    return build_spec(state_dir, count, variants, get("labName") or LAB_NAME, get("labSubnet") or LAB_SUBNET)


def _program(folder: Path) -> Callable[[], None]:
    """The example's __main__.py, served inline: what `pulumi up` would run with a Python language host."""

    def program() -> None:
        runpy.run_path(str(folder / "__main__.py"), run_name="__main__")

    return program


def _stack_settings(stack: Any, folder: Path) -> LabSpec:
    project = stack.workspace.project_settings().name
    config = stack.get_all_config()
    return settings(lambda key: getattr(config.get(f"{project}:{key}"), "value", None), folder)


class EventLog:
    """The engine's resource events, one JSON line each, for tests: sequence, phase (`pre`: the step begins;
    `done`, `failed`), step, URN, type, and the `address` input where the resource has one (a preview shows an
    output not known yet as Pulumi's unknown value)."""

    def __init__(self, path: str | None) -> None:
        self.path, self.seq = path, 0

    def record(self, event: Any) -> None:
        if self.path is None:
            return
        for phase, found in (("pre", event.resource_pre_event), ("done", event.res_outputs_event),
                             ("failed", event.res_op_failed_event)):
            if found is None:
                continue
            meta = found.metadata
            inputs = (meta.new.inputs if meta.new else None) or {}
            self.seq += 1
            line = {"seq": self.seq, "phase": phase, "op": str(getattr(meta.op, "value", meta.op)), "urn": meta.urn,
                    "type": meta.type, "address": inputs.get("address")}
            with open(self.path, "a") as out:
                out.write(json.dumps(line) + "\n")


def _print(line: str) -> None:
    print(shown(line), flush=True)


def run(command: str, stack: Any, events: EventLog) -> int:
    """One engine operation, its output streamed; a failure ends with one line per failed host and resource."""
    options = {"on_output": _print, "on_error": _print}

    def call(collector: Any) -> None:
        def on_event(event: Any) -> None:
            collector.on_event(event)
            events.record(event)

        if command == "preview":
            stack.preview(diff=True, on_event=on_event, **options)
        elif command == "up":
            stack.up(on_event=on_event, show_secrets=False, **options)
        else:
            stack.destroy(on_event=on_event, show_secrets=False, continue_on_error=True, **options)

    # The front end's own run: its failure lines (host, resource, step, the host's words) and its Ctrl-C handling.
    status = cli._engine_call(call)
    if command == "up" and status == 0:
        hosts = stack.outputs().get("hosts")
        print(json.dumps({"hosts": hosts.value if hosts else {}}, indent=2))
    return status


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m lab.fleet_example", description=__doc__.splitlines()[0])
    top.add_argument("command", choices=("preview", "up", "destroy"))
    top.add_argument("-s", "--stack", default=DEFAULT_STACK)
    top.add_argument("--dir", type=Path, default=EXAMPLE, help="the example's folder, or a copy (default: %(default)s)")
    top.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                     help="set the stack's config first: hosts, variants, labName, labSubnet, stateDir")
    top.add_argument("--events", metavar="FILE", help="append the engine's resource events to FILE (JSON lines)")
    return top


def main(argv: list[str] | None = None) -> int:
    from pulumi import automation as auto

    args = parser().parse_args(argv)
    folder = args.dir.resolve()
    # The workspace, its stack files, backend and passphrase: the example's own (engine.project_dir()).
    os.environ["SMTPS_PROJECT_DIR"] = str(folder)
    # The provider processes unpickle lab.pulumi_host's providers: they must import `lab` from this repository.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))
    stack = engine.stack(args.stack, _program(folder))
    project = stack.workspace.project_settings().name
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"lab.fleet_example: --config {item!r}: expected KEY=VALUE", file=sys.stderr)
            return 2
        stack.set_config(f"{project}:{key}", auto.ConfigValue(value))
    try:
        fleet = _stack_settings(stack, folder)
    except SpecError as err:
        print(f"lab.fleet_example: stack {args.stack}: {err}", file=sys.stderr)
        return 2
    # Read by the SMTPS providers at their first SSH connection (the engine's plugins inherit this environment).
    os.environ[SSH_KEY_FILE_ENV] = str(fleet.deploy_key)
    return run(args.command, stack, EventLog(args.events))


if __name__ == "__main__":
    sys.exit(main())
