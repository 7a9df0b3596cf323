"""pyinfra, the bar of the benchmark: the same steps (bench/pyinfra/deploy.py) on the same lab hosts, timed by
`make bench` beside `smtps`. pyinfra lives in a virtualenv of its own (PYINFRA_VENV), since it pins a
paramiko older than this project's; `make bench` makes it (requirements-bench.txt)."""

from __future__ import annotations

import os
from pathlib import Path

from bench.fleet import Fleet
from smtps_iredmail.core.firewalld_service import service_xml
from smtps_iredmail.core.hosts import parse_host

DEPLOY = Path(__file__).resolve().parent / "pyinfra" / "deploy.py"
PYINFRA_VENV = Path(os.environ.get("PYINFRA_VENV", Path.home() / ".cache" / "smtps-iredmail" / "pyinfra"))
# Each step, as pyinfra runs it: a converge and a no-op are the same command; --dry is its preview.
STEPS = {"converge": (), "no-op": (), "preview": ("--dry",)}
UNDO = {
    "firewalld": "postconf -MX 465/inet; postfix reload >/dev/null 2>&1; "
                 "firewall-cmd --permanent --zone=iredmail --remove-service=smtps >/dev/null 2>&1; "
                 "rm -f /etc/firewalld/services/smtps.xml; firewall-cmd --reload >/dev/null",
    "nftables": "h=$(nft -a list chain inet filter input | sed -n 's/.*465 accept.*# handle //p'); "
                "[ -z \"$h\" ] || nft delete rule inet filter input handle \"$h\"; "
                "sed -i '/tcp dport 465 accept/d' /etc/nftables.conf; postconf -MX 465/inet; "
                "postfix reload >/dev/null 2>&1",
}


def binary() -> Path | None:
    found = PYINFRA_VENV / "bin" / "pyinfra"
    return found if found.exists() else None


def write_inventory(fleet: Fleet, names: list[str], firewall: str, folder: Path) -> Path:
    """A pyinfra inventory of the lab hosts: the deploy key, the pinned host keys, and each host's data from this
    project's own settings (the same entry and service file `smtps up` writes)."""
    hosts = fleet.inventory
    entries = []
    for name in names:
        settings = parse_host("bench", {}, {"name": name, "address": hosts[name]["address"],
                                            "hostKey": hosts[name]["host_key"]})
        entries.append((hosts[name]["address"], {
            "ssh_user": "root", "ssh_key": fleet.private_key_path,
            "ssh_known_hosts_file": fleet.known_hosts_path(name), "ssh_strict_host_key_checking": "yes",
            "smtps_entry": settings.master.entry, "smtps_service_xml": service_xml(settings.service),
            "smtps_firewall": firewall}))
    path = folder / "inventory.py"
    path.write_text(f"hosts = {entries!r}\n")
    return path


def command(inventory: Path, size: int, step: str) -> list[str]:
    pyinfra = binary()
    assert pyinfra is not None
    return [str(pyinfra), "-y", "--parallel", str(size), *STEPS[step], str(inventory), str(DEPLOY)]


def undo(fleet: Fleet, names: list[str], firewall: str) -> None:
    """Take the deploy's changes off every host again (not timed), so the next converge starts from scratch."""
    fleet.each(names, UNDO[firewall])
