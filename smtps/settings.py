"""The settings every kind shares: the port, the connection to a host, the policy for a port already open, and the
error every reader raises. Each kind's own settings sit in its module (smtps/<kind>.py); the Reader that checks
values is smtps/reader.py's, and a host's settings merged from a stack's layers are smtps/hosts.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .lockout_guard import PENDING_CHOICES

# All three mean port 465 in master.cf. A host with any of them is converged in place, never given a second one.
SERVICE_KEYS = ("465", "smtps", "submissions")
SMTPS_PORT = 465
# How long a host waits for a fresh SSH login to confirm a firewalld reload before it puts the previous firewall
# configuration back by itself (commit-confirmed, as Juniper's `commit confirmed` or `netplan try`).
CONFIRM_SECONDS = 60


class PortPolicy(StrEnum):
    """What to do when the zone already opens 465 by a raw `<port>` (iRedMail >= 1.5 writes one).

    keep:    leave the zone as found; the port already does what the service would. Nothing is added.
    replace: remove the raw port and add the service instead; destroy puts the port back.
    """

    KEEP = "keep"
    REPLACE = "replace"


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class CheckSettings:
    """What the check from outside demands of the served certificate, beyond matching the file on the host."""

    min_days: int  # fail when it expires within this many days
    tls_name: str | None  # strict mode: the name the certificate must carry
    ca_bundle: str | None  # strict mode: a CA bundle on the machine running Pulumi that must verify the chain


# What the lockout guard does with firewalld state that this run did not write (firewalldPending). refuse: any
# difference between the permanent and the running configuration stops the reload. drop-runtime-only: state kept
# only at runtime in rich rules, ipset entries and direct rules (fail2ban's firewalld actions keep their bans so),
# which every reload drops, no longer stops it; anything pending in the permanent configuration still does. The
# guard, which runs on the host on its own, holds the choices.
@dataclass(frozen=True)
class Connection:
    """How to reach a machine over SSH. `jump` is the bastion the connection goes through (None: direct); `name`
    names a bastion in messages (a mail host's connection leaves it empty: the host is named by its settings)."""

    address: str
    port: int
    user: str
    host_key: str
    jump: Connection | None = None
    name: str = ""
    # Seconds the host waits for a fresh login after a firewalld reload before it reverts that reload by itself.
    confirm_seconds: int = CONFIRM_SECONDS
    # What the lockout guard does before a reload with runtime-only state this run did not write (PENDING_CHOICES).
    firewalld_pending: str = PENDING_CHOICES[0]


def reload_values(connection: Connection | None) -> dict[str, object]:
    """What a host script that may reload firewalld is rendered with: the connection's, or the defaults."""
    if connection is None:
        return {"confirm_seconds": CONFIRM_SECONDS, "firewalld_pending": PENDING_CHOICES[0]}
    return {"confirm_seconds": connection.confirm_seconds, "firewalld_pending": connection.firewalld_pending}

