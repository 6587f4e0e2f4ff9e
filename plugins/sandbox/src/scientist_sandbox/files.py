"""The run folder as the caller sees it: walked without following links, measured, handed to the run's uid
and back, removed whatever its permissions."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path


def walk(root: Path, skip: Sequence[Path] = ()):
    """(path, lstat) for root and everything below it; never follows symlinks; skips `skip` folders."""
    skipped = {str(path) for path in skip}
    try:
        yield str(root), os.lstat(root)
    except OSError:
        return
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                found = list(entries)
        except OSError:
            continue
        for entry in found:
            if entry.path in skipped:
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            yield entry.path, info
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)


def disk_usage(root: Path, skip: Sequence[Path] = ()) -> int:
    """Bytes allocated below root, every file counted as at least one 4 KiB block (so empty files count)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for _, info in walk(root, skip):
        if (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            total += max(info.st_blocks * 512, 4096)
    return total


def take_ownership(
    workdir: Path, uid: int, gid: int, skip: Sequence[Path], notes: list[str]
) -> dict[str, tuple[int, int]]:
    """Hand the work folder to the run's uid; returns the previous owners to restore afterwards."""
    import stat

    saved = {}
    for path, info in walk(workdir, skip):
        if stat.S_ISLNK(info.st_mode) or (not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1):
            continue  # never hand over a file that has another name elsewhere
        try:
            os.chown(path, uid, gid, follow_symlinks=False)
            saved[path] = (info.st_uid, info.st_gid)
        except OSError as exc:
            notes.append(f"could not hand {path} to the run's uid: {exc.strerror}")
            if len(notes) > 20:
                break
    return saved


def give_back_ownership(
    workdir: Path, uid: int, gid: int, saved: dict[str, tuple[int, int]], owner: tuple[int, int], skip: Sequence[Path]
) -> None:
    """Return what the run's uid owns in the work folder to its previous (or the folder's) owner."""
    import stat

    for path, info in walk(workdir, skip):
        if info.st_uid != uid and info.st_gid != gid:
            continue
        try:
            os.chown(path, *saved.get(path, owner), follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and info.st_mode & 0o6000:
                os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o6000)  # no set-uid files left behind
        except OSError:
            pass


def remove_tree(path: Path) -> None:
    """Delete a file, a symlink (not its target) or a folder tree, whatever its permissions."""

    def force(function, name, _exc):
        try:
            os.chmod(os.path.dirname(name), 0o700)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o700)
            function(name)
        except OSError:
            pass

    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=force)
        else:
            shutil.rmtree(path, onerror=force)
