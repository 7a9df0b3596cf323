"""What a provider process keeps between the engine's calls (components/provider_process.py)."""

from __future__ import annotations

import re
import sys
import threading

from smtps_iredmail.core.firewall import Firewall
from smtps_iredmail.core.settings import Connection
from smtps_iredmail.provider_process import THIS_PROCESS, ProviderProcess

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def test_one_snapshot_id_per_process_and_one_pool():
    process = ProviderProcess()
    assert re.fullmatch(r"[0-9a-f]{16}", process.snapshot_id) and process.snapshot_id != THIS_PROCESS.snapshot_id
    assert process.ssh is process.ssh and process.ssh is not THIS_PROCESS.ssh


def test_a_hosts_firewall_is_kept_per_host_and_address():
    process = ProviderProcess()
    here, there = Connection("10.0.0.1", 22, "root", KEY), Connection("10.0.0.2", 22, "root", KEY)
    process.note_firewall("mail1", here, None)  # nothing found: nothing kept
    assert process.firewall_of("mail1", here) is None
    process.note_firewall("mail1", here, Firewall.NFTABLES)
    assert process.firewall_of("mail1", here) is Firewall.NFTABLES
    assert process.firewall_of("mail1", there) is None and process.firewall_of("mail2", here) is None


def test_the_ports_before_are_the_first_changes_and_probed_once_per_host():
    process = ProviderProcess()
    probes, release = [], threading.Event()

    def probe(found: frozenset[int]):
        def run() -> frozenset[int]:
            probes.append(found)
            release.wait(5)
            return found
        return run

    assert process.ports_before("mail1") is None
    first = threading.Thread(target=process.record_ports_before, args=("mail1", probe(frozenset({25, 465}))))
    first.start()
    # Another host's probe does not wait for mail1's.
    process.record_ports_before("mail2", lambda: frozenset({25}))
    assert process.ports_before("mail2") == frozenset({25})
    release.set()
    first.join()
    process.record_ports_before("mail1", probe(frozenset()))  # a later change: not probed again
    assert process.ports_before("mail1") == frozenset({25, 465}) and probes == [frozenset({25, 465})]


def test_the_test_credential_is_what_configure_set_last():
    process = ProviderProcess()
    assert process.credential is None
    process.set_credential(("user", "secret"))
    assert process.credential == ("user", "secret")


def test_a_pool_that_serves_4_calls_is_made_to_serve_more_from_one_of_its_threads():
    from concurrent.futures import ThreadPoolExecutor

    from smtps_iredmail.provider_process import _widen_current_pool

    together = threading.Barrier(10, timeout=10)
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert pool.submit(_widen_current_pool, 10).result() is True
        assert all(f.result() is not None for f in [pool.submit(together.wait) for _ in range(10)])
    assert _widen_current_pool(10) is False  # not in a pool's thread: nothing to widen


def test_only_the_sdks_provider_process_is_changed():
    from smtps_iredmail.provider_process import serve_more_calls

    assert serve_more_calls() is False  # pytest's process; the provider process is tests/test_engine.py's


def test_the_provider_processes_are_not_a_tighter_bound_than_the_engines_parallelism():
    from smtps_iredmail.core.cli import DEFAULT_PARALLEL
    from smtps_iredmail.host import PROVIDER_PROCESSES
    from smtps_iredmail.provider_process import CALLS_AT_ONCE

    assert PROVIDER_PROCESSES * CALLS_AT_ONCE >= DEFAULT_PARALLEL


def test_the_slot_scheme_is_pinned():
    # Changing it moves hosts between provider processes: the first preview after it shows that, and a canary's up
    # is refused until one plain up (docs/library.md, "Upgrading to 4 provider processes"). Change it with that note.
    from smtps_iredmail.host import PROVIDER_PROCESSES, provider_slot

    assert PROVIDER_PROCESSES == 4
    assert [provider_slot(name) for name in ("mx1", "mail1", "mail2", "mail3")] == [1, 1, 3, 1]


def test_a_provider_process_whose_pool_cannot_be_widened_says_so(monkeypatch, capsys):
    import types
    from importlib.machinery import ModuleSpec

    from smtps_iredmail.provider_process import serve_more_calls

    main = types.ModuleType("__main__")
    main.__spec__ = ModuleSpec("pulumi.dynamic.__main__", None)
    monkeypatch.setitem(sys.modules, "__main__", main)
    assert serve_more_calls() is False  # the test's own thread is no pool's
    assert "smtps: warning: this provider process serves 4 of the engine's calls at once" in capsys.readouterr().err
