"""Looking at a lab host from outside, as a client on the network would."""

from __future__ import annotations

import errno
import json
import socket
import sys
from dataclasses import asdict, dataclass

from smtps_iredmail.core.verify import verify


@dataclass(frozen=True)
class PortProbe:
    """What a TCP client sees on a port: `open`, `rejected` (refused or a firewall reject), or `timeout`."""

    state: str
    banner: str = ""
    detail: str = ""


def tcp(address: str, port: int, timeout: float = 3.0, read_banner: bool = True) -> PortProbe:
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            banner = ""
            if read_banner:
                sock.settimeout(timeout)
                try:
                    banner = sock.recv(512).decode(errors="replace").strip()
                except (TimeoutError, OSError):
                    banner = ""
            return PortProbe("open", banner)
    except TimeoutError:
        return PortProbe("timeout")
    except OSError as err:
        # firewalld rejects with icmp-host-prohibited: the client sees EHOSTUNREACH ("No route to host").
        if err.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
            return PortProbe("rejected", detail=err.strerror or str(err))
        return PortProbe("error", detail=str(err))


@dataclass(frozen=True)
class SmtpsProbe:
    """Implicit TLS on 465: `tls` when the handshake completes, else the TCP state."""

    state: str
    tls_version: str = ""
    auth: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def smtps(address: str, port: int = 465, timeout: float = 5.0) -> SmtpsProbe:
    """The product's own verification, plus what a TCP client sees when there is no TLS to verify."""
    seen = verify(address, port, timeout)
    if seen.tls_version:
        return SmtpsProbe("tls", tls_version=seen.tls_version, auth=seen.auth, detail=seen.problem)
    if seen.problem.startswith("no implicit TLS"):
        return SmtpsProbe("open", detail=seen.problem)
    plain = tcp(address, port, timeout=timeout, read_banner=False)
    return SmtpsProbe(plain.state, detail=plain.detail)


def main(argv: list[str]) -> int:
    """`python -m lab.probe ADDRESS`: the SSH banner and 465 as seen from where it runs, as JSON. The lab runs it in
    a bastion host's network namespace to look at the hosts behind it, which the machine has no route to."""
    address = argv[0]
    print(json.dumps({"ssh": asdict(tcp(address, 22)), "smtps": smtps(address).as_dict()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
