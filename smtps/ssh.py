"""SSH to mail hosts with paramiko: the host key pinned, one connection per host reused for every command.

The private key arrives as text (a Pulumi secret handed to the provider through `configure`) and lives only in this
process's memory: it is never written to a file, an argument list or a log.
"""

from __future__ import annotations

import base64
import io
import shlex
import threading
from dataclasses import dataclass

import paramiko

from .settings import Connection

CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 300.0


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

    def _client(self, host: str, conn: Connection) -> paramiko.SSHClient:
        with self._guard:
            lock = self._locks.setdefault(conn, threading.Lock())
        with lock:
            client = self._clients.get(conn)
            transport = client.get_transport() if client else None
            if client and transport and transport.is_active():
                return client
            client = paramiko.SSHClient()
            for name, entry in _pinned(conn).items():
                for kind, key in entry.items():
                    client.get_host_keys().add(name, kind, key)
            # A host that is not pinned, or whose key differs, is refused before any command runs on it.
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            where = f"{host} ({conn.user}@{conn.address}:{conn.port})"
            try:
                client.connect(conn.address, port=conn.port, username=conn.user, pkey=self._key,
                               timeout=CONNECT_TIMEOUT, banner_timeout=CONNECT_TIMEOUT, auth_timeout=CONNECT_TIMEOUT,
                               allow_agent=False, look_for_keys=False)
            except paramiko.BadHostKeyException as err:
                raise SshError(f"{where}: host key {err.key.get_name()} {err.key.fingerprint} is not the pinned "
                               f"hostKey {err.expected_key.fingerprint}: refused, nothing was run") from None
            except paramiko.AuthenticationException:
                raise SshError(f"{where}: the deploy key was refused (is it in root's authorized_keys?)") from None
            except paramiko.SSHException as err:
                raise SshError(f"{where}: {err}") from None
            except OSError as err:
                raise SshError(f"{where}: cannot connect: {err.strerror or err}") from None
            self.connections += 1
            self._clients[conn] = client
            return client

    def run(self, host: str, conn: Connection, script: str, timeout: float = COMMAND_TIMEOUT) -> Result:
        """Run a shell script on the host. The whole script travels as one command string, so a dropped connection
        can never leave the host running half of it (as it could if the script were fed on stdin)."""
        client = self._client(host, conn)
        command = "exec /bin/sh -c " + shlex.quote(script)
        try:
            channel = client.get_transport().open_session(timeout=CONNECT_TIMEOUT)
            self.sessions += 1
            channel.settimeout(timeout)
            channel.exec_command(command)
            stdout = channel.makefile("rb").read().decode(errors="replace")
            stderr = channel.makefile_stderr("rb").read().decode(errors="replace")
            status = channel.recv_exit_status()
        except (paramiko.SSHException, OSError) as err:  # OSError covers socket timeouts
            self.forget(conn)
            raise SshError(f"{host} ({conn.address}): the SSH session failed: {err}") from None
        if status == -1:
            self.forget(conn)
            raise SshError(f"{host} ({conn.address}): the connection dropped before the command finished")
        return Result(status, stdout, stderr)

    def forget(self, conn: Connection) -> None:
        client = self._clients.pop(conn, None)
        if client:
            client.close()

    def close(self) -> None:
        for conn in list(self._clients):
            self.forget(conn)
