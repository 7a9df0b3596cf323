"""The master.cf service for port 465, edited with Postfix's own postconf -M/-MX (never by appending text)."""

from __future__ import annotations

from .settings import SERVICE_KEYS, MasterServiceSettings, TlsSettings
from .templating import Action, render


def script(host: str, master: MasterServiceSettings, tls: TlsSettings, action: Action) -> str:
    others = [key for key in SERVICE_KEYS if key != master.key]
    return render("master_service.sh.j2", kind="master.cf service", host=host, action=action.value,
                  reloads_firewalld=False, master=master, tls=tls, other_keys=others)
