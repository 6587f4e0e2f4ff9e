"""Run a command on a machine that forbids namespaces, as Docker's default seccomp profile does.

    python -m scientist_core.testing.no_namespaces COMMAND...

Installs a seccomp filter that fails unshare(2) with EPERM, then runs COMMAND: the sandbox, and everything it
starts, meets the kernel's refusal as it would in such a container, and falls to its mode "none". The tests of
that mode use this instead of a switch inside the sandbox, so the path they check is the one users meet.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
# (AUDIT_ARCH_*, unshare's syscall number) per machine
ARCHES = {"x86_64": (0xC000003E, 272), "aarch64": (0xC00000B7, 97)}


def supported() -> str | None:
    """None where the filter can be installed here, else why not."""
    if platform.machine() not in ARCHES:
        return f"no seccomp filter for {platform.machine()} (known: {', '.join(ARCHES)})"
    return None


def forbid_namespaces() -> None:
    """From now on unshare(2) fails with EPERM in this process and every process it starts."""
    arch, unshare = ARCHES[platform.machine()]
    program = [  # (code, jump if true, jump if false, k): seccomp_data is nr (offset 0), arch (offset 4)
        (BPF_LD_W_ABS, 0, 0, 4),
        (BPF_JEQ_K, 0, 3, arch),
        (BPF_LD_W_ABS, 0, 0, 0),
        (BPF_JEQ_K, 0, 1, unshare),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code, len(code))

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = Program(len(program), ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0 or \
            libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"cannot install the seccomp filter: {os.strerror(code)}")


def main() -> None:
    reason = supported()
    if reason:
        sys.exit(reason)
    forbid_namespaces()
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
