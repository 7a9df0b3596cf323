"""master.cf entries: run ON a mail host (python3, standard library and Postfix's `postconf`), to read the master.cf
entries as Postfix reads them and plan what the master.cf script changes.

    master_cf facts KEY...            master.KEY=ENTRY (white space folded) for each KEY with an inet entry
    master_cf plan KEY ENTRY KEY... [--filter TRANSPORT PORT]
                                      what the apply does (field=value lines; see Plan and plan_lines)

`postconf -M` stays the source of truth: it is what reads master.cf (comments, continuation lines, its own checks),
once per command, and this program only reads its output. The one reader of an entry: the facts behind `pulumi
refresh` and `drift` (smtps/facts.py parses the same text with `fields`) and the apply's decisions both use it.

The judgement (is the entry as wanted, which other keys hold 465, what the content filter's transport and port are)
is in pure functions over `postconf -M` output, tested without a host. Shipped inside the host scripts as it is
(never rendered): every value arrives as an argument. It runs on Python 3.6 and later: where python3 is missing, it is
firewalld's own Python, on RHEL 8 and its rebuilds platform-python, Python 3.6 (docs/servers.md). So NamedTuple
records rather than dataclasses (3.7), and typing's generics in annotations, which 3.6 evaluates.
"""

import os
import re
import socket
import subprocess
import sys
from typing import Dict, List, NamedTuple, Optional, Tuple

# master.cf's columns after the service name, in order (master(5)).
COLUMNS = ("type", "private", "unprivileged", "chroot", "wakeup", "maxproc", "command")
# White space as master.cf and `postconf -M` use it between fields (and at a wrapped line's start).
_SPACE = re.compile(r"[ \t\n]+")
_DIGITS = re.compile(r"[0-9]+")


def fold(text: str) -> str:
    """An entry's text with white space folded: `postconf -M` pads the columns and may wrap a long entry."""
    return " ".join(word for word in _SPACE.split(text) if word)


def fields(text: str) -> Tuple[str, Dict[str, str], List[Tuple[str, str]]]:
    """An entry (`465 inet n - n - - smtpd -o a=b ...`) as its service name, its columns and its -o overrides, in
    the order written."""
    head, *overrides = fold(text).split(" -o ")
    words = head.split(" ")
    service, columns_read = words[0], words[1:]
    columns = {name: columns_read[i] if i < len(columns_read) else "" for i, name in enumerate(COLUMNS)}
    if len(columns_read) > len(COLUMNS):
        # Arguments of the command other than -o (master.cf allows them): part of what the command is.
        columns["command"] = " ".join(columns_read[len(COLUMNS) - 1:])
    options = [(name, value) for name, _, value in (part.partition("=") for part in overrides)]
    return service, columns, options


def canon(text: str) -> Tuple[str, Tuple[str, ...]]:
    """An entry in the form two readings of it are compared in: white space folded and the -o overrides sorted
    (their order does not change what Postfix does, and a stack's options come as a mapping)."""
    head, *overrides = fold(text).split(" -o ")
    return head, tuple(sorted(overrides))


def entries(listing: str) -> List[List[str]]:
    """`postconf -M` output as entries, each its lines as printed: a line that starts with white space continues
    the entry before it (postconf wraps long entries so)."""
    found: List[List[str]] = []
    for line in listing.splitlines():
        if not line.strip(" \t"):
            continue
        if line[0] in " \t" and found:
            found[-1].append(line)
        else:
            found.append([line])
    return found


def matching(listing: str, name: str, kind: str) -> List[List[str]]:
    """The entries `postconf -M NAME/KIND` prints: those with that service name and type."""
    found = []
    for entry in entries(listing):
        words = fold(" ".join(entry)).split(" ")
        if len(words) > 1 and words[0] == name and words[1] == kind:
            found.append(entry)
    return found


def service(listing: str, name: str, kind: str) -> str:
    """What `postconf -M NAME/KIND` prints: the lines of every entry with that service name and type, or ""."""
    return "\n".join(line for entry in matching(listing, name, kind) for line in entry)


def inet_ports(listing: str) -> List[str]:
    """The port of each inet service, as its name gives it (`465`, `smtp`, `127.0.0.1:10025` -> `10025`)."""
    ports = []
    for entry in entries(listing):
        words = fold(entry[0]).split(" ")
        if len(words) > 1 and words[1] == "inet":
            ports.append(words[0].rsplit(":", 1)[-1])
    return ports


class Filter(NamedTuple):
    """A content filter the stack did not allow on purpose (smtps/option_rules.py): its transport and port."""

    transport: str
    port: str


class Facts(NamedTuple):
    """What the apply reads of the host: `postconf -M` output, and the number of each named port of an inet
    service, as /etc/services gives it (resolved before the plan: `ports`)."""

    listing: str
    ports: Dict[str, str]


class Wanted(NamedTuple):
    key: str
    entry: str  # the whole entry, as `postconf -M KEY/inet=ENTRY` takes it
    keys: Tuple[str, ...]  # every key 465 may be under, in the order destroy looks for the one found
    content_filter: Optional[Filter] = None


class Plan(NamedTuple):
    refuse: str  # "" | no_transport | listener (the words are the settings', smtps/option_rules.py)
    write: bool  # the entry is set (it is missing or differs, or another key holds 465)
    current: bool  # KEY/inet has an entry now
    others: Tuple[str, ...]  # the other keys with an inet entry: removed (two entries for one port stop Postfix)
    found_key: str  # the first of `keys` with an entry, and its lines as postconf prints them: kept for destroy
    found: str


def refusal(facts: Facts, content_filter: Optional[Filter]) -> str:
    """What only this host knows of a content filter: its transport is a master.cf SMTP client (an LMTP one could
    hand mail straight to Dovecot), and its port is none of Postfix's own listeners (iRedMail's re-injection on
    10025, or 25, 587, 465: Postfix itself, so the mail would skip the filter)."""
    if content_filter is None:
        return ""
    commands = [fields(" ".join(entry))[1]["command"].split(" ")[0]
                for entry in matching(facts.listing, content_filter.transport, "unix")]
    if commands != ["smtp"]:
        return "no_transport"
    for port in inet_ports(facts.listing):
        # A named port (smtp, submission) is the one /etc/services gives it, as Postfix reads it. Compared as
        # numbers: Postfix reads 025 as port 25; leading zeros go (the setting's port has none), so a number of any
        # length compares exactly, with no overflow.
        number = port if _DIGITS.fullmatch(port) or not port else facts.ports.get(port, "")
        if number.lstrip("0") == content_filter.port:
            return "listener"
    return ""


def plan(facts: Facts, wanted: Wanted) -> Plan:
    """What the apply does: nothing when the entry reads as wanted and no other key holds 465; else the entry is set
    and the other keys' entries go (the same port under another key is replaced, never kept beside ours)."""
    current = service(facts.listing, wanted.key, "inet")
    others = tuple(key for key in wanted.keys if key != wanted.key and service(facts.listing, key, "inet"))
    found_key = next((key for key in wanted.keys if service(facts.listing, key, "inet")), "")
    return Plan(refuse=refusal(facts, wanted.content_filter),
                write=canon(current) != canon(wanted.entry) or bool(others), current=bool(current), others=others,
                found_key=found_key, found=service(facts.listing, found_key, "inet") if found_key else "")


def plan_lines(result: Plan) -> List[str]:
    """The plan as the script reads it: one field=value line each; `found` one line per line of the entry."""
    lines = [f"refuse={result.refuse}", f"write={'yes' if result.write else 'no'}",
             f"current={'yes' if result.current else 'no'}", f"others={' '.join(result.others)}",
             f"found.key={result.found_key}"]
    return lines + [f"found.line={line}" for line in result.found.split("\n") if result.found]


def facts_lines(listing: str, keys: List[str]) -> List[str]:
    """The master.cf part of the host's facts (smtps/facts.py parses them): each key's inet entry, folded (empty:
    no entry)."""
    return [f"master.{key}={fold(service(listing, key, 'inet'))}" for key in keys]


def _postconf() -> str:
    """`postconf -M` as Postfix reads master.cf. A master.cf it cannot read reads as no entries, as an entry asked of
    it alone would."""
    done = subprocess.run(["postconf", "-M"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    return os.fsdecode(done.stdout)


def _port_numbers(listing: str) -> Dict[str, str]:
    numbers = {}
    for port in inet_ports(listing):
        if port and not _DIGITS.fullmatch(port):
            try:
                numbers[port] = str(socket.getservbyname(port, "tcp"))
            except OSError:
                numbers[port] = ""
    return numbers


def _print(lines: List[str]) -> None:
    # Bytes as Postfix printed them, whatever the locale says of their encoding.
    sys.stdout.buffer.write(b"".join(os.fsencode(line) + b"\n" for line in lines))


def main(argv: List[str]) -> int:
    if argv[:1] == ["facts"]:
        _print(facts_lines(_postconf(), argv[1:]))
        return 0
    if argv[:1] == ["plan"] and len(argv) >= 3:
        content_filter = None
        if len(argv) >= 6 and argv[-3] == "--filter":
            content_filter = Filter(argv[-2], argv[-1])
            argv = argv[:-3]
        listing = _postconf()
        facts = Facts(listing, _port_numbers(listing) if content_filter else {})
        _print(plan_lines(plan(facts, Wanted(argv[1], argv[2], tuple(argv[3:]), content_filter))))
        return 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
