"""Verification from outside, as a Pulumi resource: after a host changed, the machine running Pulumi connects to 465
as a mail client would (implicit TLS, the certificate, EHLO offering AUTH, relaying refused, the mail ports still
answering). A failed check rolls back what this run changed on the host (smtps/rollback.py) and fails its update.

Inputs: host, address, hostKey (the machine: a rebuilt one is checked again), port, jump (the host's bastion: the
check then connects through it, as the SSH connection does), `ssh` (port, user, confirmSeconds, firewalldPending: how a
rollback logs in and guards its reload; not watched) and `trigger`, the revisions of the host's resources: any
apply on the host changes it, so the check runs after every change and never on a no-op. `read` returns what was
last seen and touches nothing: `smtps verify -s STACK` checks on demand.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import (
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from smtps_iredmail.core import credentials, ports, profile, remote, rollback
from smtps_iredmail.core import firewall as fw
from smtps_iredmail.core.firewall import Firewall
from smtps_iredmail.core.nftables_rule import read_nftables
from smtps_iredmail.core.reader import Reader, labelled, read_connection, read_jump
from smtps_iredmail.core.settings import PortPolicy, SettingsError

from .base import (
    CREDENTIAL_CONFIG,
    PROVIDER_KEY,
    SSH_KEY_CONFIG,
    HostFailure,
    TypedResource,
    from_wire,
    stale_provider,
)
from .provider_process import THIS_PROCESS

if TYPE_CHECKING:
    from smtps_iredmail.core.verify import SeenFromOutside


def verify(*args: Any, **kwargs: Any) -> SeenFromOutside:
    """smtps/verify.py's check from outside, imported when a check runs: the TLS checker (cryptography, smtplib) is
    not needed by every process that loads this module (the program, a no-op's provider process, which only diffs)."""
    from smtps_iredmail.core.verify import verify as check

    return check(*args, **kwargs)


# How long 465 may take to answer TLS after a change (Postfix's service_throttle_time is 60 s).
SETTLE_SECONDS = 75
FIELDS = {"tlsVersion": "tls_version", "certSubject": "cert_subject", "certNotAfter": "cert_not_after", "auth": "auth",
          "servedSha256": "cert_sha256", "certDaysLeft": "days_left", "relayAnonymous": "relay_anonymous",
          "relayAuthenticated": "relay_authenticated"}
# Inputs whose change runs the check again: where, which machine, what it must find, and the resources' revisions.
WATCHED = ("host", "address", "port", "hostKey", "jump", "certSha256", "certMinDays", "tlsName", "caBundle", "trigger")


class VerificationFailed(Exception):
    """The check from outside failed. `rollback`: the rollback script's answer (smtps/rollback.py `result`), None
    where none ran or it failed."""

    def __init__(self, message: str, rollback: str | None = None) -> None:
        super().__init__(remote.one_line(message))  # the traceback's last line is then this exception's (remote.py)
        self.rollback = rollback


class RolledBackFailure(VerificationFailed):
    """The check failed and this run's changes on the host were undone. The engine's event names the exception's
    type (the provider's traceback), and that is how the front end knows, as data: it then reads the host's
    resources back into the state (a refresh of that host), so that the next preview shows the change again."""


# How the failure's line says that the host was rolled back.
ROLLED_BACK = "rolled back"


def _credential(raw: Any) -> tuple[str, str] | None:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return None
    if isinstance(raw, dict) and isinstance(raw.get("username"), str) and isinstance(raw.get("password"), str):
        return raw["username"], raw["password"]
    return None


class VerificationProvider(ResourceProvider):
    serialize_as_secret_always = False  # as HostProvider's (components/base.py): the state holds no secret

    def configure(self, req: ConfigureRequest) -> None:
        THIS_PROCESS.ssh.configure(req.config.get(SSH_KEY_CONFIG))  # a bastion is reached with the stack's deploy key
        # The stack's optional test credential (username, password), for the relay check after logging in.
        # SMTPS_TEST_CREDENTIAL_FILE wins: read here, in the provider process, so the value never enters Pulumi.
        THIS_PROCESS.set_credential(credentials.credential_from_file()
                                    or _credential(req.config.get(CREDENTIAL_CONFIG)))

    def _verify(self, props: dict[str, Any]) -> dict[str, Any]:
        props = from_wire(props)
        host, address = str(props["host"]), str(props["address"])
        try:
            result, before, after, problems = self._check(props, host, address)
        except Exception as err:  # noqa: BLE001 - the host changed: a check that cannot finish is a failed one
            result, before, after = None, None, frozenset()
            problems = [f"the check from outside could not finish ({type(err).__name__}: {err})"]
        if problems:
            failed = f"{host} ({address}): verification failed: {'; '.join(problems)}"
            try:
                outcome = self._roll_back(props)
            except Exception as err:  # noqa: BLE001 - the failure must still be said, with what became of the host
                outcome = rollback.Outcome(f"and rolling back this run's changes failed: {type(err).__name__}: {err}")
            failure = RolledBackFailure if outcome.undone else VerificationFailed
            raise failure(f"{failed}; {outcome.words}", outcome.answer)
        return {**props, **{output: getattr(result, field) for output, field in FIELDS.items()},
                "portsBefore": sorted(before) if before is not None else None, "portsAfter": sorted(after)}

    def _check(self, props: dict[str, Any], host: str,
               address: str) -> tuple[SeenFromOutside, frozenset[int] | None, frozenset[int], list[str]]:
        """What 465 and the mail ports answered, and the problems found in it."""
        jump = None
        if props.get("jump"):
            read = Reader(str(props.get("stack", "?")), host, {"jump": props["jump"]})
            _, jump = read_jump(read)
            read.finish()
        port_opener = remote.reach(host, address, jump, THIS_PROCESS.ssh.get)
        opener = port_opener(int(props["port"])) if port_opener else None
        started = time.monotonic()
        while True:
            with profile.span("check from outside: TLS, certificate, relay", host):
                result = verify(address, int(props["port"]), opener=opener,
                                expect_sha256=props.get("certSha256") or None,
                                min_days=int(props.get("certMinDays") or 0), ca_bundle=props.get("caBundle") or None,
                                tls_name=props.get("tlsName") or None, credential=THIS_PROCESS.credential)
            # 465 not answering TLS right after a change may be Postfix's throttle: a service whose process failed
            # to start (a broken entry, before this run repaired it) stays throttled for service_throttle_time
            # (60 s by default), which a reload does not end. So a connection failure is tried again for a while;
            # a wrong certificate, an open relay or missing AUTH is not.
            transient = result.problem.startswith(("cannot connect", "no implicit TLS"))
            if result.ok or not transient or time.monotonic() - started > SETTLE_SECONDS:
                break
            time.sleep(5)
        problems = [result.problem] if result.problem else []
        # The mail ports that answered before this run first changed the host must answer still.
        before = THIS_PROCESS.ports_before(host)
        with profile.span("probe: mail ports after", host):
            after = ports.answering(address, port_opener)
        if before is not None and ports.lost(before, after):
            problems.append(ports.lost(before, after))
        return result, before, after, problems

    def _roll_back(self, props: dict[str, Any]) -> rollback.Outcome:
        """Undo what this run changed on the host (its snapshot there, THIS_PROCESS.snapshot_id), unless
        --no-rollback: what happened, as the script answered it and in words for the failure's line."""
        host = str(props["host"])
        if not rollback.enabled():
            return rollback.Outcome(f"kept as it is for debugging ({rollback.NO_ROLLBACK_ENV} is set, --no-rollback): "
                                    "run up again, or destroy, when done")
        # The SSH connection as the host's resources use it: the address and key from the check's own inputs.
        read = labelled({**props, **(props.get("ssh") or {})})
        connection = read_connection(read)
        try:
            read.finish()
            zone = props.get("rollbackZone") or {}
            nft = props.get("rollbackNft") or {}
            chain = None
            if fw.recorded(nft.get("firewall")) is Firewall.NFTABLES:
                # Read back from the state, so checked like the settings it came from.
                read_nft = Reader(str(props.get("stack", "?")), host, {k: v for k, v in nft.items() if k != "firewall"})
                chain = read_nftables(read_nft, Firewall.NFTABLES, PortPolicy.KEEP)
                read_nft.finish()
            script = rollback.script(host, THIS_PROCESS.snapshot_id, connection, str(zone.get("zone") or ""),
                                     str(zone.get("service") or ""), chain)
            stdout = remote.run_confirmed(host, connection, script, "rollback", THIS_PROCESS.ssh.get())
        except (HostFailure, SettingsError) as err:
            return rollback.Outcome(f"and rolling back this run's changes failed: {err}")
        answer = rollback.result(stdout)
        if answer == "none":
            return rollback.Outcome("this run changed nothing on it, so nothing was rolled back", answer)
        if answer is not None and answer.startswith("partial:"):
            return rollback.Outcome(f"{ROLLED_BACK}, except what someone else changed since this run wrote it, left "
                                    f"as it is:{answer.removeprefix('partial:')}: check it", answer)
        # The script ran to its end (a failed rollback fails): an answer it did not print is taken as done.
        return rollback.Outcome(f"{ROLLED_BACK}: this run's changes on it are undone, its previous configuration is "
                                "back", answer or "done")

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = self._watched(olds, news) + ([PROVIDER_KEY] if stale_provider(olds) else [])
        return DiffResult(changes=bool(changed), replaces=[], stables=None, delete_before_replace=False)

    @staticmethod
    def _watched(olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
        return [key for key in WATCHED if (olds.get(key) or None) != (news.get(key) or None)]

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"{props['host']}@{props['address']}:{props['port']}", self._verify(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        if not self._watched(olds, news):
            # Only what is not watched changed (how a rollback logs in, the stored provider): what was seen stands.
            return UpdateResult({**news, **{key: olds.get(key) for key in (*FIELDS, "portsBefore", "portsAfter")}})
        return UpdateResult(self._verify(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        return None  # nothing on the host belongs to a check


class Verification(TypedResource, module="smtps", name="Verification"):
    tlsVersion: pulumi.Output[str]
    certSubject: pulumi.Output[str]
    certNotAfter: pulumi.Output[str]
    auth: pulumi.Output[str]
    servedSha256: pulumi.Output[str]
    certDaysLeft: pulumi.Output[int]
    relayAnonymous: pulumi.Output[str]
    relayAuthenticated: pulumi.Output[str]
    portsBefore: pulumi.Output[list[int]]
    portsAfter: pulumi.Output[list[int]]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(VerificationProvider(), name,
                         {**props, **dict.fromkeys(FIELDS), "portsBefore": None, "portsAfter": None}, opts)
