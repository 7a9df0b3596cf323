"""The nftables rule: run ON a Debian/Ubuntu mail host (python3, standard library and the `nft` command), to read and
edit what SMTPS needs of one nftables chain: one rule accepting 465/tcp, marked with the comment `smtps-iredmail`, in
the live ruleset and in /etc/nftables.conf.

    nft_rule facts FAMILY TABLE CHAIN FILE         field=value lines (smtps/facts.py parses them)
    nft_rule add-live FAMILY TABLE CHAIN           insert the rule before the chain's final drop/reject
    nft_rule delete-live FAMILY TABLE CHAIN        delete every rule carrying the mark
    nft_rule with-rule FAMILY TABLE CHAIN SRC DST  SRC with the rule's line before the chain's final drop -> DST
    nft_rule without-rule FAMILY TABLE CHAIN SRC DST   SRC without the marked line -> DST

It never loads a whole file: iRedMail's /etc/nftables.conf starts with `flush ruleset`, which would also wipe
fail2ban's table and its bans. The live ruleset changes rule by rule (`nft insert rule`, `nft delete rule ... handle`)
and the file is edited as text, line by line, so every other byte of it stays.

The judgement (which line, which rule) is in pure functions over text and nft's JSON, tested without a host.
Shipped inside the host scripts as it is (never rendered): every value arrives as an argument.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

MARK = "smtps-iredmail"
RULE = f'tcp dport 465 accept comment "{MARK}"'
PORT = 465
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_FAMILIES = ("inet", "ip", "ip6")
# A rule line that accepts 465/tcp: `tcp dport 465 accept`, or 465 in a set (`tcp dport { 25, 465 } accept`).
_ACCEPTS_465 = re.compile(r"\btcp dport (?:465\b|\{[^}]*\b465\b[^}]*\})[^#]*\baccept\b")
# The chain's final verdict, as iRedMail writes it: `counter drop`, `drop`, `reject ...`, with nothing matched.
_FINAL = re.compile(r"^(?:counter(?: packets \d+ bytes \d+)?\s+)?(?:drop|reject\b.*)$")


class NftError(Exception):
    pass


def _code(line: str) -> str:
    """A line without its comment (a # outside a string) and surrounding white space."""
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "#" and not quoted:
            return line[:index].strip()
    return line.strip()


def chain_span(lines: list[str], family: str, table: str, chain: str) -> tuple[int, int] | None:
    """(index of the `chain NAME {` line, index of its closing `}` line) in the file, or None."""
    depth, in_table, table_depth = 0, False, 0
    start = None
    for index, line in enumerate(lines):
        code = _code(line)
        words = code.split()
        if not in_table and depth == 0 and words[:3] == ["table", family, table] and code.endswith("{"):
            in_table, table_depth = True, depth + 1
        elif in_table and start is None and depth == table_depth and words[:2] == ["chain", chain] \
                and code.endswith("{"):
            start = index
        opened, closed = code.count("{"), code.count("}")
        depth += opened - closed
        if start is not None and index > start and depth == table_depth:
            return start, index
        if in_table and depth < table_depth:
            in_table = False
    return None


def file_facts(text: str, family: str, table: str, chain: str) -> dict[str, str]:
    lines = text.splitlines()
    span = chain_span(lines, family, table, chain)
    if span is None:
        return {"file.chain": "missing", "file.rule": "no", "file.other": "no"}
    body = [_code(line) for line in lines[span[0] + 1:span[1]]]
    ours = any(line.strip() == RULE for line in lines[span[0] + 1:span[1]])
    other = any(_ACCEPTS_465.search(code) for code, raw in zip(body, lines[span[0] + 1:span[1]], strict=True)
                if raw.strip() != RULE)
    return {"file.chain": "present", "file.rule": "yes" if ours else "no", "file.other": "yes" if other else "no"}


def with_rule(text: str, family: str, table: str, chain: str) -> str:
    """The file with the rule's line: before the chain's final drop/reject line (with its indentation), else last
    in the chain. Unchanged when it is there already."""
    lines = text.splitlines(keepends=True)
    span = chain_span([line.rstrip("\n") for line in lines], family, table, chain)
    if span is None:
        raise NftError(f"no chain {chain} in table {family} {table} in the file")
    if any(line.strip() == RULE for line in lines[span[0] + 1:span[1]]):
        return text
    at, indent = span[1], None
    for index in range(span[1] - 1, span[0], -1):
        code = _code(lines[index])
        if not code:
            continue
        if _FINAL.match(code):
            at = index
        break
    for index in range(at - 1, span[0], -1):  # the indentation of the statements around it
        if _code(lines[index]) and not lines[index].lstrip().startswith("#"):
            indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
            break
    if indent is None:
        indent = lines[span[0]][: len(lines[span[0]]) - len(lines[span[0]].lstrip())] + "    "
    if at > 0 and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    lines.insert(at, f"{indent}{RULE}\n")
    return "".join(lines)


def without_rule(text: str, family: str, table: str, chain: str) -> str:
    """The file without the marked line(s) in the chain; every other byte as it was."""
    lines = text.splitlines(keepends=True)
    span = chain_span([line.rstrip("\n") for line in lines], family, table, chain)
    if span is None:
        return text
    kept = [line for index, line in enumerate(lines) if not (span[0] < index < span[1] and line.strip() == RULE)]
    return "".join(kept)


def _matches_465(expr: list[dict]) -> bool:
    for item in expr:
        match = item.get("match") if isinstance(item, dict) else None
        if not isinstance(match, dict):
            continue
        left, right = match.get("left"), match.get("right")
        payload = left.get("payload") if isinstance(left, dict) else None
        if not (isinstance(payload, dict) and payload.get("protocol") == "tcp" and payload.get("field") == "dport"):
            continue
        if right == PORT:
            return True
        values = right.get("set") if isinstance(right, dict) else None
        if isinstance(values, list) and PORT in values:
            return True
        if isinstance(values, list) and any(isinstance(v, dict) and isinstance(v.get("range"), list)
                                            and v["range"][0] <= PORT <= v["range"][1] for v in values):
            return True
    return False


def live_facts(listing: dict) -> dict[str, str]:
    """From `nft -j list chain ...`: our rules' handles, whether another rule accepts 465, the final drop's handle."""
    rules = [item["rule"] for item in listing.get("nftables", []) if isinstance(item, dict) and "rule" in item]
    ours = [str(rule["handle"]) for rule in rules if rule.get("comment") == MARK]
    other = any(rule.get("comment") != MARK and _matches_465(rule.get("expr", []))
                and any(isinstance(e, dict) and "accept" in e for e in rule.get("expr", [])) for rule in rules)
    final = ""
    if rules:
        last = rules[-1].get("expr", [])
        verdicts = [e for e in last if isinstance(e, dict) and not {"counter"} >= set(e)]
        if len(verdicts) == 1 and set(verdicts[0]) & {"drop", "reject"}:
            final = str(rules[-1]["handle"])
    return {"live.chain": "present", "live.rule": "yes" if ours else "no", "live.handles": ",".join(ours),
            "live.other": "yes" if other else "no", "live.final": final}


def _nft(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nft", *args], capture_output=True, text=True, check=False)


def _listing(family: str, table: str, chain: str) -> dict | None:
    found = _nft("-j", "-a", "list", "chain", family, table, chain)
    if found.returncode != 0:
        return None
    return json.loads(found.stdout)


def main(argv: list[str]) -> int:
    command, family, table, chain, *rest = argv
    if family not in _FAMILIES or not _NAME.fullmatch(table) or not _NAME.fullmatch(chain):
        print(f"bad nftables chain {family} {table} {chain}", file=sys.stderr)
        return 2
    if command == "facts":
        listing = _listing(family, table, chain)
        facts = live_facts(listing) if listing is not None else {"live.chain": "missing", "live.rule": "no",
                                                                 "live.handles": "", "live.other": "no",
                                                                 "live.final": ""}
        try:
            with open(rest[0]) as handle:
                facts |= file_facts(handle.read(), family, table, chain)
        except FileNotFoundError:
            facts |= {"file.chain": "missing", "file.rule": "no", "file.other": "no"}
        print("\n".join(f"nft.{key}={value}" for key, value in facts.items()))
        return 0
    if command in ("with-rule", "without-rule"):
        source, target = rest
        with open(source) as handle:
            text = handle.read()
        edit = with_rule if command == "with-rule" else without_rule
        with open(target, "w") as handle:
            handle.write(edit(text, family, table, chain))
        return 0
    listing = _listing(family, table, chain)
    if listing is None:
        print(f"no chain {chain} in table {family} {table} in the live ruleset", file=sys.stderr)
        return 1
    facts = live_facts(listing)
    if command == "add-live":
        if facts["live.rule"] == "yes":
            return 0
        where = ["insert", "rule", family, table, chain, "position", facts["live.final"]] if facts["live.final"] \
            else ["add", "rule", family, table, chain]
        done = _nft(*where, "tcp", "dport", str(PORT), "accept", "comment", f'"{MARK}"')
    elif command == "delete-live":
        done = subprocess.CompletedProcess([], 0, "", "")
        for handle in filter(None, facts["live.handles"].split(",")):
            done = _nft("delete", "rule", family, table, chain, "handle", handle)
            if done.returncode != 0:
                break
    else:
        print(f"unknown command {command}", file=sys.stderr)
        return 2
    if done.returncode != 0:
        print(done.stderr.strip(), file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
