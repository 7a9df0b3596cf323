"""What a lab is: parsed once from the command line into frozen dataclasses.

Everything the lab creates on this machine is named from here (network namespaces, veth links, addresses,
state folders), so that `lab down` can find all of it again by name even after an `up` that crashed half-way.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

# The lab's name marks its objects on this machine (namespaces "<name>-mail1", veth links "<name>1"): `lab down`
# removes exactly what carries it. The tests use a lab of their own name, so they never touch a demo lab.
DEFAULT_NAME = "smtpslab"
# + 2 digits + "i" stays within the 15 characters of a link name. It ends in a letter: a lab's links are its name and a
# host's number, so a name ending in a digit would make lab "lab1"'s link 2 ("lab12") also lab "lab"'s link 12, and
# one lab's `down` would remove the other's links.
_NAME = re.compile(r"^[a-z]([a-z0-9]{0,10}[a-z])?$")
# Only the lab's own namespaces use 10.231.0.0/16; each lab takes a /24 of it. Each host gets a /30 out of that: one
# address on the machine's end of its veth, one inside the host. No default route inside: Postfix's reverse
# lookups then fail at once instead of waiting for a DNS timeout (with a default route a TLS handshake took 10 s).
LAB_RANGE = ipaddress.IPv4Network("10.231.0.0/16")
DEFAULT_SUBNET = ipaddress.IPv4Network("10.231.0.0/24")
MAX_HOSTS = 50
DOMAIN = "lab"
MAIL_DOMAIN = "example.lab"


class Variant(StrEnum):
    """The iRedMail release and platform a host looks like: before 1.5.0 no port 465 anywhere; from 1.5.0 on,
    iRedMail's own. The RHEL family gets firewalld and its `iredmail` zone; Debian and Ubuntu get iRedMail's
    /etc/nftables.conf (and fail2ban's own nftables table), certificates under /etc/ssl."""

    IREDMAIL_14 = "iredmail-1.4"
    IREDMAIL_15 = "iredmail-1.5"
    IREDMAIL_DEBIAN = "iredmail-debian"
    IREDMAIL_DEBIAN_15 = "iredmail-debian-1.5"

    @property
    def has_smtps(self) -> bool:
        return self in (Variant.IREDMAIL_15, Variant.IREDMAIL_DEBIAN_15)

    @property
    def firewall(self) -> str:
        return "nftables" if self in (Variant.IREDMAIL_DEBIAN, Variant.IREDMAIL_DEBIAN_15) else "firewalld"

    @property
    def tls_cert(self) -> str:
        """The certificate and key iRedMail's installer makes, under /etc, by platform."""
        return "ssl/certs/iRedMail.crt" if self.firewall == "nftables" else "pki/tls/certs/iRedMail.crt"

    @property
    def tls_key(self) -> str:
        return "ssl/private/iRedMail.key" if self.firewall == "nftables" else "pki/tls/private/iRedMail.key"


class SpecError(ValueError):
    """A lab setting that cannot work, said before anything is created."""


@dataclass(frozen=True)
class HostSpec:
    index: int
    variant: Variant
    lab_name: str = DEFAULT_NAME
    subnet: ipaddress.IPv4Network = DEFAULT_SUBNET
    # The index of the host this one hides behind: its veth then ends inside that host's network namespace, not on
    # the machine, so the machine has no route to it and reaches it only through that host (a bastion).
    bastion: int | None = None

    @property
    def name(self) -> str:
        return f"mail{self.index}"

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{DOMAIN}"

    @property
    def netns(self) -> str:
        return f"{self.lab_name}-{self.name}"

    @property
    def veth_outer(self) -> str:
        return f"{self.lab_name}{self.index}"

    @property
    def veth_inner_tmp(self) -> str:
        # Created in the machine's namespace under this name, then moved into the host and renamed eth0.
        return f"{self.lab_name}{self.index}i"

    @property
    def _base(self) -> int:
        return int(self.subnet.network_address) + 4 * self.index

    @property
    def outer_address(self) -> str:
        return str(ipaddress.IPv4Address(self._base + 1))

    @property
    def address(self) -> str:
        return str(ipaddress.IPv4Address(self._base + 2))


@dataclass(frozen=True)
class LabSpec:
    name: str
    subnet: ipaddress.IPv4Network
    state_dir: Path
    hosts: tuple[HostSpec, ...]

    @property
    def hosts_dir(self) -> Path:
        return self.state_dir / "hosts"

    @property
    def deploy_key(self) -> Path:
        return self.state_dir / "deploy_key"

    @property
    def inventory_path(self) -> Path:
        return self.state_dir / "inventory.json"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    def host_dir(self, host: HostSpec) -> Path:
        return self.hosts_dir / host.name


_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._+/-]*$")
_VARIANT_ITEM = re.compile(r"^(?:mail)?(\d+)=(.+)$")
_BEHIND_ITEM = re.compile(r"^(?:mail)?(\d+)=(?:mail)?(\d+)$")


def parse_behind(text: str, count: int) -> dict[int, int]:
    """`"mail3=mail1,mail4=mail1"` -> {3: 1, 4: 1}: mail3 and mail4 are reached only through mail1."""
    behind: dict[int, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = _BEHIND_ITEM.match(item)
        if not match:
            raise SpecError(f"BEHIND item {item!r}: expected mailN=mailB (mailN reached only through mailB)")
        host, bastion = int(match.group(1)), int(match.group(2))
        for index in (host, bastion):
            if not 1 <= index <= count:
                raise SpecError(f"BEHIND item {item!r}: there is no host mail{index} in a lab of {count}")
        if host == bastion:
            raise SpecError(f"BEHIND item {item!r}: a host cannot be its own bastion")
        behind[host] = bastion
    for host, bastion in behind.items():
        if bastion in behind:
            raise SpecError(f"BEHIND: mail{host}'s bastion mail{bastion} is itself behind mail{behind[bastion]}: "
                            "a bastion must be reachable from the machine")
    return behind


def parse_variants(text: str, count: int) -> dict[int, Variant]:
    """`"mail2=iredmail-1.5,3=iredmail-1.5"` -> {2: IREDMAIL_15, 3: IREDMAIL_15}; hosts not named keep the default."""
    chosen: dict[int, Variant] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = _VARIANT_ITEM.match(item)
        if not match:
            raise SpecError(f"VARIANTS item {item!r}: expected mailN=VARIANT, for example mail2=iredmail-1.5")
        index, value = int(match.group(1)), match.group(2)
        if not 1 <= index <= count:
            raise SpecError(f"VARIANTS item {item!r}: there is no host mail{index} in a lab of {count}")
        chosen[index] = variant(value, f"VARIANTS item {item!r}")
    return chosen


def variant(value: str, where: str) -> Variant:
    """The variant named `value`, or a SpecError that starts with `where` and lists the allowed ones."""
    try:
        return Variant(value)
    except ValueError:
        allowed = ", ".join(v.value for v in Variant)
        raise SpecError(f"{where}: unknown variant {value!r} (allowed: {allowed})") from None


def lab_spec(state_dir: Path, name: str = DEFAULT_NAME,
             subnet: str | ipaddress.IPv4Network = DEFAULT_SUBNET) -> LabSpec:
    """A lab with no hosts yet: its name, subnet and state folder, checked. Hosts join it one by one (`host_spec`,
    lab/pulumi_host.py) or all at once (`build_spec`)."""
    if not _NAME.match(name):
        raise SpecError(f"lab name {name!r}: 1 to 12 lower-case letters and digits, starting and ending with a "
                        "letter")
    try:
        net = ipaddress.IPv4Network(subnet)
    except ValueError as err:
        raise SpecError(f"lab subnet {subnet!r}: {err}") from None
    if net.prefixlen != 24 or not net.subnet_of(LAB_RANGE):
        raise SpecError(f"lab subnet {net}: must be a /24 inside {LAB_RANGE}, which only the lab uses")
    state_dir = state_dir.resolve()
    # The path ends up in overlayfs mount options (where "," and ":" separate options) and in sshd_config (where
    # a space separates file names): keep it to characters that mean nothing to either.
    if not _SAFE_PATH.match(str(state_dir)):
        raise SpecError(f"lab state dir {str(state_dir)!r}: use only letters, digits and . _ - + / in its path")
    # The hosts overlay /etc and /var with folders under the state dir; overlayfs refuses an upper dir inside
    # the tree it covers.
    for covered in (Path("/etc"), Path("/var"), Path("/run")):
        if state_dir == covered or covered in state_dir.parents:
            raise SpecError(f"lab state dir {state_dir} must not lie under {covered}")
    return LabSpec(name=name, subnet=net, state_dir=state_dir, hosts=())


def host_spec(lab: LabSpec, index: int, variant_name: str) -> HostSpec:
    """One host of `lab`, reached directly (no bastion): mail<index>, of the named variant."""
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= MAX_HOSTS:
        raise SpecError(f"host index {index!r}: the lab numbers its hosts 1 to {MAX_HOSTS}")
    return HostSpec(index, variant(variant_name, f"host mail{index}"), lab.name, lab.subnet)


def build_spec(state_dir: Path, count: int, variants: str = "", name: str = DEFAULT_NAME,
               subnet: str | ipaddress.IPv4Network = DEFAULT_SUBNET, behind: str = "") -> LabSpec:
    if not 1 <= count <= MAX_HOSTS:
        raise SpecError(f"HOSTS={count}: the lab takes 1 to {MAX_HOSTS} hosts")
    lab = lab_spec(state_dir, name, subnet)
    chosen = parse_variants(variants, count)
    bastions = parse_behind(behind, count)
    hosts = tuple(HostSpec(i, chosen.get(i, Variant.IREDMAIL_14), name, lab.subnet, bastions.get(i))
                  for i in range(1, count + 1))
    return replace(lab, hosts=hosts)
