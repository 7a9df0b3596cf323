"""The Pulumi program: the stack's config parsed once into typed settings, then one SmtpsHost per host."""

from __future__ import annotations

import os
import zlib

import pulumi

from smtps import credentials, stacks
from smtps.settings import SettingsError
from smtps.stacks import PROJECT, SSH_KEY

from .base import CREDENTIAL, CREDENTIAL_CONFIG, SSH_KEY_CONFIG, SSH_KEY_FILE_ENV
from .host import SmtpsHost

# A dynamic provider process serves 4 calls at a time, and a host's resources run one after another: so a process
# keeps up to 4 hosts busy. Hosts are spread over a fixed number of provider processes by a hash of their name, so a
# host's provider never changes when others come or go (a changed provider would make the engine replace its
# resources). 16 processes keep up to 64 hosts busy at once, at about 32 MiB each.
PROVIDER_PROCESSES = 16


def provider_slot(name: str) -> int:
    return zlib.crc32(name.encode()) % PROVIDER_PROCESSES


def missing_key(stack: str) -> str:
    """What to do when a stack has no deploy key, in this project's words (the same for every command)."""
    if credentials.in_ci():
        return (f"stack {stack}: no deploy key: set {SSH_KEY_FILE_ENV} to the private key's file (in CI the key is "
                "never stored in the stack: a pull request's preview could decrypt it)")
    return (f"stack {stack}: no deploy key: store it in the stack with `python -m smtps key -s {stack} --file "
            f"KEYFILE` (a single operator's machine only: CI refuses a stack that holds a secret), or set "
            f"{SSH_KEY_FILE_ENV} to the private key's file")


def load(stack: str, config: pulumi.Config) -> stacks.Stack:
    """The stack's settings, or a RunError listing every bad setting: before any resource or SSH connection."""
    # Every key the engine gave the program (set by the engine, or in PULUMI_CONFIG): one under PROJECT that the
    # tool does not read is refused, as the front end refuses it in the stack's files.
    keys = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.get_config_env())
    try:
        return stacks.load(stack, config.get_object, keys)
    except SettingsError as err:
        raise pulumi.RunError(f"bad SMTPS settings:\n{err}") from None


def program() -> dict[str, SmtpsHost]:
    stack, config = pulumi.get_stack(), pulumi.Config(PROJECT)
    hosts = load(stack, config).hosts
    # The deploy key: the stack's secret, or a file named by SMTPS_SSH_KEY_FILE on the machine running Pulumi (then
    # it never enters Pulumi: what CI uses). A preview touches no host and needs neither.
    key = config.get_secret(SSH_KEY)
    if key is None and not os.environ.get(SSH_KEY_FILE_ENV) and not pulumi.runtime.is_dry_run():
        raise pulumi.RunError(missing_key(stack))
    # The test credential for the relay check after logging in (optional): a file on the machine running Pulumi,
    # which the provider processes read themselves, so it never enters Pulumi (what CI uses); else the stack's secret.
    # The file is read here too, so that a bad one fails before any resource is registered.
    try:
        from_file = credentials.credential_from_file(stack)
    except credentials.CredentialError as err:
        raise pulumi.RunError(str(err)) from None
    credential = None if from_file else config.get_secret_object(CREDENTIAL)
    providers: dict[int, pulumi.ProviderResource] = {}
    components: dict[str, SmtpsHost] = {}
    for settings in hosts:
        slot = provider_slot(settings.name)
        if slot not in providers:
            # An explicit provider gets only its own inputs in `configure`: so the key is one.
            inputs = {SSH_KEY_CONFIG: key} if key is not None else {}
            if credential is not None:
                inputs[CREDENTIAL_CONFIG] = credential
            providers[slot] = pulumi.ProviderResource("pulumi-python", f"ssh-{slot}", inputs)
        components[settings.name] = SmtpsHost(stack, settings, providers[slot])
    pulumi.export("hosts", {name: host.outputs for name, host in components.items()})
    return components
