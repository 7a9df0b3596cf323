"""Check a host from outside, as a mail client would: implicit TLS on 465, the certificate, then EHLO offering AUTH.

`python -m smtps.verify ADDRESS [--port 465] [--json]` prints what it saw and exits non-zero on any problem.

The certificate: by default it is read, not trusted (iRedMail hosts often run self-signed certificates); what
matters is that it is the one the host is meant to serve (its SHA-256 equals the file's, as the apply read it on the
host) and that it does not expire within `min_days`. Strict mode (a CA bundle and a name) verifies the chain and the
name as a mail client that checks certificates would.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import smtplib
import socket
import ssl
import subprocess
import sys
import time
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
    cert_sha256: str = ""
    days_left: int | None = None
    # What 465 answered to RCPT TO an outside domain: without logging in (must be a 5xx) and, when a test
    # credential is given, after logging in (must be accepted).
    relay_anonymous: str = ""
    relay_authenticated: str = ""

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


def _strict(address: str, port: int, timeout: float, opener: Callable[[], socket.socket] | None, ca_bundle: str,
            name: str) -> str:
    """A second handshake that trusts only `ca_bundle` and expects `name`: the problem, or ""."""
    context = ssl.create_default_context(cafile=ca_bundle)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        sock = opener() if opener else socket.create_connection((address, port), timeout=timeout)
        sock.settimeout(timeout)
        with context.wrap_socket(sock, server_hostname=name):
            return ""
    except ssl.SSLCertVerificationError as err:
        return f"the certificate does not verify against {ca_bundle} for {name}: {err.verify_message}"
    except (OSError, ssl.SSLError) as err:
        return f"strict TLS check failed: {err}"


# The relay probe: an outside sender and recipient (reserved names, RFC 2606), never delivered: RSET follows RCPT.
PROBE_FROM = "smtps-verify@example.org"
PROBE_TO = "relay-probe@example.net"


def _relay(client: smtplib.SMTP, sender: str) -> str:
    """`CODE text` of RCPT TO an outside domain (or of MAIL FROM, when that is refused already); RSET after."""
    try:
        code, text = client.mail(sender)
        if code == 250:
            code, text = client.rcpt(PROBE_TO)
        client.rset()
    except (smtplib.SMTPException, OSError) as err:
        return f"error: {err}"
    return f"{code} {text.decode(errors='replace').splitlines()[0] if text else ''}".strip()


def _relay_problems(anonymous: str, authenticated: str, credential: tuple[str, str] | None) -> list[str]:
    problems = []
    for seen in (anonymous, authenticated):
        if seen.startswith("error"):
            problems.append(f"the relay probe did not complete ({seen})")
    if anonymous and not anonymous.startswith(("5", "error")):
        what = "accepted" if anonymous.startswith("2") else "not refused outright"
        problems.append(f"OPEN RELAY: without logging in, RCPT TO {PROBE_TO} was {what} ({anonymous})")
    if credential and not authenticated.startswith(("2", "error")):
        problems.append(f"after logging in as {credential[0]}, RCPT TO {PROBE_TO} was refused ({authenticated})")
    return problems


def verify(address: str, port: int = 465, timeout: float = 10.0, helo: str = "smtps-verify.invalid",
           opener: Callable[[], socket.socket] | None = None, expect_sha256: str | None = None, min_days: int = 0,
           ca_bundle: str | None = None, tls_name: str | None = None,
           credential: tuple[str, str] | None = None) -> Verification:
    """`opener`, when given, opens the TCP connection to address:port (through a bastion); else a direct one.
    `expect_sha256`: the certificate file's SHA-256 (hex) the served certificate must equal."""
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
            anonymous = _relay(client, PROBE_FROM) if code == 250 else ""
            authenticated = ""
            if credential and auth:
                try:
                    client.login(*credential)
                    authenticated = _relay(client, credential[0])
                except smtplib.SMTPAuthenticationError as err:
                    authenticated = f"{err.smtp_code} login failed"
    except (ssl.SSLError, smtplib.SMTPException) as err:
        return Verification(address, port, False, problem=f"no implicit TLS on {port}: {err}")
    except OSError as err:
        return Verification(address, port, False, problem=f"cannot connect to {port}: {err.strerror or err}")
    subject, not_after = certificate_fields(der) if der else ("", "")
    sha256 = hashlib.sha256(der).hexdigest() if der else ""
    days = int((ssl.cert_time_to_seconds(not_after) - time.time()) // 86400) if not_after else None
    problems = []
    if expect_sha256 and sha256 != expect_sha256.lower():
        problems.append(f"serves certificate sha256 {sha256[:16]}…, not the file's {expect_sha256[:16]}… (Postfix "
                        "serves another certificate than the one it was given)")
    if days is not None and days < 0:
        problems.append(f"the certificate expired {-days} day(s) ago ({not_after})")
    elif days is not None and days < min_days:
        problems.append(f"the certificate expires in {days} day(s) ({not_after}), less than certMinDays {min_days}")
    if ca_bundle and tls_name:
        problems.append(_strict(address, port, timeout, opener, ca_bundle, tls_name))
    if not auth:
        problems.append("EHLO does not offer AUTH")
    problems += _relay_problems(anonymous, authenticated, credential)
    problem = "; ".join(p for p in problems if p)
    return Verification(address, port, not problem, version, subject, not_after, auth, problem, sha256, days,
                        anonymous, authenticated)


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
