"""A file this process keeps to itself (the profile, the lab's secret files), judged by what was opened, never by
its name: a name can be swapped between a check and an open, an open file cannot."""

from __future__ import annotations

import os
import stat


def claim(fd: int) -> str:
    """"" when the open file is a regular file of this user's with one name, then made 0600 whatever mode it had;
    else what it is instead. A second name (hard link) would be someone's file under a name this process was given:
    it would append to it and chmod it."""
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode):
        return "is not a regular file"
    if found.st_uid != os.geteuid():
        return f"belongs to user {found.st_uid}, not to this one"
    if found.st_nlink != 1:
        return f"has {found.st_nlink} names (hard links)"
    if stat.S_IMODE(found.st_mode) != 0o600:
        os.fchmod(fd, 0o600)  # an existing file keeps no wider mode
    return ""
