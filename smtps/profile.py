"""Where a run's time goes, when asked: with SMTPS_PROFILE naming a file, the front end notes each engine step it
sees begin and end, and each provider process notes each remote command and probe, one JSON line each. `make bench`
reads the file beside the CPU it samples on the host and on the controller, and prints a table per step.

Unset (normal use), nothing is written and nothing is timed. Each line is appended with one write to a file opened
with O_APPEND, so lines from several processes never interleave. The file is made 0600 (an existing one too), and
a symbolic link or anything but a regular file of this user's with one name (no hard link) at the path is refused,
as is a folder on the way that is a symbolic link of another user's. Lines hold names and times only: never a
script, an output or a secret.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager

from . import ownfile
from .settings import SettingsError

PROFILE_ENV = "SMTPS_PROFILE"


def enabled() -> bool:
    return bool(os.environ.get(PROFILE_ENV))


class ProfileError(SettingsError):
    """SMTPS_PROFILE names something the profile must not be written to."""


def _check_folders(path: str, links: int = 0) -> None:
    """Each folder on the way to the file: a symbolic link there is followed only when root or this user owns it
    (one that another user planted, in /tmp say, would make this process write into a folder that user chose)."""
    if links > 40:  # the kernel's own limit (ELOOP)
        raise ProfileError(f"{PROFILE_ENV}: too many symbolic links on the way to the file")
    parts = os.path.join(os.getcwd(), path).split("/")  # "", the folders, the file's name
    here = ""
    for index in range(1, len(parts) - 1):
        if not parts[index]:
            continue  # "//"
        here = f"{here}/{parts[index]}"
        try:
            found = os.lstat(here)
        except OSError:
            return  # missing: the open says so
        if stat.S_ISLNK(found.st_mode):
            if found.st_uid not in (0, os.geteuid()):
                raise ProfileError(f"{PROFILE_ENV}={path}: the folder {here} on the way is a symbolic link of user "
                                   f"{found.st_uid}: the profile is not written where another user points")
            target = os.path.join(os.path.dirname(here), os.readlink(here))
            _check_folders("/".join([target, *parts[index + 1:]]), links + 1)
            return


def _open(path: str) -> int:
    """The profile file, for appending: created 0600 (host names and timings are nobody else's), never through a
    symbolic link (one planted at the path would make this process write where it points), and only ever a
    regular file (a FIFO would block the run). What was opened is checked, not the name: a regular file of this
    user's with one link (a hard link would be another name for someone's file: a second link in /tmp to it, and
    this process would append to it and chmod it), made 0600 whatever mode it had."""
    _check_folders(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     0o600)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ProfileError(f"{PROFILE_ENV}={path} is a symbolic link: the profile is written only to a file "
                               "of its own; name the file itself") from None
        raise ProfileError(f"{PROFILE_ENV}={path} cannot be opened for writing: {err.strerror}") from None
    problem = ownfile.claim(fd)
    if problem:
        os.close(fd)
        raise ProfileError(f"{PROFILE_ENV}={path} {problem}: the profile is written only to a file of its own")
    return fd


def check() -> None:
    """Refuse a bad SMTPS_PROFILE before anything runs (the front end calls this first)."""
    path = os.environ.get(PROFILE_ENV)
    if path:
        os.close(_open(path))


def note(**fields: object) -> None:
    path = os.environ.get(PROFILE_ENV)
    if not path:
        return
    line = json.dumps({"t": time.time(), "pid": os.getpid(), **fields}) + "\n"
    fd = _open(path)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@contextmanager
def span(what: str, host: str) -> Iterator[None]:
    """Note the time a piece of work took on the controller's clock (t0 = start, t = end)."""
    if not enabled():
        yield
        return
    started = time.time()
    try:
        yield
    finally:
        note(kind="span", what=what, host=host, t0=started)


def script_label(script: str, host: str) -> str:
    """What a script is, for the profile: its first comment line with the host's name taken out (so the same step
    reads the same on every host); a one-line command as it is."""
    lines = script.strip().splitlines()
    if len(lines) == 1:
        return lines[0][:40]
    comment = lines[1].removeprefix("#").strip().split(" Rendered by", 1)[0].replace("'", "")
    comment = comment.replace(f" on {host}", "").replace(f" of {host}", "").replace(host, "HOST")
    return comment.split(": this", 1)[0].rstrip(".")[:60]
