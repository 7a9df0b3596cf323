"""Check a host from outside, as a mail client would: implicit TLS on 465, the certificate, then EHLO offering AUTH.

`python -m smtps_iredmail.core.verify ADDRESS [--port 465] [--json]` prints what it saw and exits non-zero on any
problem.

The certificate: by default it is read, not trusted (iRedMail hosts often run self-signed certificates); what
matters is that it is the one the host is meant to serve (its SHA-256 equals the file's, as the apply read it on the
host) and that it does not expire within `min_days`. Strict mode (a CA bundle and a name) verifies the chain and the
name in the handshake, as a mail client that checks certificates would.

The certificate is proven before anything else is said: the expected SHA-256 (and in strict mode the chain and the
name) is checked right after the TLS handshake, before Postfix's banner is read and before EHLO. A certificate that
does not match closes the connection there, so whoever answers in the host's place (anything on the path to 465, a
bastion included) never sees a command, let alone the test credential. The credential is sent only over a
connection whose certificate was proven this way.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import smtplib
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from cryptography import x509

from .shown import shown, shown_json


@dataclass(frozen=True)
class SeenFromOutside:
    """What the check from outside saw on a host's 465, and its verdict (`ok`, else `problem`). The Pulumi resource
    that runs the check on every change is another thing: components/verification.py `Verification`."""

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


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Served:
    """The certificate 465 served, as read from its DER bytes."""

    sha256: str
    subject: str  # RFC 4514 (the order and form of openssl's `-nameopt RFC2253`)
    not_after: str  # as openssl prints it: `Dec  2 06:28:04 2027 GMT`
    days_left: int

    @classmethod
    def of(cls, der: bytes, now: datetime.datetime | None = None) -> Served:
        """Parsed with `cryptography`: no program on this machine is needed. A certificate it cannot read raises."""
        cert = x509.load_der_x509_certificate(der)
        end = cert.not_valid_after_utc
        now = now or datetime.datetime.now(datetime.UTC)
        printed = f"{_MONTHS[end.month - 1]} {end.day:2d} {end:%H:%M:%S} {end.year} GMT"
        return cls(hashlib.sha256(der).hexdigest(), cert.subject.rfc4514_string(), printed,
                   int((end - now).total_seconds() // 86400))


class CertificateRefused(Exception):
    """The certificate 465 served is not the one expected: the connection is closed before anything is sent."""


def fingerprint_problem(served: str, expected: str) -> str:
    return (f"serves a certificate with SHA-256 {served}, not the file's {expected}: the connection was closed "
            "before EHLO and nothing was sent (Postfix serves another certificate than the one it was given, or "
            "something else answers on the path to 465)")


class _Smtps(smtplib.SMTP_SSL):
    """SMTP over implicit TLS whose certificate is checked by `check` right after the handshake, before the banner is
    read or a byte of SMTP is written. `opener`, when given, opens the TCP connection (a host behind a bastion is
    reached through an SSH channel); else a direct one."""

    def __init__(self, opener: Callable[[], socket.socket] | None, server_name: str | None,
                 check: Callable[[ssl.SSLSocket], None], **kwargs: Any) -> None:
        self._opener, self._server_name, self._check = opener, server_name, check
        super().__init__(**kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = self._opener() if self._opener else socket.create_connection((host, port), timeout)
        try:
            sock.settimeout(timeout)
            tls = self.context.wrap_socket(sock, server_hostname=self._server_name)
        except BaseException:
            sock.close()
            raise
        try:
            self._check(tls)
        except BaseException:
            tls.close()  # refused: not even QUIT is sent
            raise
        return tls


def _plain_context() -> ssl.SSLContext:
    """Reads the certificate without trusting it: what proves it is its SHA-256, checked right after the handshake.
    `ssl.create_default_context()` would load the system's CA store first, which a context that verifies nothing
    never reads: a third of a host's check on the controller's CPU. The client protocol's own defaults (TLS 1.2
    and up here, no compression, the same ciphers) are those create_default_context starts from."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _served_der(address: str, port: int, timeout: float, opener: Callable[[], socket.socket] | None) -> bytes:
    """A handshake and nothing more, to name what a strict handshake refused: no SMTP byte is sent."""
    sock = opener() if opener else socket.create_connection((address, port), timeout)
    with sock:
        sock.settimeout(timeout)
        with _plain_context().wrap_socket(sock) as tls:
            return tls.getpeercert(binary_form=True) or b""


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


def _logged_in_relay(client: smtplib.SMTP, credential: tuple[str, str]) -> str:
    """The relay probe after logging in; a login that fails is said as what 465 answered."""
    try:
        client.login(*credential)
    except smtplib.SMTPAuthenticationError as err:
        return f"{err.smtp_code} login failed"
    except (smtplib.SMTPException, OSError) as err:  # no mechanism in common, a dropped connection
        return f"error: login: {err}"
    return _relay(client, credential[0])


def _relay_problems(anonymous: str, authenticated: str, credential: tuple[str, str] | None) -> list[str]:
    problems = []
    for seen in (anonymous, authenticated):
        if seen.startswith("error"):
            problems.append(f"the relay probe did not complete ({seen})")
    if anonymous and not anonymous.startswith(("5", "error")):
        what = "accepted" if anonymous.startswith("2") else "not refused outright"
        problems.append(f"OPEN RELAY: without logging in, RCPT TO {PROBE_TO} was {what} ({anonymous})")
    if credential and authenticated and not authenticated.startswith(("2", "error")):
        problems.append(f"after logging in as {credential[0]}, RCPT TO {PROBE_TO} was refused ({authenticated})")
    return problems


def _expiry_problems(served: Served | None, min_days: int) -> list[str]:
    if served is None:
        return []
    if served.days_left < 0:
        return [f"the certificate expired {-served.days_left} day(s) ago ({served.not_after})"]
    if served.days_left < min_days:
        return [f"the certificate expires in {served.days_left} day(s) ({served.not_after}), less than certMinDays "
                f"{min_days}"]
    return []


def verify(address: str, port: int = 465, timeout: float = 10.0, helo: str = "smtps-verify.invalid",
           opener: Callable[[], socket.socket] | None = None, expect_sha256: str | None = None, min_days: int = 0,
           ca_bundle: str | None = None, tls_name: str | None = None,
           credential: tuple[str, str] | None = None) -> SeenFromOutside:
    """`opener`, when given, opens the TCP connection to address:port (through a bastion); else a direct one.
    `expect_sha256`: the certificate file's SHA-256 (hex) the served certificate must equal.

    Never raises: whatever goes wrong in the check itself (a certificate `cryptography` cannot read, a bug) is a
    failed check, so that the caller rolls the host back as for any other failure."""
    try:
        return _verify(address, port, timeout, helo, opener, (expect_sha256 or "").lower(), min_days, ca_bundle,
                       tls_name, credential)
    except Exception as err:  # noqa: BLE001 - any failure of the check is a failed check, never an escape
        return SeenFromOutside(address, port, False, problem=f"the check from outside failed: {type(err).__name__}: "
                                                          f"{err}")


def _verify(address: str, port: int, timeout: float, helo: str, opener: Callable[[], socket.socket] | None,
            expected: str, min_days: int, ca_bundle: str | None, tls_name: str | None,
            credential: tuple[str, str] | None) -> SeenFromOutside:
    strict = bool(ca_bundle and tls_name)
    seen: dict[str, Any] = {}

    def check(tls: ssl.SSLSocket) -> None:
        """Right after the handshake (in strict mode the chain and the name are verified already): the SHA-256."""
        der = tls.getpeercert(binary_form=True) or b""
        seen["version"] = tls.version() or ""
        if not der:
            raise CertificateRefused("465 presented no certificate: the connection was closed before EHLO")
        sha256 = hashlib.sha256(der).hexdigest()
        if expected and sha256 != expected:
            seen["sha256"] = sha256
            raise CertificateRefused(fingerprint_problem(sha256, expected))
        try:
            seen["served"] = Served.of(der)
        except Exception as err:  # noqa: BLE001 - unreadable is unproven
            seen["sha256"] = sha256
            raise CertificateRefused(f"the served certificate (SHA-256 {sha256}) cannot be read "
                                     f"({type(err).__name__}: {err}): the connection was closed before EHLO") from err

    def failed(problem: str) -> SeenFromOutside:
        served = seen.get("served")
        if served is None:
            return SeenFromOutside(address, port, False, seen.get("version", ""), problem=problem,
                                cert_sha256=seen.get("sha256", ""))
        return SeenFromOutside(address, port, False, seen.get("version", ""), served.subject, served.not_after,
                            problem=problem, cert_sha256=served.sha256, days_left=served.days_left)

    if strict:
        try:
            context = ssl.create_default_context(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as err:
            return failed(f"strict TLS check failed: the CA bundle {ca_bundle} cannot be loaded: {err}")
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    else:
        context = _plain_context()
    try:
        client = _Smtps(opener, tls_name if strict else address, check, host=address, port=port, timeout=timeout,
                        context=context)
        with client:
            code, _ = client.ehlo(helo)
            # Postfix may advertise both `AUTH` and the old `AUTH=` form; smtplib joins them: list each once.
            auth = " ".join(dict.fromkeys(client.esmtp_features.get("auth", "").split())) if code == 250 else ""
            anonymous = _relay(client, PROBE_FROM) if code == 250 else ""
            # Here the certificate is proven: pinned by its SHA-256, or verified in strict mode. Without either,
            # nothing tells this server from one on the path: the credential stays here.
            proven = bool(expected) or strict
            authenticated = _logged_in_relay(client, credential) if credential and auth and proven else ""
    except CertificateRefused as err:
        return failed(str(err))
    except ssl.SSLCertVerificationError as err:
        problem = (f"the certificate does not verify against {ca_bundle} for {tls_name}: {err.verify_message}: the "
                   "connection was closed before EHLO")
        try:  # name what was served, for the report: a second handshake, nothing sent
            seen["served"] = Served.of(_served_der(address, port, timeout, opener))
        except (OSError, ValueError, ssl.SSLError):
            return failed(problem)
        if expected and seen["served"].sha256 != expected:
            problem += f"; {fingerprint_problem(seen['served'].sha256, expected)}"
        return failed(problem)
    except (ssl.SSLError, smtplib.SMTPException) as err:
        return failed(f"no implicit TLS on {port}: {err}")
    except OSError as err:
        return failed(f"cannot connect to {port}: {err.strerror or err}")
    served: Served = seen["served"]
    problems = _expiry_problems(served, min_days)
    if not auth:
        problems.append("EHLO does not offer AUTH")
    if credential and auth and not proven:
        problems.append("the test credential was not sent: nothing proves the certificate (no expected SHA-256, "
                        "no caBundle and tlsName)")
    problems += _relay_problems(anonymous, authenticated, credential)
    problem = "; ".join(p for p in problems if p)
    return SeenFromOutside(address, port, not problem, seen["version"], served.subject, served.not_after, auth, problem,
                        served.sha256, served.days_left, anonymous, authenticated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smtps_iredmail.core.verify", description=__doc__.splitlines()[0])
    parser.add_argument("address")
    parser.add_argument("--port", type=int, default=465)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = verify(args.address, args.port)
    if args.json:
        print(shown_json(result.as_dict()))
    elif result.ok:
        print(shown(f"{args.address}:{args.port} {result.tls_version}, {result.cert_subject}, "
                    f"expires {result.cert_not_after}, AUTH {result.auth}"))
    else:
        print(shown(f"{args.address}:{args.port} FAILED: {result.problem}"), file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
