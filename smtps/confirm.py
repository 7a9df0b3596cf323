"""Commit-confirmed firewalld reloads, the controller's half: a script that reloaded firewalld prints
`smtps-confirm=TOKEN`; the controller then logs in afresh and runs the confirm script with that token. Until then the
host's watcher is armed to put the previous firewall configuration back by itself."""

from __future__ import annotations

import re

from .templating import render

_TOKEN = re.compile(r"^smtps-confirm=(.*)$", re.MULTILINE)
_HEX = re.compile(r"[0-9a-f]{16}")


class ConfirmError(Exception):
    pass


def token(stdout: str) -> str | None:
    """The token a script asked to be confirmed with, or None. What a host printed is data: only 16 hex digits
    are taken, anything else is an error (it is rendered into the confirm script, quoted all the same)."""
    found = _TOKEN.findall(stdout)
    if not found:
        return None
    if len(found) != 1 or not _HEX.fullmatch(found[0]):
        raise ConfirmError(f"the host asked for a confirmation with a malformed token {found[0][:40]!r}")
    return found[0]


def script(host: str, value: str) -> str:
    if not _HEX.fullmatch(value):
        raise ConfirmError(f"malformed confirmation token {value[:40]!r}")
    return render("confirm.sh.j2", host=host, token=value)
