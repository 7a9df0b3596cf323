"""Pure rendering of a lab host's files: typed values in, text out. Nothing here touches the machine."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from smtps_iredmail.core.templating import renderer

from .spec import DOMAIN, MAIL_DOMAIN, HostSpec

TEMPLATES = Path(__file__).parent / "templates"
VMAIL_UID = 2000

# The same strict renderer as the product's scripts: shell values are quoted by its `q` filter.
_render = renderer(TEMPLATES)


@dataclass(frozen=True)
class HostPaths:
    """Where one host's own files live: on the machine (under the lab's state dir), or as the host sees them."""

    root: Path

    @property
    def etc_upper(self) -> Path:
        return self.root / "etc.upper"

    @property
    def etc_work(self) -> Path:
        return self.root / "etc.work"

    @property
    def var_upper(self) -> Path:
        return self.root / "var.upper"

    @property
    def var_work(self) -> Path:
        return self.root / "var.work"

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def host_key(self) -> Path:
        return self.ssh_dir / "ssh_host_ed25519_key"

    @property
    def authorized_keys(self) -> Path:
        return self.ssh_dir / "authorized_keys"

    @property
    def sshd_config(self) -> Path:
        return self.ssh_dir / "sshd_config"

    @property
    def dbus_conf(self) -> Path:
        return self.root / "dbus-system.conf"

    @property
    def boot_script(self) -> Path:
        return self.root / "boot.sh"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def anchor_pid(self) -> Path:
        return self.run_dir / "anchor.pid"

    @property
    def standin(self) -> Path:
        return self.root / "amavis_standin.py"

    @property
    def ready(self) -> Path:
        return self.run_dir / "ready"

    @property
    def boot_log(self) -> Path:
        return self.log_dir / "boot.log"

    def in_etc(self, path: str) -> Path:
        """The upper-layer file that the host sees at /etc/<path>."""
        return self.etc_upper / path

    def in_var(self, path: str) -> Path:
        return self.var_upper / path


def main_cf(host: HostSpec) -> str:
    return _render("main.cf.j2", host=host, domain=DOMAIN, mail_domain=MAIL_DOMAIN, vmail_uid=VMAIL_UID)


def master_cf(stock: str, host: HostSpec) -> str:
    """The distribution's master.cf with iRedMail's additions appended, as iRedMail's installer does it."""
    if not stock.endswith("\n"):
        stock += "\n"
    return stock + _render("master-iredmail.cf.j2", host=host)


def iredmail_zone(host: HostSpec) -> str:
    return _render("iredmail-zone.xml.j2", host=host)


# iRedMail's own files, verbatim (lab/files/PROVENANCE.md says where each comes from).
FILES = Path(__file__).parent / "files"


def nftables_conf(host: HostSpec) -> str:
    """iRedMail's /etc/nftables.conf for Debian/Ubuntu, byte for byte: before 1.5.0 without 465, from 1.5.0 with."""
    return (FILES / ("nftables.conf-1.5.0" if host.variant.has_smtps else "nftables.conf-pre-1.5")).read_text()


_DEFAULT_ZONE = re.compile(r"^DefaultZone=.*$", re.MULTILINE)


def firewalld_conf(stock: str) -> str:
    """The distribution's firewalld.conf with `iredmail` as the default zone."""
    if _DEFAULT_ZONE.search(stock):
        return _DEFAULT_ZONE.sub("DefaultZone=iredmail", stock, count=1)
    return stock.rstrip("\n") + "\nDefaultZone=iredmail\n"


def sasl_smtpd_conf() -> str:
    return _render("sasl-smtpd.conf.j2")


def vmailbox(users: list[str]) -> str:
    return _render("vmailbox.j2", users=users, mail_domain=MAIL_DOMAIN)


def dbus_conf() -> str:
    return _render("dbus-system.conf.j2")


# Inside a host, its own folder is bound here: the daemons' configuration names these paths.
INSIDE = HostPaths(Path("/run/lab"))


def sshd_config(host: HostSpec) -> str:
    return _render("sshd_config.j2", host=host, paths=INSIDE)


def boot_script(host: HostSpec, outside: HostPaths, python: str) -> str:
    return _render("boot.sh.j2", host=host, outside=outside, inside=INSIDE, python=python)


def hosts_file(stock: str, host: HostSpec) -> str:
    return stock.rstrip("\n") + f"\n{host.address}\t{host.fqdn} {host.name}\n"
