"""The host's answer lines: what a host script prints as `key=value`, parsed once into `Answers`. Part of the remote
layer (smtps/remote.py runs the scripts and re-exports this); a module of its own so that what only reads answers
(the firewall choice, which the settings import) does not import the connection."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Answers:
    """What a host script answered: its `key=value` lines, every value of each key in the order printed. What a host
    printed is data: each reader takes the value it trusts (the last, the first, or exactly one)."""

    values: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def all(self, key: str) -> tuple[str, ...]:
        return self.values.get(key, ())

    def last(self, key: str, default: str | None = None) -> str | None:
        found = self.all(key)
        return found[-1] if found else default

    def first(self, key: str) -> str | None:
        found = self.all(key)
        return found[0] if found else None

    def latest(self) -> dict[str, str]:
        """Each key's last value (a later line says it again, as the facts script does)."""
        return {key: values[-1] for key, values in self.values.items()}


def answers(stdout: str) -> Answers:
    """A script's stdout as its answer lines; a line without `=` is not one (a message, a warning)."""
    values: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key, []).append(value)
    return Answers({key: tuple(found) for key, found in values.items()})
