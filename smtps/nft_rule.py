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
and the file is edited as text, one whole line in or out, so every other byte of it stays. The file is read as nft
reads it (strings, comments, statements; see _TOKEN), and what cannot be told from it alone is refused with its line.

The judgement (which line, which rule) is in pure functions over text and nft's JSON, tested without a host.
Shipped inside the host scripts as it is (never rendered): every value arrives as an argument. It runs on Python 3.6
and later: Ubuntu 18.04's python3 is 3.6 (docs/servers.md). So NamedTuple records rather than dataclasses (3.7),
typing's generics in annotations, which 3.6 evaluates, and subprocess.run without capture_output and text (3.7).
"""

import json
import re
import subprocess
import sys
from typing import Dict, List, NamedTuple, Optional, Set, Tuple, Union

MARK = "smtps-iredmail"
RULE = f'tcp dport 465 accept comment "{MARK}"'
PORT = 465
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_FAMILIES = ("inet", "ip", "ip6")
# A rule that accepts 465/tcp: `tcp dport 465 accept`, or 465 in a set (`tcp dport { 25, 465 } accept`); matched
# against the rule read as one line of words with its strings blank (_Statement.code).
_ACCEPTS_465 = re.compile(r"\btcp dport (?:465\b|\{[^}]*\b465\b[^}]*\})[^#]*\baccept\b")
# The chain's final verdict, as iRedMail writes it: `counter drop`, `drop`, `reject ...`, with nothing matched (and
# perhaps a comment of its own). Matched against a statement read as one line of words (_Statement.code).
_FINAL = re.compile(r'^(?:counter(?: packets \d+ bytes \d+)? )?(?:drop(?: comment "[^"]*")?|reject\b.*)$')


class NftError(Exception):
    """A file this program will not read or edit, with the line (1-based) that says why, when there is one."""

    def __init__(self, message: str, line: Optional[int] = None) -> None:
        super().__init__(message)
        self.line = line

    def where(self, path: str) -> str:
        return f"{path} line {self.line}: {self}" if self.line else f"{path}: {self}"


# The file is read as nft's own scanner reads it, because a reader that counts braces line by line is misled by
# what nft does not count: `"..."` is a string up to the next `"` (no escapes; it may cross lines), `#` outside a
# string starts a comment up to the end of the line, a backslash right before a newline joins two lines (inside a
# comment it is part of the comment), and `;` ends a statement as a newline does. Every other character belongs to a
# word; a file nft would refuse for such a word is refused by `nft -c` before it is used.
_TOKEN = re.compile(r'(?P<space>[ \t]+)|(?P<join>\\\n)|(?P<newline>\n)|(?P<comment>#[^\n]*)|(?P<string>"[^"]*")'
                    r'|(?P<brace>[{};])|(?P<word>(?:[^ \t\n{};"#\\]|\\(?!\n))+)')
_COMMENT_LINE = re.compile(r"[ \t]*#")
# Deeper nesting than any ruleset needs is refused rather than walked (a hostile file could nest thousands deep).
_MAX_DEPTH = 32
_ALL_FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
# The command words nft takes at the start of a statement outside any block (`add` when none is written).
_VERBS = {"add", "create", "insert", "replace", "delete", "destroy", "flush", "reset", "list", "rename", "get",
          "describe", "monitor", "export", "import", "update"}
# What takes away a chain (or all of a table or ruleset) once it is declared.
_REMOVES = {"flush", "delete", "destroy", "rename"}
# A chain's own settings, not rules: `type filter hook input priority 0;`, `policy drop;`, `comment "..."`.
_PROPERTIES = {"type", "policy", "comment", "devices", "priority", "hook", "flags"}
# A rule that ends the chain for every packet, whatever it is (nothing matched): counters, logs and its own comment,
# then a verdict that drops, rejects, queues, returns, or jumps or goes to another chain. Matched against the rule
# read as one line of words with its strings blank (_Statement.code). One before where the rule would go leaves the
# rule unreachable.
_ENDS_ALL = re.compile(r'^(?:(?:counter(?: name \S+| packets \d+ bytes \d+)?'
                       r'|log(?: (?:prefix|level|flags|group|snaplen|queue-threshold) \S+)*) )*'
                       r'(?:drop|reject\b.*|queue\b.*|return|jump \S+|goto \S+)(?: comment "")?$')
# Words by which a last rule that is not a plain drop/reject may still end the chain for 465 (or that name a value
# this program cannot see): the rule is then not put after it.
_MAY_END = {"drop", "reject", "jump", "goto", "queue", "return", "vmap"}


class _Token(NamedTuple):
    kind: str  # word, string, {, }, ; or \n
    text: str
    start: int  # offsets in the text
    end: int
    line: int


class _Block(NamedTuple):
    open: _Token
    close: _Token
    statements: List["_Statement"]


class _Statement(NamedTuple):
    items: List[Union[_Token, _Block]]

    @property
    def first(self) -> _Token:
        item = self.items[0]
        return item.open if isinstance(item, _Block) else item

    @property
    def last(self) -> _Token:
        item = self.items[-1]
        return item.close if isinstance(item, _Block) else item

    def head(self) -> List[_Token]:
        """The words (and strings) before the statement's first block."""
        words = []
        for item in self.items:
            if isinstance(item, _Block):
                break
            words.append(item)
        return words

    def block(self) -> Optional[_Block]:
        return next((item for item in self.items if isinstance(item, _Block)), None)

    def code(self, blank_strings: bool = False) -> str:
        """The statement as one line of words; with blank_strings every string reads `""`."""
        parts = []
        for item in self.items:
            if isinstance(item, _Block):
                inner = " ".join(statement.code(blank_strings) for statement in item.statements)
                parts.append(f"{{ {inner} }}" if inner else "{ }")
            else:
                parts.append('""' if blank_strings and item.kind == "string" else item.text)
        return " ".join(parts)


def _tokens(text: str) -> Tuple[List[_Token], Set[int]]:
    """nft's tokens of the text, and the offsets of the newlines that a backslash joins away."""
    tokens, joins, at, line = [], set(), 0, 1
    while at < len(text):
        found = _TOKEN.match(text, at)
        if found is None:  # only a `"` with no `"` after it matches nothing
            raise NftError('a quoted string that is never closed (no `"` after it)', line)
        kind = found.lastgroup
        if kind == "join":
            joins.add(found.end() - 1)
            # Newer nft versions take a whole comment line with its newline, so there the statement goes on past it;
            # earlier ones end the statement at that newline. Which one reads this file is not known here.
            if _COMMENT_LINE.match(text, found.end()):
                raise NftError("a `\\` joins this line to a comment line, which nft versions read differently",
                               line)
        elif kind in ("newline", "brace", "string", "word"):
            tokens.append(_Token("\n" if kind == "newline" else found.group() if kind == "brace" else kind,
                                 found.group(), found.start(), found.end(), line))
        line += found.group().count("\n")
        at = found.end()
    return tokens, joins


def _statements(tokens: List[_Token]) -> List[_Statement]:
    """The statements at the top of the file; a `{ ... }` is one item of its statement, holding its own."""
    top: List[_Statement] = []
    stack: List[Tuple[Optional[_Token], List[_Statement], list]] = [(None, top, [])]
    for token in tokens:
        _opening, statements, items = stack[-1]
        if token.kind in ("\n", ";"):
            if items:
                statements.append(_Statement(items))
                stack[-1] = (_opening, statements, [])
        elif token.kind == "{":
            if len(stack) > _MAX_DEPTH:
                raise NftError(f"braces nested more than {_MAX_DEPTH} deep", token.line)
            stack.append((token, [], []))
        elif token.kind == "}":
            if _opening is None:
                raise NftError("a `}` that closes no `{`", token.line)
            if items:
                statements.append(_Statement(items))
            stack.pop()
            stack[-1][2].append(_Block(_opening, token, statements))
        else:
            items.append(token)
    opening, statements, items = stack[-1]
    if opening is not None:
        raise NftError("a `{` that is never closed", opening.line)
    if items:
        statements.append(_Statement(items))
    return top


def _walk(statements: List[_Statement]):
    pending = list(statements)
    while pending:
        statement = pending.pop()
        yield statement
        pending.extend(inner for item in statement.items if isinstance(item, _Block) for inner in item.statements)


def _named(token: _Token, name: str, what: str) -> bool:
    """Whether a table's or chain's name token is this name; one this program cannot read is refused."""
    if token.kind == "string":  # nft 1.0 refuses quoted names; a later one may take them: read them as names
        return token.text[1:-1] == name
    if token.text.startswith("$"):
        raise NftError(f"a {what} named by a variable ({token.text}): which {what} it is cannot be told here",
                       token.line)
    return token.text == name


class _Chain(NamedTuple):
    statement: _Statement  # the `chain NAME { ... }` statement
    body: _Block


def _find_chain(text: str, family: str, table: str, chain: str) -> Tuple[Optional[_Chain], Set[int]]:
    """The one block that declares the chain, as nft would load the file; None when there is none. Refuses (NftError)
    a file where the chain's rules may come from more than that block, or where what follows may take them away:
    there the line that would go before the final drop is not known to be before it when nft loads the file."""
    crlf = text.find("\r\n")
    crlf = crlf if crlf >= 0 or not text.endswith("\r") else len(text) - 1
    if crlf >= 0:
        # nft's reading of a `\r` (a blank, or part of a word or of a comment) is not this reader's: refused by name
        # rather than misread (a chain would seem to end in something other than its drop).
        raise NftError("a line ends with a carriage return (`\\r\\n`, as a file saved with Windows line ends): "
                       "this program reads `\\n` line ends only; convert the file (dos2unix) and run again",
                       text.count("\n", 0, crlf) + 1)
    tokens, joins = _tokens(text)
    statements = _statements(tokens)
    for statement in _walk(statements):
        if statement.head() and statement.head()[0].text == "include":
            raise NftError("an include: what it loads can add to, close or take away the chain, and this program "
                           "reads this file only", statement.first.line)
    sites: List[_Chain] = []
    removals: List[_Statement] = []
    for statement in statements:
        words = statement.head()
        if not words or words[0].kind != "word" or words[0].text in ("define", "redefine", "undefine"):
            continue
        verb, rest = (words[0].text, words[1:]) if words[0].text in _VERBS else ("add", words)
        if not rest:
            continue
        what = rest[0].text
        spec = rest[1:]
        if what == "ruleset":
            if verb in _REMOVES and (not spec or spec[0].text == family):
                removals.append(statement)
            continue
        if what not in ("table", "chain", "rule"):
            continue
        if spec and spec[0].kind == "word" and spec[0].text in _ALL_FAMILIES:
            named, names = spec[0].text, spec[1:]
        else:
            named, names = "ip", spec  # nft's default family
        if named != family or not names or not _named(names[0], table, "table"):
            continue
        body = statement.block()
        if what == "table":
            if verb in _REMOVES:
                removals.append(statement)
            for inner in body.statements if body else []:
                head = inner.head()
                if len(head) >= 2 and head[0].text == "chain" and _named(head[1], chain, "chain") and inner.block():
                    sites.append(_Chain(inner, inner.block()))
            continue
        if len(names) < 2:
            continue
        if what == "chain" and verb == "rename" and len(names) >= 3 and _named(names[2], chain, "chain"):
            removals.append(statement)
        if what == "chain" and verb in _REMOVES and names[1].text == "handle":
            removals.append(statement)  # a chain by its handle: it may be this one
        if not _named(names[1], chain, "chain"):
            continue
        if what == "rule":
            raise NftError(f"`{verb} rule` for the chain outside its block: where its rules end when nft loads the "
                           "file cannot be told here", statement.first.line)
        if body is not None and verb in ("add", "create"):
            sites.append(_Chain(statement, body))
        elif verb in _REMOVES or body is not None:
            removals.append(statement)
    if not sites:
        return None, joins
    if len(sites) > 1:
        raise NftError(f"the chain is declared again (first at line {sites[0].statement.first.line}): nft joins the "
                       "two, so which one ends the chain cannot be told here", sites[1].statement.first.line)
    found = sites[0]
    for statement in removals:
        if statement.first.start > found.statement.first.start:
            raise NftError(f"`{statement.code()}` after the chain's block takes away or changes what it declares",
                           statement.first.line)
    return found, joins


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def _alone(text: str, first: _Token, last: _Token) -> bool:
    """Whether these tokens, on one line, are all that line holds besides blanks."""
    end = text.find("\n", last.end)
    return first.line == last.line and not text[_line_start(text, first.start):first.start].strip(" \t") \
        and not text[last.end:len(text) if end < 0 else end].strip(" \t")


def _ours(text: str, found: _Chain) -> List[_Statement]:
    """The chain's statements that are this tool's rule, each alone on its line (so that it can come out whole)."""
    ours = []
    for statement in found.body.statements:
        if statement.code() != RULE:
            continue
        if not _alone(text, statement.first, statement.last):
            raise NftError("this tool's rule shares its line with other text: put it on a line of its own, or take "
                           "it out", statement.first.line)
        ours.append(statement)
    return ours


def chain_lines(text: str, family: str, table: str, chain: str) -> Optional[Tuple[int, int]]:
    """(line of the `chain NAME {` statement, line of its closing `}`), 1-based, or None when there is no chain."""
    found, _joins = _find_chain(text, family, table, chain)
    return None if found is None else (found.statement.first.line, found.body.close.line)


def file_facts(text: str, family: str, table: str, chain: str) -> Dict[str, str]:
    found, _joins = _find_chain(text, family, table, chain)
    if found is None:
        return {"file.chain": "missing", "file.rule": "no", "file.other": "no"}
    ours = _ours(text, found)
    # Strings read as `""`: a comment that spells `tcp dport 465 accept` accepts nothing.
    other = any(_ACCEPTS_465.search(statement.code(blank_strings=True))
                for statement in found.body.statements if statement not in ours)
    return {"file.chain": "present", "file.rule": "yes" if ours else "no", "file.other": "yes" if other else "no"}


def with_rule(text: str, family: str, table: str, chain: str) -> str:
    """The file with the rule's line: before the chain's final drop/reject (with that line's indentation), else last
    in the chain. Unchanged when it is there already. Where the line would not be a statement of its own, right
    there, nothing is guessed: NftError."""
    found, joins = _find_chain(text, family, table, chain)
    if found is None:
        raise NftError(f"no chain {chain} in table {family} {table} in the file")
    if _ours(text, found):
        return text
    rules = [statement for statement in found.body.statements
             if statement.head() and statement.head()[0].text not in _PROPERTIES]
    final = rules[-1] if rules else None
    ahead = rules[:-1] if final is not None and _FINAL.match(final.code()) else rules
    for rule in ahead:
        if _ENDS_ALL.match(rule.code(blank_strings=True)):
            raise NftError(f"`{rule.code()}` ends the chain for every packet before where this tool's rule would go "
                           "(before the chain's final drop/reject, or last): the rule would never be reached. Make "
                           "the chain end in one drop or reject, after every rule that accepts", rule.first.line)
    if final is not None and _FINAL.match(final.code()):
        before, where = final.first, f"the chain's final `{final.code()}`"
        indent = text[_line_start(text, before.start):before.start]
    else:
        seen = final.code(blank_strings=True) if final is not None else ""
        if _MAY_END & set(seen.split()) or "$" in seen:
            raise NftError(f"the chain's last rule, `{final.code()}`, is not a plain drop or reject but may still end "
                           "the chain for 465: this tool puts its rule before a final drop/reject, or last after "
                           "rules that do not drop", final.first.line)
        before, where = found.body.close, "the chain's closing `}`"
        last = found.body.statements[-1].first if found.body.statements else None
        if last is not None and not text[_line_start(text, last.start):last.start].strip(" \t"):
            indent = text[_line_start(text, last.start):last.start]
        else:
            indent = text[_line_start(text, before.start):before.start] + "    "
    start = _line_start(text, before.start)
    if text[start:before.start].strip(" \t"):
        raise NftError(f"{where} does not begin its line, so the rule's line cannot go right before it",
                       before.line)
    if start - 1 in joins:
        raise NftError(f"the line before {where} ends with a `\\` that joins it to the next, so a line put there "
                       "would join that statement", before.line - 1)
    return text[:start] + f"{indent}{RULE}\n" + text[start:]


def without_rule(text: str, family: str, table: str, chain: str) -> str:
    """The file without the marked line(s) in the chain; every other byte as it was."""
    found, _joins = _find_chain(text, family, table, chain)
    if found is None:
        return text
    for statement in reversed(_ours(text, found)):
        start, end = _line_start(text, statement.first.start), text.find("\n", statement.last.end)
        text = text[:start] + text[len(text) if end < 0 else end + 1:]
    return text


def _matches_465(expr: List[dict]) -> bool:
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


def _ends_all(rule: dict) -> bool:
    """A live rule that ends the chain for every packet: only counters and logs, then a drop, reject, queue, return,
    jump or goto (nft's JSON, where the rule's comment is not an expression)."""
    kinds = set().union(*(set(e) for e in rule.get("expr", []) if isinstance(e, dict)))
    verdicts = kinds & {"drop", "reject", "queue", "return", "jump", "goto"}
    return bool(verdicts) and kinds <= {"counter", "log"} | verdicts


def live_facts(listing: dict) -> Dict[str, str]:
    """From `nft -j list chain ...`: our rules' handles, whether another rule accepts 465, the final drop's handle,
    and a rule before where ours would go that ends the chain for every packet (`live.blocked`, its handle)."""
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
    ahead = rules[:-1] if final else rules
    blocked = next((str(rule["handle"]) for rule in ahead if rule.get("comment") != MARK and _ends_all(rule)), "")
    return {"live.chain": "present", "live.rule": "yes" if ours else "no", "live.handles": ",".join(ours),
            "live.other": "yes" if other else "no", "live.final": final, "live.blocked": blocked}


def _nft(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nft", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          check=False)


def _listing(family: str, table: str, chain: str) -> Optional[dict]:
    found = _nft("-j", "-a", "list", "chain", family, table, chain)
    if found.returncode != 0:
        return None
    return json.loads(found.stdout)


def _read(path: str) -> str:
    # Bytes as they are: what is not UTF-8 (in a comment, say) goes back out unchanged; `\r` stays `\r`.
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        return handle.read()


def main(argv: List[str]) -> int:
    command, family, table, chain, *rest = argv
    if family not in _FAMILIES or not _NAME.fullmatch(table) or not _NAME.fullmatch(chain):
        print(f"bad nftables chain {family} {table} {chain}", file=sys.stderr)
        return 2
    try:
        if command == "facts":
            listing = _listing(family, table, chain)
            facts = live_facts(listing) if listing is not None else {"live.chain": "missing", "live.rule": "no",
                                                                     "live.handles": "", "live.other": "no",
                                                                     "live.final": "", "live.blocked": ""}
            try:
                facts.update(file_facts(_read(rest[0]), family, table, chain))
            except FileNotFoundError:
                facts.update({"file.chain": "missing", "file.rule": "no", "file.other": "no"})
            except NftError as error:
                # Said as a fact, so drift names why the file is not read rather than "cannot be read".
                why = " ".join(error.where(rest[0]).split())
                facts.update({"file.chain": "refused", "file.rule": "no", "file.other": "no", "file.why": why})
            print("\n".join(f"nft.{key}={value}" for key, value in facts.items()))
            return 0
        if command in ("with-rule", "without-rule"):
            source, target = rest
            edit = with_rule if command == "with-rule" else without_rule
            edited = edit(_read(source), family, table, chain)
            with open(target, "w", encoding="utf-8", errors="surrogateescape", newline="") as handle:
                handle.write(edited)
            return 0
    except NftError as error:
        # Named by file and line, before anything is changed: the run stops here.
        print(f"{error.where(rest[0])} (read as nft reads it; nothing was changed)", file=sys.stderr)
        return 1
    listing = _listing(family, table, chain)
    if listing is None:
        print(f"no chain {chain} in table {family} {table} in the live ruleset", file=sys.stderr)
        return 1
    facts = live_facts(listing)
    if command == "add-live":
        if facts["live.rule"] == "yes":
            return 0
        if facts["live.blocked"]:
            print(f"in the live chain {family} {table} {chain}, the rule with handle {facts['live.blocked']} ends the "
                  "chain for every packet before where this tool's rule would go (before the final drop/reject, or "
                  "last): the rule would never be reached; nothing was changed", file=sys.stderr)
            return 1
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
