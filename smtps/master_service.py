"""The master.cf service for port 465, edited with Postfix's own postconf -M/-MX (never by appending text): its
inputs, its settings and how they are read, its decision (wanted and as found) and its script."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from .answers import answers
from .facts import HostFacts, read_script
from .master_cf import COLUMNS
from .model import Inputs, Model, setting
from .option_rules import KEEP, host_filter_checks, refusal, removal_risk, risk
from .reader import PARAM, PATH, PATH_WHAT, Reader, optional, show
from .settings import SERVICE_KEYS, Connection
from .templating import Action, master_cf, render

# iRedMail's stanza: iRedMail >= 1.5.0 writes exactly this (the lab's iredmail-1.5 master.cf has it).
IREDMAIL_OPTIONS: tuple[tuple[str, str], ...] = (
    ("syslog_name", "postfix/smtps"),
    ("smtpd_tls_wrappermode", "yes"),
    ("smtpd_sasl_auth_enable", "yes"),
    ("smtpd_client_restrictions", "permit_sasl_authenticated,reject"),
    ("content_filter", "smtp-amavis:[127.0.0.1]:10026"),
)


@dataclass(frozen=True)
class MasterServiceInputs(Inputs):
    service_key: str = setting("465")
    options: dict[str, str] = setting(dict(IREDMAIL_OPTIONS))
    # Every column of the entry (the type is `inet`: part of what `postconf -M KEY/inet` reads).
    private: str
    unprivileged: str
    chroot: str = setting("n")
    wakeup: str
    maxproc: str = setting("-")
    command: str
    # Entries for 465 under the other keys: none (two entries for one port stop Postfix starting the second).
    other_entries: list[str]
    tls_cert: str = setting(None)
    tls_key: str = setting(None)
    # Checked at preview (a dangerous option not named here is refused); not a fact of the host.
    allow_options: list[str] = setting([])
    # Postfix must run: the apply checks it and says so, and never starts it (an operator stopped it for a reason).
    postfix: str


KEY = MasterServiceInputs.key
_MAXPROC = re.compile(r"-|[0-9]{1,5}")


@dataclass(frozen=True)
class MasterServiceSettings:
    key: str
    options: tuple[tuple[str, str], ...]
    private: str = "n"
    unprivileged: str = "-"
    chroot: str = "n"
    wakeup: str = "-"
    maxproc: str = "-"
    command: str = "smtpd"
    # Options allowed although they open relaying or bypass the content filter (smtps/option_rules.py).
    allowed: tuple[str, ...] = ()

    @property
    def entry(self) -> str:
        """The whole master.cf entry on one line, as `postconf -M key/inet=...` takes it."""
        fields = [self.key, "inet", self.private, self.unprivileged, self.chroot, self.wakeup, self.maxproc,
                  self.command]
        return " ".join(fields + [f"-o {name}={value}" for name, value in self.options])


@dataclass(frozen=True)
class TlsSettings:
    """The certificate and key the 465 entry serves (each None: main.cf's, which the apply reads and reports)."""

    cert: str | None
    key: str | None


# The master.cf options the TLS settings become (a stack sets them with tlsCert/tlsKey, never as options).
TLS_OPTIONS = {"smtpd_tls_cert_file": KEY.tls_cert, "smtpd_tls_key_file": KEY.tls_key}


def read_allowed(read: Reader) -> tuple[str, ...] | None:
    """`allowOptions`: the option names the stack allows although they open relaying, let clients in without
    logging in or send mail around the content filter (smtps/option_rules.py)."""
    value = read.values.get(KEY.allow_options)
    if value is None:
        return ()  # none allowed (and state written before this setting existed has none)
    if isinstance(value, list) and not all(read.visible(KEY.allow_options, v) for v in value):
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and PARAM.fullmatch(v) for v in value):
        return read.fail(KEY.allow_options, f"expected a list of Postfix parameter names, got {show(value)}")
    return tuple(value)


def read_master(read: Reader) -> MasterServiceSettings | None:
    key, options = read.choice(KEY.service_key, SERVICE_KEYS), read.options(KEY.options)
    allowed = read_allowed(read)
    refused = []
    for name, value in options or ():
        why = risk(name, value) if read.judge_options else None
        if why and allowed is not None and name not in allowed:
            refused.append((name, f"{value!r}: {why}"))
    for name in KEEP if options is not None and read.judge_options else ():
        if name not in dict(options) and allowed is not None and name not in allowed:
            refused.append((name, removal_risk(name)))
    for name, why in refused:
        read.fail(f"{KEY.options}.{name}", refusal(why, name))
    options = None if refused else options
    chroot = read.choice(KEY.chroot, ("y", "n", "-"))
    maxproc = read.text(KEY.maxproc, _MAXPROC, "'-' or a number")
    parts = (key, options, chroot, maxproc, allowed)
    return None if None in parts else MasterServiceSettings(key=key, options=options, chroot=chroot, maxproc=maxproc,
                                                            allowed=allowed)


def read_tls(read: Reader) -> TlsSettings | None:
    (cert_ok, cert), (key_ok, key) = (optional(read, name, PATH, PATH_WHAT) for name in (KEY.tls_cert, KEY.tls_key))
    return TlsSettings(cert, key) if cert_ok and key_ok else None


def read_master_tls(read: Reader) -> tuple[MasterServiceSettings | None, TlsSettings | None]:
    """The entry and the TLS files it serves: a certificate or key the stack names becomes the entry's own
    smtpd_tls_cert_file / smtpd_tls_key_file, so 465 serves exactly it (else main.cf's, as Postfix would)."""
    master, tls = read_master(read), read_tls(read)
    if master is None or tls is None:
        return master, tls
    options = dict(master.options)
    for option, key in TLS_OPTIONS.items():
        value = tls.cert if key == KEY.tls_cert else tls.key
        # Already there with the setting's own value: the entry as made from these settings (a provider's inputs).
        if option in options and options[option] != value:
            read.fail(f"{KEY.options}.{option}", f"set the file with {key}, not as an option (the certificate check "
                                                 "reads that setting)")
            return None, tls
        if value:
            options[option] = value
    return replace(master, options=tuple(options.items())), tls


Part = tuple[MasterServiceSettings, TlsSettings]
# The apply's report of the certificate the entry serves: `smtps-cert-file=PATH` and `smtps-cert-sha256=HEX`.
REPORTS = {"smtps-cert-file": "certFile", "smtps-cert-sha256": "certSha256"}


class MasterServiceModel(Model):
    kind = "master.cf service"
    name = "master"
    resource = "MasterService"
    inputs = MasterServiceInputs
    reports = tuple(REPORTS.values())
    not_repaired = {KEY.postfix: "up does not start Postfix (it was stopped on purpose, or it failed): start it "
                                 "(postfix start), then run up again"}

    def parse(self, read: Reader) -> Part | None:
        master, tls = read_master_tls(read)
        return None if master is None or tls is None else (master, tls)

    def views(self, part: Part) -> dict[str, Any]:
        # The entry and the certificate it serves are two things to their readers (`settings.tls`: the check).
        return {self.name: part[0], "tls": part[1]}

    def wanted(self, part: Part) -> MasterServiceInputs:
        master, tls = part
        return MasterServiceInputs(
            service_key=master.key, options=dict(master.options), private=master.private,
            unprivileged=master.unprivileged, chroot=master.chroot, wakeup=master.wakeup, maxproc=master.maxproc,
            command=master.command, other_entries=[], tls_cert=tls.cert, tls_key=tls.key,
            allow_options=list(master.allowed), postfix="running")

    def script(self, host: str, part: Part, action: Action, connection: Connection | None = None, snapshot_id: str = "",
               firewall: str = "", **kw: Any) -> str:
        """`firewall`: the apply first checks that this firewall is on the host (auto: finds which one), before it
        changes anything, and prints what it found (smtps/firewall.py)."""
        master, tls = part
        # A content filter the stack did not allow on purpose: the host checks what the settings cannot know.
        value = dict(master.options).get("content_filter")
        checks = host_filter_checks(value) if value is not None and "content_filter" not in master.allowed else None
        return render("master_service.sh.j2", kind=self.kind, host=host, action=action.value,
                      reloads_firewalld=False, master=master, tls=tls, keys=SERVICE_KEYS, master_cf=master_cf(),
                      snapshot_id=snapshot_id, firewall=firewall, content_filter=checks)

    def read_script(self, host: str, part: Part) -> str:
        return read_script(host, master=True)

    def live(self, facts: HostFacts, part: Part) -> dict[str, Any]:
        if facts.postfix_unusable:
            # Its entries cannot be read as asked: the version says why, where "no entry" would mislead.
            return self.inputs.found(postfix=facts.postfix_unusable)
        master = part[0]
        # The entry under the wanted key, else under another key (an edit that renamed it shows as serviceKey).
        found = next((facts.master[key] for key in (master.key, *SERVICE_KEYS) if key in facts.master), None)
        others = sorted(key for key in facts.master if found is None or key != found.key)
        columns = dict.fromkeys(COLUMNS[1:], "") if found is None else {c: found.columns[c] for c in COLUMNS[1:]}
        return self.inputs.found(service_key=found.key if found else "", options=dict(found.options) if found else {},
                                 **columns, other_entries=others, postfix=facts.postfix)

    def report(self, stdout: str) -> dict[str, Any]:
        said = answers(stdout)
        return {output: value.strip() for key, output in REPORTS.items() if (value := said.last(key)) is not None}


MODEL = MasterServiceModel()


def certificate_script(host: str, tls: TlsSettings) -> str:
    """Read-only: the certificate file 465 is given and its SHA-256, as the apply reports them (`report`)."""
    return render("certificate.sh.j2", host=host, tls=tls)
