"""The nftables rule's judgement, on iRedMail's own /etc/nftables.conf (lab/files, with provenance) and on nft's
JSON: where the line goes, that every other byte stays, what counts as 465 already accepted."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from smtps.nft_rule import RULE, chain_span, file_facts, live_facts, with_rule, without_rule
from tests.conftest import require

DATA = Path(__file__).parent.parent / "lab" / "files"
PRE = (DATA / "nftables.conf-pre-1.5").read_text()
V15 = (DATA / "nftables.conf-1.5.0").read_text()
CHAIN = ("inet", "filter", "input")


def test_the_rule_goes_right_before_the_final_drop_with_the_chains_indentation():
    new = with_rule(PRE, *CHAIN)
    lines = new.splitlines()
    at = lines.index(f"        {RULE}")
    assert lines[at + 1] == "        counter drop"
    # Every other line as it was, in order.
    assert lines[:at] + lines[at + 1:] == PRE.splitlines()
    assert with_rule(new, *CHAIN) == new  # once only
    assert without_rule(new, *CHAIN) == PRE  # byte for byte


def test_facts_of_the_file():
    assert file_facts(PRE, *CHAIN) == {"file.chain": "present", "file.rule": "no", "file.other": "no"}
    assert file_facts(V15, *CHAIN) == {"file.chain": "present", "file.rule": "no", "file.other": "yes"}
    assert file_facts(with_rule(PRE, *CHAIN), *CHAIN)["file.rule"] == "yes"
    assert file_facts(PRE, "inet", "filter", "prerouting")["file.chain"] == "missing"
    assert file_facts(PRE, "ip", "filter", "input")["file.chain"] == "missing"


def test_the_chain_is_found_by_table_and_name_not_by_a_look_alike():
    text = ('table inet other {\n    chain input {\n        counter drop\n    }\n}\n'
            'table inet filter {\n    # chain input { in a comment\n'
            '    set s { type ipv4_addr; elements = { 1.2.3.4 } }\n'
            '    chain input {\n        tcp dport { 25, 587 } accept\n        reject with icmpx admin-prohibited\n'
            '    }\n}\n')
    start, end = chain_span(text.splitlines(), *CHAIN)
    assert text.splitlines()[start] == "    chain input {" and start == 8 and end == 11
    new = with_rule(text, *CHAIN).splitlines()
    assert new[10] == f"        {RULE}" and new[11] == "        reject with icmpx admin-prohibited"
    assert file_facts("table inet filter {\n chain input {\n  tcp dport { 25, 465, 587 } accept\n }\n}\n",
                      *CHAIN)["file.other"] == "yes"
    assert file_facts("table inet filter {\n chain input {\n  # tcp dport 465 accept\n }\n}\n",
                      *CHAIN)["file.other"] == "no"


def test_a_chain_without_a_final_drop_gets_the_rule_last():
    text = "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n" \
           "\t\ttcp dport 22 accept\n\t}\n}\n"
    new = with_rule(text, *CHAIN).splitlines()
    assert new[4] == f"\t\t{RULE}" and new[5] == "\t}"


def _rule(handle, expr, comment=None):
    rule = {"family": "inet", "table": "filter", "chain": "input", "handle": handle, "expr": expr}
    if comment:
        rule["comment"] = comment
    return {"rule": rule}


def _dport(right):
    return {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": right}}


def test_facts_of_the_live_chain():
    listing = {"nftables": [
        {"metainfo": {}}, {"chain": {"name": "input"}},
        _rule(4, [_dport(22), {"accept": None}]),
        _rule(9, [_dport(465), {"accept": None}], comment="smtps-iredmail"),
        _rule(12, [{"counter": {"packets": 3, "bytes": 180}}, {"drop": None}]),
    ]}
    assert live_facts(listing) == {"live.chain": "present", "live.rule": "yes", "live.handles": "9",
                                   "live.other": "no", "live.final": "12"}
    listing["nftables"].insert(3, _rule(7, [_dport({"set": [25, 465, 587]}), {"accept": None}]))
    assert live_facts(listing)["live.other"] == "yes"
    ranged = {"nftables": [_rule(3, [_dport({"set": [{"range": [400, 500]}]}), {"accept": None}])]}
    assert live_facts(ranged) == {"live.chain": "present", "live.rule": "no", "live.handles": "",
                                  "live.other": "yes", "live.final": ""}


def test_nft_accepts_the_edited_file(tmp_path):
    """`nft -c -f` (check only, nothing loaded) takes both iRedMail files with the rule in them."""
    require(shutil.which("nft") is not None and os.geteuid() == 0, "nft (as root) is needed: apt package nftables")
    for text in (PRE, V15):
        path = tmp_path / "nftables.conf"
        path.write_text(with_rule(text, *CHAIN))
        checked = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr


def test_a_chain_that_cannot_be_read_is_drift_not_silence():
    from smtps import facts, nftables_rule
    from smtps.settings import NftablesSettings

    chain = NftablesSettings("inet", "filter", "input")
    for line, words in (("nft.live.chain=unreadable", "cannot be read"), ("nft.live.chain=no-nft", "not installed"),
                        ("nft.live.chain=missing", "chain missing")):
        live = nftables_rule.live(facts.parse(line + "\n"), chain)
        assert words in live["nftables"] and live["runtime"] is False and live["persistent"] is False
