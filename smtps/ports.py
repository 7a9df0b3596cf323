"""Which of a host's mail ports answer, from the machine running Pulumi: a change must not silence one that answered.

The ports are those an iRedMail host serves to the outside: SMTP 25, submission 587, SMTPS 465, POP3 110/995 and
IMAP 143/993. A port "answers" when a TCP connection to it completes (through the host's bastion where it has
one); a refused or filtered port does not. All are tried at once, so a run costs one timeout at most.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

MAIL_PORTS = (25, 465, 587, 110, 143, 993, 995)
TIMEOUT = 2.0
# The probe before a run's first change stops waiting early: once one port has answered (or been refused) after t
# seconds, the others get QUICK_FACTOR * t, at least QUICK_FLOOR (and TIMEOUT at most). A port that answers takes
# about one round trip, like the first; one still silent by then is filtered (iRedMail's nftables drops 465), and
# waiting out TIMEOUT for it cost every new nftables host 2 s. Missing a slow port here errs safe: a port not counted
# before cannot be counted as lost after. The probe after the change waits TIMEOUT in full, so a slow answer there is
# never taken for a lost port.
QUICK_FACTOR = 10.0
QUICK_FLOOR = 0.5

# How to open a connection to one of the host's ports from here: `port_opener(port)()` opens it (through the host's
# bastion, smtps/remote.py `reach`); None: directly.
PortOpener = Callable[[int], Callable[[], socket.socket]] | None


def answering(address: str, opener: PortOpener = None, ports: tuple[int, ...] = MAIL_PORTS,
              timeout: float = TIMEOUT, quick: bool = False) -> frozenset[int]:
    """The ports of `ports` that accept a TCP connection. `opener(port)`, when given, opens it (a bastion).
    `quick`: stop waiting for silent ports early (QUICK_FACTOR), for the probe before a change only."""

    def answers(port: int) -> bool:
        try:
            sock = opener(port)() if opener else socket.create_connection((address, port), timeout=timeout)
        except OSError:
            return False
        sock.close()
        return True

    found: dict[int, bool] = {}
    changed = threading.Condition()

    def probe(port: int) -> None:
        result = answers(port)
        with changed:
            found[port] = result
            changed.notify_all()

    # Daemon threads, not an executor: a connection still waiting when this returns ends at its own timeout, and
    # nobody waits for it, not even the provider process's exit (which joins an executor's threads: a dropped port
    # probed quickly held every nftables host's run up to 2 s at its end).
    started = time.monotonic()
    for port in ports:
        threading.Thread(target=probe, args=(port,), name=f"probe-{port}", daemon=True).start()
    deadline = started + timeout + 1  # each connection gives up after `timeout` by itself
    with changed:
        first_answer = True
        while len(found) < len(ports):
            if quick and found and first_answer:
                first_answer = False
                first = time.monotonic() - started
                deadline = min(deadline, started + max(QUICK_FLOOR, QUICK_FACTOR * first))
            left = deadline - time.monotonic()
            if left <= 0:
                break
            changed.wait(left)
        return frozenset(port for port, answered in found.items() if answered)


def lost(before: frozenset[int], after: frozenset[int]) -> str:
    """The problem when a port that answered before does not now, or ""."""
    gone = sorted(before - after)
    if not gone:
        return ""
    def shown(found: frozenset[int]) -> str:
        return ", ".join(map(str, sorted(found))) or "none"

    return (f"ports that answered before this run changed the host no longer do: {', '.join(map(str, gone))} "
            f"(before: {shown(before)}; now: {shown(after)})")
