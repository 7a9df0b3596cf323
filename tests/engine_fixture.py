"""A small program for the engine's own tests: one dynamic resource that writes a file, through an explicit provider
that gets a secret only through `configure` (as the SMTPS providers get the SSH key)."""

from __future__ import annotations

import hashlib
import time
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

from smtps_iredmail import provider_process  # noqa: F401  as the SMTPS providers' modules do: see `gates`
from smtps_iredmail.core.remote import pass_warnings

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


def moved() -> None:
    """`program`'s file through an explicit provider the config names: changing the name moves the file to another
    provider, as hosts move when they are spread over fewer provider processes."""
    config = pulumi.Config("smtps-iredmail")
    provider = pulumi.ProviderResource("pulumi-python", config.require("providerName"),
                                       {SECRET_CONFIG: config.require_secret("fileSecret")})
    File("greeting", {"path": config.require("path"), "content": config.require("content")},
         pulumi.ResourceOptions(provider=provider))


def secret_while_set() -> None:
    """A program whose state holds the stack's secret (an encrypted output) while the stack has it, and nothing else:
    a stack that held it can drop it (`config rm`) and have a state without secrets."""
    secret = pulumi.Config("smtps-iredmail").get_secret("fileSecret")
    if secret is not None:
        pulumi.export("secret", secret)


class EchoProvider(ResourceProvider):
    """Gives back its input `given` as the output `value` once created: a value another resource makes, unknown at
    preview (the engine plans an output that is not an input as unknown)."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult("echo", {**props, "value": props["given"]})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=olds.get("given") != news.get("given"))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult({**news, "value": news["given"]})


class Echo(Resource, module="test", name="Echo"):
    value: pulumi.Output[Any]

    def __init__(self, name: str, given: Any) -> None:
        super().__init__(EchoProvider(), name, {"given": given, "value": None})


def smtps_host_from_outputs() -> None:
    """One SmtpsHost whose address, host key and SSH port are Outputs of another resource (the config's values)."""
    from smtps_iredmail import SmtpsHost, SmtpsHostArgs

    config = pulumi.Config("smtps-iredmail")
    made = Echo("server", {"address": config.require("address"), "hostKey": config.require("hostKey"),
                           "port": config.require_int("sshPort")})
    host = SmtpsHost("mx1", SmtpsHostArgs(address=made.value["address"], host_key=made.value["hostKey"],
                                          port=made.value["port"], firewall="firewalld"))
    pulumi.export("tls", host.tls_version)


def smtps_host_plain() -> None:
    """The same host with plain values: checked when the program runs, before anything registers."""
    from smtps_iredmail import SmtpsHost, SmtpsHostArgs

    config = pulumi.Config("smtps-iredmail")
    SmtpsHost("mx1", SmtpsHostArgs(address=config.require("address"), host_key=GOOD_KEY,
                                   port=config.require_int("sshPort"), firewall="firewalld"))


GOOD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"


class GateProvider(ResourceProvider):
    """Creates a resource only once `count` creates are running at once in this provider process (each marks a file
    in `folder` and waits for the others'), or after 30 s: the output `together` says how many were."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        folder = Path(props["folder"])
        (folder / props["mark"]).touch()
        deadline = time.monotonic() + 30
        while len(list(folder.iterdir())) < props["count"] and time.monotonic() < deadline:
            time.sleep(0.05)
        return CreateResult(props["mark"], {**props, "together": len(list(folder.iterdir()))})


class Gate(Resource, module="test", name="Gate"):
    together: pulumi.Output[int]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        super().__init__(GateProvider(), name, {**props, "mark": name, "together": None}, opts)


def gates() -> None:
    """`count` resources in one explicit provider process, which this project's modules make serve more than the
    SDK's 4 calls at once (smtps_iredmail/provider_process.py): the fewest of them that ran together is exported."""
    config = pulumi.Config("smtps-iredmail")
    count, folder = config.require_int("count"), config.require("folder")
    provider = pulumi.ProviderResource("pulumi-python", "gates", {})
    made = [Gate(f"gate{n}", {"folder": folder, "count": count}, pulumi.ResourceOptions(provider=provider))
            for n in range(count)]
    pulumi.export("together", pulumi.Output.all(*(gate.together for gate in made)).apply(min))
