"""The firewalld service definition (/etc/firewalld/services/NAME.xml), as a Pulumi resource: its inputs,
identity, scripts and reading are its model's (smtps/firewalld_service.py)."""

from __future__ import annotations

from smtps_iredmail.core import firewalld_service

from .base import HostProvider, HostResource


class FirewalldServiceProvider(HostProvider):
    model = firewalld_service.MODEL


class FirewalldService(HostResource, module="smtps", name="FirewalldService"):
    provider_class = FirewalldServiceProvider
