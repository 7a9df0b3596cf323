"""A small program for the engine's own tests: one dynamic resource that writes a file, through an explicit provider
that gets a secret only through `configure` (as the SMTPS providers get the SSH key)."""

from __future__ import annotations

import hashlib
from pathlib import Path
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
from smtps_iredmail.base import pass_warnings

SECRET_CONFIG = "smtps-iredmail:fileSecret"  # noqa: S105 - a config key, not a secret


class FileProvider(ResourceProvider):
    secret = ""

    def configure(self, req: ConfigureRequest) -> None:
        self.secret = req.config.get(SECRET_CONFIG) or ""

    def _write(self, props: dict[str, Any]) -> dict[str, Any]:
        # The file's second line proves the provider saw the secret, without showing it.
        digest = hashlib.sha256(self.secret.encode()).hexdigest()[:16]
        Path(props["path"]).write_text(f"{props['content']}\nsecret-digest {digest}\n")
        # A host script's warning line, passed on as the SMTPS providers pass theirs: the front end must show it.
        pass_warnings("greeting", f"smtps: greeting: warning: wrote {props['content']}\nsmtps: greeting: quiet\n")
        return {**props}

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(props["path"], self._write(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("path", "content") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[k for k in changed if k == "path"])

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._write(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        path = Path(props["path"])
        content = path.read_text().split("\n", 1)[0] if path.exists() else ""
        live = {**props, "content": content}
        return ReadResult(id_, live, live)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        Path(props["path"]).unlink(missing_ok=True)


class File(Resource, module="test", name="File"):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(FileProvider(), name, props, opts)


def program() -> None:
    config = pulumi.Config("smtps-iredmail")
    provider = pulumi.ProviderResource("pulumi-python", "files", {SECRET_CONFIG: config.require_secret("fileSecret")})
    file = File("greeting", {"path": config.require("path"), "content": config.require("content")},
                pulumi.ResourceOptions(provider=provider))
    pulumi.export("path", file.id)


def secret_while_set() -> None:
    """A program whose state holds the stack's secret (an encrypted output) while the stack has it, and nothing else:
    a stack that held it can drop it (`config rm`) and have a state without secrets."""
    secret = pulumi.Config("smtps-iredmail").get_secret("fileSecret")
    if secret is not None:
        pulumi.export("secret", secret)
