"""The one exception family users see.

The CLI turns any ScientistError into a single line: what is wrong, then what to do about it.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any


class ScientistError(Exception):
    """A problem the user can fix; `hint` says how."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message.rstrip(".")
        return f"{text}; {self.hint.rstrip('.')}." if self.hint else f"{text}."

    def __str__(self) -> str:
        return self.one_line()


class PluginError(ScientistError):
    """A plugin is missing, duplicated, misconfigured or broken."""


class SettingsError(ScientistError):
    """scientist.toml, an environment variable or a flag holds an invalid value."""


class StoreError(ScientistError):
    """The run store cannot be opened or does not hold what was asked for."""


class SandboxError(ScientistError):
    """The sandbox cannot run a command as asked (not: the command failed)."""


class ExperimentError(ScientistError):
    """An experiment or baseline did not produce its results."""


class PathError(ScientistError):
    """A path the user gave, or the disk under it, refuses what a command needs: not there, not a folder, not
    writable, full."""


DISK_FULL_HINT = "free some space or choose a folder on another disk, then run the command again: what finished is kept"

# errno -> (what is wrong with PATH, what to do): the OS errors a user fixes, whichever command meets them; any
# other OSError is a bug in scientist or a plugin and keeps its traceback
_OS_PROBLEMS = {
    errno.EACCES: ("permission denied: {path}", "make it readable and writable for you, or choose another path"),
    errno.EPERM: ("operation not permitted on {path}", "choose a path you own"),
    errno.ENOTDIR: ("{path}: part of this path is a file, not a folder", "move the file away or choose another path"),
    errno.EISDIR: ("{path} is a folder where a file is expected", "give a file, or move the folder away"),
    errno.EEXIST: ("{path} already exists", "move it away or choose another path"),
    errno.EROFS: ("{path} is on a read-only file system", "choose a writable folder"),
    errno.ENOSPC: ("no space left on the disk holding {path}", DISK_FULL_HINT),
    errno.EDQUOT: ("your disk quota is used up on the disk holding {path}", DISK_FULL_HINT),
    errno.EFBIG: ("{path} grew larger than this file system allows", "choose a folder on another disk"),
    errno.ENAMETOOLONG: ("the path {path} is too long", "choose a shorter path"),
}
_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]")


def from_os_error(exc: OSError, where: Path | None = None) -> PathError | None:
    """The one line for an OS error a user can fix (see _OS_PROBLEMS), naming the path it happened on: the
    error's own, else `where` (a write to an open file names none); None for an OS error that is a bug.
    shutil.copytree's Error, a list of (source, destination, text) per file, counts as its first file's error."""
    number, path = exc.errno, exc.filename
    if exc.filename2 is not None and number in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG):
        path = exc.filename2  # a copy: the destination is what could not be written
    if number is None and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        _source, path, text = exc.args[0][0]
        found = _ERRNO_IN_TEXT.search(str(text))
        number = int(found.group(1)) if found else None
    if number not in _OS_PROBLEMS:
        return None
    what, hint = _OS_PROBLEMS[number]
    named = path if path is not None else where
    return PathError(what.format(path=named) if named is not None else os.strerror(number).lower(), hint)


def first_problem(exc: Any) -> tuple[str, str]:
    """(where, what) of a pydantic ValidationError's first error, e.g. ("run.max_runs", "Input should be greater
    than 0"): the one line every bad value becomes; where is "" for the whole object."""
    first = exc.errors()[0]
    return ".".join(str(part) for part in first["loc"]), first["msg"]
