"""Which of a host's mail ports answer, from the machine running Pulumi: a change must not silence one that answered.

The ports are those an iRedMail host serves to the outside: SMTP 25, submission 587, SMTPS 465, POP3 110/995 and
IMAP 143/993. A port "answers" when a TCP connection to it completes (through the host's bastion where it has
one); a refused or filtered port does not. All are tried at once, so a run costs one timeout at most.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

MAIL_PORTS = (25, 465, 587, 110, 143, 993, 995)
TIMEOUT = 2.0

Opener = Callable[[int], Callable[[], socket.socket]] | None


def answering(address: str, opener: Opener = None, ports: tuple[int, ...] = MAIL_PORTS,
              timeout: float = TIMEOUT) -> frozenset[int]:
    """The ports of `ports` that accept a TCP connection. `opener(port)`, when given, opens it (a bastion)."""

    def answers(port: int) -> bool:
        try:
            sock = opener(port)() if opener else socket.create_connection((address, port), timeout=timeout)
        except OSError:
            return False
        sock.close()
        return True

    with ThreadPoolExecutor(max_workers=len(ports)) as pool:
        return frozenset(port for port, ok in zip(ports, pool.map(answers, ports), strict=True) if ok)


class Baseline:
    """Per host, the ports that answered before this run first changed it (a provider process serves one run):
    recorded by the first change, compared after the changes by the check from outside."""

    _lock = threading.Lock()
    _before: dict[str, frozenset[int]] = {}

    @classmethod
    def record(cls, host: str, probe: Callable[[], frozenset[int]]) -> None:
        with cls._lock:
            if host in cls._before:
                return
        found = probe()
        with cls._lock:
            cls._before.setdefault(host, found)

    @classmethod
    def before(cls, host: str) -> frozenset[int] | None:
        with cls._lock:
            return cls._before.get(host)


def lost(before: frozenset[int], after: frozenset[int]) -> str:
    """The problem when a port that answered before does not now, or ""."""
    gone = sorted(before - after)
    if not gone:
        return ""
    def shown(found: frozenset[int]) -> str:
        return ", ".join(map(str, sorted(found))) or "none"

    return (f"ports that answered before this run changed the host no longer do: {', '.join(map(str, gone))} "
            f"(before: {shown(before)}; now: {shown(after)})")
