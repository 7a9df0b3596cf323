"""The one facts layer: one read-only script turns a host into `field=value` lines, and one parser turns those into
typed facts. `pulumi refresh` (each provider's `read`), `smtps drift` and the zone script's decisions all
read a host this way; each resource kind then says which of these facts are its inputs (smtps/<kind>.py, `live`).

What is read, and nothing else:
- Postfix: whether it runs, and why this tool cannot use it (older than 2.11, by its compiled-in version); the
  master.cf entry of each key 465 may be under (465, smtps, submissions), every column and every -o override, as
  `postconf -M` reads master.cf, through the apply's own reader (smtps/master_cf.py);
- the firewalld service file: its text, mode, and what firewalld would make of it (short, description, ports);
- firewalld: whether it runs; the zone's permanent and runtime layer: does each hold the service, and 465 by port
  (the zone probe, smtps/zone_probe.py, over firewalld's D-Bus API; its own reader for a stopped firewalld's file);
- nftables (Debian/Ubuntu hosts): the chain in the live ruleset and in /etc/nftables.conf: is it there, does it hold
  this tool's rule, does another rule accept 465 (smtps/nft_rule.py).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

from .answers import answers
from .master_cf import fields
from .settings import SERVICE_KEYS, SMTPS_PORT
from .templating import master_cf, nft_rule, render, zone_probe


@dataclass(frozen=True)
class MasterEntry:
    """One master.cf entry as Postfix reads it."""

    key: str
    columns: dict[str, str]  # master_cf.COLUMNS -> value
    options: dict[str, str]  # -o name=value overrides


@dataclass(frozen=True)
class ServiceFile:
    """The firewalld service file. `short`, `description` and `ports` are None when firewalld could not load it."""

    text: str
    mode: str
    short: str | None
    description: str | None
    ports: tuple[str, ...] | None


@dataclass(frozen=True)
class ZoneLayer:
    service: bool  # the service is in the zone
    port: bool  # 465/tcp is open by a raw port


@dataclass(frozen=True)
class NftChain:
    """One nftables chain, live and in the file: is it there, this tool's rule in it, another rule accepting 465."""

    live: str  # present | missing
    live_rule: bool
    live_other: bool
    file: str  # present | missing | refused (read as nft reads it, the file is not one this tool edits)
    file_rule: bool
    file_other: bool
    file_why: str = ""  # why it is refused, file and line


@dataclass(frozen=True)
class HostFacts:
    postfix: str  # running | stopped
    master: dict[str, MasterEntry]  # only the keys that have an entry
    service: ServiceFile | None  # None: no file
    firewalld: str  # running | stopped
    zone: str  # present | missing | unknown
    permanent: ZoneLayer
    runtime: ZoneLayer
    nft: NftChain | None = None  # None: not read
    # firewall: auto: what it finds on the host now (firewalld | nftables), or "" with `firewall_why` saying why
    # neither; None: not asked.
    firewall: str | None = None
    firewall_why: str = ""
    # Why this tool cannot use the host's Postfix (older than 2.11, no version to read, or no python3 to read its
    # master.cf with); "" when it can.
    postfix_unusable: str = ""


def read_script(host: str, *, master: bool = False, service: Any = None, zone: Any = None, nft: Any = None,
                auto: bool = False) -> str:
    """The read-only script for the parts asked for (a resource's refresh reads its own; drift reads them all):
    `service`, `zone` and `nft` are those kinds' settings (smtps/<kind>.py, which import this module).
    `auto`: find the host's firewall first (templates/_firewall.sh.j2), and read only that firewall's parts."""
    return render("facts.sh.j2", host=host, keys=SERVICE_KEYS if master else (), service=service, zone=zone,
                  port=f"{SMTPS_PORT}/tcp", zone_probe=zone_probe(), nft=nft, nft_rule=nft_rule(), auto=auto,
                  firewall="auto", master_cf=master_cf())


def parse_entry(key: str, line: str) -> MasterEntry:
    """`465 inet n - n - - smtpd -o a=b ...` into columns and overrides, read as the apply reads it
    (smtps/master_cf.py: the host prints it with its white space folded)."""
    _, columns, options = fields(line)
    return MasterEntry(key, columns, dict(options))


def parse_service(encoded: str, mode: str) -> ServiceFile:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raw = b""
    text = raw.decode(errors="replace")
    try:
        # The file comes from a host we manage as root; expat (2.4+, in Python 3.11) caps entity expansion.
        root = ElementTree.fromstring(raw)  # noqa: S314
    except ElementTree.ParseError:
        return ServiceFile(text, mode, None, None, None)
    if root.tag != "service":
        return ServiceFile(text, mode, None, None, None)
    ports = tuple(sorted(f"{p.get('port')}/{p.get('protocol')}" for p in root.iter("port")))
    return ServiceFile(text, mode, root.findtext("short") or "", root.findtext("description") or "", ports)


def parse(text: str) -> HostFacts:
    """The script's output as facts. A part that was not read comes out as absent or stopped."""
    lines = answers(text).latest()
    master = {key: parse_entry(key, lines[f"master.{key}"]) for key in SERVICE_KEYS if lines.get(f"master.{key}")}
    encoded = lines.get("service.file", "-")
    service = None if encoded == "-" else parse_service(encoded, lines.get("service.mode", ""))

    def layer(name: str) -> ZoneLayer:
        return ZoneLayer(lines.get(f"zone.{name}.service") == "yes", lines.get(f"zone.{name}.port") == "yes")

    nft = None
    if "nft.live.chain" in lines:
        nft = NftChain(live=lines["nft.live.chain"], live_rule=lines.get("nft.live.rule") == "yes",
                       live_other=lines.get("nft.live.other") == "yes", file=lines.get("nft.file.chain", "missing"),
                       file_rule=lines.get("nft.file.rule") == "yes", file_other=lines.get("nft.file.other") == "yes",
                       file_why=lines.get("nft.file.why", ""))
    return HostFacts(postfix=lines.get("postfix", "stopped"), master=master, service=service,
                     firewalld=lines.get("firewalld", "stopped"), zone=lines.get("zone", "unknown"),
                     permanent=layer("permanent"), runtime=layer("runtime"), nft=nft,
                     firewall=lines.get("firewall"), firewall_why=lines.get("firewall.why", ""),
                     postfix_unusable=lines.get("postfix.unusable", ""))
