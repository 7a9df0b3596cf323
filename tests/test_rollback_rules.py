"""The rollback's controller side as plain functions: what the host's answer means, and when it is switched off."""

from __future__ import annotations

import pytest

from smtps import rollback


@pytest.mark.parametrize(("stdout", "meaning"), [
    ("smtps: mail1: rolled back: master.cf (postfix reloaded);\nsmtps-rollback=done\n", "done"),
    ("smtps: mail1: nothing of this run to undo here\nsmtps-rollback=none\n", "none"),
    ("smtps-rollback=partial: /etc/postfix/master.cf\n", "partial: /etc/postfix/master.cf"),
    ("smtps-confirm=0123456789abcdef\nsmtps-rollback=done\n", "done"),
    ("rolled back\n", None),  # no answer line: not taken as a rollback
    ("smtps-rollback=done; rm -rf /\n", None),  # only the words the script prints
])
def test_the_hosts_answer(stdout, meaning):
    assert rollback.result(stdout) == meaning


def test_no_rollback_is_an_environment_switch(monkeypatch):
    monkeypatch.delenv(rollback.NO_ROLLBACK_ENV, raising=False)
    assert rollback.enabled()
    monkeypatch.setenv(rollback.NO_ROLLBACK_ENV, "1")
    assert not rollback.enabled()
    monkeypatch.setenv(rollback.NO_ROLLBACK_ENV, "0")
    assert rollback.enabled()


def test_a_run_is_named_by_16_hex_digits_and_nothing_else_renders():
    assert len(rollback.new_run()) == 16 and rollback.new_run() != rollback.new_run()
    for bad in ("", "0123456789abcde", "0123456789abcdefg", "0123456789ABCDEF", "01234567 9abcdef"):
        with pytest.raises(ValueError, match="malformed run name"):
            rollback.script("mail1", bad)
