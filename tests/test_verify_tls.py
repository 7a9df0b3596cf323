"""The check from outside proves the certificate before it says anything: against a small SMTP server over implicit
TLS on loopback (Python's own TLS, certificates made here with `cryptography`), which records every byte a client sent
after the handshake. The lab shows the same against Postfix (tests/lab/test_certificate.py)."""

from __future__ import annotations

import datetime
import hashlib
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from smtps_iredmail.core import verify as verify_module
from smtps_iredmail.core.verify import Served, verify

CREDENTIAL = ("probe@example.test", "s3cret-Passw0rd")


def make_cert(tmp: Path, name: str, cn: str, days: int = 90, issuer: tuple | None = None,
              ca: bool = False) -> tuple[Path, Path, bytes, tuple]:
    """A certificate for `cn` (self-signed, or signed by `issuer`: (cert, key)): its files, DER and (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer_cert, signer_key = issuer or (None, key)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(signer_cert.subject if signer_cert else subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
    cert = builder.sign(signer_key, hashes.SHA256())
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, cert.public_bytes(serialization.Encoding.DER), (cert, key)


@dataclass
class FakeSmtps:
    """Implicit TLS on a loopback port; answers like Postfix on 465 (AUTH offered, relaying only after login)."""

    cert: Path
    key: Path
    port: int = 0
    received: list[bytes] = field(default_factory=list)  # per connection: every byte after the handshake
    finished: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))  # one per connection ended

    def serve(self, listener: socket.socket) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            got = bytearray()
            self.received.append(b"")
            try:
                with context.wrap_socket(raw, server_side=True) as conn:
                    conn.settimeout(5)
                    self._session(conn, got)
            except (OSError, ssl.SSLError):
                pass
            self.received[-1] = bytes(got)
            self.finished.release()

    @staticmethod
    def _session(conn: ssl.SSLSocket, got: bytearray) -> None:
        conn.sendall(b"220 fake ESMTP\r\n")
        authed, buffer = False, b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return
            got += chunk
            buffer += chunk
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                verb = line.split(b" ", 1)[0].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-fake\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
                elif verb == b"AUTH":
                    authed = True
                    conn.sendall(b"235 2.7.0 Authentication successful\r\n")
                elif verb == b"RCPT":
                    conn.sendall(b"250 2.1.5 Ok\r\n" if authed else b"554 5.7.1 Relay access denied\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                    return
                else:
                    conn.sendall(b"250 2.0.0 Ok\r\n")


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[FakeSmtps, bytes, tuple]]:
    cert, key, der, pair = make_cert(tmp_path, "served", "mail.example.test")
    fake = FakeSmtps(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        fake.port = listener.getsockname()[1]
        thread = threading.Thread(target=fake.serve, args=(listener,), daemon=True)
        thread.start()
        yield fake, der, pair
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in the server's thread
    thread.join(5)


def sent(fake: FakeSmtps, connections: int = 1) -> bytes:
    """Every byte the clients sent after their handshakes, once the server has seen `connections` more end."""
    for _ in range(connections):
        assert fake.finished.acquire(timeout=10), "the server never saw the connection end"
    return b"".join(fake.received)


def test_the_right_certificate_then_ehlo_and_the_credential(server):
    fake, der, _ = server
    seen = verify("127.0.0.1", fake.port, expect_sha256=hashlib.sha256(der).hexdigest().upper(),
                  credential=CREDENTIAL)
    assert seen.ok, seen.problem
    assert seen.cert_sha256 == hashlib.sha256(der).hexdigest() and seen.cert_subject == "CN=mail.example.test"
    assert seen.relay_anonymous.startswith("554") and seen.relay_authenticated.startswith("250")
    assert seen.cert_not_after.endswith("GMT") and 88 <= seen.days_left <= 90
    data = sent(fake).upper()
    assert b"EHLO" in data and b"AUTH PLAIN" in data


def test_another_certificate_closes_the_connection_before_a_byte_of_smtp(server, tmp_path):
    fake, der, _ = server
    _, _, other, _ = make_cert(tmp_path, "other", "mail.example.test")
    expected = hashlib.sha256(other).hexdigest()
    seen = verify("127.0.0.1", fake.port, expect_sha256=expected, credential=CREDENTIAL)
    assert not seen.ok
    served = hashlib.sha256(der).hexdigest()
    assert f"serves a certificate with SHA-256 {served}, not the file's {expected}" in seen.problem
    assert "closed before EHLO" in seen.problem and seen.cert_sha256 == served
    assert not seen.auth and not seen.relay_authenticated
    assert len(fake.received) == 1 and sent(fake) == b""  # no EHLO, no AUTH, not even QUIT


def test_without_a_pin_or_strict_mode_the_credential_is_not_sent(server):
    fake, _, _ = server
    seen = verify("127.0.0.1", fake.port, credential=CREDENTIAL)
    assert not seen.ok and "the test credential was not sent: nothing proves the certificate" in seen.problem
    data = sent(fake).upper()
    assert b"EHLO" in data and b"MAIL FROM" in data and b"AUTH" not in data


def test_strict_mode_verifies_chain_and_name_in_the_handshake(tmp_path):
    ca_file, _, _, ca = make_cert(tmp_path, "ca", "Test CA", ca=True)
    cert, key, der, _ = make_cert(tmp_path, "leaf", "mail.example.test", issuer=ca)
    fake = FakeSmtps(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        fake.port = listener.getsockname()[1]
        threading.Thread(target=fake.serve, args=(listener,), daemon=True).start()
        # No pin: the chain and the name prove it; the credential goes.
        seen = verify("127.0.0.1", fake.port, ca_bundle=str(ca_file), tls_name="mail.example.test",
                      credential=CREDENTIAL)
        assert seen.ok, seen.problem
        assert b"AUTH PLAIN" in sent(fake).upper()
        fake.received.clear()
        wrong = verify("127.0.0.1", fake.port, ca_bundle=str(ca_file), tls_name="mail.other.test",
                       expect_sha256="ab" * 32, credential=CREDENTIAL)
        assert not wrong.ok
        assert "does not verify against" in wrong.problem and "Hostname mismatch" in wrong.problem
        # The refused certificate is still named, read by a second handshake that sends nothing.
        assert f"SHA-256 {hashlib.sha256(der).hexdigest()}, not the file's {'ab' * 32}" in wrong.problem
        assert sent(fake, 2) == b""  # the refused handshake and the one that read the certificate
        listener.shutdown(socket.SHUT_RDWR)


def test_a_certificate_that_cannot_be_read_is_unproven_and_nothing_is_sent(server, monkeypatch):
    fake, der, _ = server

    def unreadable(_der, now=None):
        raise ValueError("error parsing asn1 value")

    monkeypatch.setattr(Served, "of", staticmethod(unreadable))
    seen = verify("127.0.0.1", fake.port, expect_sha256=hashlib.sha256(der).hexdigest(), credential=CREDENTIAL)
    served = hashlib.sha256(der).hexdigest()
    assert not seen.ok and seen.cert_sha256 == served
    assert f"the served certificate (SHA-256 {served}) cannot be read (ValueError: error parsing asn1 value)" in \
        seen.problem
    assert sent(fake) == b""


def test_any_exception_inside_the_check_is_a_failed_check(monkeypatch):
    def broken(*_args, **_kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr(verify_module, "_verify", broken)
    seen = verify("192.0.2.1", 465)
    assert not seen.ok and seen.problem == "the check from outside failed: KeyError: 'surprise'"


def test_a_failed_check_that_raises_still_rolls_the_host_back(monkeypatch):
    """An exception the check did not expect (here from verify itself) goes through the rollback like any failure."""
    from smtps_iredmail import verification
    from smtps_iredmail.core.rollback import Outcome

    def broken(*_args, **_kwargs):
        raise RuntimeError("no way to read that date")

    rolled = []
    monkeypatch.setattr(verification, "verify", broken)
    monkeypatch.setattr(verification.VerificationProvider, "_roll_back",
                        lambda self, props: rolled.append(props["host"]) or Outcome("rolled back: undone", "done"))
    with pytest.raises(verification.RolledBackFailure) as failed:
        verification.VerificationProvider()._verify({"host": "mail1", "address": "192.0.2.1", "port": 465})
    assert rolled == ["mail1"] and failed.value.rollback == "done"
    assert str(failed.value) == ("mail1 (192.0.2.1): verification failed: the check from outside could not finish "
                                 "(RuntimeError: no way to read that date); rolled back: undone")


def test_a_rollback_that_raises_is_said_with_the_failure(monkeypatch):
    from smtps_iredmail import verification

    def broken_rollback(self, props):
        raise ConnectionResetError("the bastion went away")

    monkeypatch.setattr(verification, "verify", lambda *_a, **_k: 1 / 0)
    monkeypatch.setattr(verification.VerificationProvider, "_roll_back", broken_rollback)
    with pytest.raises(verification.VerificationFailed) as failed:
        verification.VerificationProvider()._verify({"host": "mail1", "address": "192.0.2.1", "port": 465})
    assert type(failed.value) is verification.VerificationFailed and failed.value.rollback is None
    assert str(failed.value).endswith("(ZeroDivisionError: division by zero); and rolling back this run's changes "
                                      "failed: ConnectionResetError: the bastion went away")


def test_served_reads_subject_and_expiry_as_openssl_prints_them(tmp_path):
    _, _, der, _ = make_cert(tmp_path, "x", "mail1.lab", days=30)
    served = Served.of(der, now=datetime.datetime.now(datetime.UTC))
    end = x509.load_der_x509_certificate(der).not_valid_after_utc
    assert served.subject == "CN=mail1.lab" and served.days_left in (29, 30)
    assert served.not_after == end.strftime("%b ") + f"{end.day:2d}" + end.strftime(" %H:%M:%S %Y GMT")
    assert ssl.cert_time_to_seconds(served.not_after) == int(end.timestamp())


def test_the_pinned_mode_context_reads_no_ca_store_and_keeps_the_default_context_settings():
    """The context that only reads the certificate (its SHA-256 proves it) loads no CA (the system store cost a third
    of a host's check), and is otherwise the default context verifying nothing."""
    plain = verify_module._plain_context()
    default = ssl.create_default_context()
    default.check_hostname, default.verify_mode = False, ssl.CERT_NONE
    assert plain.cert_store_stats()["x509_ca"] == 0 and plain.verify_mode == ssl.CERT_NONE
    assert plain.minimum_version == ssl.TLSVersion.TLSv1_2 and not plain.check_hostname
    assert plain.options == default.options and plain.get_ciphers() == default.get_ciphers()
    assert plain.verify_flags == default.verify_flags and plain.maximum_version == default.maximum_version
