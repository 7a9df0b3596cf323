"""What a provider process keeps between the engine's calls: one object, `THIS_PROCESS`."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent.futures import thread as _pool_threads

from smtps_iredmail.core import remote, rollback
from smtps_iredmail.core.firewall import Firewall
from smtps_iredmail.core.settings import Connection


class ProviderProcess:
    """The provider process's own state, process-wide on purpose. The engine starts a provider process for one
    operation (a preview, an up, a refresh, a destroy), and a host's resources and its check all run in the same one
    (program.py gives them one explicit provider): each call has a provider object of its own, in a thread of its
    own, so what one call learns and a later one needs can only live in the process. Here is all of it:

    - `snapshot_id`: this operation's name on the hosts. Every script keeps what it changes under it, the first time
      (smtps/rollback.py); a failed check's rollback puts that back.
    - `ssh`: the one SSH pool, so that a host's resources and its check share its connection (and its bastion's).
    - the firewall found on each host: the master.cf apply finds it first, before it changes anything, and the host's
      firewall kinds use that rather than ask the host again.
    - the mail ports answering on each host before this operation first changed it, which the check compares after
      the last change: none may go quiet.
    - the test credential (username, password) the check logs in with to test relaying, from `configure`.
    """

    def __init__(self) -> None:
        self.snapshot_id = rollback.new_snapshot_id()
        self.ssh = remote.SharedPool()
        self._lock = threading.Lock()
        self._firewalls: dict[tuple[str, str], Firewall] = {}
        self._ports_before: dict[str, frozenset[int]] = {}
        self._credential: tuple[str, str] | None = None

    # --- the firewall found on a host -----------------------------------------------------------------------------
    def note_firewall(self, host: str, connection: Connection, firewall: Firewall | None) -> None:
        if firewall is not None:
            with self._lock:
                self._firewalls[(host, connection.address)] = firewall

    def firewall_of(self, host: str, connection: Connection) -> Firewall | None:
        with self._lock:
            return self._firewalls.get((host, connection.address))

    # --- the mail ports before the first change -----------------------------------------------------------------
    def record_ports_before(self, host: str, probe: Callable[[], frozenset[int]]) -> None:
        """`probe()` the host's mail ports, unless this process did already: only the first change's counts. The
        probe runs outside the lock, so that other hosts' calls do not wait for it."""
        with self._lock:
            if host in self._ports_before:
                return
        found = probe()
        with self._lock:
            self._ports_before.setdefault(host, found)

    def ports_before(self, host: str) -> frozenset[int] | None:
        """The ports that answered before this operation first changed the host; None where it changed nothing."""
        with self._lock:
            return self._ports_before.get(host)

    # --- the test credential ------------------------------------------------------------------------------------
    def set_credential(self, credential: tuple[str, str] | None) -> None:
        with self._lock:
            self._credential = credential

    @property
    def credential(self) -> tuple[str, str] | None:
        with self._lock:
            return self._credential


# How many of the engine's calls one provider process serves at once. A host's resources run one after another, so
# this is how many hosts a process keeps busy; components/host.py spreads hosts over PROVIDER_PROCESSES of them, and
# the two together must not be a tighter bound than the engine's own parallelism (smtps/cli.py DEFAULT_PARALLEL). A
# call mostly waits on its host (SSH), so one process keeps many hosts busy; what each process costs is its start
# (Python, the Pulumi SDK and gRPC: about 0.45 s of CPU and 32 MiB, docs/benchmark.md).
CALLS_AT_ONCE = 32


def serve_more_calls(calls: int = CALLS_AT_ONCE) -> bool:
    """Let the provider process this runs in serve `calls` of the engine's calls at once; True when it does.

    The SDK's provider process (`python -m pulumi.dynamic`) serves calls from a thread pool of 4 that it makes before
    any of this code is loaded, and offers no setting. This code is first loaded in one of that pool's threads (the
    engine's first call with one of these resources unpickles its provider), and a pool starts each new thread up to
    its `_max_workers`: so it is raised there. Both are private to the standard library and the SDK; where either
    is not as expected (another Python, another SDK) nothing is changed, and the process serves 4 calls at once:
    16 hosts at a time in all, slower than 64, never wrong; the process says so on its stderr, which the engine
    shows. Outside a provider process (the front end, tests) nothing is done. tests/test_engine.py checks it against
    this Python and the installed SDK."""
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None) != "pulumi.dynamic.__main__":
        return False
    if _widen_current_pool(calls):
        return True
    print(f"smtps: warning: this provider process serves 4 of the engine's calls at once, not {calls} (this Python "
          "or Pulumi SDK is not one whose thread pool this release can widen): hosts run 16 at a time, not 64",
          file=sys.stderr, flush=True)
    return False


def _widen_current_pool(calls: int) -> bool:
    current = threading.current_thread()
    if getattr(current, "_target", None) is not _pool_threads._worker:  # noqa: SLF001
        return False
    pool = current._args[0]()  # noqa: SLF001  a weak reference to the pool whose thread this is
    if not isinstance(pool, _pool_threads.ThreadPoolExecutor) or not isinstance(pool._max_workers, int):  # noqa: SLF001
        return False
    pool._max_workers = max(pool._max_workers, calls)  # noqa: SLF001
    return True


THIS_PROCESS = ProviderProcess()
serve_more_calls()
