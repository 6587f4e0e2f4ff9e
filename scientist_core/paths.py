"""The folders a command writes: checked before it starts work it could lose, and named when a disk fills later.

A command that writes calls `writable_folder` for each folder a user chose (--out, the data folder) before it
spends anything, so a typo, a file in the way or a folder it may not write is one line and nothing is started. A
disk that fills later raises an OSError that often names no path (a write to an open file); `fullest_folder`
names the checked folder whose disk has the least room left, for the CLI's one line.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from scientist_core.errors import PathError

if TYPE_CHECKING:
    from scientist_core.settings import Settings

_checked: list[Path] = []  # the folders this process checked, for the errors that name no path


def writable_folder(path: Path, role: str) -> Path:
    """`path`, the folder `role` names (e.g. "the output folder (--out)"), created if missing and proven
    readable and writable by listing it and creating a file in it; a PathError naming both otherwise."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise PathError(f"{folder}, {role}, is a file, not a folder", "give a folder, or move the file away")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.listdir(folder)
        with tempfile.TemporaryFile(dir=folder, prefix=".scientist-probe-"):
            pass
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise PathError(f"cannot use {folder} as {role}: {reason}",
                        "choose a folder you can create, read and write, or fix its permissions") from None
    if folder.resolve() not in _checked:
        _checked.append(folder.resolve())
    return folder


def writable_file(path: Path, role: str) -> Path:
    """`path`, the file `role` names, not a folder, in a folder `writable_folder` accepts; a PathError otherwise."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise PathError(f"{file}, {role}, is a folder, not a file", "give a file's path, or move the folder away")
    writable_folder(file.parent, f"the folder of {role}")
    return file


def fullest_folder() -> Path | None:
    """Of the folders `writable_folder` checked, the one whose disk has the least room left (None if none)."""
    def room(folder: Path) -> int:
        try:
            stats = os.statvfs(folder)
        except OSError:
            return 0
        return stats.f_bavail * stats.f_frsize
    return min(_checked, key=room, default=None)


def writable_outputs(settings: "Settings", data_folder: bool = True, existing_store: bool = False) -> None:
    """Before a command starts work it could lose: the output folder writable and its run store sound (and there,
    with `existing_store`), and with `data_folder` the data folder writable (caches, downloads, the archive)."""
    from scientist_core.store import Store

    if existing_store:
        Store.open_existing(settings.store_path).close()  # a mistyped --out is named before anything is created
    writable_folder(settings.out_dir, "the output folder (--out)")
    if data_folder:
        writable_folder(settings.data_dir, "the data folder (data_dir)")
    store = Store(settings.store_path)
    try:
        store.verify()
    finally:
        store.close()
