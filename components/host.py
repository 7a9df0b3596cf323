"""The public component: `SmtpsHost` turns on SMTPS on one mail host, from `SmtpsHostArgs` whose connection fields
may be Outputs of other resources (a VM's address, a host key the program generated).

Plain values are parsed when the program runs, before anything registers, in the same words as a stack's YAML
(smtps/hosts.py). A field given as an Output is passed to the resources as it is, and their providers' `check`
refuses a bad value with those same words as soon as it is known, before any SSH connection (base.py)."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import pulumi

from smtps_iredmail.core.hosts import DEFAULTS, HostSettings, parse_bastions, parse_host
from smtps_iredmail.core.master_service import TLS_OPTIONS
from smtps_iredmail.core.model import camel
from smtps_iredmail.core.settings import SMTPS_PORT, SettingsError

from .base import CREDENTIAL_CONFIG, FIREWALL, SSH_KEY_CONFIG
from .kinds import COMPONENT_TYPE, kinds_for
from .verification import Verification

# The verification's child name: HOST-verify.
VERIFY_SUFFIX = "verify"


@dataclass
class JumpArgs:
    """The bastion (SSH jump host) a mail host is reached through: SSH and the check of 465 both go through it, by
    TCP forwarding. Nothing is configured on it."""

    address: pulumi.Input[str]
    """Where to SSH to: an IP address or a DNS name (may be an Output)."""
    host_key: pulumi.Input[str]
    """The bastion's pinned SSH host key, `TYPE BASE64` (may be an Output)."""
    port: pulumi.Input[int] = 22
    """Its SSH port (may be an Output)."""
    user: pulumi.Input[str] = "root"
    """The user to log in as there (may be an Output)."""
    name: str = "bastion"
    """Its name in messages."""


@dataclass
class SmtpsHostArgs:
    """One mail host's settings: one field per setting of docs/settings.md's table, same defaults and meaning.

    The fields marked "may be an Output" take a value from another resource. The others must be plain values: they
    decide which resources exist (`firewall`), what the preview shows per setting, or are checked together before
    anything registers (`options` against `allow_options` and `tls_cert`)."""

    address: pulumi.Input[str]
    """Where to SSH to and where to check 465: an IP address or a DNS name (may be an Output)."""
    host_key: pulumi.Input[str]
    """The host's pinned SSH host key, `TYPE BASE64` (may be an Output)."""
    port: pulumi.Input[int] = DEFAULTS["port"]
    """The SSH port (may be an Output)."""
    user: pulumi.Input[str] = DEFAULTS["user"]
    """The SSH user; any other than root runs every script through `sudo -n` (may be an Output)."""
    ssh_private_key: pulumi.Input[str] | None = field(default=None, repr=False)
    """The deploy key for this host (may be an Output; kept as a secret). None: `set_deploy_key`'s, else the file
    named by SMTPS_SSH_KEY_FILE on the machine running Pulumi (what CI uses: then the key never enters Pulumi)."""
    jump: JumpArgs | None = None
    """The bastion the host is reached through (None: directly)."""
    confirm_seconds: int = DEFAULTS["confirmSeconds"]
    """After a firewalld reload, how long the host waits for a fresh SSH login before it reverts the reload."""
    firewalld_pending: str = DEFAULTS["firewalldPending"]
    """`refuse` or `drop-runtime-only`: what happens before a reload with runtime-only state this run did not write."""
    service_key: str = DEFAULTS["serviceKey"]
    """The master.cf key: `465`, `smtps` or `submissions`."""
    options: Mapping[str, str | None] | None = None
    """master.cf `-o` options, merged by parameter over iRedMail's five; None for a parameter removes it."""
    cert_min_days: int = DEFAULTS["certMinDays"]
    """The check from outside fails a certificate that expires within this many days."""
    tls_name: str | None = None
    """Strict mode, with `ca_bundle`: the name the served chain must verify for."""
    ca_bundle: str | None = None
    """Strict mode, with `tls_name`: the CA file (on the machine running Pulumi) the chain must verify against."""
    allow_options: Sequence[str] = ()
    """Options allowed on purpose although they are off the allow-list or open relaying."""
    chroot: str = DEFAULTS["chroot"]
    """The master.cf chroot column: `y`, `n` or `-`."""
    maxproc: str = DEFAULTS["maxproc"]
    """The master.cf maxproc column: `-` or a number."""
    tls_cert: pulumi.Input[str] | None = None
    """The certificate file 465 serves (absolute path on the host; may be an Output). None: main.cf's."""
    tls_key: pulumi.Input[str] | None = None
    """Its key file (absolute path on the host; may be an Output). None: main.cf's."""
    firewalld_service: str = DEFAULTS["firewalldService"]
    """The firewalld service file written to /etc/firewalld/services/."""
    service_short: str = DEFAULTS["serviceShort"]
    """The service's `<short>`."""
    service_description: str = DEFAULTS["serviceDescription"]
    """The service's `<description>`."""
    zone: str = DEFAULTS["zone"]
    """The firewalld zone the service joins."""
    existing_port_policy: str = DEFAULTS["existingPortPolicy"]
    """`keep` or `replace`: a zone that already opens 465 by a raw port."""
    firewall: str = DEFAULTS["firewall"]
    """`auto`, `firewalld` or `nftables`: what opens 465 on the host (plain: it decides which resources exist)."""
    nft_family: str = DEFAULTS["nftFamily"]
    """On nftables hosts: the table's family."""
    nft_table: str = DEFAULTS["nftTable"]
    """On nftables hosts: the table."""
    nft_chain: str = DEFAULTS["nftChain"]
    """On nftables hosts: the chain that gets the rule."""


# The fields that may be Outputs, as the settings they are.
OUTPUT_FIELDS = ("address", "hostKey", "port", "user", "tlsCert", "tlsKey")
JUMP_OUTPUT_FIELDS = ("address", "hostKey", "port", "user")
# What stands in for an Output's value while the plain values are parsed (any valid value: it is never used).
_ED25519 = base64.b64encode(b"\0\0\0\x0bssh-ed25519\0\0\0\x20" + bytes(32)).decode()
STAND_IN: dict[str, Any] = {"address": "192.0.2.1", "hostKey": f"ssh-ed25519 {_ED25519}", "port": 22,
                            "user": "root", "tlsCert": "/stand-in.crt", "tlsKey": "/stand-in.key"}


def _deferred(value: Any) -> bool:
    """A value another resource gives (an Output or an awaitable), known only when the engine runs."""
    return isinstance(value, pulumi.Output) or hasattr(value, "__await__")


def _output(value: Any) -> pulumi.Output[Any]:
    # One Output for every resource that takes it: an awaitable can be awaited only once.
    return value if isinstance(value, pulumi.Output) else pulumi.Output.from_input(value)


def _raw(name: str, args: SmtpsHostArgs) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the host's settings as a stack's host entry would give them, with stand-ins for Outputs; the Outputs by
    setting)."""
    raw: dict[str, Any] = {"name": name}
    deferred: dict[str, Any] = {}
    for item in fields(args):
        key, value = camel(item.name), getattr(args, item.name)
        if key in ("sshPrivateKey", "jump") or value is None:
            continue
        if key in OUTPUT_FIELDS and _deferred(value):
            deferred[key], value = _output(value), STAND_IN[key]
        elif key == "allowOptions" and isinstance(value, set | frozenset):
            value = sorted(value)  # a set's order differs between processes: the same set, the same input
        elif key == "allowOptions" and not isinstance(value, str):
            value = list(value)
        raw[key] = value
    if args.jump is not None:
        raw["jump"] = args.jump.name
    return raw, deferred


def _bastion(args: JumpArgs) -> tuple[dict[str, Any], dict[str, Any]]:
    entry: dict[str, Any] = {"name": args.name}
    deferred: dict[str, Any] = {}
    for key in JUMP_OUTPUT_FIELDS:
        value = getattr(args, {"hostKey": "host_key"}.get(key, key))
        if _deferred(value):
            deferred[key], value = _output(value), STAND_IN[key]
        entry[key] = value
    return entry, deferred


def parse_args(stack: str, name: str, args: SmtpsHostArgs) -> tuple[HostSettings, dict[str, Any], dict[str, Any]]:
    """The host's settings from its plain values (stand-ins for the Outputs), or SettingsError naming stack, host
    and setting; and the Outputs, by setting, of the host and of its bastion."""
    if not isinstance(args, SmtpsHostArgs):
        raise SettingsError(f"stack {stack}, host {name}: expected SmtpsHostArgs, got {type(args).__name__}")
    if args.jump is not None and not isinstance(args.jump, JumpArgs):
        raise SettingsError(f"stack {stack}, host {name}, setting jump: expected JumpArgs, got "
                            f"{type(args.jump).__name__}")
    raw, deferred = _raw(name, args)
    problems: list[str] = []
    bastions: dict[str, Any] = {}
    jump_deferred: dict[str, Any] = {}
    if args.jump is not None:
        entry, jump_deferred = _bastion(args.jump)
        bastions = parse_bastions(stack, [entry], problems)
    try:
        settings = parse_host(stack, {}, raw, name, bastions)
    except SettingsError as err:
        problems.append(str(err))
    if problems:
        raise SettingsError("\n".join(problems))
    return settings, deferred, jump_deferred


def connection_inputs(stack: str, settings: HostSettings, deferred: Mapping[str, Any] | None = None,
                      jump_deferred: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The inputs every resource of the host has: its labels, how to reach it, its firewall; Outputs in place."""
    conn, deferred = settings.connection, deferred or {}
    jump: dict[str, Any] = {}
    if conn.jump is not None:
        jump = {"name": conn.jump.name, "address": conn.jump.address, "port": conn.jump.port,
                "user": conn.jump.user, "hostKey": conn.jump.host_key, **(jump_deferred or {})}
    where = {"address": conn.address, "port": conn.port, "user": conn.user, "hostKey": conn.host_key}
    return {"stack": stack, "host": settings.name, **where, **{k: v for k, v in deferred.items() if k in where},
            "jump": jump, "confirmSeconds": conn.confirm_seconds, "firewalldPending": conn.firewalld_pending,
            FIREWALL: settings.firewall.value}


def _options(settings: HostSettings, deferred: Mapping[str, Any]) -> Any:
    """The entry's options; where the certificate or key is an Output, an Output that puts its value in place."""
    options = dict(settings.master.options)
    files = {option: deferred[setting] for option, setting in TLS_OPTIONS.items() if setting in deferred}
    if not files:
        return options

    def filled(values: dict[str, Any]) -> dict[str, Any]:
        mine = {k: v for k, v in options.items() if k not in values}
        return {**mine, **{option: value for option, value in values.items() if value}}

    return pulumi.Output.all(**files).apply(filled)


@dataclass
class _ProgramState:
    """What the SmtpsHosts of one program run share: the deploy key, the providers, the machines so far. One object
    for the program process (`_CURRENT`), on purpose: a program makes each SmtpsHost through the public API, which
    has nowhere to hand it in. A program may run more than once in one process (the Automation API: a preview, then
    an up, or another stack): nothing of one run may reach the next, least of all its key, so a new run gets a new
    one (`_program_state`)."""

    root: Any = None
    monitor: Any = None
    key: pulumi.Input[str] | None = None
    credential: pulumi.Input[Any] | None = None
    providers: dict[str, pulumi.ProviderResource] = field(default_factory=dict)
    # Each plain address and host key (decoded) so far, with the host that has it: one machine, one host.
    machines: dict[tuple[str, Any], str] = field(default_factory=dict)


_CURRENT = _ProgramState()


def _program_state() -> _ProgramState:
    """This program run's shared state, new when the run is: its stack resource, or (under Pulumi's mocks, where
    there is none) the monitor it registers with, is another object."""
    global _CURRENT
    root, monitor = pulumi.runtime.get_root_resource(), pulumi.runtime.settings.SETTINGS.monitor
    if _CURRENT.root is not root or _CURRENT.monitor is not monitor:
        _CURRENT = _ProgramState(root, monitor)
    return _CURRENT


def set_deploy_key(ssh_private_key: pulumi.Input[str] | None = None,
                   test_credential: pulumi.Input[Mapping[str, str]] | None = None) -> None:
    """The deploy key (and the optional test credential `{username, password}` the check from outside logs in
    with) for every SmtpsHost of this program run that names no key of its own. Both are kept as secrets. Call it
    before the first SmtpsHost."""
    program = _program_state()
    program.key, program.credential = ssh_private_key, test_credential


def _one_machine(stack: str, settings: HostSettings, deferred: Mapping[str, Any]) -> None:
    """SettingsError when another SmtpsHost of this run has the same plain address or host key, in the words a
    stack uses: one host key on two hosts is one machine under two names (destroying one would take SMTPS off the
    other), or a cloned image whose keys should not be shared. An Output cannot be compared before it is known."""
    conn, machines = settings.connection, _program_state().machines
    seen = []
    if "address" not in deferred:
        seen.append(("address", conn.address, conn.address))
    if "hostKey" not in deferred:
        # Compared by its decoded data: base64 accepts padding that is not needed.
        seen.append(("hostKey", base64.b64decode(conn.host_key.split(" ")[1]), f"the host key {conn.host_key!r}"))
    problems = [f"stack {stack}, host {settings.name}, setting {key}: {shown} appears twice (first as host "
                f"{machines[(key, value)]})" for key, value, shown in seen if (key, value) in machines]
    if problems:
        raise SettingsError("\n".join(problems))
    for key, value, _ in seen:
        machines[(key, value)] = settings.name


# Hosts are spread over a fixed number of provider processes by a hash of their name, so that a host's provider does
# not change when others come or go. Each process serves CALLS_AT_ONCE calls (components/provider_process.py), and a
# host's resources run one after another: 4 processes keep up to 128 hosts busy at once. Fewer processes cost less
# to start (each about 0.45 s of CPU and 32 MiB); more spread the controller's own work (SSH, the checks) over more
# cores. A host moved to another provider (as by the release that went from 16 processes to 4) is not replaced: the
# engine asks the new provider whether its configuration needs a replacement, and a dynamic provider says not
# (tests/lab/test_upgrade.py shows it).
PROVIDER_PROCESSES = 4


def provider_slot(name: str) -> int:
    return zlib.crc32(name.encode()) % PROVIDER_PROCESSES


def shared_provider(name: str) -> str:
    """The name of the shared provider a host without a key of its own runs in (its resources' provider URNs end
    in it; the CLI targets and reads the state by it)."""
    return f"ssh-{provider_slot(name)}"


def _inputs(key: pulumi.Input[str] | None) -> dict[str, Any]:
    # An explicit provider gets only its own inputs in `configure`: so the key is one. Secret whatever the caller
    # made it: the state keeps it encrypted.
    inputs: dict[str, Any] = {} if key is None else {SSH_KEY_CONFIG: pulumi.Output.secret(key)}
    if _program_state().credential is not None:
        inputs[CREDENTIAL_CONFIG] = pulumi.Output.secret(_program_state().credential)
    return inputs


def provider_for(name: str, key: pulumi.Input[str] | None, parent: pulumi.Resource) -> pulumi.ProviderResource:
    """The provider process a host's resources run in. Hosts without a key of their own share `ssh-SLOT`, a
    fixed one by their name; a host with its own key has `HOST-ssh`, its own."""
    if key is not None:
        return pulumi.ProviderResource("pulumi-python", f"{name}-ssh", _inputs(key),
                                       pulumi.ResourceOptions(parent=parent))
    program, shared = _program_state(), shared_provider(name)
    if shared not in program.providers:
        program.providers[shared] = pulumi.ProviderResource("pulumi-python", shared, _inputs(program.key))
    return program.providers[shared]


class SmtpsHost(pulumi.ComponentResource):
    """SMTPS (implicit TLS on 465) on one iRedMail/Postfix host, over SSH.

    Its resources, one per kind (the master.cf service, then the firewalld service and zone membership, or the
    nftables rule), each after the ones before it: so 465 is never open with nothing (or something without TLS)
    behind it, and destroy runs the reverse (the port closes first, the master.cf entry goes last). The check from
    outside runs after the last, whenever any of them applied something; a failed check rolls the host back.

    The resource's name is the host's name in messages, outputs and its resources' names (`NAME-master`, ...).
    """

    address: pulumi.Output[str]
    """Where the host was reached."""
    firewall_used: pulumi.Output[str]
    """The firewall that opens 465 there: as set, or what `auto` found at the host's first apply."""
    tls_version: pulumi.Output[str]
    """The TLS version 465 answered with, seen from outside."""
    cert_subject: pulumi.Output[str]
    """The served certificate's subject."""
    cert_not_after: pulumi.Output[str]
    """When the served certificate expires."""
    cert_sha256: pulumi.Output[str]
    """The served certificate's SHA-256 (the same as the file's on the host)."""
    cert_days_left: pulumi.Output[int]
    """Days until the served certificate expires."""
    auth: pulumi.Output[str]
    """The AUTH mechanisms offered after EHLO."""
    relay_without_login: pulumi.Output[str]
    """What the server said to relaying without logging in (refused, or the check fails)."""
    ports_before: pulumi.Output[Any]
    """The mail ports that answered before the first change of the run."""
    ports_after: pulumi.Output[Any]
    """The mail ports that answer after it (none of those before may go quiet)."""

    def __init__(self, resource_name: str, args: SmtpsHostArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        stack = pulumi.get_stack()
        try:
            settings, deferred, jump_deferred = parse_args(stack, resource_name, args)
            _one_machine(stack, settings, deferred)
        except SettingsError as err:
            # Before anything registers: the program stops with the settings' own words, and no host is touched.
            raise pulumi.RunError(f"bad SMTPS settings:\n{err}") from None
        super().__init__(COMPONENT_TYPE, resource_name, None, opts)
        provider = provider_for(resource_name, args.ssh_private_key, self)
        conn, name = settings.connection, settings.name
        base = connection_inputs(stack, settings, deferred, jump_deferred)
        where, jump = base, base["jump"]
        made: list[pulumi.Resource] = []
        for kind in kinds_for(settings.firewall):
            inputs = kind.model.wanted(kind.model.part(settings)).props()
            if "options" in inputs:
                inputs["options"] = _options(settings, deferred)
            inputs.update({key: deferred[key] for key in ("tlsCert", "tlsKey") if key in inputs and key in deferred})
            made.append(kind.resource(kind.child_name(name), {**base, **inputs},
                                      pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(made))))
        master = made[0]
        self.verification = Verification(
            f"{name}-{VERIFY_SUFFIX}",
            # hostKey: a rebuilt machine is checked again even where nothing else about it changed.
            {"stack": stack, "host": name, "address": where["address"], "port": SMTPS_PORT,
             "hostKey": where["hostKey"], "jump": jump,
             # How to log in for a rollback (not watched: a new SSH port or user is no reason to check again).
             "ssh": {"port": where["port"], "user": where["user"], "confirmSeconds": conn.confirm_seconds,
                     "firewalldPending": conn.firewalld_pending},
             # The firewalld zone and service a rollback may find in this run's snapshot (not watched either).
             "rollbackZone": {"zone": settings.zone.zone, "service": settings.zone.service},
             # The nftables chain it may find there, on a host whose firewall is nftables (the one its apply used).
             "rollbackNft": {"firewall": master.firewallUsed,  # type: ignore[attr-defined]
                             "nftFamily": settings.nftables.family, "nftTable": settings.nftables.table,
                             "nftChain": settings.nftables.chain},
             # The certificate file's SHA-256 as the master.cf apply read it on the host: what 465 must serve.
             "certSha256": master.certSha256,  # type: ignore[attr-defined]
             "certMinDays": settings.check.min_days, "tlsName": settings.check.tls_name,
             "caBundle": settings.check.ca_bundle,
             "trigger": [resource.revision for resource in made]},  # type: ignore[attr-defined]
            pulumi.ResourceOptions(parent=self, provider=provider, depends_on=made[-1:]),
        )
        v = self.verification
        self.address = pulumi.Output.from_input(where["address"])
        self.firewall_used = master.firewallUsed  # type: ignore[attr-defined]
        self.tls_version, self.cert_subject, self.cert_not_after = v.tlsVersion, v.certSubject, v.certNotAfter
        self.cert_sha256, self.cert_days_left, self.auth = v.servedSha256, v.certDaysLeft, v.auth
        self.relay_without_login, self.ports_before, self.ports_after = v.relayAnonymous, v.portsBefore, v.portsAfter
        # The same, under the names the stack's `hosts` output has always used.
        self.outputs = {"address": self.address, "firewall": self.firewall_used, "tlsVersion": self.tls_version,
                        "certSubject": self.cert_subject, "certNotAfter": self.cert_not_after, "auth": self.auth,
                        "certSha256": self.cert_sha256, "certDaysLeft": self.cert_days_left,
                        "relayWithoutLogin": self.relay_without_login, "portsBefore": self.ports_before,
                        "portsAfter": self.ports_after}
        self.register_outputs(self.outputs)

