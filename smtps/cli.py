"""`python -m smtps`: the commands that run the Pulumi program, and the checks an operator runs against a stack.

    python -m smtps preview -s STACK [--diff] [--refresh] [--expect-no-changes]
    python -m smtps up -s STACK [--yes] [--refresh] [--parallel N] [--canary HOST[,HOST] | --no-canary]
    python -m smtps verify -s STACK         TLS and AUTH on 465 of every host, from here
    python -m smtps drift -s STACK          host, resource, field, desired, live; exit 1 on drift
    python -m smtps fleet preview|up [--stacks a,b] [--workers N]   many stacks at once, a table at the end
    python -m smtps pulumi -- ARGS...       plain Pulumi (refresh, destroy, config, stack, cancel) in this project

`preview` and `up` run the program through the Automation API, with the project folder as the workspace: the same
Pulumi.yaml, stacks/Pulumi.<stack>.yaml, backend and secrets as the plain CLI. The CLI's own output is streamed as it
comes, and the exit status is non-zero when Pulumi fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from . import engine
from .drift import Drift, compare, parse_state, read_host_script
from .settings import SMTPS_PORT, HostSettings, SettingsError, parse_stack
from .ssh import Pool, SshError
from .verify import Verification, verify

# The engine's parallelism: each host is a chain of four steps, so this many hosts can move at once. The provider
# processes (16 of them, 4 calls each) are the real bound; the engine must not be the tighter one.
DEFAULT_PARALLEL = 64


def _out(line: str) -> None:
    print(line, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _engine_call(call: Callable[[], Any]) -> int:
    """Run one Automation API call; its output was streamed already, so a failure only sets the exit status.

    Ctrl-C in a terminal reaches the Pulumi CLI too (one process group): the CLI then finishes the steps in flight,
    records them, releases the stack's lock and exits; a second Ctrl-C stops it at once. This process must not die
    under it (a KeyboardInterrupt would close the CLI's output pipes mid-cancel), so it only says what happens."""
    from pulumi import automation as auto  # imported here: drift and verify start faster without it

    def interrupted(_signum: int, _frame: object) -> None:
        _err("smtps: interrupted: Pulumi finishes the steps in flight, then stops (Ctrl-C again: stop at once)")

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        call()
    except auto.CommandError:
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0


def _logging(args: argparse.Namespace) -> dict[str, Any]:
    """Pulumi's verbose logging (-v N): to stderr, with the provider processes' logs flowed in."""
    if not args.verbose:
        return {}
    return {"log_verbosity": args.verbose, "log_to_std_err": True, "log_flow": True}


def cmd_preview(args: argparse.Namespace) -> int:
    stack = engine.stack(args.stack)
    return _engine_call(lambda: stack.preview(
        diff=args.diff, refresh=args.refresh, expect_no_changes=args.expect_no_changes, parallel=args.parallel,
        on_output=_out, on_error=_err, **_logging(args)))


def cmd_up(args: argparse.Namespace) -> int:
    stack = engine.stack(args.stack)
    if not args.yes:
        # The Automation API never prompts: show the preview here, and ask.
        if _engine_call(lambda: stack.preview(diff=args.diff, refresh=args.refresh, parallel=args.parallel,
                                              on_output=_out, on_error=_err, **_logging(args))):
            return 1
        if not sys.stdin.isatty():
            _err("smtps: not a terminal: pass --yes to apply without asking")
            return 2
        if input("Apply these changes? [y/N] ").strip().lower() not in ("y", "yes"):
            _err("smtps: nothing applied")
            return 1
    options = {"diff": args.diff, "refresh": args.refresh, "parallel": args.parallel,
               "continue_on_error": not args.stop_on_error, "on_output": _out, "on_error": _err, **_logging(args)}
    canaries = [name for name in (args.canary or "").split(",") if name]
    if not canaries and not args.no_canary:
        # The stack's own canaries (`canaries` in its stack file), checked with the rest of its settings.
        found = engine.stack_file_setting(args.stack, "canaries")
        canaries = [str(name) for name in found] if isinstance(found, list) else []
    if canaries:
        targets = canary_targets(args.stack, canaries)
        _err(f"smtps: canary: converging and verifying {', '.join(canaries)} first")
        if _engine_call(lambda: stack.up(target=targets, **options)):
            _err(f"smtps: canary {', '.join(canaries)} failed (see above): the rest of stack {args.stack} is "
                 "left as it was")
            return 1
        _err(f"smtps: canary {', '.join(canaries)} converged and verified: now the rest of stack {args.stack}")
    return _engine_call(lambda: stack.up(**options))


def canary_targets(stack: str, canaries: list[str]) -> list[str]:
    """The URNs of the canaries' components, their four resources and their providers: `up --target` on these
    converges and verifies the canaries alone. A name that is not a host of the stack is refused here, before
    anything runs."""
    from components.program import provider_slot

    hosts, _ = stack_settings(stack)
    names = {h.name for h in hosts}
    unknown = [name for name in canaries if name not in names]
    if unknown:
        raise SettingsError(f"stack {stack}: setting canary: {', '.join(unknown)} is not a host of this stack "
                            f"(hosts: {', '.join(sorted(names))})")
    base = f"urn:pulumi:{stack}::{engine.PROJECT}::"
    component = "smtps-iredmail:index:SmtpsHost"
    targets = []
    for name in canaries:
        targets.append(f"{base}{component}::{name}")
        for kind, suffix in (("MasterService", "master"), ("FirewalldService", "service"),
                             ("ZoneMembership", "zone"), ("Verification", "verify")):
            targets.append(f"{base}{component}$pulumi-python:dynamic/smtps:{kind}::{name}-{suffix}")
        targets.append(f"{base}pulumi:providers:pulumi-python::ssh-{provider_slot(name)}")
    return targets


def stack_settings(name: str) -> tuple[tuple[HostSettings, ...], dict[str, Any]]:
    """A stack's hosts, parsed from its config the way the program parses it, and the raw config values."""
    config = engine.stack_config(name)
    project = engine.PROJECT
    hosts = parse_stack(name, config.get(f"{project}:defaults"), config.get(f"{project}:hosts"),
                        config.get(f"{project}:fleet"), config.get(f"{project}:bastions"),
                        config.get(f"{project}:canaries"))
    return hosts, config


def _in_parallel(hosts: tuple[HostSettings, ...], each: Callable[[HostSettings], Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=min(32, len(hosts))) as pool:
        return list(pool.map(each, hosts))


def _pool(stack: str, config: dict[str, Any]) -> Pool | None:
    key = config.get(f"{engine.PROJECT}:sshPrivateKey")
    path = os.environ.get("SMTPS_SSH_KEY_FILE")
    if not key and path:
        try:
            key = Path(path).read_text()
        except OSError as err:
            _err(f"smtps: stack {stack}: SMTPS_SSH_KEY_FILE={path} cannot be read: {err.strerror}")
            return None
    if not key:
        _err(f"smtps: stack {stack}: setting sshPrivateKey: missing (pulumi config set --secret sshPrivateKey, "
             "or SMTPS_SSH_KEY_FILE)")
        return None
    return Pool(key)


def cmd_verify(args: argparse.Namespace) -> int:
    hosts, config = stack_settings(args.stack)
    # Hosts behind a bastion are checked through it (as the SSH connection goes); the others directly from here.
    through_bastion = any(h.connection.jump for h in hosts)
    pool = _pool(args.stack, config) if through_bastion else None
    if through_bastion and pool is None:
        return 2

    def check(h: HostSettings) -> Verification:
        conn = h.connection
        opener = pool.opener(h.name, conn.address, SMTPS_PORT, conn.jump) if pool and conn.jump else None
        return verify(conn.address, SMTPS_PORT, opener=opener)

    try:
        results: list[Verification] = _in_parallel(hosts, check)
    finally:
        if pool:
            pool.close()
    if args.json:
        print(json.dumps({h.name: r.as_dict() for h, r in zip(hosts, results, strict=True)}, indent=2))
    else:
        table = Table("host", "address", "465", "TLS", "certificate subject", "expires", "AUTH", "problem",
                      title=f"SMTPS verification, stack {args.stack}")
        for h, r in zip(hosts, results, strict=True):
            table.add_row(h.name, r.address, "ok" if r.ok else "FAILED", r.tls_version, r.cert_subject,
                          r.cert_not_after, r.auth, r.problem)
        Console(width=200).print(table)
    return 0 if all(r.ok for r in results) else 1


def cmd_drift(args: argparse.Namespace) -> int:
    hosts, config = stack_settings(args.stack)
    pool = _pool(args.stack, config)
    if pool is None:
        return 2

    def read(h: HostSettings) -> list[Drift]:
        # One SSH session per host: the read-only script prints all three resources' live state.
        try:
            result = pool.run(h.name, h.connection, read_host_script(h))
        except SshError as err:
            return [Drift(h.name, "ssh", "reachable", str(err))]
        if result.status != 0:
            return [Drift(h.name, "read", "exit 0", f"exit {result.status}: {result.stderr.strip()}")]
        return compare(h, parse_state(result.stdout))

    try:
        found = [d for drifts in _in_parallel(hosts, read) for d in drifts]
    finally:
        pool.close()
    if args.json:
        print(json.dumps([{"host": d.host, "resource": d.resource, "field": d.field, "desired": d.want,
                           "live": d.have} for d in found], indent=2))
    elif found:
        table = Table("host", "resource", "field", "desired", "live", title=f"Drift, stack {args.stack}")
        for d in found:
            table.add_row(d.host, d.resource, d.field, d.want, d.have)
        Console(width=200).print(table)
        print(f"{len(found)} difference(s) on {len({d.host for d in found})} of {len(hosts)} host(s). "
              f"Repair: python -m smtps up -s {args.stack} --refresh")
    else:
        print(f"No drift: {len(hosts)} host(s) of stack {args.stack} are as configured.")
    return 1 if found else 0


def cmd_pulumi(args: argparse.Namespace) -> int:
    """Plain Pulumi, with this project's environment: the commands that do not run the program."""
    argv = [a for a in args.args if a != "--"] if args.args[:1] == ["--"] else args.args
    env = {**os.environ, **engine.environment()}
    return subprocess.run([str(engine.pulumi_binary()), *argv], cwd=engine.project_dir(), env=env,
                          check=False).returncode


def cmd_fleet(args: argparse.Namespace) -> int:
    from . import fleet

    stacks = [s for s in args.stacks.split(",") if s] if args.stacks else fleet.project_stacks()
    if not stacks:
        _err("smtps: no stacks: none given with --stacks and none in stacks/")
        return 2
    extra = ["--refresh"] if args.refresh else []
    return fleet.run(args.fleet_command, stacks, args.workers, extra)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m smtps", description=__doc__.splitlines()[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    def command(name: str, run: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(run=run)
        if name not in ("pulumi", "fleet"):
            sub.add_argument("-s", "--stack", required=True, help="the stack (one per datacenter), e.g. lab")
        return sub

    preview = command("preview", cmd_preview, "show what `up` would change, per host and setting")
    preview.add_argument("--diff", action="store_true", help="show each changed setting with old and new value")
    preview.add_argument("--refresh", action="store_true", help="read the hosts first (drift shows as changes)")
    preview.add_argument("--expect-no-changes", action="store_true", help="fail if anything would change")
    preview.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL)
    preview.add_argument("-v", "--verbose", type=int, default=0, metavar="LEVEL", help="Pulumi's log level, to stderr")
    up = command("up", cmd_up, "converge every host of the stack, then verify the changed ones")
    up.add_argument("--yes", "-y", action="store_true", help="apply without asking")
    up.add_argument("--refresh", action="store_true", help="read the hosts first: repairs drift")
    up.add_argument("--diff", action="store_true")
    up.add_argument("--canary", metavar="HOST[,HOST]",
                    help="converge and verify these hosts first; go on with the rest only if they pass "
                         "(default: the stack's `canaries` setting)")
    up.add_argument("--no-canary", action="store_true", help="ignore the stack's canaries: all hosts at once")
    up.add_argument("--stop-on-error", action="store_true",
                    help="stop at the first failed host (default: the other hosts still converge)")
    up.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL)
    up.add_argument("-v", "--verbose", type=int, default=0, metavar="LEVEL", help="Pulumi's log level, to stderr")
    verify_cmd = command("verify", cmd_verify, "check TLS and AUTH on 465 of every host, from this machine")
    verify_cmd.add_argument("--json", action="store_true")
    drift_cmd = command("drift", cmd_drift, "compare every host with its settings; exit 1 on drift")
    drift_cmd.add_argument("--json", action="store_true")
    fleet_cmd = command("fleet", cmd_fleet, "preview or up many stacks at once, with a summary table")
    fleet_cmd.add_argument("fleet_command", choices=("preview", "up"))
    fleet_cmd.add_argument("--stacks", help="comma-separated stack names (default: every stacks/Pulumi.*.yaml)")
    fleet_cmd.add_argument("--workers", type=int, default=2, help="stacks run at once (default: 2)")
    fleet_cmd.add_argument("--refresh", action="store_true", help="read the hosts first")
    plain = command("pulumi", cmd_pulumi, "run the plain Pulumi CLI with this project's environment")
    plain.add_argument("args", nargs=argparse.REMAINDER)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except SettingsError as err:
        _err(f"smtps: bad settings:\n{err}")
        return 2
