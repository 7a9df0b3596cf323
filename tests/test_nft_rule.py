"""The nftables rule's judgement, on iRedMail's own /etc/nftables.conf (lab/files, with provenance) and on nft's
JSON: where the line goes, that every other byte stays, what counts as 465 already accepted."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtps_iredmail.core import nft_rule
from smtps_iredmail.core.nft_rule import RULE, NftError, chain_lines, file_facts, live_facts, with_rule, without_rule
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
    start, end = chain_lines(text, *CHAIN)
    assert text.splitlines()[start - 1] == "    chain input {" and start == 9 and end == 12
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
                                   "live.other": "no", "live.final": "12", "live.blocked": ""}
    listing["nftables"].insert(3, _rule(7, [_dport({"set": [25, 465, 587]}), {"accept": None}]))
    assert live_facts(listing)["live.other"] == "yes"
    ranged = {"nftables": [_rule(3, [_dport({"set": [{"range": [400, 500]}]}), {"accept": None}])]}
    assert live_facts(ranged) == {"live.chain": "present", "live.rule": "no", "live.handles": "",
                                  "live.other": "yes", "live.final": "", "live.blocked": ""}


def test_nft_accepts_the_edited_file(tmp_path):
    """`nft -c -f` (check only, nothing loaded) takes both iRedMail files with the rule in them."""
    require(shutil.which("nft") is not None and os.geteuid() == 0, "nft (as root) is needed: apt package nftables")
    for text in (PRE, V15):
        path = tmp_path / "nftables.conf"
        path.write_text(with_rule(text, *CHAIN))
        checked = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr


def test_a_chain_that_cannot_be_read_is_drift_not_silence():
    from smtps_iredmail.core import facts, nftables_rule
    from smtps_iredmail.core.nftables_rule import NftablesSettings

    chain = NftablesSettings("inet", "filter", "input")
    for line, words in (("nft.live.chain=unreadable", "cannot be read"), ("nft.live.chain=no-nft", "not installed"),
                        ("nft.live.chain=missing", "chain missing")):
        live = nftables_rule.MODEL.live(facts.parse(line + "\n"), chain)
        assert words in live["nftables"] and live["runtime"] is False and live["persistent"] is False


# The file as nft reads it (issue 25 point 8): a reader that counts braces line by line puts the rule wherever a
# string or a comment says `{` or `}`. FILE is iRedMail's shape with room for such text in every chain.
def _file(input_note: str = "", forward_note: str = "", extra: str = "", open_note: str = "") -> str:
    return (f"flush ruleset\n\ntable inet filter {{{open_note}\n    chain input {{{open_note}\n"
            "        type filter hook input priority 0;\n"
            f"        tcp dport 22 accept{input_note}\n        counter drop\n    }}\n\n"
            f"    chain forward {{\n        type filter hook forward priority 0;\n        policy drop;\n"
            f"        ct state established accept{forward_note}\n    }}\n}}\n{extra}")


def _placed_in_input(text: str) -> None:
    """The rule's line is right before input's `counter drop`, and nothing else moved."""
    new = with_rule(text, *CHAIN)
    at = text.index("        counter drop\n")
    assert new == text[:at] + f"        {RULE}\n" + text[at:]
    assert file_facts(new, *CHAIN)["file.rule"] == "yes" and file_facts(text, *CHAIN)["file.rule"] == "no"
    assert file_facts(new, "inet", "filter", "forward")["file.rule"] == "no"
    assert without_rule(new, *CHAIN) == text


def test_braces_in_strings_and_comments_are_not_braces():
    # The issue's case: `{` in input's comment string, `}` in forward's; before, the rule went into forward.
    _placed_in_input(_file(' comment "{"', ' comment "}"'))
    _placed_in_input(_file(" # {", " # }"))
    _placed_in_input(_file(' comment "}"', ' comment "{ # "'))
    # nft strings have no escapes: `"a\"` is the whole string `a\`, and the `"` after it opens the next one.
    _placed_in_input(_file(' comment "a\\"', ' comment "b{"'))
    # A string may cross lines; a `#` inside it starts no comment, a `"` inside a comment starts no string.
    _placed_in_input(_file(' comment "x\n}\n# y"', ' # say "{'))
    # A backslash before the newline joins two lines into one statement.
    _placed_in_input(_file(" \\\n        ", ""))
    assert file_facts(_file(' comment "tcp dport 465 accept"'), *CHAIN)["file.other"] == "no"


def test_nft_takes_the_edited_tricky_files(tmp_path):
    """nft -c agrees with the reading: each tricky file, and the same with the rule in it, is a valid ruleset."""
    require(shutil.which("nft") is not None and os.geteuid() == 0, "nft (as root) is needed: apt package nftables")
    for text in (_file(' comment "{"', ' comment "}"'), _file(' comment "a\\"', ' comment "b{"'),
                 _file(' comment "x\n}\n# y"', ' # say "{'), _file(" \\\n        ", "")):
        for version in (text, with_rule(text, *CHAIN)):
            path = tmp_path / "nftables.conf"
            path.write_text(version)
            checked = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
            assert checked.returncode == 0, (version, checked.stderr)


# What a string or a comment may hold, as nft reads it: anything but `"` (a string) or a newline (a comment).
_TRICKY = "{}#;\"\\\n $"
_STRING = st.lists(st.sampled_from([*_TRICKY.replace('"', ""), "a", "465", "drop", "chain input"]),
                   max_size=12).map("".join)
_COMMENT = st.lists(st.sampled_from([*_TRICKY.replace("\n", ""), "a", "counter drop", "chain input {"]),
                    max_size=12).map("".join)


@given(notes=st.lists(st.one_of(_STRING.map(lambda s: f' comment "{s}"'), _COMMENT.map(lambda c: f" #{c}")),
                      min_size=2, max_size=2),
       extra=st.lists(_COMMENT.map(lambda c: f"#{c}\n"), max_size=3).map("".join),
       open_note=st.just("") | _COMMENT.map(lambda c: f" #{c}"))
def test_no_string_or_comment_moves_the_rule(notes, extra, open_note):
    _placed_in_input(_file(notes[0], notes[1], extra, open_note))


def _refused(text: str, line: int, words: str) -> None:
    with pytest.raises(NftError) as refused:
        file_facts(text, *CHAIN)
        with_rule(text, *CHAIN)
    assert refused.value.line == line and words in str(refused.value), (refused.value.line, str(refused.value))


def test_what_cannot_be_told_is_refused_with_its_line():
    _refused(_file(extra='include "/etc/nftables.d/*.nft"\n'), 16, "an include")
    _refused(_file().replace("    chain forward", '    include "more.nft"\n    chain forward'), 10, "an include")
    _refused(_file(extra="table inet filter {\n    chain input {\n        accept\n    }\n}\n"), 17,
             "declared again (first at line 4)")
    _refused(_file(extra="add chain inet filter input { policy accept; }\n"), 16, "declared again")
    _refused(_file(extra="insert rule inet filter input tcp dport 465 drop\n"), 16, "`insert rule`")
    _refused(_file(extra="rule inet filter input drop\n"), 16, "`add rule`")
    _refused(_file(extra="flush chain inet filter input\n"), 16, "after the chain's block")
    _refused(_file(extra="delete table inet filter\n"), 16, "after the chain's block")
    _refused(_file(extra="flush ruleset\n"), 16, "after the chain's block")
    _refused(_file(extra="rename chain inet filter forward input\n"), 16, "after the chain's block")
    _refused(_file(extra="delete chain inet filter handle 1\n"), 16, "after the chain's block")  # which one?
    _refused(_file(extra='define t = filter\ntable inet $t {\n}\n'), 17, "variable")
    _refused(_file(' comment "never closed'), 6, "never closed")
    _refused(_file(extra="}\n"), 16, "closes no")
    _refused(_file(extra="table ip x {\n"), 16, "never closed")
    _refused("{" * 40 + "}" * 40, 1, "nested")
    _refused(_file(" ip saddr 10.0.0.1 \\\n# note"), 6, "joins this line to a comment line")


def test_what_is_harmless_is_read():
    # Declarations without rules, and what comes before the chain's block or concerns another table or chain.
    for extra in ("add table inet filter\n", "add chain inet filter input\n", "flush ruleset ip6\n",
                  "add rule inet filter output drop\n", "table ip filter {\n chain input {\n  drop\n }\n}\n",
                  "define ports = { 25, 465 }\n", "flush chain inet filter output\n"):
        _placed_in_input(_file(extra=extra))
    _placed_in_input("table inet filter\nflush table inet filter\n"
                     + _file().replace("flush ruleset\n", ""))
    # nft's default family is ip: `table filter` is `table ip filter`.
    text = "table filter {\n    chain input {\n        counter drop\n    }\n}\n"
    assert with_rule(text, "ip", "filter", "input").splitlines()[2] == f"        {RULE}"
    assert file_facts(text, *CHAIN)["file.chain"] == "missing"


def test_the_rule_goes_only_where_it_is_a_line_of_its_own():
    one_line = "table inet filter {\n    chain input {\n        tcp dport 22 accept; counter drop\n    }\n}\n"
    with pytest.raises(NftError, match="does not begin its line") as refused:
        with_rule(one_line, *CHAIN)
    assert refused.value.line == 3
    with pytest.raises(NftError, match="joins it to the next"):
        with_rule(one_line.replace("accept; ", "accept; \\\n        "), *CHAIN)
    with pytest.raises(NftError, match="may still end the chain") as refused:
        with_rule("table inet filter {\n    chain input {\n        ip protocol tcp drop\n    }\n}\n", *CHAIN)
    assert refused.value.line == 3
    with pytest.raises(NftError, match="shares its line"):
        file_facts(f"table inet filter {{\n    chain input {{\n        {RULE}; counter drop\n    }}\n}}\n", *CHAIN)
    # A final drop with a comment of its own is still the final drop.
    text = 'table inet filter {\n    chain input {\n        counter drop comment "the rest"\n    }\n}\n'
    assert with_rule(text, *CHAIN).splitlines()[2] == f"        {RULE}"
    # Settings after the last rule are not rules: the rule still goes before the final drop.
    text = "table inet filter {\n    chain input {\n        counter drop\n        policy drop;\n    }\n}\n"
    assert with_rule(text, *CHAIN).splitlines()[2] == f"        {RULE}"


def test_the_host_program_names_the_file_and_line_and_keeps_every_byte(tmp_path, capsys):
    source, target = tmp_path / "nftables.conf", tmp_path / "nftables.conf.smtps-tmp"
    source.write_text(_file(extra="include \"x.nft\"\n"))
    assert nft_rule.main(["with-rule", *CHAIN, str(source), str(target)]) == 1
    assert f"{source} line 16: an include" in capsys.readouterr().err and not target.exists()
    # Bytes that are not UTF-8, and a carriage return inside a comment (not a line end), go back out as they were.
    raw = _file(" # caf\xe9 \r x").encode("latin-1")
    source.write_bytes(raw)
    assert nft_rule.main(["with-rule", *CHAIN, str(source), str(target)]) == 0
    at = raw.index(b"        counter drop\n")
    assert target.read_bytes() == raw[:at] + f"        {RULE}\n".encode() + raw[at:]
    assert nft_rule.main(["without-rule", *CHAIN, str(target), str(source)]) == 0
    assert source.read_bytes() == raw


def test_facts_of_a_refused_file_say_why_and_drift_names_it(tmp_path, capsys, monkeypatch):
    """A file the reader refuses is a fact with its reason, not "cannot be read": drift then says which line."""
    from smtps_iredmail.core.facts import parse
    from smtps_iredmail.core.nftables_rule import MODEL, NftablesSettings

    source = tmp_path / "nftables.conf"
    source.write_text(_file(extra="include \"x.nft\"\n"))
    monkeypatch.setattr(nft_rule, "_listing", lambda *chain: None)
    assert nft_rule.main(["facts", *CHAIN, str(source)]) == 0
    out = capsys.readouterr().out
    assert "nft.file.chain=refused" in out and f"nft.file.why={source} line 16: an include" in out
    facts = parse(out)
    assert MODEL.live(facts, NftablesSettings("inet", "filter", "input"))["nftables"].startswith(
        f"not read: {source} line 16: an include")


# A rule that ends the chain for every packet, before where this tool's rule would go: the rule would never be
# reached there, so the file is refused at that rule's line (the reviewer's case: `counter drop`, then a log rule).
@pytest.mark.parametrize(("before", "after"), [
    ("        counter drop\n", '        log prefix "late "\n'),
    ("        jump quarantine\n", "        counter drop\n"),
    ("        goto quarantine\n", ""),
    ('        counter log prefix "x " level info reject with icmpx type admin-prohibited\n', "        drop\n"),
    ('        drop comment "early"\n', "        counter drop\n"),
    ("        return\n", "        counter drop\n"),
    ('        counter name "dropped" drop\n', '        log prefix "late "\n'),
])
def test_a_rule_that_ends_the_chain_before_the_insertion_point_is_refused_with_its_line(before, after):
    text = ("table inet filter {\n    chain quarantine {\n    }\n    chain input {\n"
            "        type filter hook input priority 0;\n        tcp dport 22 accept\n" + before + after + "    }\n}\n")
    with pytest.raises(NftError, match="ends the chain for every packet before where this tool's rule would go") \
            as refused:
        with_rule(text, *CHAIN)
    assert refused.value.line == 7


def test_rules_that_match_something_before_the_final_drop_are_not_in_the_way():
    text = ("table inet filter {\n    chain input {\n        type filter hook input priority 0;\n"
            "        ct state invalid drop\n        iifname \"lo\" jump allowed\n        tcp dport 22 accept\n"
            "        counter drop\n    }\n    chain allowed {\n    }\n}\n")
    new = with_rule(text, *CHAIN).splitlines()
    assert new[6] == f"        {RULE}" and new[7] == "        counter drop"


def test_the_reviewers_late_log_file_is_refused_by_the_host_program_and_nft_reads_it_as_it_is(tmp_path, capsys):
    source, target = tmp_path / "nftables.conf", tmp_path / "nftables.conf.smtps-tmp"
    source.write_text(_file().replace("        counter drop\n", '        counter drop\n        log prefix "late "\n'))
    assert nft_rule.main(["with-rule", *CHAIN, str(source), str(target)]) == 1
    err = capsys.readouterr().err
    assert f"{source} line 7: `counter drop` ends the chain for every packet" in err and not target.exists()
    require(shutil.which("nft") is not None and os.geteuid() == 0, "nft (as root) is needed: apt package nftables")
    # nft itself takes the file: only where the rule would go is in doubt, not whether the file is valid.
    checked = subprocess.run(["nft", "-c", "-f", str(source)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_the_live_chain_with_a_drop_before_its_end_gets_no_rule():
    listing = {"nftables": [
        _rule(4, [_dport(22), {"accept": None}]),
        _rule(7, [{"counter": {"packets": 0, "bytes": 0}}, {"drop": None}]),
        _rule(9, [{"log": {"prefix": "late "}}]),
    ]}
    assert live_facts(listing)["live.blocked"] == "7" and live_facts(listing)["live.final"] == ""
    listing["nftables"].pop()  # the drop is then the final one: the rule goes before it
    assert live_facts(listing)["live.blocked"] == "" and live_facts(listing)["live.final"] == "7"
    listing["nftables"].insert(1, _rule(5, [{"jump": {"target": "quarantine"}}]))
    assert live_facts(listing)["live.blocked"] == "5"


def test_the_add_refuses_a_live_chain_where_the_rule_would_never_be_reached(monkeypatch, capsys):
    listing = {"nftables": [_rule(7, [{"counter": None}, {"drop": None}]), _rule(9, [{"log": {"prefix": "late "}}])]}
    monkeypatch.setattr(nft_rule, "_listing", lambda *chain: listing)
    monkeypatch.setattr(nft_rule, "_nft", lambda *args: pytest.fail(f"nft {args} ran"))
    assert nft_rule.main(["add-live", *CHAIN]) == 1
    assert "the rule with handle 7 ends the chain for every packet" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "line"), [
    (_file().replace("\n", "\r\n"), 1),
    (_file().replace("        counter drop\n", "        counter drop\r\n"), 7),
    (_file() + "\r", 16),
])
def test_carriage_return_line_ends_are_refused_by_name_with_their_line(tmp_path, capsys, text, line):
    with pytest.raises(NftError, match="carriage return") as refused:
        with_rule(text, *CHAIN)
    assert refused.value.line == line
    with pytest.raises(NftError, match="carriage return"):
        file_facts(text, *CHAIN)
    source = tmp_path / "nftables.conf"
    source.write_bytes(text.encode())
    assert nft_rule.main(["with-rule", *CHAIN, str(source), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"{source} line {line}: a line ends with a carriage return" in err and "not a plain drop" not in err
