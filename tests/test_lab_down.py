"""`lab down` when a host's processes will not stop: the rest is still taken down, and it says which."""

from __future__ import annotations

import pytest

from lab import host as hostops
from lab import lab


def test_a_host_that_will_not_stop_fails_down_after_the_others_and_the_links_are_gone(tmp_path, monkeypatch):
    state = tmp_path / "state"
    (state / "hosts").mkdir(parents=True)
    namespaces = ["t-mail1", "t-mail2", "t-mail3"]
    links = ["t1", "t2", "t3"]
    stopped, tried, unguarded = [], [], []

    def stop(netns):
        tried.append(netns)
        if netns == "t-mail2":
            raise hostops.LabError(f"{netns}: processes [42] did not stop")
        namespaces.remove(netns)
        stopped.append(netns)
        return [1]

    def remove_links(_name):
        removed, links[:] = list(links), []
        return removed

    monkeypatch.setattr(hostops, "lab_namespaces", lambda _name: list(namespaces))
    monkeypatch.setattr(hostops, "stop_namespace", stop)
    monkeypatch.setattr(hostops, "remove_links", remove_links)
    monkeypatch.setattr(hostops, "unguard_subnet", unguarded.append)
    with pytest.raises(hostops.LabError, match=r"t-mail2: processes \[42\] did not stop: stop them, then run down"):
        lab.down(state, "t", "10.231.9.0/24")
    # Each other host stopped once, the failing one tried once, every link removed; the guard and the state kept.
    assert stopped == ["t-mail1", "t-mail3"] and tried.count("t-mail2") == 1 and links == []
    assert unguarded == [] and (state / "hosts").is_dir()
