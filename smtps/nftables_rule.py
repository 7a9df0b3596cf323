"""The rule accepting 465/tcp in an nftables chain (Debian and Ubuntu iRedMail hosts), live and in
/etc/nftables.conf. The rule is this tool's by its comment (`smtps-iredmail`); a rule someone else wrote that already
accepts 465 (iRedMail >= 1.5) is left as found and counts (existingPortPolicy keep)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .facts import HostFacts, read_script
from .model import Inputs, Model
from .settings import Connection, Firewall, NftablesSettings, read_nftables
from .templating import Action, nft_rule, render

# The file Debian's nftables.service loads at boot (and iRedMail's installer writes).
CONF = "/etc/nftables.conf"


@dataclass(frozen=True)
class NftablesRuleInputs(Inputs):
    nft_family: str
    nft_table: str
    nft_chain: str
    existing_port_policy: str
    # The state wanted, always true: 465 accepted in the live ruleset, and in the file loaded at boot.
    runtime: bool
    persistent: bool
    # The chain must be loaded: the apply says so when it is not, and never loads the file (it would flush
    # fail2ban's table too).
    nftables: str


def script(host: str, nft: NftablesSettings, action: Action, connection: Connection | None = None,
           run: str = "") -> str:
    return render("nftables_rule.sh.j2", kind=MODEL.kind, host=host, action=action.value, nft=nft, conf=CONF,
                  reloads_firewalld=False, nft_rule=nft_rule(), run=run)


def wanted(nft: NftablesSettings) -> NftablesRuleInputs:
    return NftablesRuleInputs(nft_family=nft.family, nft_table=nft.table, nft_chain=nft.chain,
                              existing_port_policy=nft.port_policy.value, runtime=True, persistent=True,
                              nftables="loaded")


def live(facts: HostFacts, nft: NftablesSettings) -> dict[str, Any]:
    found = facts.nft
    if found is None:
        return {}
    state = {"present": "loaded", "missing": "chain missing", "no-nft": "nft is not installed"}
    if found.file == "refused":
        return {"nftables": f"not read: {found.file_why}", "runtime": found.live_rule or found.live_other,
                "persistent": False}
    return {"nftables": state.get(found.live, "cannot be read (python3 and nft are needed)"),
            "runtime": found.live_rule or found.live_other, "persistent": found.file_rule or found.file_other}


MODEL = Model(
    kind="nftables rule", inputs=NftablesRuleInputs, identity=("nftFamily", "nftTable", "nftChain"),
    part=lambda settings: settings.nftables, parse=read_nftables, wanted=wanted, script=script,
    read_script=lambda host, nft: read_script(host, nft=nft), live=live,
    firewalls=(Firewall.NFTABLES,))
