"""Verified or rolled back: when a host this run changed fails the check from outside, this run's changes on it are
undone. The scripts keep a snapshot of every file they change, the first time in a run (templates/_prologue.sh.j2,
`keep_for_run`); the rollback script (templates/rollback.sh.j2) puts those back. `--no-rollback` (this variable set
in the engine's environment) keeps the failed state, for debugging."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass

from .answers import answers
from .nftables_rule import NftablesSettings
from .settings import Connection, reload_values
from .templating import lockout_guard, nft_rule, render
from .zone_membership import PORT

NO_ROLLBACK_ENV = "SMTPS_NO_ROLLBACK"
_SNAPSHOT_ID = re.compile(r"[0-9a-f]{16}")
# The rollback script's answer line: smtps-rollback=none|done|partial:FILE...
REPORT = "smtps-rollback"


def new_snapshot_id() -> str:
    """The name of one engine operation's snapshot on the hosts (one per provider process: every script of it keeps
    the files it changes under it, and its rollback puts those back): 16 hex digits (rendered into scripts, quoted all
    the same)."""
    return secrets.token_hex(8)


def enabled() -> bool:
    return os.environ.get(NO_ROLLBACK_ENV, "") in ("", "0")


def script(host: str, snapshot_id: str, connection: Connection | None = None, zone: str = "", service: str = "",
           nft: NftablesSettings | None = None) -> str:
    """The rollback of the snapshot `snapshot_id` on `host`. `zone`, `service`: the host's firewalld zone and service,
    the only ones a journal line or a firewalld file of the snapshot may name (none: no firewalld change is taken as
    this run's).
    `nft`: the chain of a host whose firewall is nftables, the only one an nftables journal line may name (none:
    a firewalld host, where no such line is this run's)."""
    if not _SNAPSHOT_ID.fullmatch(snapshot_id):
        raise ValueError(f"malformed snapshot id {snapshot_id[:40]!r}")
    return render("rollback.sh.j2", kind="rollback", host=host, action="rollback", reloads_firewalld=True,
                  guard=lockout_guard(), nft_rule=nft_rule(), snapshot_id=snapshot_id,
                  zone=zone, service=service, port=PORT,
                  nft_chain=f"{nft.family} {nft.table} {nft.chain}" if nft else "",
                  **reload_values(connection))


@dataclass(frozen=True)
class Outcome:
    """What became of a host whose check failed: `answer` is the rollback script's own (`result`: done, none,
    partial: FILE...), None where no rollback ran or it failed; `words` say it in the failure's line."""

    words: str
    answer: str | None = None

    @property
    def undone(self) -> bool:
        """This run's changes were taken off the host (all, or all but what someone else changed since)."""
        return self.answer is not None and (self.answer == "done" or self.answer.startswith("partial:"))


def result(stdout: str) -> str | None:
    """"done" (what this run changed is back), "none" (this run changed nothing there), "partial: FILE..." (the
    files named were changed by someone else since this run wrote them, and left as they are), or None."""
    found = [value for value in answers(stdout).all(REPORT)
             if value in ("none", "done") or value.startswith("partial:")]
    return found[-1] if found else None
