"""The stack-YAML program: the stack's config parsed once into typed settings, then one SmtpsHost per host, built
through the public API (`SmtpsHostArgs`) like any other program's."""

from __future__ import annotations

from dataclasses import fields

import pulumi

from smtps_iredmail.core import credentials, stacks
from smtps_iredmail.core.hosts import DEFAULTS, HostSettings
from smtps_iredmail.core.kinds import KINDS
from smtps_iredmail.core.model import camel
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
    """A host's parsed settings as the component's arguments (parsed again there: the same words either way): what
    every host has, and each kind's inputs that are settings (an argument per setting, named as its key)."""
    conn, check = settings.connection, settings.check
    jump = conn.jump
    arguments = {camel(item.name): item.name for item in fields(SmtpsHostArgs)}
    wanted = [model.wanted(model.part(settings)).props() for model in KINDS]
    kinds = {arguments[key]: value for inputs in wanted for key, value in inputs.items() if key in arguments}
    # iRedMail's own options the stack removed (null) stay removed.
    kinds["options"] = {**dict.fromkeys(DEFAULTS["options"]), **kinds["options"]}
    return SmtpsHostArgs(
        address=conn.address, host_key=conn.host_key, port=conn.port, user=conn.user,
        jump=JumpArgs(jump.address, jump.host_key, jump.port, jump.user, jump.name) if jump else None,
        confirm_seconds=conn.confirm_seconds, firewalld_pending=conn.firewalld_pending, cert_min_days=check.min_days,
        tls_name=check.tls_name, ca_bundle=check.ca_bundle, firewall=settings.firewall.value, **kinds)


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
