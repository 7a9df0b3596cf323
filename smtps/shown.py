"""Text that hosts and their SMTP servers wrote, made safe to print: `shown(text)`.

What a host says (a script's stderr, a postconf value, an SMTP reply, a certificate's subject) reaches the operator's
terminal and CI logs through failure summaries, the drift and verify tables and the engine's streamed output. Printed
as it came, a control character acts on the reader's screen (`ESC [ 2 J` clears it, OSC 8 makes a link, `\\r`
overwrites the start of a line) and a bidi override shows text in another order than it is stored. And a line that
starts with `::` (or the older `##[`) is a command to a GitHub Actions runner, which trims leading white space
before it looks: `::add-mask::`, `::set-env`, `::stop-commands::`; the older `##[` form it finds anywhere in a
line. So every such character is shown as an escape (`\\x1b`, `\\u202e`, `\\n`), which also keeps the text on one
line, a leading `::` is broken by escaping its first character, and so is every `##[`, wherever it is. Backslashes
stay as they are: the escapes are for reading, not for decoding. `shown_json` does the same for JSON output, with
JSON's own escape, so the text still decodes to the same values.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

# Control characters (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width ones, tag
# characters), line and paragraph separators, surrogates (undecodable bytes) and private-use characters.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# A workflow command at the start of the text (after white space, which the runner trims): `::name`.
_COMMAND = re.compile(r"^(\s*)(?=::)(.)")
# The older form, `##[name`, which the runner looks for anywhere in a line: the `#` that starts it. Escaping that one
# leaves no `##[` behind, in a run of several `#` too.
_LEGACY = re.compile(r"#(?=#\[)")


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    if unicodedata.category(char) not in _HIDDEN_CATEGORIES:
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def shown(text: object) -> str:
    """`text` (a str, or anything printable) with every control and invisible format character escaped, on one
    line, never starting with a `::` workflow command and holding no `##[` one."""
    text = str(text)
    if not text.isprintable():
        text = "".join(map(_escape, text))
    text = _LEGACY.sub(r"\\x23", text)
    return _COMMAND.sub(lambda found: f"{found.group(1)}\\x{ord(found.group(2)):02x}", text, count=1)


def shown_json(value: Any, **dumps: Any) -> str:
    """`json.dumps(value, **dumps)`, safe to print as `shown` is: json.dumps escapes control characters (and, by
    default, everything outside ASCII) but leaves `##[` as it is. In JSON a `#` appears only inside a string, where
    `\\u0023` is the same character: the text decodes to the same value. (No line of it can start with `::`: each
    starts with white space and a bracket, a quote, a digit or a literal.)"""
    return _LEGACY.sub(r"\\u0023", json.dumps(value, **dumps))
