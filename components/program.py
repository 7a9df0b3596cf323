"""The Pulumi program: the stack's config parsed once into typed settings, then one SmtpsHost per host."""

from __future__ import annotations

import zlib

import pulumi

from smtps.settings import HostSettings, SettingsError, parse_stack

from .base import PROJECT, SSH_KEY_CONFIG
from .host import SmtpsHost

# A dynamic provider process serves 4 calls at a time, and a host's resources run one after another: so a process
# keeps up to 4 hosts busy. Hosts are spread over a fixed number of provider processes by a hash of their name, so a
# host's provider never changes when others come or go (a changed provider would make the engine replace its
# resources). 16 processes keep up to 64 hosts busy at once, at about 32 MiB each.
PROVIDER_PROCESSES = 16


def provider_slot(name: str) -> int:
    return zlib.crc32(name.encode()) % PROVIDER_PROCESSES


def load(stack: str, config: pulumi.Config) -> tuple[HostSettings, ...]:
    """The stack's hosts, or a RunError listing every bad setting: before any resource or SSH connection."""
    try:
        return parse_stack(stack, config.get_object("defaults"), config.get_object("hosts"),
                           config.get_object("fleet"), config.get_object("bastions"),
                           config.get_object("canaries"))
    except SettingsError as err:
        raise pulumi.RunError(f"bad SMTPS settings:\n{err}") from None


def program() -> dict[str, SmtpsHost]:
    stack, config = pulumi.get_stack(), pulumi.Config(PROJECT)
    hosts = load(stack, config)
    key = config.require_secret("sshPrivateKey")
    providers: dict[int, pulumi.ProviderResource] = {}
    components: dict[str, SmtpsHost] = {}
    for settings in hosts:
        slot = provider_slot(settings.name)
        if slot not in providers:
            # An explicit provider gets only its own inputs in `configure` (shared/FACTS.md): so the key is one.
            providers[slot] = pulumi.ProviderResource("pulumi-python", f"ssh-{slot}", {SSH_KEY_CONFIG: key})
        components[settings.name] = SmtpsHost(stack, settings, providers[slot])
    pulumi.export("hosts", {name: host.outputs for name, host in components.items()})
    return components
