"""The Amavisd stand-in on loopback: it records what Postfix hands it and re-injects it, or asks for a retry."""

from __future__ import annotations

import smtplib
import threading
from pathlib import Path

import pytest

from lab.amavis_standin import StandinServer


class Capture(StandinServer):
    """Plays Postfix's re-injection listener: keeps what it is given instead of passing it on."""

    def __init__(self, spool: Path) -> None:
        super().__init__(0, spool, reinject_port=0)
        self.received: list[tuple[bytes, list[bytes], bytes]] = []

    def deliver(self, sender, recipients, body):
        self.received.append((sender, recipients, body))
        return "250 2.0.0 Ok: captured"


def _serve(server: StandinServer) -> int:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


@pytest.fixture
def servers(tmp_path):
    capture = Capture(tmp_path / "capture")
    capture_port = _serve(capture)
    standin = StandinServer(0, tmp_path / "spool", reinject_port=capture_port)
    (tmp_path / "spool").mkdir()
    port = _serve(standin)
    yield standin, port, capture, tmp_path / "spool"
    standin.shutdown()
    capture.shutdown()


def test_records_and_reinjects_with_the_same_envelope(servers):
    _, port, capture, spool = servers
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        client.sendmail("a@example.lab", ["b@example.lab", "c@example.lab"], "Subject: t\r\n\r\n.leading dot\r\n")
    sender, recipients, body = capture.received[0]
    assert (sender, recipients) == (b"a@example.lab", [b"b@example.lab", b"c@example.lab"])
    assert body == b"Subject: t\r\n\r\n.leading dot\r\n"  # dot-stuffing undone
    [recorded] = list(spool.glob("*.eml"))
    assert recorded.read_bytes().startswith(b"X-Standin-Envelope-From: a@example.lab\r\n")


def test_answers_451_when_reinjection_fails(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    # Nothing listens on the re-injection port: Postfix must keep the message and retry, as with Amavisd.
    standin = StandinServer(0, spool, reinject_port=1)
    port = _serve(standin)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPDataError) as err:
                client.sendmail("a@example.lab", ["b@example.lab"], "Subject: t\r\n\r\nx\r\n")
        assert err.value.smtp_code == 451
    finally:
        standin.shutdown()


def test_refuses_data_before_recipients(servers):
    _, port, _, _ = servers
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        client.ehlo()
        assert client.docmd("DATA")[0] == 503
        assert client.docmd("RCPT TO:<x@example.lab>")[0] == 503
