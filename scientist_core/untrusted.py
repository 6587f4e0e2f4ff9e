"""The one-way boundary between the host and what a run wrote, and the host's own crash-safe writes.

Everything in a folder a run could write is hostile input: any file there may have been replaced by a symbolic
link to a file the sandbox hides, a FIFO that blocks its reader, a device, a hard link to a file elsewhere, or
something huge. So the host never opens run output by path. It walks down from the folder it created, one
component at a time with O_NOFOLLOW, takes back only regular files with one name and a bounded size, and writes
into such a folder by renaming a new file over whatever is there (a rename replaces a link; it never follows
one). The host's own records are written the same way (a temporary file, fsync, rename), so a crash leaves the
old record or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from scientist_core.errors import ScientistError

MAX_FILE_BYTES = 64 * 2**20  # the most the host takes back of one file unless told otherwise
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO cannot stall the open


class UntrustedOutput(ScientistError):
    """A file a run wrote is not a plain file the host may take back (a link, device, FIFO, hard link, too big)."""


def _parts(relative: str | os.PathLike) -> list[str]:
    path = PurePosixPath(relative)
    if path.is_absolute() or not path.parts or any(part in (".", "..") for part in path.parts):
        raise UntrustedOutput(f"{str(relative)!r} is not a path inside the run's folder")
    return list(path.parts)


def _refused(root: Path, relative: Any, why: str) -> UntrustedOutput:
    return UntrustedOutput(f"{root / str(relative)} was refused: {why}",
                           "the host takes back only plain files a run wrote; nothing was read through it")


@contextmanager
def _folder(root: Path, parts: list[str], create: bool = False) -> Iterator[int]:
    """A descriptor of root/parts, every component opened without following links (made when `create`)."""
    fd = os.open(root, _DIR)
    try:
        for index, part in enumerate(parts):
            try:
                inner = os.open(part, _DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                inner = os.open(part, _DIR, dir_fd=fd)
            except OSError:
                raise _refused(root, "/".join(parts[:index + 1]), "not a folder (a link or a file)") from None
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def _check_plain(info: os.stat_result, root: Path, relative: Any, limit: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise _refused(root, relative, "not a regular file (a device, FIFO or socket)")
    if info.st_nlink != 1:
        raise _refused(root, relative, "a hard link to a file elsewhere")
    if info.st_size > limit:
        raise _refused(root, relative, f"{info.st_size:,} bytes, over the {limit:,} taken back")


def read_bytes(root: Path, relative: str | os.PathLike, limit: int = MAX_FILE_BYTES) -> bytes:
    """The content of root/relative, a plain file a run wrote; FileNotFoundError when it is not there."""
    *folders, name = _parts(relative)
    with _folder(Path(root), folders) as parent:
        try:
            fd = os.open(name, _FILE, dir_fd=parent)
        except FileNotFoundError:
            raise
        except OSError:
            raise _refused(Path(root), relative, "a link, or not readable") from None
    with os.fdopen(fd, "rb") as handle:
        _check_plain(os.fstat(handle.fileno()), Path(root), relative, limit)
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise _refused(Path(root), relative, f"grew past the {limit:,} bytes taken back")
    return data


def read_text(root: Path, relative: str | os.PathLike, limit: int = MAX_FILE_BYTES) -> str:
    return read_bytes(root, relative, limit).decode("utf-8", errors="replace")


def read_json(root: Path, relative: str | os.PathLike, limit: int = MAX_FILE_BYTES) -> Any:
    return json.loads(read_bytes(root, relative, limit))


def copy_out(root: Path, relative: str | os.PathLike, destination: Path, limit: int = MAX_FILE_BYTES) -> Path:
    """Copy the plain file root/relative to the host's `destination` (written atomically)."""
    write_atomic(destination, read_bytes(root, relative, limit))
    return destination


def copy_tree_out(root: Path, relative: str | os.PathLike, destination: Path,
                  limit: int = MAX_FILE_BYTES) -> list[str]:
    """Copy the plain files below root/relative to `destination`, which appears whole or not at all (built
    beside it, then renamed); at most `limit` bytes in all. Returns what was left out (links, devices, ...)."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    building = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.tmp")
    left_out: list[str] = []
    budget = [limit]

    def copy(source_fd: int, into: Path, prefix: str) -> None:
        into.mkdir()
        for entry in sorted(os.listdir(source_fd)):
            info = os.stat(entry, dir_fd=source_fd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                inner = os.open(entry, _DIR, dir_fd=source_fd)
                try:
                    copy(inner, into / entry, f"{prefix}{entry}/")
                finally:
                    os.close(inner)
                continue
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                left_out.append(prefix + entry)
                continue
            fd = os.open(entry, _FILE, dir_fd=source_fd)
            with os.fdopen(fd, "rb") as handle:
                _check_plain(os.fstat(handle.fileno()), root, prefix + entry, budget[0])
                data = handle.read(budget[0] + 1)
            budget[0] -= len(data)
            if budget[0] < 0:
                raise _refused(root, relative, f"over the {limit:,} bytes taken back")
            (into / entry).write_bytes(data)

    try:
        with _folder(Path(root), _parts(relative)) as source:
            copy(source, building, f"{PurePosixPath(relative)}/")
        _fsync_tree(building)
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(building, destination)
        _fsync_folder(destination.parent)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return left_out


def write_into(root: Path, relative: str | os.PathLike, data: bytes | str) -> None:
    """Put `data` at root/relative, in a folder a run may have written: whatever is there (a link, a folder)
    is replaced, never followed; missing folders on the way are made."""
    *folders, name = _parts(relative)
    payload = data.encode() if isinstance(data, str) else data
    with _folder(Path(root), folders, create=True) as parent:
        temp = f".{name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                     dir_fd=parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        try:
            os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except IsADirectoryError:
            shutil.rmtree(name, dir_fd=parent)
            os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)


def remove_from(root: Path, relative: str | os.PathLike) -> None:
    """Remove root/relative (a file, a link itself, or a folder with everything in it) without following links."""
    *folders, name = _parts(relative)
    try:
        with _folder(Path(root), folders) as parent:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(name, dir_fd=parent)
            else:
                os.unlink(name, dir_fd=parent)
    except FileNotFoundError:
        pass


def make_folder_in(root: Path, relative: str | os.PathLike) -> Path:
    """root/relative as a fresh, empty folder: whatever a run left there (a link included) is removed first."""
    remove_from(root, relative)
    with _folder(Path(root), _parts(relative), create=True):
        pass
    return Path(root) / relative


# -- the host's own files -----------------------------------------------------------------------------------

def write_atomic(path: Path, data: bytes | str) -> None:
    """Write the host's file `path` so that a crash leaves the old content or the new, never a part: a
    temporary file beside it, flushed to disk, renamed over it (a link at `path` is replaced, not followed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def append_atomic(path: Path, text: str) -> None:
    """Add `text` to the end of the host's text file `path` (a journal), crash-safe as write_atomic."""
    path = Path(path)
    before = path.read_text() if path.is_file() and not path.is_symlink() else ""
    write_atomic(path, before + text)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for current, _, files in os.walk(folder):
        for name in files:
            fd = os.open(Path(current) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_folder(Path(current))
