"""Looking at a lab host from outside, as a client on the network would."""

from __future__ import annotations

import errno
import smtplib
import socket
import ssl
from dataclasses import asdict, dataclass


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
    # The lab's certificates are self-signed: the probe checks that TLS is spoken, not who signed the cert.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with smtplib.SMTP_SSL(address, port, timeout=timeout, context=context) as client:
            client.ehlo("probe.lab")
            version = client.sock.version() if isinstance(client.sock, ssl.SSLSocket) else ""
            auth = client.esmtp_features.get("auth", "").strip()
            return SmtpsProbe("tls", tls_version=version or "", auth=auth)
    except (ssl.SSLError, smtplib.SMTPException) as err:
        return SmtpsProbe("open", detail=f"no TLS service: {err}")
    except OSError:
        plain = tcp(address, port, timeout=timeout, read_banner=False)
        return SmtpsProbe(plain.state, detail=plain.detail)
