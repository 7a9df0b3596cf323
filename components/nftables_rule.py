"""The rule accepting 465 in an nftables chain, live and in /etc/nftables.conf, as a Pulumi resource: its inputs,
identity, scripts and reading are its model's (smtps/nftables_rule.py)."""

from __future__ import annotations

from smtps_iredmail.core import nftables_rule

from .base import HostProvider, HostResource


class NftablesRuleProvider(HostProvider):
    model = nftables_rule.MODEL


class NftablesRule(HostResource, module="smtps", name="NftablesRule"):
    provider_class = NftablesRuleProvider
