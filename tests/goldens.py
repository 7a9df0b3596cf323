"""Golden files: rendered output compared byte for byte with a file under tests/golden/ (UPDATE_GOLDEN=1 rewrites).

Where most of a text is another golden file's, its golden holds only its `changes` to that one: exact (the other
file and these give back the text, line for line), and short."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"
# A run of more removed lines than this shows as its line numbers only (the base file has them).
SHOWN_REMOVED = 3


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from its golden file (UPDATE_GOLDEN=1 rewrites it)"


def _range(start: int, length: int) -> str:
    """A unified diff's line range: the first line (for none, the line before) and the count, unless 1."""
    first = start + 1 if length else start
    return f"{first}" if length == 1 else f"{first},{length}"


def changes(base: str, text: str, base_name: str) -> list[str]:
    """`text` as its changes to `base`: unified diff hunks without context lines, each removed line (a longer run
    only by its line numbers in `base_name`) and every added one. Empty: the same text. A missing final newline
    counts as a change of the last line."""
    old, new = base.split("\n"), text.split("\n")
    lines = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        lines.append(f"@@ -{_range(i1, i2 - i1)} +{_range(j1, j2 - j1)} @@")
        if i2 - i1 > SHOWN_REMOVED:
            lines.append(f"-[{i2 - i1} lines of {base_name}: {i1 + 1} to {i2}]")
        else:
            lines += [f"-{line}" for line in old[i1:i2]]
        lines += [f"+{line}" for line in new[j1:j2]]
    return lines


def patched(base: str, lines: list[str]) -> str:
    """`base` with `changes` applied: the text they were taken from (the test of `changes` itself)."""
    old = base.split("\n")
    out: list[str] = []
    at = 0
    for line in lines:
        if line.startswith("@@ "):
            removed, added = line.split()[1:3]
            start, _, count = removed[1:].partition(",")
            length = int(count or 1)
            first = int(start) - 1 if length else int(start)
            out += old[at:first]
            at = first + length
        elif line.startswith("+"):
            out.append(line[1:])
    return "\n".join(out + old[at:])
