"""The master.cf service for port 465, edited with Postfix's own postconf -M/-MX (never by appending text)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .answers import answers
from .facts import HostFacts, read_script
from .master_cf import COLUMNS
from .model import Inputs, Model
from .option_rules import host_filter_checks
from .settings import (
    SERVICE_KEYS,
    Connection,
    MasterServiceSettings,
    Reader,
    TlsSettings,
    read_master_tls,
)
from .templating import Action, master_cf, render

Part = tuple[MasterServiceSettings, TlsSettings]


@dataclass(frozen=True)
class MasterServiceInputs(Inputs):
    service_key: str
    options: dict[str, str]
    # Every column of the entry (the type is `inet`: part of what `postconf -M KEY/inet` reads).
    private: str
    unprivileged: str
    chroot: str
    wakeup: str
    maxproc: str
    command: str
    # Entries for 465 under the other keys: none (two entries for one port stop Postfix starting the second).
    other_entries: list[str]
    tls_cert: str
    tls_key: str
    # Checked at preview (a dangerous option not named here is refused); not a fact of the host.
    allow_options: list[str]
    # Postfix must run: the apply checks it and says so, and never starts it (an operator stopped it for a reason).
    postfix: str


def script(host: str, part: Part, action: Action, connection: Connection | None = None, run: str = "",
           firewall: str = "") -> str:
    """`firewall`: the apply first checks that this firewall is on the host (auto: finds which one), before it
    changes anything, and prints what it found (smtps/firewall.py)."""
    master, tls = part
    # A content filter the stack did not allow on purpose: the host checks what the settings cannot know.
    value = dict(master.options).get("content_filter")
    checks = host_filter_checks(value) if value is not None and "content_filter" not in master.allowed else None
    return render("master_service.sh.j2", kind=MODEL.kind, host=host, action=action.value,
                  reloads_firewalld=False, master=master, tls=tls, keys=SERVICE_KEYS, master_cf=master_cf(), run=run,
                  firewall=firewall, content_filter=checks)


def wanted(part: Part) -> MasterServiceInputs:
    master, tls = part
    return MasterServiceInputs(
        service_key=master.key, options=dict(master.options), private=master.private,
        unprivileged=master.unprivileged, chroot=master.chroot, wakeup=master.wakeup, maxproc=master.maxproc,
        command=master.command, other_entries=[], tls_cert=tls.cert, tls_key=tls.key,
        allow_options=list(master.allowed), postfix="running")


def live(facts: HostFacts, part: Part) -> dict[str, Any]:
    if facts.postfix_unusable:
        # Its entries cannot be read as asked: the version says why, where "no entry" would mislead.
        return {"postfix": facts.postfix_unusable}
    master = part[0]
    # The entry under the wanted key, else under another key (an edit that renamed it shows as serviceKey).
    found = next((facts.master[key] for key in (master.key, *SERVICE_KEYS) if key in facts.master), None)
    others = sorted(key for key in facts.master if found is None or key != found.key)
    columns = dict.fromkeys(COLUMNS[1:], "") if found is None else {c: found.columns[c] for c in COLUMNS[1:]}
    return {"serviceKey": found.key if found else "", "options": dict(found.options) if found else {},
            **columns, "otherEntries": others, "postfix": facts.postfix}


def parse(read: Reader) -> Part | None:
    master, tls = read_master_tls(read)
    return None if master is None or tls is None else (master, tls)


# The apply's report of the certificate the entry serves: `smtps-cert-file=PATH` and `smtps-cert-sha256=HEX`.
REPORTS = {"smtps-cert-file": "certFile", "smtps-cert-sha256": "certSha256"}


def report(stdout: str) -> dict[str, Any]:
    said = answers(stdout)
    return {output: value.strip() for key, output in REPORTS.items() if (value := said.last(key)) is not None}


MODEL = Model(
    kind="master.cf service", inputs=MasterServiceInputs, identity=(),
    part=lambda settings: (settings.master, settings.tls), parse=parse, wanted=wanted, script=script,
    read_script=lambda host, _part: read_script(host, master=True), live=live, reports=tuple(REPORTS.values()),
    report=report)


def certificate_script(host: str, tls: TlsSettings) -> str:
    """Read-only: the certificate file 465 is given and its SHA-256, as the apply reports them (`report`)."""
    return render("certificate.sh.j2", host=host, tls=tls)
