"""The one remote layer: everything that runs a command on a mail host goes through here.

- the deploy key (`deploy_key`): the stack's secret, or the file SMTPS_SSH_KEY_FILE names;
- the connection: `Pool`, one SSH connection per host (through its bastion, if any: `Pool._forward`), and `reach`, a
  port of the host from here (through the bastion too); `SharedPool`, the one pool of a provider process (made from
  the key its providers are configured with: components/provider_process.py holds it);
- `run` (a script's stdout, or `HostFailure` with the host's own words) and `run_confirmed` (commit-confirmed: the
  script arms the host's revert and reloads; a fresh login then confirms, or the host reverts by itself);
- `answers` (smtps/answers.py, a module of its own that imports nothing, so the settings and the firewall choice can
  read answers without importing the connection): the host's answer lines (`key=value`), parsed once; facts, the
  firewall found, the certificate reported, the confirmation token and the rollback's result are all read from them.

paramiko is imported only where a connection is made (`_paramiko`): preview and a no-op up start every provider
process but never open SSH, and paramiko is a fifth of a provider process's start-up.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import profile
from .answers import answers
from .credentials import SSH_KEY_FILE_ENV, in_ci
from .ports import PortOpener
from .shown import shown
from .stacks import PROJECT, SSH_KEY
from .templating import render

if TYPE_CHECKING:
    import paramiko

    # Annotations only: settings reads the firewall choice, which reads its answer lines here.
    from .settings import Connection


def _paramiko() -> Any:
    """paramiko, imported on first use, without `invoke`: paramiko's ssh_config parser imports it for `Match exec`
    alone, which nothing here uses (no ssh_config is read: the connection's settings are the stack's), and it was
    half of paramiko's import, about 0.04 s of CPU in every provider process that connects. Hidden for that one
    import only: a later `import invoke` elsewhere in the process finds it as before. (A second thread meanwhile
    waits for the first's import of paramiko, as any import does.)"""
    hidden = "invoke" not in sys.modules and "paramiko" not in sys.modules
    if hidden:
        sys.modules["invoke"] = None  # type: ignore[assignment]  # None in sys.modules: that import fails
    try:
        import paramiko
    finally:
        if hidden and sys.modules.get("invoke", 0) is None:
            del sys.modules["invoke"]
    return paramiko


class SshError(Exception):
    """A host could not be reached, refused us, or its key is not the pinned one. Names the host."""


class HostFailure(Exception):
    """A script failed on a host: the message is the script's own, which names the host and the reason. `status`
    and `stderr` are what the host answered (status 0: the failure is this side's, e.g. no confirmation)."""

    def __init__(self, message: str, status: int = 0, stderr: str = "") -> None:
        # One line: a provider's exception reaches the front end as its traceback, whose last line must be the
        # exception's own (smtps/events.py reads its type there); the host's words must not add lines after it.
        super().__init__(one_line(message))
        self.status, self.stderr = status, stderr


def one_line(text: str) -> str:
    """Text of several lines as one: each line's white space trimmed, blank ones dropped, joined by a space (as the
    front end shows a failure: smtps/events.py `message_of`)."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


@dataclass(frozen=True)
class Result:
    status: int
    stdout: str
    stderr: str


# --- the SSH connection: paramiko, the host key pinned, one connection per host reused for every command -----------
# The private key arrives as text (a Pulumi secret handed to the provider through `configure`, or the key file) and
# lives only in this process's memory: it is never written to a file, an argument list or a log. paramiko is
# imported where a connection is made, never with this module.
CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 300.0
# A host that stops answering is found within PING_EVERY + PING_TIMEOUT seconds: a request every PING_EVERY seconds
# that the server must answer. It goes end to end (through a bastion too), where TCP keepalives would only watch
# the first hop; a dead host would otherwise hold a run until TCP gave up, many minutes later.
PING_EVERY = 5.0
PING_TIMEOUT = 15.0


def load_private_key(text: str) -> paramiko.PKey:
    """The deploy key from its OpenSSH/PEM text, whatever its type. The error never quotes the key."""
    paramiko = _paramiko()

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
    paramiko = _paramiko()

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

    def _client(self, host: str, conn: Connection) -> paramiko.SSHClient:
        with self._guard:
            lock = self._locks.setdefault(conn, threading.Lock())
        with lock:
            client = self._clients.get(conn)
            transport = client.get_transport() if client else None
            if client and transport and transport.is_active():
                return client
            client = self._connect(host, conn)
            self._clients[conn] = client
            return client

    def _connect(self, host: str, conn: Connection) -> paramiko.SSHClient:
        """A new SSH connection: a new TCP connection (through the bastion, if any) and a new authentication."""
        paramiko = _paramiko()

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
        paramiko = _paramiko()

        bastion = self._client(f"{host}'s bastion {jump.name}", jump)
        try:
            return bastion.get_transport().open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0),
                                                        timeout=CONNECT_TIMEOUT)
        except (paramiko.SSHException, OSError) as err:
            if not bastion.get_transport().is_active():
                self.forget(jump, bastion)
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
            try:
                return self._exec(client, host, conn, script, timeout)
            finally:
                client.close()

    def _exec(self, client: paramiko.SSHClient, host: str, conn: Connection, script: str, timeout: float) -> Result:
        paramiko = _paramiko()

        command = remote_command(script, conn.user)
        try:
            channel = client.get_transport().open_session(timeout=CONNECT_TIMEOUT)
            channel.settimeout(timeout)
            channel.exec_command(command)
            stdout = channel.makefile("rb").read().decode(errors="replace")
            stderr = channel.makefile_stderr("rb").read().decode(errors="replace")
            status = channel.recv_exit_status()
        except (paramiko.SSHException, OSError, AttributeError) as err:  # OSError: timeouts; None: no transport
            self.forget(conn, client)
            raise SshError(f"{host} ({conn.address}): the SSH session failed: {err or type(err).__name__}") from None
        if status == -1:
            self.forget(conn, client)
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

    def forget(self, conn: Connection, broken: paramiko.SSHClient | None = None) -> None:
        """Close the pooled connection to `conn`; where `broken` is given, only if it is still that one. A call
        that found its connection broken names it: another call may have connected again meanwhile, and closing
        that new connection would fail the commands on it, and for a bastion every host reached through it (a
        provider process serves up to 32 hosts at once). A fresh login's own connection is never the pooled one,
        so its failure leaves the pooled one alone."""
        with self._guard:
            lock = self._locks.setdefault(conn, threading.Lock())
        with lock:
            client = self._clients.get(conn)
            if client is None or (broken is not None and client is not broken):
                return
            del self._clients[conn]
        client.close()

    def close(self) -> None:
        for conn in list(self._clients):
            self.forget(conn)


# --- the deploy key --------------------------------------------------------------------------------------------------
def missing_key(stack: str) -> str:
    """What to do when a stack has no deploy key, in this project's words (the same for every command)."""
    if in_ci():
        return (f"stack {stack}: no deploy key: set {SSH_KEY_FILE_ENV} to the private key's file (in CI the key is "
                "never stored in the stack: a pull request's preview could decrypt it)")
    return (f"stack {stack}: no deploy key: store it in the stack with `smtps key -s {stack} --file "
            f"KEYFILE` (a single operator's machine only: CI refuses a stack that holds a secret), or set "
            f"{SSH_KEY_FILE_ENV} to the private key's file")


def key_configured(secret: object) -> bool:
    """Whether a deploy key is at hand without reading it: the stack's secret, or a file named."""
    return secret is not None or bool(os.environ.get(SSH_KEY_FILE_ENV))


def deploy_key(secret: str | None | Callable[[], str | None], stack: str | None = None) -> str:
    """The deploy key's text, SshError where there is none. A secret at hand wins (a provider's, which the engine
    handed it already decrypted); else the file SMTPS_SSH_KEY_FILE names, where it is set (what CI uses: the key
    then never enters Pulumi); else the secret asked for (the front end's: decrypted only when no file is set).
    `stack`: the front end's, which names the stack in its words."""
    if isinstance(secret, str) and secret:
        return secret
    path = os.environ.get(SSH_KEY_FILE_ENV)
    if path:
        try:
            with open(path) as handle:
                return handle.read()
        except OSError as err:
            where = f"stack {stack}: {SSH_KEY_FILE_ENV}={path}" if stack else \
                f"the SSH private key file {SSH_KEY_FILE_ENV}={path}"
            raise SshError(f"{where} cannot be read: {err.strerror}") from None
    key = secret() if callable(secret) else None
    if key:
        return key
    if stack:
        raise SshError(missing_key(stack))
    raise SshError(f"no SSH private key: set {SSH_KEY_FILE_ENV} to a key file, or the stack's secret with `pulumi "
                   f"config set --secret {SSH_KEY}` (config key {PROJECT}:{SSH_KEY})")


class SharedPool:
    """A provider process's one SSH pool, made on first use: the engine runs every resource kind of a host (and its
    check) in one provider process, each with its own provider object, and they must share the host's one connection
    (and its bastion's). The key arrives through each provider's `configure`. The process's own instance is
    components/provider_process.py's, with the rest of what the process keeps between calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secret: str | None = None
        self._pool: Pool | None = None

    def configure(self, secret: str | None) -> None:
        with self._lock:
            if secret and secret != self._secret:
                self._secret, self._pool = secret, None

    def get(self) -> Pool:
        with self._lock:
            if self._pool is None:
                self._pool = Pool(deploy_key(self._secret))
            return self._pool


# --- reaching a host's ports ------------------------------------------------------------------------------------------


def reach(host: str, address: str, jump: Connection | None, through: Callable[[], Pool]) -> PortOpener:
    """How to open one of the host's ports from here: through its bastion where it has one (`opener(port)`, over
    the deploy key's connection to the bastion, from the pool `through()`), else None: directly."""
    if jump is None:
        return None
    return lambda port: through().opener(host, address, port, jump)


# --- running scripts -------------------------------------------------------------------------------------------------
def pass_warnings(host: str, stdout: str) -> None:
    """A host script's warnings (its lines `smtps: HOST: warning: ...`: an earlier change that stood although never
    confirmed, a binding a rollback could not make again) reach the operator. Nothing else would show them: a
    script's stdout is data. The engine shows what a provider writes to its stderr, in the run's output."""
    for line in stdout.splitlines():
        if line.startswith(f"smtps: {host}: warning: "):
            print(shown(line), file=sys.stderr, flush=True)


def run(host: str, connection: Connection, script: str, what: str, through: Pool) -> str:
    """Run a script on the host over its connection in the pool `through`; its stdout, or HostFailure with its own
    words (SshError where the host could not be reached)."""
    result = through.run(host, connection, script)
    pass_warnings(host, result.stdout)
    if result.status != 0:
        stderr = result.stderr.strip()
        raise HostFailure(stderr or f"{host}: {what}: exit status {result.status}", result.status, stderr)
    return result.stdout


# Commit-confirmed firewalld reloads, the controller's half: a script that reloaded firewalld prints
# `smtps-confirm=TOKEN`; the controller then logs in afresh and runs the confirm script with that token. Until then the
# host's watcher is armed to put the previous firewall configuration back by itself.
CONFIRM = "smtps-confirm"
_HEX = re.compile(r"[0-9a-f]{16}")


class ConfirmError(Exception):
    pass


def confirm_token(stdout: str) -> str | None:
    """The token a script asked to be confirmed with, or None. What a host printed is data: only 16 hex digits
    are taken, anything else is an error (it is rendered into the confirm script, quoted all the same)."""
    found = answers(stdout).all(CONFIRM)
    if not found:
        return None
    if len(found) != 1 or not _HEX.fullmatch(found[0]):
        raise ConfirmError(f"the host asked for a confirmation with a malformed token {found[0][:40]!r}")
    return found[0]


def confirm_script(host: str, value: str) -> str:
    """The script the fresh login runs: it disarms the host's revert of the change `value`."""
    if not _HEX.fullmatch(value):
        raise ConfirmError(f"malformed confirmation token {value[:40]!r}")
    return render("confirm.sh.j2", host=host, token=value)


def run_confirmed(host: str, connection: Connection, script: str, what: str, through: Pool) -> str:
    """Run a script that may reload firewalld; where it did (it answers `smtps-confirm=TOKEN`), confirm with a
    fresh login (or fail, and the host reverts by itself). Returns what the script printed."""
    started = time.monotonic()
    stdout = run(host, connection, script, what, through)
    token = confirm_token(stdout)
    if token is not None:
        confirm_fresh(through, host, connection, token, what, started)
    return stdout


def confirm_fresh(through: Pool, host: str, connection: Connection, token: str, what: str,
                  started: float | None = None) -> None:
    """Confirm the host's pending firewalld change `token` over a fresh login (a new TCP connection and
    authentication, never the pooled one, which a firewall keeps alive as established): proof that a new SSH
    connection still gets in. HostFailure where none did in time: the host then reverts by itself."""
    started = time.monotonic() if started is None else started
    seconds = connection.confirm_seconds
    # Try until shortly before the host gives up on us: a login a moment late would find the change reverted.
    deadline = started + seconds - 10
    problem = ""
    while True:
        try:
            result = through.fresh(host, connection, confirm_script(host, token))
        except Exception as err:  # noqa: BLE001 - any failure to log in is what this step exists to catch
            problem = str(err)
        else:
            if result.status == 0:
                return
            problem = (result.stdout + result.stderr).strip() or f"exit status {result.status}"
            if result.status == 3:
                break  # already reverted: nothing left to confirm
            if result.status == 5:  # the host's own revert of it failed: no waiting makes that better
                raise HostFailure(f"{host}: {what}: the firewalld reload was not confirmed in time, and the host's "
                                  f"revert of it failed ({problem}); the next run there stops, saying how to settle "
                                  "it, until someone has")
        if time.monotonic() + 2 >= deadline:
            break
        time.sleep(2)
    # The host reverts by itself: wait for it, then see whether SSH answers again, so the message says so.
    time.sleep(max(0.0, started + seconds + 5 - time.monotonic()))
    try:
        through.fresh(host, connection, "true", timeout=30)
        after = "it has put back its previous firewall configuration, and SSH answers again"
    except Exception as err:  # noqa: BLE001
        after = f"it should have put back its previous firewall configuration, but SSH still fails ({err})"
    raise HostFailure(f"{host}: {what}: no fresh SSH login after the firewalld reload ({problem}); {after}")
