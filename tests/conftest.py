"""Shared test set-up. In CI (CI=true) a missing tool fails the test; elsewhere it skips with the reason."""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import settings

# Property tests: 400 examples in `make test`; `make test-full` (HYPOTHESIS_PROFILE=full) runs 5000.
settings.register_profile("default", max_examples=400, deadline=None)
settings.register_profile("full", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

LAB_TOOLS = ["ip", "unshare", "nsenter", "sshd", "ssh", "ssh-keygen", "firewalld", "firewall-cmd", "dbus-daemon",
             "dbus-send", "postfix", "postconf", "saslpasswd2", "openssl", "nft"]


def require(condition: bool, reason: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing tool is a failure, not a skip)")
    pytest.skip(reason)


def require_lab() -> None:
    require(os.geteuid() == 0, "the lab needs root")
    missing = [tool for tool in LAB_TOOLS if shutil.which(tool) is None]
    require(not missing, f"the lab needs {', '.join(missing)} (apt packages: see .ci/run)")
