"""The stack files in stacks/ parse into settings, as the program will parse them: an example never rots."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from smtps.settings import parse_stack

STACKS = sorted(p for p in (Path(__file__).parent.parent / "stacks").glob("Pulumi.*.yaml") if p.name !=
                "Pulumi.lab.yaml")


def test_there_are_example_stacks():
    assert STACKS


@pytest.mark.parametrize("path", STACKS, ids=lambda p: p.name)
def test_example_stack_parses(path):
    config = yaml.safe_load(path.read_text())["config"]
    stack = path.name.split(".")[1]
    hosts = parse_stack(stack, config.get("smtps-iredmail:defaults"), config["smtps-iredmail:hosts"])
    assert [h.name for h in hosts] and all(h.connection.host_key.startswith("ssh-") for h in hosts)
