"""SSH to mail hosts with paramiko: the host key pinned, one connection per host reused for every command.

The private key arrives as text (a Pulumi secret handed to the provider through `configure`) and lives only in this
process's memory: it is never written to a file, an argument list or a log.
"""

from __future__ import annotations

import base64
import io
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paramiko

from . import profile
from .settings import Connection

CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 300.0
# A host that stops answering is found within PING_EVERY + PING_TIMEOUT seconds: a request every PING_EVERY seconds
# that the server must answer. It goes end to end (through a bastion too), where TCP keepalives would only watch
# the first hop; a dead host would otherwise hold a run until TCP gave up, many minutes later.
PING_EVERY = 5.0
PING_TIMEOUT = 15.0


class SshError(Exception):
    """A host could not be reached, refused us, or its key is not the pinned one. Names the host."""


@dataclass(frozen=True)
class Result:
    status: int
    stdout: str
    stderr: str


def load_private_key(text: str) -> paramiko.PKey:
    """The deploy key from its OpenSSH/PEM text, whatever its type. The error never quotes the key."""
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise SshError("the SSH private key (config sshPrivateKey) is not an unencrypted OpenSSH or PEM private key")


# Every script runs as root from `/`, with an environment of its own: nothing of the login's is passed on but the
# SSH client's address (the lockout guard finds this session's zone by it). The login's folder (a deploy user's
# home, kept by sudo) would otherwise be the current folder of every program the script starts, and its variables
# reach them all: PYTHONPATH, PYTHONHOME or a user site in HOME for the host's Python, MAIL_CONFIG for postconf,
# OPENSSL_CONF for openssl, LD_* and locale paths for everything. HOME=/ points every program that looks for
# dotfiles at a folder only root writes.
REMOTE_ENV = "HOME=/ PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def remote_command(script: str, user: str) -> str:
    """The command line that runs `script` on the host: from `/`, in a clean environment, through `sudo -n` for a
    user other than root. The `cd` happens in the login shell, before sudo, which keeps the caller's folder."""
    clean = f'/usr/bin/env -i {REMOTE_ENV} SSH_CONNECTION="$SSH_CONNECTION" /bin/sh -c {shlex.quote(script)}'
    return f"cd / && exec {clean}" if user == "root" else f"cd / && exec sudo -n -- {clean}"


def _where(host: str, conn: Connection) -> str:
    via = f" via bastion {conn.jump.name}" if conn.jump else ""
    return f"{host} ({conn.user}@{conn.address}:{conn.port}{via})"


def _pinned(conn: Connection) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    kind, blob = conn.host_key.split()[:2]
    key = paramiko.PKey.from_type_string(kind, base64.b64decode(blob))
    # paramiko looks a host up as "addr" on port 22 and "[addr]:port" elsewhere.
    name = conn.address if conn.port == 22 else f"[{conn.address}]:{conn.port}"
    keys.add(name, kind, key)
    return keys


class Pool:
    """One SSH connection per host, opened on first use and reused by every later command (paramiko runs several
    sessions over one transport, from several threads)."""

    def __init__(self, private_key: str) -> None:
        self._key = load_private_key(private_key)
        self._clients: dict[Connection, paramiko.SSHClient] = {}
        self._locks: dict[Connection, threading.Lock] = {}
        self._guard = threading.Lock()
        self.connections = 0
        self.sessions = 0
        self.fresh_logins = 0

    def _client(self, host: str, conn: Connection) -> paramiko.SSHClient:
        with self._guard:
            lock = self._locks.setdefault(conn, threading.Lock())
        with lock:
            client = self._clients.get(conn)
            transport = client.get_transport() if client else None
            if client and transport and transport.is_active():
                return client
            client = self._connect(host, conn)
            self.connections += 1
            self._clients[conn] = client
            return client

    def _connect(self, host: str, conn: Connection) -> paramiko.SSHClient:
        """A new SSH connection: a new TCP connection (through the bastion, if any) and a new authentication."""
        client = paramiko.SSHClient()
        for name, entry in _pinned(conn).items():
            for kind, key in entry.items():
                client.get_host_keys().add(name, kind, key)
        # A host that is not pinned, or whose key differs, is refused before any command runs on it.
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        where = _where(host, conn)
        # Behind a bastion: a direct-tcpip channel from the bastion (one connection, shared by every host
        # behind it) carries this host's own SSH connection, end to end: the bastion sees only ciphertext, and
        # this host's key is checked here exactly as for a direct connection.
        sock = self._forward(host, conn.jump, conn.address, conn.port) if conn.jump else None
        try:
            client.connect(conn.address, port=conn.port, username=conn.user, pkey=self._key, sock=sock,
                           timeout=CONNECT_TIMEOUT, banner_timeout=CONNECT_TIMEOUT, auth_timeout=CONNECT_TIMEOUT,
                           channel_timeout=CONNECT_TIMEOUT, allow_agent=False, look_for_keys=False)
        except paramiko.BadHostKeyException as err:
            raise SshError(f"{where}: host key {err.key.get_name()} {err.key.fingerprint} is not the pinned "
                           f"hostKey {err.expected_key.fingerprint}: refused, nothing was run") from None
        except paramiko.AuthenticationException:
            raise SshError(f"{where}: the deploy key was refused (is it in {conn.user}'s "
                           "authorized_keys?)") from None
        except paramiko.SSHException as err:
            raise SshError(f"{where}: {err}") from None
        except OSError as err:
            raise SshError(f"{where}: cannot connect: {err.strerror or err}") from None
        threading.Thread(target=self._watch, args=(client.get_transport(),), daemon=True).start()
        return client

    @staticmethod
    def _watch(transport: paramiko.Transport) -> None:
        """Close the connection when the server stops answering: every command on it then fails at once."""
        def ping(answered: threading.Event) -> None:
            # OpenSSH answers any global request that wants a reply (here: "unsupported"): an answer is life.
            transport.global_request("keepalive@openssh.com", wait=True)
            answered.set()

        while transport.is_active():
            time.sleep(PING_EVERY)
            answered = threading.Event()
            threading.Thread(target=ping, args=(answered,), daemon=True).start()
            if not answered.wait(PING_TIMEOUT) and transport.is_active():
                transport.close()
                return

    def _forward(self, host: str, jump: Connection, address: str, port: int) -> paramiko.Channel:
        """A TCP channel from the bastion `jump` to address:port."""
        bastion = self._client(f"{host}'s bastion {jump.name}", jump)
        try:
            return bastion.get_transport().open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0),
                                                        timeout=CONNECT_TIMEOUT)
        except (paramiko.SSHException, OSError) as err:
            if not bastion.get_transport().is_active():
                self.forget(jump)
            reason = err.text if isinstance(err, paramiko.ChannelException) else str(err)
            raise SshError(f"{host}: the bastion {jump.name} ({jump.user}@{jump.address}:{jump.port}) could not "
                           f"open a connection to {address}:{port}: {reason}") from None

    def open_socket(self, host: str, address: str, port: int, jump: Connection | None) -> socket.socket:
        """A socket to address:port as a client on the network sees it: through the bastion `jump` when there is
        one (a local socket pair, pumped to and from the bastion's channel, so that `ssl` can wrap it)."""
        if jump is None:
            return socket.create_connection((address, port), timeout=CONNECT_TIMEOUT)
        channel = self._forward(host, jump, address, port)
        ours, theirs = socket.socketpair()

        def pump(receive: Callable[[int], bytes], send: Callable[[bytes], Any], done: Callable[[], Any]) -> None:
            try:
                while data := receive(65536):
                    send(data)
            except OSError:
                pass
            finally:
                done()

        def close_both() -> None:
            channel.close()
            theirs.close()

        threading.Thread(target=pump, args=(channel.recv, theirs.sendall, close_both), daemon=True).start()
        threading.Thread(target=pump, args=(theirs.recv, channel.sendall, close_both), daemon=True).start()
        return ours

    def opener(self, host: str, address: str, port: int, jump: Connection | None) -> Callable[[], socket.socket]:
        """`open_socket` for `smtps.verify`: what it cannot reach is an OSError there, a failed check."""

        def open_it() -> socket.socket:
            try:
                return self.open_socket(host, address, port, jump)
            except SshError as err:
                raise OSError(str(err)) from None

        return open_it

    def run(self, host: str, conn: Connection, script: str, timeout: float = COMMAND_TIMEOUT) -> Result:
        """Run a shell script on the host, as root, over the host's one pooled connection. The whole script travels
        as one command string, so a dropped connection can never leave the host running half of it (as it could if
        the script were fed on stdin).

        A user other than root runs it through `sudo -n` (never a password prompt: the run fails instead)."""
        with profile.span(f"ssh: {profile.script_label(script, host)}", host):
            return self._exec(self._client(host, conn), host, conn, script, timeout)

    def fresh(self, host: str, conn: Connection, script: str, timeout: float = 60.0) -> Result:
        """Run a script over a connection of its own, made for it and closed after it: a new TCP connection and a
        new authentication, never the pooled one (which a firewall keeps alive as established)."""
        with profile.span(f"fresh login: {profile.script_label(script, host)}", host):
            client = self._connect(host, conn)
            self.fresh_logins += 1
            try:
                return self._exec(client, host, conn, script, timeout)
            finally:
                client.close()

    def _exec(self, client: paramiko.SSHClient, host: str, conn: Connection, script: str, timeout: float) -> Result:
        command = remote_command(script, conn.user)
        try:
            channel = client.get_transport().open_session(timeout=CONNECT_TIMEOUT)
            self.sessions += 1
            channel.settimeout(timeout)
            channel.exec_command(command)
            stdout = channel.makefile("rb").read().decode(errors="replace")
            stderr = channel.makefile_stderr("rb").read().decode(errors="replace")
            status = channel.recv_exit_status()
        except (paramiko.SSHException, OSError, AttributeError) as err:  # OSError: timeouts; None: no transport
            self.forget(conn)
            raise SshError(f"{host} ({conn.address}): the SSH session failed: {err or type(err).__name__}") from None
        if status == -1:
            self.forget(conn)
            raise SshError(f"{host} ({conn.address}): the connection was lost before the command finished (the host "
                           f"stopped answering, or the connection dropped)")
        # sudo's own refusal (no rule, a password required, no sudo at all), before anything of the script ran.
        first = stderr.strip().split("\n")[0]
        if conn.user != "root" and status in (1, 127) and not stdout and "sudo: " in first:
            raise SshError(f"{_where(host, conn)}: {conn.user} cannot become root with `sudo -n` "
                           f"({first.split('sudo: ', 1)[1]}). Root is needed to edit master.cf and "
                           f"firewalld's files and reload both: give {conn.user} passwordless sudo (NOPASSWD), or "
                           "connect as root")
        return Result(status, stdout, stderr)

    def forget(self, conn: Connection) -> None:
        client = self._clients.pop(conn, None)
        if client:
            client.close()

    def close(self) -> None:
        for conn in list(self._clients):
            self.forget(conn)
