"""The SMTPS service's membership in a firewalld zone, permanent and runtime, as a Pulumi resource: its inputs,
identity, scripts and reading are its model's (smtps/zone_membership.py)."""

from __future__ import annotations

from smtps_iredmail.core import zone_membership

from .base import HostProvider, HostResource


class ZoneMembershipProvider(HostProvider):
    model = zone_membership.MODEL


class ZoneMembership(HostResource, module="smtps", name="ZoneMembership"):
    provider_class = ZoneMembershipProvider
