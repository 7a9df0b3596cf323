"""The stack-YAML program: the stack's config parsed once into typed settings, then one SmtpsHost per host, built
through the public API (`SmtpsHostArgs`) like any other program's."""

from __future__ import annotations

import pulumi

from smtps_iredmail.core import credentials, stacks
from smtps_iredmail.core.hosts import HostSettings
from smtps_iredmail.core.master_service import IREDMAIL_OPTIONS
from smtps_iredmail.core.remote import key_configured, missing_key
from smtps_iredmail.core.settings import SettingsError
from smtps_iredmail.core.stacks import PROJECT, SSH_KEY

from .base import CREDENTIAL
from .host import JumpArgs, SmtpsHost, SmtpsHostArgs, set_deploy_key


def load(stack: str, config: pulumi.Config) -> stacks.Stack:
    """The stack's settings, or a RunError listing every bad setting: before any resource or SSH connection."""
    # Every key the engine gave the program (set by the engine, or in PULUMI_CONFIG): one under PROJECT that the
    # tool does not read is refused, as the front end refuses it in the stack's files.
    keys = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.get_config_env())
    try:
        return stacks.load(stack, config.get_object, keys)
    except SettingsError as err:
        raise pulumi.RunError(f"bad SMTPS settings:\n{err}") from None


def host_args(settings: HostSettings) -> SmtpsHostArgs:
    """A host's parsed settings as the component's arguments (parsed again there: the same words either way)."""
    conn, master, tls, check = settings.connection, settings.master, settings.tls, settings.check
    jump = conn.jump
    return SmtpsHostArgs(
        address=conn.address, host_key=conn.host_key, port=conn.port, user=conn.user,
        jump=JumpArgs(jump.address, jump.host_key, jump.port, jump.user, jump.name) if jump else None,
        confirm_seconds=conn.confirm_seconds, firewalld_pending=conn.firewalld_pending, service_key=master.key,
        # iRedMail's own options the stack removed (null) stay removed.
        options={**dict.fromkeys(dict(IREDMAIL_OPTIONS)), **dict(master.options)},
        cert_min_days=check.min_days, tls_name=check.tls_name, ca_bundle=check.ca_bundle,
        allow_options=master.allowed, chroot=master.chroot, maxproc=master.maxproc, tls_cert=tls.cert,
        tls_key=tls.key, firewalld_service=settings.service.name, service_short=settings.service.short,
        service_description=settings.service.description, zone=settings.zone.zone,
        existing_port_policy=settings.zone.port_policy.value, firewall=settings.firewall.value,
        nft_family=settings.nftables.family, nft_table=settings.nftables.table, nft_chain=settings.nftables.chain)


def program() -> dict[str, SmtpsHost]:
    stack, config = pulumi.get_stack(), pulumi.Config(PROJECT)
    hosts = load(stack, config).hosts
    # The deploy key: the stack's secret, or a file named by SMTPS_SSH_KEY_FILE on the machine running Pulumi (then
    # it never enters Pulumi: what CI uses). A preview touches no host and needs neither.
    key = config.get_secret(SSH_KEY)
    if not key_configured(key) and not pulumi.runtime.is_dry_run():
        raise pulumi.RunError(missing_key(stack))
    # The test credential for the relay check after logging in (optional): a file on the machine running Pulumi,
    # which the provider processes read themselves, so it never enters Pulumi (what CI uses); else the stack's secret.
    # The file is read here too, so that a bad one fails before any resource is registered.
    try:
        from_file = credentials.credential_from_file(stack)
    except credentials.CredentialError as err:
        raise pulumi.RunError(str(err)) from None
    set_deploy_key(key, None if from_file else config.get_secret_object(CREDENTIAL))
    components = {settings.name: SmtpsHost(settings.name, host_args(settings)) for settings in hosts}
    pulumi.export("hosts", {name: host.outputs for name, host in components.items()})
    return components
