"""Which firewall opens 465 on a host: the `firewall` setting, or what `auto` found there at the host's first apply.

The rule lives in one place, templates/_firewall.sh.j2, run on the host: by the master.cf apply before it changes
anything (the first apply on every host), by a firewall kind that has to decide without it, and by `drift`.
"""

from __future__ import annotations

from .remote import answers
from .settings import Firewall
from .templating import render

# The line an apply (or the script below) prints with what it found: smtps-firewall=firewalld|nftables.
REPORT = "smtps-firewall"
# The output each resource of a host keeps it under, once decided.
USED = "firewallUsed"


def script(host: str, firewall: Firewall | str) -> str:
    """Read only: prints `smtps-firewall=NAME`, or fails naming the host and why (nothing was changed)."""
    return render("firewall.sh.j2", host=host, firewall=str(firewall))


def found(stdout: str) -> Firewall | None:
    """What a script found, from its `smtps-firewall=` line (None where it printed none)."""
    value = answers(stdout).first(REPORT)
    return None if value is None else recorded(value.strip())


def recorded(value: object) -> Firewall | None:
    """A decision read back from the state or a host: data, never code. Only the two answers count."""
    return Firewall(value) if value in (Firewall.FIREWALLD.value, Firewall.NFTABLES.value) else None
