"""Run a command as an unprivileged uid that can still reach this Python environment.

    python as_user.py UID PATH... -- COMMAND...      (as root)

The isolation table's tests run scientist as a user who is not root, on machines (CI) where the tests run as
root and Python may live where other users cannot enter, such as /root/.pyenv. This makes a private mount
namespace in which each such folder on the way to a PATH is covered by an empty tmpfs with the PATHs bound back
at their own paths, then drops to UID (gid UID, no supplementary groups) and runs COMMAND. Nothing else changes:
processes, network and every other file stay the host's, as they are for a user who runs scientist.
"""

from __future__ import annotations

import os
import sys

from scientist_sandbox.helper import CLONE_NEWNS, LIBC, MS_BIND, MS_PRIVATE, MS_REC, libc_error, mount, under


CANNOT = "as_user: cannot make a mount namespace to run as another uid"


def closed_folder(path: str) -> str | None:
    """The first folder on the way to `path` (itself included) that other users cannot enter."""
    parts = path.strip("/").split("/")
    for depth in range(1, len(parts) + 1):
        folder = "/" + "/".join(parts[:depth])
        if not os.stat(folder).st_mode & 0o001:
            return folder
    return None


def outermost(paths: list[str]) -> list[str]:
    kept: list[str] = []
    for path in sorted(set(paths), key=len):
        if not any(under(path, top) for top in kept):
            kept.append(path)
    return kept


def main() -> None:
    split = sys.argv.index("--")
    uid = int(sys.argv[1])
    paths = outermost([os.path.realpath(path) for path in sys.argv[2:split] if os.path.isdir(path)])
    command = sys.argv[split + 1:]
    if LIBC.unshare(CLONE_NEWNS) != 0:  # e.g. a container without CAP_SYS_ADMIN: the tests skip, saying this
        sys.exit(f"{CANNOT}: {libc_error('unshare(CLONE_NEWNS)')}")
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing below reaches the host's mount table
    for top in outermost([folder for folder in map(closed_folder, paths) if folder]):
        inside = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in paths if under(path, top)]
        mount("tmpfs", top, "tmpfs", 0, "mode=0755")
        for path, fd in inside:
            os.makedirs(path, mode=0o755, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
            os.close(fd)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
