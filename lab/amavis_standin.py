"""A small stand-in for Amavisd inside a lab host.

iRedMail points Postfix's content_filter at Amavisd: 127.0.0.1:10024 for inbound mail, :10026 for mail submitted on
587 or 465. Amavisd scans a message and hands it back to Postfix on 127.0.0.1:10025. With nothing on 10026, mail
submitted on 465 is accepted and then stays in the queue. This stand-in does the plumbing part: it records each
message it is given (one file per message under --spool, envelope first) and re-injects it on --reinject-port.
It answers 451 when the re-injection fails, so Postfix keeps the message queued and retries, as with Amavisd.

Standard library only: it runs inside the lab host with whatever Python started the lab.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import smtplib
import socket
import socketserver
import threading
import time
from pathlib import Path

_ADDRESS = re.compile(rb"^(?:MAIL FROM|RCPT TO):\s*<([^>]*)>", re.IGNORECASE)


class Handler(socketserver.StreamRequestHandler):
    server: StandinServer
    timeout = 300

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        self.reply(f"220 {socket.gethostname()} amavisd stand-in ready")
        sender: bytes | None = None
        recipients: list[bytes] = []
        while True:
            line = self.rfile.readline(4096)
            if not line:
                return
            command = line.rstrip(b"\r\n")
            verb = command[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.reply(f"250 {socket.gethostname()}")
            elif verb == b"MAIL":
                match = _ADDRESS.match(command)
                if not match:
                    self.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
                    continue
                sender, recipients = match.group(1), []
                self.reply("250 2.1.0 Ok")
            elif verb == b"RCPT":
                match = _ADDRESS.match(command)
                if sender is None or not match:
                    self.reply("503 5.5.1 Error: need MAIL FROM:<address> first")
                    continue
                recipients.append(match.group(1))
                self.reply("250 2.1.5 Ok")
            elif verb == b"DATA":
                if sender is None or not recipients:
                    self.reply("503 5.5.1 Error: need RCPT first")
                    continue
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                body = self.read_data()
                self.reply(self.server.deliver(sender, recipients, body))
                sender, recipients = None, []
            elif verb == b"RSET":
                sender, recipients = None, []
                self.reply("250 2.0.0 Ok")
            elif verb == b"NOOP":
                self.reply("250 2.0.0 Ok")
            elif verb == b"QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 Error: command not recognized")

    def read_data(self) -> bytes:
        lines = []
        while True:
            line = self.rfile.readline(1 << 20)
            if not line or line in (b".\r\n", b".\n"):
                break
            # Undo SMTP dot-stuffing.
            lines.append(line[1:] if line.startswith(b"..") else line)
        return b"".join(lines)


class StandinServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int, spool: Path, reinject_port: int) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.port = port
        self.spool = spool
        self.reinject_port = reinject_port
        self._numbers = itertools.count(1)  # the messages this server recorded: each file's name is its own

    def deliver(self, sender: bytes, recipients: list[bytes], body: bytes) -> str:
        name = f"{time.time_ns()}-{os.getpid()}-{next(self._numbers)}-{self.port}.eml"
        envelope = b"X-Standin-Envelope-From: " + sender + b"\r\n"
        envelope += b"".join(b"X-Standin-Envelope-To: " + r + b"\r\n" for r in recipients)
        tmp = self.spool / ("." + name)
        tmp.write_bytes(envelope + body)
        tmp.rename(self.spool / name)
        try:
            with smtplib.SMTP("127.0.0.1", self.reinject_port, timeout=60) as client:
                client.sendmail(sender.decode(), [r.decode() for r in recipients], body)
        except (OSError, smtplib.SMTPException) as err:
            print(f"re-injection to port {self.reinject_port} failed: {err}", flush=True)
            return "451 4.3.0 re-injection failed, try again later"
        print(f"port {self.port}: {sender.decode()} -> {b','.join(recipients).decode()} recorded as {name}", flush=True)
        return f"250 2.0.0 Ok: recorded as {name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spool", type=Path, required=True)
    parser.add_argument("--reinject-port", type=int, required=True)
    parser.add_argument("--listen", type=int, action="append", required=True)
    args = parser.parse_args()
    args.spool.mkdir(parents=True, exist_ok=True)
    servers = [StandinServer(port, args.spool, args.reinject_port) for port in args.listen]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    print(f"listening on 127.0.0.1 ports {args.listen}", flush=True)
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
