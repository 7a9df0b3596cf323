"""`python -m lab up|status|down|exec`: the local lab of iRedMail-like mail hosts (see docs/lab.md)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import lab
from .host import LabError, host_command
from .render import HostPaths
from .spec import DEFAULT_NAME, DEFAULT_SUBNET, SpecError, build_spec

REPO = Path(__file__).resolve().parent.parent
DEFAULT_STATE = Path(os.environ.get("SMTPS_LAB_DIR", REPO / ".lab"))
DEFAULT_LAB = os.environ.get("SMTPS_LAB_NAME", DEFAULT_NAME)
DEFAULT_LAB_SUBNET = os.environ.get("SMTPS_LAB_SUBNET", str(DEFAULT_SUBNET))


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab creates network namespaces and mounts: run it as root")


def cmd_up(args: argparse.Namespace) -> int:
    _require_root()
    spec = build_spec(args.state_dir, args.hosts, args.variants, args.name, args.subnet, args.behind)
    started = time.monotonic()
    timings = lab.up(spec)
    total = time.monotonic() - started
    print(f"lab: {len(spec.hosts)} host(s) up ({len(timings)} booted) in {total:.1f} s; "
          f"inventory: {spec.inventory_path}")
    return 0


def _spec_or_none(state_dir: Path):
    spec = lab.spec_from_inventory(state_dir)
    if spec is None:
        print(f"lab: not up (no inventory in {state_dir})", file=sys.stderr)
    return spec


def cmd_status(args: argparse.Namespace) -> int:
    _require_root()
    spec = _spec_or_none(args.state_dir)
    if spec is None:
        return 1
    rows = lab.status(spec)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        yes = {True: "yes", False: "NO"}
        print(f"{'host':<7} {'address':<13} {'variant':<20} {'sshd':<5} {'firewall':<10} {'postfix':<8} 465")
        for r in rows:
            smtps = r.smtps.state + (f" {r.smtps.tls_version}" if r.smtps.tls_version else "")
            print(f"{r.name:<7} {r.address:<13} {r.variant:<20} {yes[r.sshd]:<5} {yes[r.firewalld]:<10} "
                  f"{yes[r.postfix]:<8} {smtps}")
    healthy = all(r.running and r.sshd and r.firewalld and r.postfix for r in rows)
    return 0 if healthy else 1


def cmd_down(args: argparse.Namespace) -> int:
    _require_root()
    # The inventory knows the lab's name; without one (a crashed first `up`), go by --name.
    inventory = lab.read_inventory(args.state_dir)
    if inventory:
        report = lab.down(args.state_dir, inventory["lab"], inventory["subnet"])
    else:
        report = lab.down(args.state_dir, args.name, args.subnet)
    print(f"lab: down ({len(report.namespaces)} namespace(s), {report.processes} process(es) stopped, "
          f"{len(report.links)} link(s) removed)")
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    _require_root()
    spec = _spec_or_none(args.state_dir)
    if spec is None:
        return 1
    host = lab.host_by_name(spec, args.host)
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    return subprocess.call(host_command(host, HostPaths(spec.host_dir(host)), argv or ["/bin/bash"]))


def cmd_stack(args: argparse.Namespace) -> int:
    from .stack import write_stack  # the engine is needed here only

    inventory = lab.read_inventory(args.state_dir)
    if not inventory:
        print(f"lab: not up (no inventory in {args.state_dir})", file=sys.stderr)
        return 1
    path = write_stack(inventory, args.state_dir / "inventory.json", args.stack)
    print(f"lab: stack {args.stack} written to {path} ({len(inventory['hosts'])} host(s); deploy key set as the "
          "secret sshPrivateKey)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE,
                        help="where hosts, deploy key and inventory live (default: %(default)s, or $SMTPS_LAB_DIR)")
    parser.add_argument("--name", default=DEFAULT_LAB,
                        help="names the lab's namespaces and links (default: %(default)s, or $SMTPS_LAB_NAME)")
    parser.add_argument("--subnet", default=DEFAULT_LAB_SUBNET,
                        help="a /24 inside 10.231.0.0/16 (default: %(default)s, or $SMTPS_LAB_SUBNET)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up", help="create or converge the lab")
    p.add_argument("--hosts", type=int, default=3)
    p.add_argument("--variants", default="", help="per-host variants, e.g. mail2=iredmail-1.5 (default iredmail-1.4)")
    p.add_argument("--behind", default="",
                   help="hosts reachable only through another lab host, e.g. mail3=mail1 (no route from here)")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("status", help="one line per host")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("down", help="remove everything the lab made")
    p.set_defaults(func=cmd_down)
    p = sub.add_parser("stack", help="write the Pulumi stack for this lab from its inventory")
    p.add_argument("-s", "--stack", default="lab")
    p.set_defaults(func=cmd_stack)
    p = sub.add_parser("exec", help="run a command inside a host")
    p.add_argument("host")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_exec)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (SpecError, LabError) as err:
        print(f"lab: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
