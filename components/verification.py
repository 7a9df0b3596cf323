"""Verification from outside, as a Pulumi resource: after a host changed, the machine running Pulumi connects to 465
as a mail client would (implicit TLS, the certificate, EHLO offering AUTH). A failed check fails the host's update.

Inputs: host, address, hostKey (the machine: a rebuilt one is checked again), port, jump (the host's bastion: the
check then connects through it, as the SSH connection does) and `trigger`, the revisions of the host's resources: any
apply on the host changes it, so the check runs after every change and never on a no-op. `read` returns what was
last seen and touches nothing: `python -m smtps verify -s STACK` checks on demand.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import (
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from smtps.settings import Reader, read_jump
from smtps.verify import verify

from .base import SSH_KEY_CONFIG, _Ssh, from_wire

FIELDS = {"tlsVersion": "tls_version", "certSubject": "cert_subject", "certNotAfter": "cert_not_after", "auth": "auth"}


class VerificationFailed(Exception):
    pass


class VerificationProvider(ResourceProvider):
    def configure(self, req: ConfigureRequest) -> None:
        _Ssh.configure(req.config.get(SSH_KEY_CONFIG))  # a bastion is reached with the stack's deploy key

    def _verify(self, props: dict[str, Any]) -> dict[str, Any]:
        props = from_wire(props)
        opener = None
        if props.get("jump"):
            read = Reader(str(props.get("stack", "?")), str(props["host"]), {"jump": props["jump"]})
            _, jump = read_jump(read)
            read.finish()
            opener = _Ssh.get().opener(str(props["host"]), str(props["address"]), int(props["port"]), jump)
        result = verify(str(props["address"]), int(props["port"]), opener=opener)
        if not result.ok:
            raise VerificationFailed(f"{props['host']} ({props['address']}): verification failed: {result.problem}")
        return {**props, **{output: getattr(result, field) for output, field in FIELDS.items()}}

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in ("host", "address", "port", "hostKey", "jump", "trigger")
                   if (olds.get(key) or None) != (news.get(key) or None)]
        return DiffResult(changes=bool(changed), replaces=[], stables=None, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"{props['host']}@{props['address']}:{props['port']}", self._verify(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._verify(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        return None  # nothing on the host belongs to a check


class Verification(Resource, module="smtps", name="Verification"):
    tlsVersion: pulumi.Output[str]
    certSubject: pulumi.Output[str]
    certNotAfter: pulumi.Output[str]
    auth: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(VerificationProvider(), name, {**props, **dict.fromkeys(FIELDS)}, opts)
