"""The rule accepting 465/tcp in an nftables chain (Debian and Ubuntu iRedMail hosts), live and in
/etc/nftables.conf. The rule is this tool's by its comment (`smtps-iredmail`); a rule someone else wrote that already
accepts 465 (iRedMail >= 1.5) is left as found and counts (existingPortPolicy keep). Its inputs, its settings and how
they are read, its decision (wanted and as found) and its script."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import zone_membership
from .facts import HostFacts, read_script
from .firewall import SETTING, Firewall, keep_only
from .model import FirewallModel, Inputs, setting
from .reader import Reader
from .settings import Connection, PortPolicy
from .templating import Action, nft_rule, render

# The file Debian's nftables.service loads at boot (and iRedMail's installer writes).
CONF = "/etc/nftables.conf"


@dataclass(frozen=True)
class NftablesRuleInputs(Inputs):
    nft_family: str = setting("inet")
    nft_table: str = setting("filter")
    nft_chain: str = setting("input")
    # Its default is the zone's (smtps/zone_membership.py): one setting for both.
    existing_port_policy: str
    # The state wanted, always true: 465 accepted in the live ruleset, and in the file loaded at boot.
    runtime: bool
    persistent: bool
    # The chain must be loaded: the apply says so when it is not, and never loads the file (it would flush
    # fail2ban's table too).
    nftables: str


KEY = NftablesRuleInputs.key
# nftables' own identifiers (nft(8), "Identifiers"), without the / and \ it also allows.
_NFT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
NFT_FAMILIES = ("inet", "ip", "ip6")


@dataclass(frozen=True)
class NftablesSettings:
    """The nftables chain that gets the rule accepting 465 (iRedMail's: `table inet filter`, `chain input`)."""

    family: str
    table: str
    chain: str
    # keep only: a rule someone else wrote that accepts 465 (iRedMail >= 1.5) is left as found, and nothing added.
    port_policy: PortPolicy = PortPolicy.KEEP


def read_nftables(read: Reader, firewall: Firewall | None = Firewall.NFTABLES,
                  policy: PortPolicy | None = None) -> NftablesSettings | None:
    """The chain; `policy` is the host's existingPortPolicy where it was read already (else it is read here)."""
    what = "an nftables name (letters, digits, _ . -; not starting with a digit)"
    if policy is None:
        value = read.choice(KEY.existing_port_policy, tuple(p.value for p in PortPolicy))
        policy = None if value is None else PortPolicy(value)
    parts = (read.choice(KEY.nft_family, NFT_FAMILIES), read.text(KEY.nft_table, _NFT_NAME, what),
             read.text(KEY.nft_chain, _NFT_NAME, what))
    if None in parts or policy is None:
        return None
    refused = None if policy is PortPolicy.KEEP else keep_only(firewall, policy.value)
    if refused is not None:
        read.fail(KEY.existing_port_policy, refused)
        return None
    return NftablesSettings(parts[0], parts[1], parts[2], policy)


class NftablesRuleModel(FirewallModel):
    kind = "nftables rule"
    name = "nftables"
    resource = "NftablesRule"
    inputs = NftablesRuleInputs
    identity = (KEY.nft_family, KEY.nft_table, KEY.nft_chain)
    firewalls = (Firewall.NFTABLES,)
    not_repaired = {KEY.nftables: "up never loads /etc/nftables.conf (it begins with flush ruleset, which would drop "
                                  "fail2ban's table too): load the host's firewall as it does at boot (systemctl "
                                  "restart nftables), then run up again"}

    def parse(self, read: Reader) -> NftablesSettings | None:
        return read_nftables(read)

    def from_settings(self, read: Reader, earlier: Mapping[str, Any]) -> NftablesSettings | None:
        # existingPortPolicy is one setting for the zone and the rule: read with the zone's part (and, where it was
        # bad there, not read again), and judged here against the host's firewall setting.
        zone = earlier[zone_membership.MODEL.name]
        return None if zone is None else read_nftables(read, earlier[SETTING], zone.port_policy)

    def wanted(self, nft: NftablesSettings) -> NftablesRuleInputs:
        return NftablesRuleInputs(nft_family=nft.family, nft_table=nft.table, nft_chain=nft.chain,
                                  existing_port_policy=nft.port_policy.value, runtime=True, persistent=True,
                                  nftables="loaded")

    def script(self, host: str, nft: NftablesSettings, action: Action, connection: Connection | None = None,
               snapshot_id: str = "", **kw: Any) -> str:
        return render("nftables_rule.sh.j2", kind=self.kind, host=host, action=action.value, nft=nft, conf=CONF,
                      reloads_firewalld=False, nft_rule=nft_rule(), snapshot_id=snapshot_id)

    def read_script(self, host: str, nft: NftablesSettings) -> str:
        return read_script(host, nft=nft)

    def live(self, facts: HostFacts, nft: NftablesSettings) -> dict[str, Any]:
        found = facts.nft
        if found is None:
            return {}
        state = {"present": "loaded", "missing": "chain missing", "no-nft": "nft is not installed"}
        runtime = found.live_rule or found.live_other
        if found.file == "refused":
            return self.inputs.found(nftables=f"not read: {found.file_why}", runtime=runtime, persistent=False)
        return self.inputs.found(nftables=state.get(found.live, "cannot be read (python3 and nft are needed)"),
                                 runtime=runtime, persistent=found.file_rule or found.file_other)


MODEL = NftablesRuleModel()
