"""What happened in one engine operation, from the engine's own events (the Automation API's `on_event`), not from its
text: which resource failed in which step with which message, and how many resources changed how.

A provider's failure reaches the engine as the Python traceback of the exception it raised (the dynamic provider
server sends `traceback.format_exc()`); the message that matters (the host script's own words) is the exception's,
at its end. `message_of` takes it from there, so that a failure reads as one line per host and resource.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from . import profile

if TYPE_CHECKING:
    from pulumi.automation import EngineEvent

# The last line of a traceback that names an exception: `package.module.SomeError: message`.
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*(?:Error|Failure|Failed|Exception|Exit)): ?(.*)$")
_PREFIXES = ("error: ", "Exception: ")


@dataclass(frozen=True)
class Failure:
    host: str  # the host, or "-" for the stack itself (its settings, its key)
    resource: str  # the resource kind, "verification", or "program"
    step: str  # create, update, delete, refresh, ...
    message: str
    # The type of the exception the provider raised (its traceback's last line names it), "" where none: data the
    # front end acts on (a check whose host was rolled back: RolledBackFailure, components/verification.py).
    error: str = ""

    def __str__(self) -> str:
        if self.host == "-":
            return f"{self.resource}: {self.message}"
        return f"{self.host}: {self.resource}: {self.step}: {self.message}"


def _raised(lines: list[str]) -> tuple[int, re.Match[str]] | None:
    """The line of a provider's traceback that names the exception it raised, and its match (for the message shown:
    the last such line, so that a message of several lines is shown whole)."""
    if any("Traceback (most recent call last)" in line for line in lines):
        for index in range(len(lines) - 1, -1, -1):
            found = _EXCEPTION.match(lines[index])
            if found and not lines[index].startswith(" "):
                return index, found
    return None


def error_of(text: str) -> str:
    """The type of the exception in a provider's traceback (its name, without its module), or "": read from its
    last line only, where Python prints it. This project's exceptions keep their message on one line (smtps/remote.py
    `one_line`), so a line further up may be anybody's words (a host's, inside a message) and is never read as the
    type: the front end acts on it (a host rolled back)."""
    lines = text.strip().splitlines()
    if not lines or not any("Traceback (most recent call last)" in line for line in lines):
        return ""
    found = _EXCEPTION.match(lines[-1])
    return found.group(1) if found and not lines[-1].startswith(" ") else ""


def message_of(text: str) -> str:
    """The exception's own message from a provider's traceback (or the text itself, when it is not one)."""
    lines = text.strip().splitlines()
    if raised := _raised(lines):
        index, found = raised
        lines = [found.group(2), *lines[index + 1:]]
    message = " ".join(line.strip() for line in lines if line.strip())
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    return message


def _profile(event: EngineEvent) -> None:
    """A resource step's start and end, for SMTPS_PROFILE (smtps/profile.py)."""
    for kind, found in (("begin", event.resource_pre_event), ("end", event.res_outputs_event),
                        ("end", event.res_op_failed_event)):
        if found is not None:
            op = str(getattr(found.metadata.op, "value", found.metadata.op))
            profile.note(kind=kind, urn=found.metadata.urn, op=op)


@dataclass
class EngineEvents:
    """Collects the events of one engine operation (a preview, up, refresh or destroy): pass `events.on_event` to the
    Automation API's call, then ask for its `failures()` and `summary()`."""

    # Child-name suffix -> resource kind, to tell a host's resources apart by name (HOST-SUFFIX).
    suffixes: dict[str, str]
    steps: dict[str, str] = field(default_factory=dict)  # URN -> the step the engine began on it
    errors: dict[str, list[str]] = field(default_factory=dict)  # URN -> its error diagnostics
    failed: dict[str, str] = field(default_factory=dict)  # URN -> the step that failed
    changes: dict[str, int] = field(default_factory=dict)  # from the summary: op -> count
    # URN -> the resource as the state held it when the operation began (its type and outputs), from the first
    # event on it that carries its old state: what an export of the state before the operation would show of it.
    recorded: dict[str, dict[str, Any]] = field(default_factory=dict)

    def on_event(self, event: EngineEvent) -> None:
        if profile.enabled():
            _profile(event)
        if event.resource_pre_event is not None:
            meta = event.resource_pre_event.metadata
            self.steps[meta.urn] = str(getattr(meta.op, "value", meta.op))
            old = getattr(meta, "old", None)
            if old is not None and meta.urn not in self.recorded:
                self.recorded[meta.urn] = {"urn": meta.urn, "type": old.type, "outputs": dict(old.outputs or {})}
        if event.diagnostic_event is not None:
            diag = event.diagnostic_event
            if diag.severity == "error":
                self.errors.setdefault(diag.urn or "", []).append(diag.message)
        if event.res_op_failed_event is not None:
            meta = event.res_op_failed_event.metadata
            self.failed[meta.urn] = str(getattr(meta.op, "value", meta.op))
        if event.summary_event is not None:
            self.changes = {str(getattr(op, "value", op)): int(n)
                            for op, n in (event.summary_event.resource_changes or {}).items()}

    def _who(self, urn: str) -> tuple[str, str]:
        kind = urn.split("::")[-2] if urn.count("::") >= 3 else ""
        name = urn.rsplit("::", 1)[-1] if urn else ""
        if not urn or kind.endswith("pulumi:Stack"):
            return "-", "program"
        for suffix, resource in self.suffixes.items():
            if name.endswith(f"-{suffix}") and "dynamic" in kind:
                return name[: -len(suffix) - 1], resource
        return name, kind.rsplit("$", 1)[-1] or "resource"

    def failures(self) -> list[Failure]:
        found = []
        for urn in dict.fromkeys([*self.errors, *self.failed]):
            host, resource = self._who(urn)
            step = self.failed.get(urn) or self.steps.get(urn) or "run"
            messages = list(dict.fromkeys(message_of(text) for text in self.errors.get(urn, [])))
            # The engine repeats a program's error inside its own ("an unhandled error occurred: ..."): once is enough.
            messages = [m for m in messages if not any(other != m and other in m for other in messages)]
            # A failed step with no message of its own was said elsewhere (the engine's own summary line).
            message = "; ".join(m for m in messages if m) or "failed (see above)"
            for prefix in (f"smtps: {host}: ", f"{host}: "):
                message = message.removeprefix(prefix)
            # The check names its host with its address ("mail1 (10.0.0.1): ..."): the line names it already.
            message = re.sub(rf"^{re.escape(host)} \([^)]*\): ", "", message)
            errors = [error for text in self.errors.get(urn, []) if (error := error_of(text))]
            found.append(Failure(host, resource, step, message, errors[-1] if errors else ""))
        # The stack's own catch-all ("update failed") says nothing a host's line does not.
        hosts = [f for f in found if f.host != "-"]
        return hosts or found

    def state(self) -> dict[str, Any]:
        """The resources the operation found in the state (each as it was recorded), shaped as an exported
        deployment: after a preview that ran to its end, every resource of the stack, with no export."""
        return {"resources": list(self.recorded.values())}

    def summary(self) -> dict[str, Any]:
        return {"changes": self.changes, "failures": [asdict(f) for f in self.failures()]}

    def write(self, path: str) -> None:
        with open(path, "w") as out:
            json.dump(self.summary(), out, indent=2)
