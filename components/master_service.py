"""The master.cf service for port 465, as a Pulumi resource: its inputs, identity, scripts and reading are its
model's (smtps/master_service.py)."""

from __future__ import annotations

from smtps_iredmail.core import master_service

from .base import HostProvider, HostResource


class MasterServiceProvider(HostProvider):
    model = master_service.MODEL


class MasterService(HostResource, module="smtps", name="MasterService"):
    provider_class = MasterServiceProvider
