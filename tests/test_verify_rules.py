"""What the check from outside makes of what 465 answered, on plain values (the lab tests run it against Postfix)."""

from __future__ import annotations

import pytest

from smtps_iredmail.core.verify import _relay_problems
from smtps_iredmail.verification import _credential


@pytest.mark.parametrize(("anonymous", "authenticated", "credential", "words"), [
    ("554 5.7.1 <relay-probe@example.net>: Relay access denied", "", None, None),
    ("553 5.7.1 Sender address rejected", "", None, None),  # refused at MAIL FROM already: no relaying either
    ("250 2.1.5 Ok", "", None, "OPEN RELAY: without logging in, RCPT TO relay-probe@example.net was accepted"),
    ("450 4.7.1 try later", "", None, "was not refused outright (450 4.7.1 try later)"),
    ("554 5.7.1 denied", "250 2.1.5 Ok", ("u", "p"), None),
    ("554 5.7.1 denied", "554 5.7.1 denied", ("u", "p"), "after logging in as u, RCPT TO relay-probe@example.net was"),
    ("554 5.7.1 denied", "535 login failed", ("u", "p"), "was refused (535 login failed)"),
    ("error: Connection unexpectedly closed", "", None, "the relay probe did not complete"),
])
def test_relay_answers(anonymous, authenticated, credential, words):
    problems = _relay_problems(anonymous, authenticated, credential)
    if words is None:
        assert problems == []
    else:
        assert any(words in p for p in problems), problems


def test_the_test_credential_comes_as_json_or_a_mapping():
    assert _credential('{"username": "u@x", "password": "p"}') == ("u@x", "p")
    assert _credential({"username": "u", "password": "p"}) == ("u", "p")
    assert _credential(None) is None and _credential("nonsense") is None and _credential({"username": "u"}) is None


def test_a_port_that_answered_before_and_not_after_is_named():
    from smtps_iredmail.core import ports

    assert ports.lost(frozenset({25, 587}), frozenset({25, 587, 465})) == ""
    assert ports.lost(frozenset({25, 587, 465}), frozenset({465})) == (
        "ports that answered before this run changed the host no longer do: 25, 587 (before: 25, 465, 587; now: 465)")


def test_ports_answer_when_something_listens(tmp_path):
    import socket

    from smtps_iredmail.core import ports

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        open_port = listener.getsockname()[1]
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            closed_port = closed.getsockname()[1]
        assert ports.answering("127.0.0.1", ports=(open_port, closed_port)) == frozenset({open_port})


def test_the_probe_before_a_change_stops_waiting_for_a_silent_port_and_the_probe_after_waits():
    """A filtered port (iRedMail's nftables drops 465) says nothing: the quick probe stops waiting for it soon after
    another port answered (a port slower than that is not counted, which errs safe: it cannot be lost later); the
    probe after the change waits for a slow answer."""
    import socket
    import time

    from smtps_iredmail.core import ports

    def opener(port: int):
        def connect():
            if port == 465:
                time.sleep(2.5)  # silent, then the connection times out
                raise TimeoutError("timed out")
            if port == 587:
                time.sleep(1.2)  # slow, but it answers
            return socket.socket()
        return connect

    assert ports.answering("192.0.2.1", opener, ports=(25, 465, 587), quick=True) == frozenset({25})
    assert ports.answering("192.0.2.1", opener, ports=(25, 465, 587)) == frozenset({25, 587})


def test_a_connection_still_waiting_never_holds_up_the_process_exit():
    """The quick probe returns while a silent port's connection still waits: that thread must not be one the
    interpreter joins at exit (an executor's are), or every provider process probing an nftables host would end
    only when that connection times out."""
    import threading

    from smtps_iredmail.core import ports

    release = threading.Event()

    def opener(port: int):
        def connect():
            if port == 465:
                release.wait(10)
                raise TimeoutError("timed out")
            import socket

            return socket.socket()
        return connect

    try:
        assert ports.answering("192.0.2.1", opener, ports=(25, 465), quick=True) == frozenset({25})
        waiting = [t for t in threading.enumerate() if t.name == "probe-465" and t.is_alive()]
        assert waiting and all(t.daemon for t in waiting)
    finally:
        release.set()
