"""Creating, entering and removing lab hosts on this machine. Needs root.

A host is a network namespace (its own address, firewall and ports) plus a mount and UTS namespace in which /etc and
/var are overlays with the host's own upper layer, and /run is a fresh tmpfs. Every daemon of the host (D-Bus,
firewalld, sshd, Postfix, the Amavisd stand-in) starts inside it, and so does every SSH session into it: they all see
the host's own files and bus, while the machine's own /etc and /var stay untouched.
"""

from __future__ import annotations

import errno
import grp
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

from smtps_iredmail.core import ownfile

from . import render
from .render import HostPaths
from .spec import HostSpec, LabSpec

STOCK_MASTER_CF = Path("/usr/share/postfix/master.cf.dist")
STOCK_FIREWALLD_CONF = Path("/etc/firewalld/firewalld.conf")
STANDIN = Path(__file__).with_name("amavis_standin.py")
# The stand-in runs inside the host with Debian's Python: the lab's own interpreter may live under /root, which each
# host covers with its own.
HOST_PYTHON = "/usr/bin/python3"
BOOT_TIMEOUT = 120.0
SASL_USER = "testuser"
# Non-root deploy accounts on every host, both logging in with the deploy key: SUDO_USER may run anything as root
# through sudo without a password (what a fleet's deploy user usually has); PLAIN_USER has no sudo at all.
SUDO_USER = "deploy"
PLAIN_USER = "mailops"
USER_IDS = {SUDO_USER: 1990, PLAIN_USER: 1991}
MAILBOXES = ["postmaster", SASL_USER]


class LabError(RuntimeError):
    pass


# The umask of a tool that writes a secret (a private key, the SASL database with its password): its files are
# root's alone from their creation, never readable by others until a chmod.
SECRET_UMASK = 0o077


def run(argv: list[str], *, input: bytes | None = None, check: bool = True,
        secret: bool = False) -> subprocess.CompletedProcess[bytes]:
    """argv, its output captured. `secret`: it writes secrets, and runs with SECRET_UMASK."""
    result = subprocess.run(argv, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                            capture_output=True, umask=SECRET_UMASK if secret else -1)
    if check and result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise LabError(f"{' '.join(argv)}: exit {result.returncode}: {stderr}")
    return result


def write_secret(path: Path, text: str) -> None:
    """A file for root alone, 0600 from its creation (whatever the umask): anything at the path before (a file
    of an earlier run, a link) goes first, so the file is always a new one, never opened through a link."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def read_secret(path: Path) -> str:
    """A secret file's text, read as `write_secret` made it: a regular file of root's (this user's) with one name,
    never through a link. One left readable by others (a state folder from before the files were made 0600, or a
    hand copy) is made 0600 here, on every read, before it is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise LabError(f"{path} is a symbolic link: a secret file of the lab is read only as a file of its "
                           "own") from None
        raise
    with os.fdopen(fd) as file:
        problem = ownfile.claim(fd)
        if problem:
            raise LabError(f"{path} {problem}: a secret file of the lab must be this user's own; remove it (the "
                           "lab makes a new one)")
        return file.read()


def _write(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    path.chmod(mode)


# ---------------------------------------------------------------------------------------------------------------
# Files


def prepare(spec: LabSpec, host: HostSpec, deploy_public_key: str, sasl_password: str) -> HostPaths:
    """Write everything the host needs into its own folder, before any namespace exists."""
    paths = HostPaths(spec.host_dir(host))
    if paths.root.exists():
        shutil.rmtree(paths.root)
    for folder in (paths.etc_upper, paths.etc_work, paths.var_upper, paths.var_work, paths.ssh_dir,
                   paths.log_dir, paths.run_dir):
        folder.mkdir(parents=True)

    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host.fqdn}", "-f", str(paths.host_key)],
        secret=True)
    # Readable by all: sshd reads it as the user logging in (root or a deploy account); a public key is no secret.
    _write(paths.authorized_keys, deploy_public_key, 0o644)
    _write(paths.sshd_config, render.sshd_config(host))
    _write(paths.dbus_conf, render.dbus_conf())

    _add_users(paths)
    _write(paths.in_etc("hostname"), host.fqdn + "\n")
    _write(paths.in_etc("hosts"), render.hosts_file(Path("/etc/hosts").read_text(), host))

    postfix_gid = grp.getgrnam("postfix").gr_gid
    _write(paths.in_etc("postfix/main.cf"), render.main_cf(host))
    _write(paths.in_etc("postfix/master.cf"), render.master_cf(STOCK_MASTER_CF.read_text(), host))
    _write(paths.in_etc("postfix/vmailbox"), render.vmailbox(MAILBOXES))
    _write(paths.in_etc("postfix/sasl/smtpd.conf"), render.sasl_smtpd_conf())
    sasldb = paths.in_etc("postfix/sasl/sasldb2")
    run(["saslpasswd2", "-p", "-c", "-f", str(sasldb), "-u", "example.lab", SASL_USER],
        input=sasl_password.encode(), secret=True)
    os.chown(sasldb, 0, postfix_gid)
    sasldb.chmod(0o640)

    key, cert = paths.in_etc(host.variant.tls_key), paths.in_etc(host.variant.tls_cert)
    key.parent.mkdir(parents=True)
    cert.parent.mkdir(parents=True)
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
         "-subj", f"/CN={host.fqdn}", "-addext", f"subjectAltName=DNS:{host.fqdn},IP:{host.address}",
         "-keyout", str(key), "-out", str(cert)], secret=True)
    key.chmod(0o600)
    cert.chmod(0o644)

    if host.variant.firewall == "nftables":
        _write(paths.in_etc("nftables.conf"), render.nftables_conf(host), 0o755)
    else:
        # A RHEL-family host has no /etc/nftables.conf (its nftables service reads /etc/sysconfig/nftables.conf):
        # the machine's own is hidden from the host's /etc (an overlay whiteout), as firewall: auto must not see it.
        os.mknod(paths.in_etc("nftables.conf"), stat.S_IFCHR, os.makedev(0, 0))
        _write(paths.in_etc("firewalld/firewalld.conf"), render.firewalld_conf(STOCK_FIREWALLD_CONF.read_text()))
        _write(paths.in_etc("firewalld/zones/iredmail.xml"), render.iredmail_zone(host))

    vmail = paths.in_var("vmail")
    vmail.mkdir(parents=True)
    os.chown(vmail, render.VMAIL_UID, render.VMAIL_UID)
    vmail.chmod(0o700)
    paths.in_var("lib/amavis-standin").mkdir(parents=True)
    paths.in_var("log").mkdir(parents=True, exist_ok=True)

    shutil.copyfile(STANDIN, paths.standin)
    _write(paths.boot_script, render.boot_script(host, paths, HOST_PYTHON), 0o755)
    return paths


def _add_users(paths: HostPaths) -> None:
    """The deploy accounts, in the host's own /etc (the machine's files plus their lines). Home is the host's
    private /tmp; the password field `*` (no password, not locked: sshd refuses a locked account even with a key)."""
    passwd, shadow, group = (Path("/etc", name).read_text() for name in ("passwd", "shadow", "group"))
    for user, uid in USER_IDS.items():
        passwd += f"{user}:x:{uid}:{uid}:smtps lab deploy user:/tmp:/bin/sh\n"
        shadow += f"{user}:*:20000:0:99999:7:::\n"
        group += f"{user}:x:{uid}:\n"
    _write(paths.in_etc("passwd"), passwd)
    _write(paths.in_etc("shadow"), shadow, 0o640)
    os.chown(paths.in_etc("shadow"), 0, grp.getgrnam("shadow").gr_gid)
    _write(paths.in_etc("group"), group)
    _write(paths.in_etc("sudoers.d/smtps-deploy"), f"{SUDO_USER} ALL=(root) NOPASSWD: ALL\n", 0o440)


# ---------------------------------------------------------------------------------------------------------------
# Network


def create_network(host: HostSpec, outer_netns: str | None = None) -> None:
    """The host's namespace and its veth. The outer end stays on the machine, or (`outer_netns`) goes into the
    bastion host's namespace: then only the bastion has a route to this host."""
    ns = host.netns
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", host.veth_outer, "type", "veth", "peer", "name", host.veth_inner_tmp])
    run(["ip", "link", "set", host.veth_inner_tmp, "netns", ns])
    run(["ip", "-n", ns, "link", "set", host.veth_inner_tmp, "name", "eth0"])
    outer = ["ip"]
    if outer_netns:
        run(["ip", "link", "set", host.veth_outer, "netns", outer_netns])
        outer = ["ip", "-n", outer_netns]
    run([*outer, "addr", "add", f"{host.outer_address}/30", "dev", host.veth_outer])
    run([*outer, "link", "set", host.veth_outer, "up"])
    run(["ip", "-n", ns, "addr", "add", f"{host.address}/30", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])


def guard_subnet(subnet: str) -> None:
    """Make the lab's whole subnet unreachable from the machine, except through the hosts' own veth routes.

    Without it, a probe of a host that is down (or not made yet) follows the machine's default route and leaves the
    machine. The /30 routes of the veths are more specific, so they still win while a host exists.
    """
    run(["ip", "route", "replace", "unreachable", subnet])


def unguard_subnet(subnet: str) -> None:
    run(["ip", "route", "del", "unreachable", subnet], check=False)


# ---------------------------------------------------------------------------------------------------------------
# Processes


def boot(host: HostSpec, paths: HostPaths) -> int:
    """Start the host's daemons; return the anchor PID once everything answers."""
    with open(paths.boot_log, "wb") as log:
        # ip netns exec, unshare and the boot script all exec in turn, so this PID ends up as the anchor `sleep`.
        process = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, "unshare", "--mount", "--uts", "--", "/bin/sh", str(paths.boot_script)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    paths.anchor_pid.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + BOOT_TIMEOUT
    while not paths.ready.exists():
        if process.poll() is not None:
            raise LabError(f"{host.name}: boot failed (exit {process.returncode}):\n{_tail(paths.boot_log)}")
        if time.monotonic() > deadline:
            raise LabError(f"{host.name}: not ready after {BOOT_TIMEOUT:.0f} s:\n{_tail(paths.boot_log)}")
        time.sleep(0.05)
    return process.pid


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def anchor_pid(host: HostSpec, paths: HostPaths) -> int | None:
    """The anchor's PID if it is alive and still inside the host's network namespace (guards against PID reuse)."""
    try:
        pid = int(paths.anchor_pid.read_text())
        netns = os.stat(f"/run/netns/{host.netns}")
        proc = os.stat(f"/proc/{pid}/ns/net")
    except (OSError, ValueError):
        return None
    return pid if (netns.st_dev, netns.st_ino) == (proc.st_dev, proc.st_ino) else None


def host_command(host: HostSpec, paths: HostPaths, argv: list[str]) -> list[str]:
    """The command line that runs argv inside the host (its network, mount and UTS namespaces)."""
    pid = anchor_pid(host, paths)
    if pid is None:
        raise LabError(f"{host.name} is not running")
    return ["nsenter", "-t", str(pid), "-m", "-u", "-n", "--", *argv]


def execute(host: HostSpec, paths: HostPaths, argv: list[str], *, check: bool = True,
            input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return run(host_command(host, paths, argv), check=check, input=input)


# ---------------------------------------------------------------------------------------------------------------
# Removal: by name, so that it also finds what a crashed `up` left behind.


def lab_namespaces(lab_name: str) -> list[str]:
    pattern = re.compile(rf"^{re.escape(lab_name)}-mail\d+$")
    out = run(["ip", "netns", "list"]).stdout.decode()
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [name for name in names if pattern.match(name)]


def lab_links(lab_name: str) -> list[str]:
    pattern = re.compile(rf"^{re.escape(lab_name)}\d+i?$")
    out = run(["ip", "-o", "link", "show"]).stdout.decode()
    links = []
    for line in out.splitlines():
        # "12: smtpslab1@if11: <...>"
        name = line.split(":", 2)[1].strip().split("@")[0]
        if pattern.match(name):
            links.append(name)
    return links


def namespace_processes(ident: tuple[int, int]) -> tuple[list[int], list[int]]:
    """PIDs of the processes inside the network namespace `ident` (its file's st_dev, st_ino), and of the others
    holding it open. One of the second kind may be on its way in: an `ip netns exec` or `nsenter` that an `up`
    started before it died has opened the namespace and enters it a moment later. `ip netns pids` sees only the
    first kind. This process's own hold (the pin of `stop_namespace`) is not counted."""
    inside, holding = [], []
    me = os.getpid()
    places = _mounted_at(ident)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if _inside(proc, ident):
                inside.append(int(proc.name))
            elif int(proc.name) != me and _holds(proc, ident, places):
                holding.append(int(proc.name))
        except OSError:  # gone meanwhile
            continue
    return inside, holding


class _Watch:
    """The processes of the namespace `ident`, scan after scan. One inside is due a signal at once; one that only
    holds it open is due once it has held it for `patience`. One on its way in enters within a moment (and is then
    inside), while others hold it as briefly and are not the lab's: a look (`ip netns list` opens every namespace,
    another lab's `down` or `up` runs it) or a child of this process between its fork and its exec, which has the
    pin until then (`up` boots hosts in threads, and one's `remove_host` scans while the others start commands)."""

    def __init__(self, ident: tuple[int, int], patience: float = 0.5) -> None:
        self.ident = ident
        self.patience = patience
        self.since: dict[int, float] = {}

    def look(self) -> tuple[list[int], bool]:
        """The processes due a signal, and whether there is anybody at all (inside or holding)."""
        inside, holding = namespace_processes(self.ident)
        now = time.monotonic()
        self.since = {pid: self.since.get(pid, now) for pid in holding}
        due = inside + [pid for pid in holding if now - self.since[pid] >= self.patience]
        return due, bool(inside or holding)


def _inside(proc: Path, ident: tuple[int, int]) -> bool:
    """Whether one of the process's threads is in the namespace. A thread enters a namespace alone (setns, as Go
    programs do), and the process's own /proc/PID/ns is its main thread's, gone once that one exited while the
    others run on."""
    return _same(proc / "ns" / "net", ident) or any(_same(task / "ns" / "net", ident)
                                                    for task in (proc / "task").iterdir())


def _mounted_at(ident: tuple[int, int]) -> set[str]:
    """Where the namespace is mounted: `ip netns`'s place for it, and any bind mount of it elsewhere."""
    root = f"net:[{ident[1]}]"
    places = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, fs = line.partition(" - ")
        fields = fields.split()
        if fs.split()[:1] == ["nsfs"] and fields[3] == root:
            # mountinfo writes a space, tab, newline or backslash of a path as an octal escape.
            places.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4]))
    return places


def _holds(proc: Path, ident: tuple[int, int], places: set[str]) -> bool:
    """Whether one of the process's files is the namespace. A file's link is read first, and only one that can be a
    namespace (opened by name, by `ip netns`'s place for them or at another of its `places`, or whose mount is gone
    since) is looked at: a stat of any other file would ask its filesystem, and one that hangs (a FUSE or NFS mount
    whose server stopped) would hold the scan in a wait nothing can kill."""
    ns_link = f"net:[{ident[1]}]"
    for fd in (proc / "fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if (link == ns_link or link.startswith("/run/netns/") or link == "/" or link in places) and _same(fd, ident):
            return True
    return False


def _same(path: Path, ident: tuple[int, int]) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == ident


def stop_namespace(netns: str, grace: float = 5.0) -> list[int]:
    """Stop every process in the namespace by PID (TERM, then KILL), then delete the namespace. Also those on their
    way in, and again after the delete: a process that opened the namespace just before it is still let in.
    The namespace is held open here until the last look: freed, its inode number goes to the next namespace the
    machine makes (the lowest free one), and the looks after the delete would stop that one's processes (another
    lab's host, a container)."""
    try:
        pin = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    try:
        st = os.fstat(pin)
        ident = (st.st_dev, st.st_ino)
        watch = _Watch(ident)
        pids: set[int] = set()
        deadline = time.monotonic() + grace
        while True:
            due, anybody = watch.look()
            for pid in set(due) - pids:
                _signal(pid, signal.SIGTERM, ident)
            pids.update(due)
            if not anybody or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        _kill_until_quiet(netns, watch, grace)
        run(["ip", "netns", "del", netns], check=False)
        _kill_until_quiet(netns, watch, grace)
    finally:
        os.close(pin)
    return sorted(pids)


def _kill_until_quiet(netns: str, watch: _Watch, grace: float, quiet_scans: int = 3) -> None:
    """KILL in passes until several scans in a row find nobody: a host that was still booting may start a process
    after one pass, and a process on its way in enters a moment after it was seen holding the namespace."""
    deadline = time.monotonic() + grace
    quiet = 0
    while quiet < quiet_scans:
        due, anybody = watch.look()
        if not anybody:
            quiet += 1
        else:
            quiet = 0
            if time.monotonic() > deadline:
                raise LabError(f"{netns}: processes {sorted(watch.since.keys() | set(due))} did not stop")
            for pid in due:
                _signal(pid, signal.SIGKILL, watch.ident)
        time.sleep(0.05)


def _signal(pid: int, sig: signal.Signals, ident: tuple[int, int]) -> None:
    """Signal the process `pid` if it is still in (or holding) the namespace: through a pidfd, so that a PID that
    ended after the scan and was given to another process is not signalled."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        proc = Path(f"/proc/{pid}")
        if _inside(proc, ident) or (pid != os.getpid() and _holds(proc, ident, _mounted_at(ident))):
            signal.pidfd_send_signal(pidfd, sig)
    except (ProcessLookupError, OSError):
        pass  # gone meanwhile
    finally:
        os.close(pidfd)


def remove_links(lab_name: str) -> list[str]:
    removed = []
    for link in lab_links(lab_name):
        # Deleting one end of a veth pair deletes both; the second name may already be gone.
        if run(["ip", "link", "del", link], check=False).returncode == 0:
            removed.append(link)
    return removed
