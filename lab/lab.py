"""The lab as a whole: bring hosts up in parallel, report on them, take everything down."""

from __future__ import annotations

import fcntl
import json
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from . import host as hostops
from . import probe
from .render import HostPaths
from .spec import DEFAULT_NAME, DEFAULT_SUBNET, MAIL_DOMAIN, HostSpec, LabSpec, build_spec

INVENTORY_VERSION = 1
REPO = Path(__file__).resolve().parent.parent
# Booting runs firewalld (Python) and ssh-keygen/openssl per host; more than a few at once only queue on 2 cores.
PARALLEL_BOOTS = 4
# In the state dir: held while the lab-wide files or the inventory change (hosts made one by one may be made at once).
LOCK = ".lock"


@dataclass(frozen=True)
class HostTiming:
    name: str
    seconds: float


def _deploy_key(spec: LabSpec) -> str:
    """The lab's one deploy key (ed25519, no passphrase), made once and kept until `down`."""
    if not spec.deploy_key.exists():
        spec.state_dir.mkdir(parents=True, exist_ok=True)
        hostops.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "smtps-lab-deploy",
                     "-f", str(spec.deploy_key)], secret=True)
    return spec.deploy_key.with_suffix(".pub").read_text()


def _sasl_password(spec: LabSpec) -> str:
    path = spec.state_dir / "sasl_password"
    if not path.exists():
        hostops.write_secret(path, secrets.token_urlsafe(18))
    return hostops.read_secret(path)


@contextmanager
def locked(spec: LabSpec) -> Iterator[None]:
    """The lab's state dir to this caller alone, against other threads and processes (an flock: each holder opens
    the file anew, so two threads of one process exclude each other too)."""
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    with open(spec.state_dir / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def prerequisites(spec: LabSpec) -> tuple[str, str]:
    """What every host of the lab shares, made by the first caller and read by the others: the subnet's guard, the
    deploy key and the SASL password. Returns (the deploy key's public half, the SASL password)."""
    with locked(spec):
        hostops.guard_subnet(str(spec.subnet))
        return _deploy_key(spec), _sasl_password(spec)


def read_inventory(state_dir: Path) -> dict | None:
    try:
        return json.loads(hostops.read_secret(state_dir / "inventory.json"))
    except FileNotFoundError:
        return None


def spec_from_inventory(state_dir: Path) -> LabSpec | None:
    inventory = read_inventory(state_dir)
    if inventory is None:
        return None
    names = {h["name"] for h in inventory["hosts"]}
    if not names:
        return None
    variants = ",".join(f"{h['name']}={h['variant']}" for h in inventory["hosts"])
    behind = ",".join(f"{h['name']}={h['jump']}" for h in inventory["hosts"] if h.get("jump"))
    # Hosts made one by one (lab/pulumi_host.py) may leave gaps in the numbering: mail1 and mail3, no mail2.
    count = max(int(name.removeprefix("mail")) for name in names)
    spec = build_spec(state_dir, count, variants, inventory["lab"], inventory["subnet"], behind)
    return replace(spec, hosts=tuple(h for h in spec.hosts if h.name in names))


def _host_running(spec: LabSpec, host: HostSpec) -> bool:
    paths = HostPaths(spec.host_dir(host))
    return paths.ready.exists() and hostops.anchor_pid(host, paths) is not None


def up(spec: LabSpec, log=print) -> list[HostTiming]:
    """Converge the lab to `spec`: keep hosts that run as asked, (re)create the others, remove extra ones."""
    previous = spec_from_inventory(spec.state_dir)
    wanted = {h.name: h for h in spec.hosts}
    if previous:
        for old in previous.hosts:
            if old.name not in wanted or wanted[old.name] != old:
                log(f"{old.name}: removing ({'not wanted' if old.name not in wanted else 'changed'})")
                remove_host(spec, old)
        if previous.subnet != spec.subnet:
            hostops.unguard_subnet(str(previous.subnet))
    pubkey, password = prerequisites(spec)
    todo = [h for h in spec.hosts if not _host_running(spec, h)]
    # A host behind a bastion that is made anew lost its veth with the bastion's old namespace: make it anew too.
    remade = {h.index for h in todo}
    todo += [h for h in spec.hosts if h.bastion in remade and h.index not in remade]
    for h in spec.hosts:
        if h not in todo:
            log(f"{h.name}: already running")

    by_index = {h.index: h for h in spec.hosts}

    def create(h: HostSpec) -> HostTiming:
        return create_host(spec, h, pubkey, password, by_index[h.bastion] if h.bastion else None, log)

    timings: list[HostTiming] = []
    # Two waves: a host behind a bastion puts its veth into the bastion's namespace, which must exist first.
    for wave in ([h for h in todo if not h.bastion], [h for h in todo if h.bastion]):
        if not wave:
            continue
        with ThreadPoolExecutor(max_workers=min(PARALLEL_BOOTS, len(wave))) as pool:
            futures = [pool.submit(create, h) for h in wave]
            errors = []
            for future in futures:
                try:
                    timings.append(future.result())
                except Exception as err:  # noqa: BLE001 - collect every host's failure, then report them together
                    errors.append(err)
        if errors:
            raise hostops.LabError("; ".join(str(e) for e in errors))
    write_inventory(spec, password)
    return timings


def create_host(spec: LabSpec, h: HostSpec, pubkey: str, password: str, bastion: HostSpec | None = None,
                log: Callable[[str], object] = print) -> HostTiming:
    """Make one host of the lab and wait until it answers; nothing of the other hosts is touched. `pubkey` and
    `password` are the lab's (`prerequisites`); `bastion` is the host it hides behind, which must be up."""
    started = time.monotonic()
    remove_host(spec, h)  # whatever a crashed attempt left of this host
    paths = hostops.prepare(spec, h, pubkey, password)
    hostops.create_network(h, bastion.netns if bastion else None)
    hostops.boot(h, paths)
    timing = HostTiming(h.name, time.monotonic() - started)
    via = f", only through {bastion.name}" if bastion else ""
    log(f"{h.name}: up at {h.address} ({h.variant.value}{via}) in {timing.seconds:.1f} s")
    return timing


def remove_host(spec: LabSpec, h: HostSpec) -> None:
    # By the host's own lab name: a host of an earlier lab in the same state dir may carry another one.
    if h.netns in hostops.lab_namespaces(h.lab_name):
        hostops.stop_namespace(h.netns)
    for link in (h.veth_outer, h.veth_inner_tmp):
        if link in hostops.lab_links(h.lab_name):
            hostops.run(["ip", "link", "del", link], check=False)
    shutil.rmtree(spec.host_dir(h), ignore_errors=True)


def write_inventory(spec: LabSpec, sasl_password: str) -> None:
    """What a stack needs to reach the hosts: addresses, SSH user and port, key path, host keys to pin."""
    hosts = []
    known_hosts = []
    for h in spec.hosts:
        entry = host_entry(spec, h)
        known_hosts.append(f"{h.address} {entry['host_key']}")
        hosts.append(entry)
    spec.known_hosts.write_text("\n".join(known_hosts) + "\n")
    inventory = {
        "version": INVENTORY_VERSION,
        "lab": spec.name,
        "subnet": str(spec.subnet),
        "private_key_path": str(spec.deploy_key),
        "known_hosts_path": str(spec.known_hosts),
        # A mailbox on every host, for tests that submit mail with AUTH. Lab-only; the file stays out of git.
        "sasl": {"username": f"{hostops.SASL_USER}@{MAIL_DOMAIN}", "password": sasl_password},
        "mail_domain": MAIL_DOMAIN,
        "hosts": hosts,
    }
    tmp = spec.inventory_path.with_suffix(".tmp")
    # It holds the SASL password: 0600 from its creation, then renamed into place whole.
    hostops.write_secret(tmp, json.dumps(inventory, indent=2) + "\n")
    tmp.replace(spec.inventory_path)


def host_entry(spec: LabSpec, h: HostSpec) -> dict:
    """One host's part of the inventory: how to reach it (its host key to pin), its accounts, certificate, firewall."""
    host_key = " ".join(HostPaths(spec.host_dir(h)).host_key.with_suffix(".pub").read_text().split()[:2])
    return {
        "name": h.name, "fqdn": h.fqdn, "address": h.address, "port": 22, "user": "root",
        "variant": h.variant.value, "netns": h.netns, "host_key": host_key,
        # The host this one is reached through (no route from the machine), or null.
        "jump": f"mail{h.bastion}" if h.bastion else None,
        # Non-root accounts: `sudo_user` has passwordless sudo, `plain_user` has none (for its refusal).
        "sudo_user": hostops.SUDO_USER, "plain_user": hostops.PLAIN_USER,
        "tls_cert": "/etc/" + h.variant.tls_cert, "tls_key": "/etc/" + h.variant.tls_key,
        "firewall": h.variant.firewall,
    }


def record_host(spec: LabSpec, h: HostSpec, present: bool = True) -> None:
    """Add one host to the inventory (or, `present` false, take it out), keeping the others: for hosts made and
    removed one by one, several at once (lab/pulumi_host.py). An inventory left with no host is removed."""
    with locked(spec):
        previous = spec_from_inventory(spec.state_dir)
        hosts = {old.index: old for old in previous.hosts} if previous else {}
        hosts.pop(h.index, None)
        if present:
            hosts[h.index] = h
        if hosts:
            write_inventory(replace(spec, hosts=tuple(sorted(hosts.values(), key=lambda x: x.index))),
                            _sasl_password(spec))
        else:
            spec.inventory_path.unlink(missing_ok=True)
            spec.known_hosts.unlink(missing_ok=True)


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    variant: str
    running: bool
    sshd: bool
    firewalld: bool
    postfix: bool
    smtps: probe.SmtpsProbe

    def as_dict(self) -> dict:
        return {"name": self.name, "address": self.address, "variant": self.variant, "running": self.running,
                "sshd": self.sshd, "firewalld": self.firewalld, "postfix": self.postfix,
                "smtps": self.smtps.as_dict()}


def _probe_through(spec: LabSpec, bastion: HostSpec, address: str) -> tuple[bool, probe.SmtpsProbe]:
    """SSH and 465 of a host behind `bastion`, probed from the bastion's network (the machine has no route there).
    Only its network namespace is entered: the probe is this project's code, which may live under /tmp or /root,
    folders every host covers with its own."""
    result = hostops.run(["ip", "netns", "exec", bastion.netns, "env", f"PYTHONPATH={REPO}", sys.executable,
                          "-m", "lab.probe", address], check=False)
    try:
        seen = json.loads(result.stdout)
    except ValueError:
        return False, probe.SmtpsProbe("error", detail=result.stderr.decode(errors="replace").strip())
    return seen["ssh"]["banner"].startswith("SSH-"), probe.SmtpsProbe(**seen["smtps"])


def status(spec: LabSpec) -> list[HostStatus]:
    by_index = {h.index: h for h in spec.hosts}

    def one(h: HostSpec) -> HostStatus:
        paths = HostPaths(spec.host_dir(h))
        running = hostops.anchor_pid(h, paths) is not None
        firewalld = postfix = sshd = False
        smtps = probe.SmtpsProbe("down")
        if running:
            # The host's firewall: firewalld running, or (Debian/Ubuntu) iRedMail's nftables table loaded.
            firewall = ["nft", "list", "table", "inet", "filter"] if h.variant.firewall == "nftables" \
                else ["firewall-cmd", "--state"]
            firewalld = hostops.execute(h, paths, firewall, check=False).returncode == 0
            postfix = hostops.execute(h, paths, ["postfix", "status"], check=False).returncode == 0
            if h.bastion:
                sshd, smtps = _probe_through(spec, by_index[h.bastion], h.address)
            else:
                sshd = probe.tcp(h.address, 22).banner.startswith("SSH-")
                smtps = probe.smtps(h.address)
        return HostStatus(h.name, h.address, h.variant.value, running, sshd, firewalld, postfix, smtps)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, spec.hosts))


@dataclass(frozen=True)
class DownReport:
    namespaces: list[str]
    processes: int
    links: list[str]


def down(state_dir: Path, lab_name: str = DEFAULT_NAME, subnet: str = str(DEFAULT_SUBNET)) -> DownReport:
    """Remove everything of the lab, found by name; harmless when nothing is there."""
    namespaces: list[str] = []
    links: list[str] = []
    stopped = 0
    # Swept until a sweep finds nothing: an `up` that died may have left an `ip netns add` or `ip link add` running
    # that finishes after the first sweep looked.
    failed: dict[str, str] = {}
    for _ in range(5):
        found = [netns for netns in hostops.lab_namespaces(lab_name) if netns not in failed]
        for netns in found:
            try:
                stopped += len(hostops.stop_namespace(netns))
            except hostops.LabError as err:
                failed[netns] = str(err)
        removed = hostops.remove_links(lab_name)
        if not found and not removed:
            break
        namespaces += found
        links += removed
    if failed:
        # The other hosts and every link are gone; the subnet's guard and the state stay while a host still has
        # processes (the guard keeps probes of its addresses on this machine), for the `down` that finishes it.
        raise hostops.LabError(f"{'; '.join(failed.values())}: stop them, then run down again")
    hostops.unguard_subnet(subnet)
    for item in ("hosts", "inventory.json", "inventory.tmp", "known_hosts", "deploy_key", "deploy_key.pub",
                 "sasl_password", LOCK):
        path = state_dir / item
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    if state_dir.exists() and not any(state_dir.iterdir()):
        state_dir.rmdir()
    return DownReport(namespaces, stopped, links)


def host_by_name(spec: LabSpec, name: str) -> HostSpec:
    for h in spec.hosts:
        if name in (h.name, h.fqdn):
            return h
    raise hostops.LabError(f"no lab host named {name!r} (hosts: {', '.join(h.name for h in spec.hosts)})")

