"""`smtps`: the commands that run the Pulumi program, and the checks an operator runs against a stack.

    smtps preview -s STACK [--diff] [--refresh] [--expect-no-changes]
    smtps up -s STACK [--yes] [--refresh] [--parallel N] [--canary HOST[,HOST] | --no-canary]
                                  [--no-rollback]
    smtps refresh -s STACK [--yes | --preview-only]   read every host into the state
    smtps destroy -s STACK [--yes]   take this tool's change off every host, as found
    smtps key -s STACK --file KEYFILE   store the deploy key in the stack: a single operator's machine only
    smtps verify -s STACK         TLS and AUTH on 465 of every host, from here
    smtps drift -s STACK          host, resource, field, desired, live; exit 1 on drift
    smtps fleet preview|up [--stacks a,b] [--workers N] [--refresh] [--no-canary]
                                  many stacks at once, a table at the end
    smtps pulumi -- ARGS...       plain Pulumi (refresh, destroy, config, stack, cancel) in this project

`preview` and `up` run the program through the Automation API, with the project folder as the workspace: the same
Pulumi.yaml, stacks/Pulumi.<stack>.yaml, backend and secrets as the plain CLI. The CLI's own output is streamed as it
comes, and the exit status is non-zero when Pulumi fails. At the end, each failed host and resource gets one line:
host, resource, step and the host's own words, from the engine's events.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import credentials, engine, firewall, profile, remote, rollback, stacks
from .firewall import Firewall
from .remote import HostFailure, SshError
from .settings import SMTPS_PORT, SettingsError
from .shown import shown, shown_json

# What only some commands use is imported where they use it: every command starts with this module's imports, and
# the table printer, the TLS checker (cryptography) and drift's readers would slow the others down.
if TYPE_CHECKING:
    from rich.text import Text

    from .drift import Drift
    from .events import EngineEvents
    from .hosts import HostSettings
    from .remote import Pool
    from .verify import SeenFromOutside

# The engine's parallelism: each host is a chain of four steps, so this many hosts can move at once. The provider
# processes (4 of them, 32 calls each: components/host.py) must not be the tighter bound, nor the engine.
DEFAULT_PARALLEL = 64


# A shared provider's name (components/host.py provider_for), in a resource's provider reference (URN::ID).
SHARED_PROVIDER = re.compile(r"ssh-[0-9]{1,4}")
SHARED_PROVIDER_TYPE = "pulumi:providers:pulumi-python"

# The Automation API's up/refresh/destroy return a summary whose config it decrypts unless told not to: nothing here
# reads that summary, so nothing is decrypted for it.
NO_SECRETS = {"show_secrets": False}


def _out(line: str) -> None:
    print(line, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# The engine's output, line by line: a failure's message in it carries what a host said, printed as `shown` makes it.
def _engine_out(line: str) -> None:
    _out(shown(line))


def _engine_err(line: str) -> None:
    _err(shown(line))


def _cells(*values: object) -> list[Text]:
    """Table cells of host text: escaped (`shown`), and plain text, never rich markup (`[link=...]`)."""
    from rich.text import Text

    return [Text(shown(value)) for value in values]


def engine_events() -> EngineEvents:
    """An event collector that knows this project's resource kinds by their child names."""
    from smtps_iredmail.host import VERIFY_SUFFIX
    from smtps_iredmail.kinds import KINDS

    from .events import EngineEvents

    return EngineEvents({**{k.suffix: k.model.kind for k in KINDS}, VERIFY_SUFFIX: "verification"})


def _engine_call(call: Callable[[EngineEvents], Any], summary: str | None = None,
                 events: EngineEvents | None = None) -> int:
    """Run one Automation API call with an event collector; its output was streamed already, so a failure adds
    one line per failed host and resource, and the exit status.

    Ctrl-C in a terminal reaches the Pulumi CLI too (one process group): the CLI then finishes the steps in flight,
    records them, releases the stack's lock and exits; a second Ctrl-C stops it at once. This process must not die
    under it (a KeyboardInterrupt would close the CLI's output pipes mid-cancel), so it only says what happens."""
    from pulumi import automation as auto  # imported here: drift and verify start faster without it

    def interrupted(_signum: int, _frame: object) -> None:
        _err("smtps: interrupted: Pulumi finishes the steps in flight, then stops (Ctrl-C again: stop at once)")

    events = events or engine_events()
    previous = signal.signal(signal.SIGINT, interrupted)
    status = 0
    profile.note(kind="engine", what="start")
    try:
        call(events)
    except auto.CommandError:
        status = 1
    finally:
        profile.note(kind="engine", what="end")
        signal.signal(signal.SIGINT, previous)
        if summary:
            events.write(summary)
    failures = events.failures()
    if status and failures:
        _err(f"smtps: {len(failures)} failure(s):")
        for failure in failures:
            _err(f"  {shown(failure)}")
    return status


def _logging(args: argparse.Namespace) -> dict[str, Any]:
    """Pulumi's verbose logging (-v N): to stderr, with the provider processes' logs flowed in."""
    if not getattr(args, "verbose", 0):
        return {}
    return {"log_verbosity": args.verbose, "log_to_std_err": True, "log_flow": True}


def _stack(args: argparse.Namespace) -> Any:
    """The engine's stack; for a stack with no file in stacks/ yet, say how one starts (docs/servers.md)."""
    folder = engine.project_dir()
    if not (folder / "stacks" / f"Pulumi.{args.stack}.yaml").exists():
        raise SettingsError(f"stack {args.stack}: no stack file stacks/Pulumi.{args.stack}.yaml: write its hosts "
                            "there first (docs/servers.md)")
    return engine.stack(args.stack)


def cmd_preview(args: argparse.Namespace) -> int:
    stack = _stack(args)
    if args.refresh and (refused := _before_upgrade(args.stack, _exported_once(stack))):
        return refused
    events = engine_events()
    status = _engine_call(lambda _: stack.preview(
        diff=args.diff, refresh=args.refresh, expect_no_changes=args.expect_no_changes, parallel=args.parallel,
        on_output=_engine_out, on_error=_engine_err, on_event=events.on_event, **_logging(args)), args.summary, events)
    _show_found(stack, args.stack, events if status == 0 else None)
    return status


def _show_found(stack: Any, name: str, events: EngineEvents | None = None) -> None:
    """After a preview: each auto host's firewall, as recorded (the preview itself shows settings, not this). From
    the events of a preview that ran to its end (each resource's recorded state), else from an export of the state."""
    if not engine.own_program():
        return
    try:
        hosts = stacks.from_files(engine.project_dir(), name).hosts
    except SettingsError:
        return  # the preview said what is wrong
    if not any(host.firewall is Firewall.AUTO for host in hosts):
        return  # nothing to show (firewall.lines): the state is not read
    from smtps_iredmail.kinds import KINDS

    # The master.cf resource is on every host: what it recorded is what auto found there (no host is read).
    state = events.state() if events is not None else stack.export_stack().deployment or {}
    found = firewall.from_state(state, KINDS[0].type_token())
    for line in firewall.lines(hosts, found):
        _out(line)


def _ask(preview: Callable[[EngineEvents], Any], question: str, verb: str, done: str) -> int | None:
    """The Automation API never prompts: show the preview here, and ask. None: go on; else the exit status."""
    if _engine_call(preview):
        return 1
    if not sys.stdin.isatty():
        _err(f"smtps: not a terminal: pass --yes to {verb} without asking")
        return 2
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        _err(f"smtps: nothing {done}")
        return 1
    return None


def cmd_up(args: argparse.Namespace) -> int:
    if refused := _refused_in_ci(args.stack):
        return refused
    stack = _stack(args)
    state = _exported_once(stack)
    if refused := _refused_in_ci(args.stack, state) or \
            (args.refresh and _before_upgrade(args.stack, state)):
        return refused
    # Canaries are this project's program's: another program (SMTPS_PROGRAM, the engine's tests) has no hosts.
    loaded = stacks.from_files(engine.project_dir(), args.stack) if engine.own_program() else None
    # The canaries: given here (checked as the stack's own are), else the stack's (fleet-wide or its own).
    given = [name for name in (args.canary or "").split(",") if name]
    canaries: tuple[str, ...] = ()
    if loaded and not args.no_canary:
        canaries = loaded.check_canaries(given) if given else loaded.canaries
    # Before the preview and its question: nothing runs, nothing is asked, for an up that cannot run.
    if canaries and (refused := _moved_hosts_refused(args.stack, state)):
        return refused
    if not args.yes:
        def preview(events: EngineEvents) -> None:
            stack.preview(diff=args.diff, refresh=args.refresh, parallel=args.parallel, on_output=_engine_out,
                          on_error=_engine_err, on_event=events.on_event, **_logging(args))
            _show_found(stack, args.stack, events)

        status = _ask(preview, "Apply these changes?", "apply", "applied")
        if status is not None:
            return status
    options = {"diff": args.diff, "refresh": args.refresh, "parallel": args.parallel,
               "continue_on_error": not args.stop_on_error, "on_output": _engine_out, "on_error": _engine_err,
               **NO_SECRETS, **_logging(args)}
    if args.no_rollback:
        # Read by the provider processes the engine starts (they inherit this environment).
        os.environ[rollback.NO_ROLLBACK_ENV] = "1"
    if canaries:
        targets = canary_targets(args.stack, canaries, {h.name: h.firewall for h in loaded.hosts} if loaded else None)
        _err(f"smtps: canary: converging and verifying {', '.join(canaries)} first")
        if _up(stack, args.stack, options, args.summary, targets):
            _err(f"smtps: canary {', '.join(canaries)} failed (see above): the rest of stack {args.stack} is "
                 "left as it was")
            return 1
        _err(f"smtps: canary {', '.join(canaries)} converged and verified: now the rest of stack {args.stack}")
    return _up(stack, args.stack, options, args.summary)


def _up(stack: Any, name: str, options: dict[str, Any], summary: str | None, targets: list[str] | None = None) -> int:
    """One `up`; hosts that failed their check and were rolled back are then read back into the state."""
    from smtps_iredmail.verification import RolledBackFailure

    events = engine_events()
    status = _engine_call(lambda _: stack.up(target=targets, on_event=events.on_event, **options), summary, events)
    stale = sorted({f.host for f in events.failures() if "No module named 'components" in f.message})
    if stale:
        # A delete or replace loads the resource's provider from the state; one the release before the package
        # stored names modules that no longer exist (docs/library.md, "Upgrading from the release before the package").
        _err(f"smtps: {', '.join(stale)}: this up removes or replaces resources whose stored provider is from the "
             "release before the package, which cannot be loaded: put those hosts (or settings) back as they were, "
             f"run `smtps up -s {name}` once (it updates them in place, running nothing on the hosts), then make "
             "the change")
    # The check's failure says by its type that the host was rolled back (the rollback script answered done or
    # partial), never by its words.
    rolled = sorted({f.host for f in events.failures()
                     if f.resource == "verification" and f.error == RolledBackFailure.__name__})
    if rolled:
        # The engine recorded the host's resources as applied before the check failed; the host is back as it was.
        # A refresh of those hosts makes the state say so: the next preview shows the change again, not nothing.
        _err(f"smtps: {', '.join(rolled)} rolled back: reading {'them' if len(rolled) > 1 else 'it'} back into the "
             "state")
        # Only what the state holds (a target it does not know, a check that never passed, fails the refresh): the
        # URNs are the state's own.
        targets = host_urns(stack.export_stack().deployment or {}, rolled)
        if _engine_call(lambda reread: stack.refresh(target=targets, on_event=reread.on_event, on_output=_engine_out,
                                                     on_error=_engine_err, **NO_SECRETS)):
            _err(f"smtps: reading {', '.join(rolled)} back failed: run `smtps refresh -s {name} --yes` "
                 "before the next up")
    return status


def _exported_once(stack: Any) -> Callable[[], dict[str, Any]]:
    """The stack's state, exported the first time a check asks for it and shared by the checks of one command (each
    export is a run of the engine's CLI)."""
    return functools.cache(lambda: stack.export_stack().deployment or {})


def _before_upgrade(name: str, state: Callable[[], dict[str, Any]]) -> int:
    """2 (and why) when the state was written by the release before the package: a refresh or a delete loads each
    resource's provider from the state, whose modules (`components.*`) no longer exist, and would fail on every
    resource with ModuleNotFoundError. One plain `up` stores the providers as they are now, running nothing on the
    hosts (docs/library.md, "Upgrading from the release before the package")."""
    from smtps_iredmail.base import stale_provider

    resources = state().get("resources") or []
    if not any(stale_provider(r.get("outputs") or {}) for r in resources):
        return 0
    _err(f"smtps: stack {name}: its state was written by the release before the package (its providers name the "
         f"modules components.*, which no longer exist): run `smtps up -s {name}` once first, without --refresh "
         "(it updates them in place and runs nothing on the hosts)")
    return 2


def _moved_hosts_refused(name: str, state: Callable[[], dict[str, Any]]) -> int:
    """2 (and what to do) when the state has hosts, or providers, of the provider processes of a release that had
    other slots (16 before 4): an up limited to the canaries (`--target`) can neither move the other hosts to their
    new provider nor delete an old provider, and the engine refuses it, possibly after the canaries changed (it will
    not mix a change of providers with --target). One plain up moves and deletes them, running nothing on the hosts
    (docs/library.md, "Upgrading to 4 provider processes"). It costs one export of the state per canary up: the
    price of refusing before the canaries change rather than after."""
    moved = moved_hosts(state())
    if not moved:
        return 0
    named = ", ".join(moved[:5]) + (f" and {len(moved) - 5} more" if len(moved) > 5 else "")
    _err(shown(f"smtps: stack {name}: {named}: in the provider processes of an earlier release (ssh-N), which an "
               f"up limited to the canaries cannot move: run `smtps preview -s {name} --diff`, then `smtps up -s "
               f"{name} --no-canary` once with no other change to the stack (it moves them and runs nothing on the "
               "hosts); canaries work again after it"))
    return 2


def cmd_refresh(args: argparse.Namespace) -> int:
    if refused := _refused_in_ci(args.stack):
        return refused
    stack = _stack(args)
    state = _exported_once(stack)
    if refused := _refused_in_ci(args.stack, state) or _before_upgrade(args.stack, state):
        return refused
    if not args.yes and not args.preview_only:
        _err("smtps: refresh writes what it reads into the state: pass --yes, or --preview-only to only show it")
        return 2
    options = {"diff": args.diff, "on_output": _engine_out, "on_error": _engine_err, **_logging(args)}
    if args.preview_only:
        return _engine_call(lambda events: stack.preview_refresh(on_event=events.on_event, **NO_SECRETS, **options))
    return _engine_call(lambda events: stack.refresh(on_event=events.on_event, **NO_SECRETS, **options))


def cmd_destroy(args: argparse.Namespace) -> int:
    if refused := _refused_in_ci(args.stack):
        return refused
    stack = _stack(args)
    state = _exported_once(stack)
    if refused := _refused_in_ci(args.stack, state) or _before_upgrade(args.stack, state):
        return refused
    if not args.yes:
        status = _ask(lambda events: stack.preview_destroy(on_output=_engine_out, on_error=_engine_err,
                                                           on_event=events.on_event),
                      "Take SMTPS off these hosts?", "destroy", "destroyed")
        if status is not None:
            return status
    return _engine_call(lambda events: stack.destroy(
        continue_on_error=True, on_output=_engine_out, on_error=_engine_err, on_event=events.on_event, **NO_SECRETS,
        **_logging(args)))


def _refused_in_ci(name: str, state: Callable[[], dict[str, Any]] | None = None) -> int:
    """In CI, a stack that holds a secret is refused before the engine runs it (smtps/credentials.py says why), for
    `up`, `refresh` and `destroy`: its stack file, read without decrypting, and on a file backend the stack's
    history and backups; with `state`, the stack's state (an export shows where a value is encrypted, not what).
    0 when it may go on."""
    if not credentials.in_ci():
        return 0
    if state is None:
        folder = engine.project_dir()
        held = stacks.stored_secrets(folder, name)
        where = "its stack file or Pulumi.yaml's project-level config" if stacks.project_secrets(folder) else \
            "its stack file"
        backend = credentials.file_backend(engine.backend_url(folder), folder)
        if not held and backend is not None:
            try:
                old = credentials.secrets_in_history(backend, stacks.PROJECT, name)
            except credentials.CredentialError as err:
                _err(f"smtps: {err}")
                return 2
            if old:
                _err(f"smtps: {credentials.history_refusal(name, backend, stacks.PROJECT, old)}")
                return 2
    else:
        held, where = credentials.encrypted_in_state(state()), credentials.STATE
    if not held:
        return 0
    _err(f"smtps: {credentials.refusal(name, held, where)}")
    return 2


def cmd_key(args: argparse.Namespace) -> int:
    """Store the deploy key as the stack's secret, creating the stack (in the backend) if it is new. For a single
    operator's machine only: anyone with the stack's passphrase can decrypt it, and in CI that includes a pull
    request's preview; so CI refuses such a stack, and this command refuses to run in CI."""
    from pulumi import automation as auto

    if credentials.in_ci():
        _err(f"smtps: stack {args.stack}: `key` is refused in CI: the deploy key is never stored in a stack that CI "
             f"runs; give `up` the key as a file ({credentials.SSH_KEY_FILE_ENV})")
        return 2
    try:
        key = Path(args.file).read_text()
    except OSError as err:
        _err(f"smtps: stack {args.stack}: the key file {args.file} cannot be read: {err.strerror}")
        return 2
    if "PRIVATE KEY-----" not in key:
        _err(f"smtps: stack {args.stack}: {args.file} is not a private key (no PEM or OpenSSH private key block)")
        return 2
    engine.stack(args.stack).set_config(stacks.SSH_KEY, auto.ConfigValue(key, secret=True))
    _err(f"smtps: stack {args.stack}: deploy key stored (encrypted) as {stacks.PROJECT}:{stacks.SSH_KEY}, for this "
         "single operator's machine only: anyone with the stack's passphrase can decrypt it, and CI refuses a stack "
         f"that holds it (there, give the key as a file: {credentials.SSH_KEY_FILE_ENV})")
    return 0


def canary_targets(stack: str, canaries: tuple[str, ...], firewalls: dict[str, Firewall] | None = None) -> list[str]:
    """The URNs of the canaries' components, their resources (one per kind of the host's firewall, every kind where
    `firewalls` does not say, and the check) and their providers: `up --target` on these converges and verifies the
    canaries alone."""
    from smtps_iredmail.host import VERIFY_SUFFIX, shared_provider
    from smtps_iredmail.kinds import COMPONENT_TYPE, kinds_for
    from smtps_iredmail.verification import Verification

    base = f"urn:pulumi:{stack}::{stacks.PROJECT}::"
    check = (Verification.type_token, VERIFY_SUFFIX)
    targets = []
    for name in canaries:
        kinds = kinds_for((firewalls or {}).get(name, Firewall.AUTO))
        types = [(kind.type_token(), kind.suffix) for kind in kinds] + [check]
        targets.append(f"{base}{COMPONENT_TYPE}::{name}")
        targets += [f"{base}{COMPONENT_TYPE}${token}::{name}-{suffix}" for token, suffix in types]
        targets.append(f"{base}{SHARED_PROVIDER_TYPE}::{shared_provider(name)}")
    return targets


def host_urns(deployment: dict[str, Any], hosts: list[str]) -> list[str]:
    """The URNs the state holds of these hosts' components, resources and SSH providers, found by their names."""
    from smtps_iredmail.host import VERIFY_SUFFIX, shared_provider
    from smtps_iredmail.kinds import KINDS

    names = set()
    for host in hosts:
        names |= {host, shared_provider(host), *(f"{host}-{kind.suffix}" for kind in KINDS),
                  f"{host}-{VERIFY_SUFFIX}"}
    urns = [r.get("urn") for r in deployment.get("resources") or []]
    return [urn for urn in urns if isinstance(urn, str) and urn.rsplit("::", 1)[-1] in names]


def moved_hosts(deployment: dict[str, Any]) -> list[str]:
    """What the state has of an earlier release's provider slots: the hosts whose resources it has with a shared
    provider (`ssh-N`) other than this release's slot for them, and the shared providers that are no slot of this
    release (one left when the up that moved every host was stopped before deleting it). Read from the state as
    data: names compared, nothing run."""
    from smtps_iredmail.host import PROVIDER_PROCESSES, shared_provider
    from smtps_iredmail.kinds import COMPONENT_TYPE

    moved = set()
    for resource in deployment.get("resources") or []:
        urn, provider, parent = resource.get("urn"), resource.get("provider"), resource.get("parent")
        if isinstance(urn, str) and urn.rsplit("::", 2)[-2:-1] == [SHARED_PROVIDER_TYPE]:
            name = urn.rsplit("::", 1)[-1]
            if SHARED_PROVIDER.fullmatch(name) and int(name[4:]) >= PROVIDER_PROCESSES:
                moved.add(f"provider {name}")
            continue
        if not (isinstance(provider, str) and isinstance(parent, str) and f"::{COMPONENT_TYPE}::" in parent):
            continue
        parts = provider.split("::")
        host = parent.rsplit("::", 1)[-1]
        if len(parts) >= 2 and SHARED_PROVIDER.fullmatch(parts[-2]) and parts[-2] != shared_provider(host):
            moved.add(f"host {host}")
    return sorted(moved)


def stack_settings(name: str) -> stacks.Stack:
    """A stack's settings from its files, through the one loader; nothing decrypted."""
    return stacks.from_files(engine.project_dir(), name)


def _in_parallel(hosts: tuple[HostSettings, ...], each: Callable[[HostSettings], Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=min(32, len(hosts))) as pool:
        return list(pool.map(each, hosts))


def _pool(stack: str) -> Pool | None:
    """The SSH pool for the stack's deploy key (smtps/remote.py `deploy_key`: SMTPS_SSH_KEY_FILE's file, else the
    stack's secret, the only value decrypted)."""
    # The SSH library (0.2 s of imports) loads meanwhile, in a thread: reading the secret is a start of the Pulumi CLI
    # that decrypts it, and the first connection needs both.
    threading.Thread(target=importlib.import_module, args=("paramiko",)).start()
    try:
        key = remote.deploy_key(lambda: engine.stack_secret(stack, stacks.SSH_KEY), stack)
    except SshError as err:
        _err(f"smtps: {err}")
        return None
    return remote.Pool(key)


@dataclass(frozen=True)
class Checked:
    """One host's verification as `verify` shows it: what 465 served, against the file on the host."""

    host: HostSettings
    seen: SeenFromOutside
    file_sha256: str  # the certificate file's, read on the host ("" when it could not be read)
    file_problem: str
    ports: frozenset[int]
    warning: str

    @property
    def ok(self) -> bool:
        return self.seen.ok and not self.file_problem

    def as_dict(self) -> dict[str, Any]:
        return {**self.seen.as_dict(), "ok": self.ok, "file_sha256": self.file_sha256,
                "fingerprint_match": bool(self.file_sha256) and self.file_sha256 == self.seen.cert_sha256,
                "file_problem": self.file_problem, "ports_answering": sorted(self.ports), "warning": self.warning}


def cmd_verify(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from smtps_iredmail.verification import _credential

    from . import master_service, ports
    from .verify import verify

    hosts = stack_settings(args.stack).hosts
    # The certificate file is read on each host (its SHA-256): that takes the deploy key, as drift does.
    pool = _pool(args.stack)
    if pool is None:
        return 2
    try:
        credential = credentials.credential_from_file(args.stack)
    except credentials.CredentialError as err:
        _err(f"smtps: {err}")
        return 2
    credential = credential or _credential(engine.stack_secret(args.stack, credentials.CREDENTIAL))

    def check(h: HostSettings) -> Checked:
        conn = h.connection
        port_opener = remote.reach(h.name, conn.address, conn.jump, lambda: pool)
        opener = port_opener(SMTPS_PORT) if port_opener else None
        try:
            read = remote.run(h.name, conn, master_service.certificate_script(h.name, h.tls), "certificate", pool)
            file_sha, file_problem = master_service.MODEL.report(read).get("certSha256", ""), ""
        except HostFailure as err:
            file_sha, file_problem = "", err.stderr or f"exit status {err.status}"
        except SshError as err:
            file_sha, file_problem = "", f"cannot read the certificate file: {err}"
        # --warn-days: expiry is a warning from N days on, and a failure only once expired.
        min_days = 0 if args.warn_days is not None else h.check.min_days
        seen = verify(conn.address, SMTPS_PORT, opener=opener, expect_sha256=file_sha or None, min_days=min_days,
                      ca_bundle=h.check.ca_bundle, tls_name=h.check.tls_name, credential=credential)
        days = seen.days_left
        warning = (f"the certificate expires in {days} day(s)" if args.warn_days is not None and days is not None
                   and 0 <= days < args.warn_days else "")
        return Checked(h, seen, file_sha, file_problem, ports.answering(conn.address, port_opener), warning)

    try:
        results: list[Checked] = _in_parallel(hosts, check)
    finally:
        pool.close()
    if args.json:
        print(shown_json({c.host.name: c.as_dict() for c in results}, indent=2))
    else:
        table = Table("host", "address", "465", "TLS", "served = file", "days left", "relay without login", "AUTH",
                      "mail ports answering", "problem", title=f"SMTPS verification, stack {args.stack}")
        for c in results:
            r = c.seen
            match = "unknown" if not c.file_sha256 else "yes" if c.file_sha256 == r.cert_sha256 else "NO"
            table.add_row(*_cells(c.host.name, r.address, "ok" if c.ok else "FAILED", r.tls_version, match,
                                  "" if r.days_left is None else str(r.days_left), r.relay_anonymous[:40], r.auth,
                                  " ".join(map(str, sorted(c.ports))),
                                  "; ".join(p for p in (r.problem, c.file_problem, c.warning) if p)))
        Console(width=220).print(table)
    return 0 if all(c.ok for c in results) else 1


def cmd_drift(args: argparse.Namespace) -> int:
    from . import facts
    from .drift import Drift, compare, read_host_script

    hosts = stack_settings(args.stack).hosts
    pool = _pool(args.stack)
    if pool is None:
        return 2

    def read(h: HostSettings) -> list[Drift]:
        # One SSH session per host: the read-only script prints the facts every kind reads.
        try:
            stdout = remote.run(h.name, h.connection, read_host_script(h), "read", pool)
        except SshError as err:
            return [Drift(h.name, "host", "ssh", "reachable", str(err))]
        except HostFailure as err:
            return [Drift(h.name, "host", "read", "exit 0", f"exit {err.status}: {err.stderr}")]
        return compare(h, facts.parse(stdout))

    try:
        found = [d for drifts in _in_parallel(hosts, read) for d in drifts]
    finally:
        pool.close()
    if args.json:
        print(shown_json([{"host": d.host, "resource": d.resource, "field": d.field, "desired": d.want,
                           "live": d.have, **({"note": d.note} if d.note else {})} for d in found], indent=2))
    elif found:
        from rich.console import Console
        from rich.table import Table

        table = Table("host", "resource", "field", "desired", "live", title=f"Drift, stack {args.stack}")
        for d in found:
            table.add_row(*_cells(d.host, d.resource, d.field, d.want, d.have))
        Console(width=200).print(table)
        for d in found:
            if d.note:
                print(shown(f"{d.host}: {d.field} is {d.have}: {d.note}"))
        print(f"{len(found)} difference(s) on {len({d.host for d in found})} of {len(hosts)} host(s). "
              f"Repair: smtps up -s {args.stack} --refresh")
    else:
        print(f"No drift: {len(hosts)} host(s) of stack {args.stack} are as configured.")
    return 1 if found else 0


def cmd_pulumi(args: argparse.Namespace) -> int:
    """Plain Pulumi, with this project's environment: the commands that do not run the program."""
    # Only the leading `--` is ours: a later one is Pulumi's own (a value that starts with a dash follows it).
    argv = args.args[1:] if args.args[:1] == ["--"] else args.args
    env = {**os.environ, **engine.prepare()}
    return subprocess.run([str(engine.pulumi_binary()), *argv], cwd=engine.project_dir(), env=env,
                          check=False).returncode


def cmd_fleet(args: argparse.Namespace) -> int:
    from . import fleet

    names = [s for s in args.stacks.split(",") if s] if args.stacks else stacks.stack_names(engine.project_dir())
    if not names:
        _err("smtps: no stacks: none given with --stacks and none in stacks/")
        return 2
    if args.no_canary and args.fleet_command != "up":
        _err("smtps: fleet: --no-canary is for up (a preview changes no host, canaries or not)")
        return 2
    extra = (["--refresh"] if args.refresh else []) + (["--no-canary"] if args.no_canary else [])
    return fleet.across_stacks(args.fleet_command, names, args.workers, extra)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="smtps", description=__doc__.splitlines()[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(handler=handler)
        if name not in ("pulumi", "fleet"):
            sub.add_argument("-s", "--stack", required=True, help="the stack (one per datacenter), e.g. lab")
        return sub

    preview = command("preview", cmd_preview, "show what `up` would change, per host and setting")
    preview.add_argument("--diff", action="store_true", help="show each changed setting with old and new value")
    preview.add_argument("--refresh", action="store_true", help="read the hosts first (drift shows as changes)")
    preview.add_argument("--expect-no-changes", action="store_true", help="fail if anything would change")
    preview.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL)
    preview.add_argument("-v", "--verbose", type=int, default=0, metavar="LEVEL", help="Pulumi's log level, to stderr")
    preview.add_argument("--summary", metavar="FILE", help=argparse.SUPPRESS)  # JSON: changes, failures (fleet)
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
    up.add_argument("--no-rollback", action="store_true",
                    help="a host that fails its check after this run changed it stays as it is (for debugging), "
                         "instead of being put back as it was before the run")
    up.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL)
    up.add_argument("-v", "--verbose", type=int, default=0, metavar="LEVEL", help="Pulumi's log level, to stderr")
    up.add_argument("--summary", metavar="FILE", help=argparse.SUPPRESS)  # JSON: changes, failures (fleet)
    refresh = command("refresh", cmd_refresh, "read every host into the state (drift shows per setting)")
    refresh.add_argument("--yes", "-y", action="store_true", help="write what was read into the state")
    refresh.add_argument("--preview-only", action="store_true", help="only show what a refresh would change")
    refresh.add_argument("--diff", action="store_true", help="show each changed setting with old and new value")
    refresh.add_argument("-v", "--verbose", type=int, default=0, metavar="LEVEL")
    destroy = command("destroy", cmd_destroy, "take this tool's change off every host: each as it was found")
    destroy.add_argument("--yes", "-y", action="store_true", help="destroy without asking")
    destroy.add_argument("-v", "--verbose", type=int, default=0, metavar="LEVEL")
    key = command("key", cmd_key, "store the deploy key as the stack's secret (creates the stack if new); for a "
                                  "single operator's machine only: refused in CI, which refuses such a stack")
    key.description = ("Store the deploy key as the stack's secret, encrypted with its passphrase. For a single "
                       "operator's machine only: anyone with the passphrase can decrypt it, and in CI that includes "
                       "a pull request's preview, so CI refuses this command and any stack that holds a secret. "
                       f"Elsewhere, give `up` the key as a file: {credentials.SSH_KEY_FILE_ENV}.")
    key.add_argument("--file", required=True, help="the private key's file")
    verify_cmd = command("verify", cmd_verify, "check TLS and AUTH on 465 of every host, from this machine")
    verify_cmd.add_argument("--json", action="store_true")
    verify_cmd.add_argument("--warn-days", type=int, metavar="N",
                            help="a certificate expiring within N days warns instead of failing (expired still fails)")
    drift_cmd = command("drift", cmd_drift, "compare every host with its settings; exit 1 on drift")
    drift_cmd.add_argument("--json", action="store_true")
    fleet_cmd = command("fleet", cmd_fleet, "preview or up many stacks at once, with a summary table")
    fleet_cmd.add_argument("fleet_command", choices=("preview", "up"))
    fleet_cmd.add_argument("--stacks", help="comma-separated stack names (default: every stacks/Pulumi.*.yaml)")
    fleet_cmd.add_argument("--workers", type=int, default=2, help="stacks run at once (default: 2)")
    fleet_cmd.add_argument("--refresh", action="store_true", help="read the hosts first")
    fleet_cmd.add_argument("--no-canary", action="store_true", help="up: ignore every stack's canaries")
    plain = command("pulumi", cmd_pulumi, "run the plain Pulumi CLI with this project's environment")
    plain.add_argument("args", nargs=argparse.REMAINDER)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        profile.check()
        return args.handler(args)
    except SettingsError as err:
        _err(f"smtps: bad settings:\n{err}")
        return 2
