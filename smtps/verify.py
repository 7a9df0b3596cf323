"""Check a host from outside, as a mail client would: implicit TLS on 465, then EHLO offering AUTH.

`python -m smtps.verify ADDRESS [--port 465] [--json]` prints what it saw and exits non-zero when the port does not
answer with TLS or AUTH is not offered. The certificate is read, not trusted: iRedMail hosts often run self-signed
certificates, and what matters here is that 465 speaks TLS with the certificate the host is meant to serve.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Verification:
    address: str
    port: int
    ok: bool
    tls_version: str = ""
    cert_subject: str = ""
    cert_not_after: str = ""
    auth: str = ""
    problem: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def certificate_fields(der: bytes) -> tuple[str, str]:
    """Subject and expiry of a DER certificate, as openssl prints them (RFC 2253 subject, GMT date)."""
    result = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-enddate", "-nameopt", "RFC2253"],
        input=ssl.DER_cert_to_PEM_cert(der).encode(), capture_output=True, check=True,
    )
    fields = dict(line.split("=", 1) for line in result.stdout.decode().splitlines() if "=" in line)
    return fields.get("subject", "").strip(), fields.get("notAfter", "").strip()


class _SmtpsOver(smtplib.SMTP_SSL):
    """SMTP_SSL over a socket someone else opened (a host behind a bastion is reached through an SSH channel)."""

    def __init__(self, opener: Callable[[], socket.socket], **kwargs: Any) -> None:
        self._opener = opener
        super().__init__(**kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = self._opener()
        sock.settimeout(timeout)
        return self.context.wrap_socket(sock, server_hostname=host)


def verify(address: str, port: int = 465, timeout: float = 10.0, helo: str = "smtps-verify.invalid",
           opener: Callable[[], socket.socket] | None = None) -> Verification:
    """`opener`, when given, opens the TCP connection to address:port (through a bastion); else a direct one."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        client = (_SmtpsOver(opener, host=address, port=port, timeout=timeout, context=context) if opener
                  else smtplib.SMTP_SSL(address, port, timeout=timeout, context=context))
        with client:
            sock = client.sock
            version = sock.version() or "" if isinstance(sock, ssl.SSLSocket) else ""
            der = sock.getpeercert(binary_form=True) or b"" if isinstance(sock, ssl.SSLSocket) else b""
            code, _ = client.ehlo(helo)
            # Postfix may advertise both `AUTH` and the old `AUTH=` form; smtplib joins them: list each once.
            auth = " ".join(dict.fromkeys(client.esmtp_features.get("auth", "").split())) if code == 250 else ""
    except (ssl.SSLError, smtplib.SMTPException) as err:
        return Verification(address, port, False, problem=f"no implicit TLS on {port}: {err}")
    except OSError as err:
        return Verification(address, port, False, problem=f"cannot connect to {port}: {err.strerror or err}")
    subject, not_after = certificate_fields(der) if der else ("", "")
    problem = "" if auth else "EHLO does not offer AUTH"
    return Verification(address, port, not problem, version, subject, not_after, auth, problem)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smtps.verify", description=__doc__.splitlines()[0])
    parser.add_argument("address")
    parser.add_argument("--port", type=int, default=465)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = verify(args.address, args.port)
    if args.json:
        print(json.dumps(result.as_dict()))
    elif result.ok:
        print(f"{args.address}:{args.port} {result.tls_version}, {result.cert_subject}, "
              f"expires {result.cert_not_after}, AUTH {result.auth}")
    else:
        print(f"{args.address}:{args.port} FAILED: {result.problem}", file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
