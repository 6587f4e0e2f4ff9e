"""The sandbox: the only way generated code runs.

`run()` starts one command in a contained environment and always returns an `ExecutionResult`
saying what happened (exit status, which limit was hit, resources used, log tails). It raises
`SandboxError` only for caller mistakes: a missing work folder, or `require_isolation` asked for
an isolation this machine cannot provide.

Layout of one run (`workdir` is the run folder chosen by the caller)::

    workdir/                 read-write for the command; what it writes counts against disk_mb
    workdir/.sandbox/        stdout.log and stderr.log (the default log_dir; read-only inside)
    workdir/.sandbox-tmp/    the command's TMPDIR and HOME; deleted after the run

Processes::

    caller, in run()         monitor loop: wall clock, disk quota, stdout cap, cpu, procs, memory
      helper "outer"         `python -I -S`, stdlib only: joins the cgroups, unshares namespaces
        helper "init"        PID 1 of the new PID namespace: mounts, then forks and reaps
          the command        own session, rlimits, unprivileged uid, scrubbed environment

The helpers run the functions `_proc_table`, `_descendants` and `_sandbox_init` below, whose
source is handed to a fresh interpreter, so they use the standard library only. docs/sandbox.md
says what is isolated in each mode (root, user namespace, none) and what is not.
"""

from __future__ import annotations

import errno
import inspect
import json
import os
import pwd
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from scientist_core.errors import SandboxError

LimitName = Literal["timeout", "memory", "cpu_time", "procs", "disk", "stdout"]

MB = 1024 * 1024

# Variables passed through from the caller's environment when set (plus LC_*); nothing else is.
PASSTHROUGH_ENV = (
    "LANG",
    "LANGUAGE",
    "TZ",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMEXPR_MAX_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "BLIS_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "NVIDIA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "PYTHONHASHSEED",
)
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENV_MARKER = "SCIENTIST_SANDBOX_ID"

LOG_DIR_NAME = ".sandbox"
SCRATCH_DIR_NAME = ".sandbox-tmp"

# When run as root, each run gets its own unprivileged uid/gid from this range (no passwd entry),
# so RLIMIT_NPROC counts only that run's processes and runs cannot signal each other.
_UID_BASE = 1_500_000_000
_UID_SPAN = 1_000_000

_POLL_S = 0.05
_PSS_EVERY_S = 0.25
_KILL_WAIT_S = 5.0
# Tests set this to exercise the fallback used where namespaces are unavailable.
_FORCE_NO_NAMESPACES = False


class Limits(BaseModel):
    """What one sandboxed run may use. Set by the caller; nothing the run writes can change them."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(
        3600,
        gt=0,
        description="Wall-clock limit in seconds, enforced by the calling process; on expiry every process of the run is killed.",
    )
    memory_mb: int | None = Field(
        8192,
        ge=16,
        description="Memory cap in MiB for the whole run (memory cgroup where available, RLIMIT_DATA per process, and a monitor of the summed PSS); None for no cap.",
    )
    cpu_time_s: float | None = Field(
        None,
        gt=0,
        description="CPU-time cap in seconds summed over the run's processes (RLIMIT_CPU per process plus a monitor); None for no cap.",
    )
    procs: int | None = Field(
        256,
        ge=1,
        description="Cap on the number of processes and threads alive at once (pids cgroup and/or RLIMIT_NPROC); None for no cap.",
    )
    disk_mb: int | None = Field(
        2048,
        ge=1,
        description="Quota in MiB on what the run adds to its work folder and private tmp folders (monitor plus RLIMIT_FSIZE per file); None for no quota.",
    )
    stdout_mb: float = Field(
        10,
        gt=0,
        description="Cap in MiB on each captured stream (stdout, stderr); writing past it stops the run with limit_hit='stdout'.",
    )
    network: bool = Field(
        False,
        description="False: the run gets its own network namespace with only a loopback interface (no network). True: the host network.",
    )
    require_isolation: bool = Field(
        False,
        description="Refuse to run (SandboxError) unless PID, filesystem, user and (when network is False) network isolation are all in force.",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment variables the caller allows through; everything else is scrubbed (no API keys by default).",
    )
    read_only: list[str] = Field(
        default_factory=list,
        description="Folders the run may read even where they lie in a hidden one (the caller's home, /tmp): bound at their own paths, read-only.",
    )

    @field_validator("env")
    @classmethod
    def _valid_env(cls, env: dict[str, str]) -> dict[str, str]:
        for key, value in env.items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise ValueError(f"invalid environment variable {key!r}")
        return env


class ExecutionResult(BaseModel):
    """What happened to one sandboxed run. `ok` means exit code 0 and no limit hit."""

    model_config = ConfigDict(extra="forbid")

    sandbox_id: str = Field(description="Identifier of this run; also in the run's environment as SCIENTIST_SANDBOX_ID.")
    command: list[str] = Field(description="The command as given by the caller.")
    workdir: str = Field(description="Absolute path of the run folder.")
    exit_code: int | None = Field(description="Exit code of the command; None when it was killed by a signal.")
    signal: int | None = Field(description="Number of the signal that killed the command, if any.")
    signal_name: str | None = Field(None, description="Name of that signal, e.g. SIGKILL.")
    limit_hit: LimitName | None = Field(description="The limit that stopped or broke the run, if any.")
    ok: bool = Field(description="True when the command exited with code 0 and no limit was hit.")
    wall_s: float = Field(description="Wall-clock seconds from start until every process of the run was gone.")
    cpu_s: float = Field(description="CPU seconds (user + system) used by all processes of the run.")
    peak_memory_mb: float = Field(
        description="Peak memory of the run in MiB: the summed proportional set size of its processes (sampled) or the largest single process's peak RSS, whichever is larger."
    )
    disk_used_mb: float = Field(description="Peak growth of the work folder and private tmp folders, in MiB.")
    stdout_path: str = Field(description="File holding the captured stdout (at most stdout_mb).")
    stderr_path: str = Field(description="File holding the captured stderr (at most stdout_mb).")
    stdout_tail: str = Field(description="Last characters of stdout.")
    stderr_tail: str = Field(description="Last characters of stderr.")
    isolation: dict[str, bool] = Field(description="Which isolations were in force for this run.")
    notes: list[str] = Field(default_factory=list, description="What degraded, and other remarks of the sandbox.")


def python_executable() -> str:
    """The interpreter of this environment; `python`/`python3` in a sandboxed command mean this one."""
    if sys.executable:
        return sys.executable
    found = shutil.which("python3")
    if not found:
        raise SandboxError("cannot tell which Python interpreter to use", hint="run scientist with a full path to python")
    return found


# --- helpers shared with the helper processes (standard library only) ---------------------------


def _proc_table() -> dict[int, tuple[int, int, int, int]]:
    """pid -> (ppid, cpu ticks including reaped children, resident pages, threads) for all of /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                data = stat.read()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may hold spaces: field 3 is [0].
        fields = data[data.rfind(b")") + 2 :].split()
        try:
            ticks = sum(int(value) for value in fields[11:15])
            table[int(name)] = (int(fields[1]), ticks, int(fields[21]), int(fields[17]))
        except (IndexError, ValueError):
            continue
    return table


def _descendants(table: dict[int, tuple[int, int, int, int]], root: int) -> set[int]:
    """All pids below `root` in the parent/child tree described by `table` (root excluded)."""
    children: dict[int, list[int]] = {}
    for pid, row in table.items():
        children.setdefault(row[0], []).append(pid)
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found and child != root:
                found.add(child)
                stack.append(child)
    return found


def _sandbox_init() -> None:  # noqa: C901 - one self-contained program, run by the helper interpreter
    """The helper processes' program: reads the spec on stdin, isolates, runs the command.

    Runs under `python -I -S` with the standard library only (see `_helper_code`). Reports JSON
    lines on the fd `report_fd`: cgroups, mode, pid1, ready | refuse, child | exec_error, exit.
    """
    import ctypes
    import fcntl
    import resource
    import socket
    import struct

    spec = json.loads(sys.stdin.buffer.read())
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    report_fd = spec["report_fd"]
    os.set_inheritable(report_fd, False)

    clone_newns, clone_newuts, clone_newipc = 0x00020000, 0x04000000, 0x08000000
    clone_newuser, clone_newpid, clone_newnet = 0x10000000, 0x20000000, 0x40000000
    ms_rdonly, ms_nosuid, ms_nodev, ms_noexec, ms_remount = 1, 2, 4, 8, 32
    ms_noatime, ms_nodiratime, ms_bind, ms_rec, ms_private = 1024, 2048, 4096, 16384, 1 << 18
    ms_relatime = 1 << 21
    option_flags = {
        "nosuid": ms_nosuid,
        "nodev": ms_nodev,
        "noexec": ms_noexec,
        "noatime": ms_noatime,
        "nodiratime": ms_nodiratime,
        "relatime": ms_relatime,
    }
    pr_set_pdeathsig, pr_set_dumpable, pr_set_child_subreaper, pr_set_no_new_privs = 1, 4, 36, 38

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.unshare.argtypes = [ctypes.c_int]
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]

    notes: list[str] = []

    def report(event: str, **fields) -> None:
        try:
            os.write(report_fd, (json.dumps({"event": event, **fields}) + "\n").encode())
        except OSError:
            pass

    def libc_error(what: str) -> OSError:
        code = ctypes.get_errno()
        return OSError(code, f"{what}: {os.strerror(code)}")

    def prctl(option: int, value: int) -> None:
        if libc.prctl(option, value, 0, 0, 0) != 0:
            raise libc_error(f"prctl({option})")

    def mount(source, target, fstype, flags, data=None) -> None:
        def enc(text):
            return None if text is None else os.fsencode(text)

        if libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
            raise libc_error(f"mount {target}")

    def write_file(path: str, text: str) -> None:
        with open(path, "w") as handle:
            handle.write(text)

    def under(path: str, top: str) -> bool:
        return path == top or path.startswith(top.rstrip("/") + "/")

    def mountinfo() -> list[tuple[str, list[str]]]:
        entries = []
        with open("/proc/self/mountinfo") as handle:
            for line in handle:
                parts = line.split()
                point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[4])
                entries.append((point, parts[5].split(",")))
        return entries

    def kept_flags(options: list[str]) -> int:
        flags = 0
        for option in options:
            flags |= option_flags.get(option, 0)
        return flags

    def mount_options_of(path: str) -> list[str]:
        best, options = "", []
        for point, opts in mountinfo():
            if under(path, point) and len(point) >= len(best):
                best, options = point, opts
        return options

    def exit_code_of(status: int | None) -> int:
        if status is None:
            return 125
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.WEXITSTATUS(status)

    # --- outer: tie our life to the caller, join the cgroups, pick the isolation mode -------------
    prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != spec["parent_pid"]:
        os._exit(1)
    caller_umask = os.umask(0o022)  # folders made for mount points must be reachable by the run's uid
    real_uid, real_gid = os.getuid(), os.getgid()
    if real_uid == 0:
        try:
            write_file("/proc/self/oom_score_adj", "-1000")  # the OOM killer picks the command, not us
        except OSError:
            pass
    joined = []
    for procs_file in spec["cgroup_procs"]:
        try:
            write_file(procs_file, str(os.getpid()))
            joined.append(procs_file)
        except OSError as exc:
            notes.append(f"could not join cgroup {procs_file}: {exc.strerror}")
    report("cgroups", joined=joined)

    sandbox_uid, sandbox_gid = spec["uid"], spec["gid"]
    flags = clone_newns | clone_newpid | clone_newipc | clone_newuts
    if not spec["network"]:
        flags |= clone_newnet
    mode = "none"
    if not spec["no_namespaces"]:
        attempts = ([("root", flags)] if real_uid == 0 else []) + [("userns", flags | clone_newuser)]
        for name, attempt in attempts:
            if libc.unshare(attempt) == 0:
                mode = name
                break
            notes.append(f"namespaces ({name}) unavailable: {os.strerror(ctypes.get_errno())}")
    else:
        notes.append("namespaces disabled")
    if mode == "userns":
        uid_lines, gid_lines = [f"{real_uid} {real_uid} 1"], [f"{real_gid} {real_gid} 1"]
        if real_uid == 0 and sandbox_uid is not None:
            uid_lines.append(f"{sandbox_uid} {sandbox_uid} 1")
            gid_lines.append(f"{sandbox_gid} {sandbox_gid} 1")
        try:
            if real_uid != 0:
                write_file("/proc/self/setgroups", "deny")
            write_file("/proc/self/uid_map", "\n".join(uid_lines) + "\n")
            write_file("/proc/self/gid_map", "\n".join(gid_lines) + "\n")
        except OSError as exc:
            report("error", message=f"cannot map ids in the user namespace: {exc}")
            os._exit(125)
    prctl(pr_set_dumpable, 0)  # the command may share our uid (user namespace): no ptrace of the helpers
    namespaces = mode != "none"
    isolation = {
        "processes": namespaces,
        "network": namespaces and not spec["network"],
        "ipc": namespaces,
        "filesystem": False,
        "unprivileged": real_uid != 0 or sandbox_uid is not None,
        "rlimits": False,
        "env": True,
    }
    report("mode", mode=mode)

    # --- filesystem: hide private folders, make everything read-only but the run's folders -------
    def hidden_tops() -> list[tuple[str, bool]]:
        """(folder, writable) to cover with a fresh tmpfs; exposures are bound back inside."""
        shm_and_tmp = [("/tmp", True), ("/var/tmp", True), ("/dev/shm", True)]
        tops = shm_and_tmp + [("/run", False)] + [(home, False) for home in spec["homes"]]
        if sandbox_uid is not None:
            # Folders the unprivileged uid could not traverse: hide them, and bind back what it needs.
            for path in spec["exposures"]:
                parts = path.strip("/").split("/")
                for depth in range(1, len(parts)):
                    ancestor = "/" + "/".join(parts[:depth])
                    try:
                        if not os.stat(ancestor).st_mode & 0o001:
                            tops.append((ancestor, False))
                            break
                    except OSError:
                        break
        result: list[tuple[str, bool]] = []
        for top, writable in sorted(tops, key=lambda item: len(item[0])):
            top = os.path.realpath(top)
            if top == "/" or not os.path.isdir(top) or any(under(top, kept) for kept, _ in result):
                continue
            result.append((top, writable))
        return result

    def setup_filesystem() -> tuple[bool, list[str]]:
        problems: list[str] = []
        mount(None, "/", None, ms_rec | ms_private)
        try:
            mount("proc", "/proc", "proc", ms_nosuid | ms_nodev | ms_noexec)
        except OSError as exc:  # e.g. a container that masks parts of /proc: the host's list stays visible
            problems.append(f"no private /proc: {exc.strerror}")
        exposures = sorted({p for p in spec["exposures"] if os.path.isdir(p)}, key=len)
        minimal: list[str] = []
        for path in exposures:
            if not any(under(path, kept) for kept in minimal):
                minimal.append(path)
        tops = hidden_tops()
        writable_tops = [top for top, writable in tops if writable]
        for top, writable in tops:
            inside = [(p, os.open(p, os.O_PATH | os.O_DIRECTORY)) for p in minimal if under(p, top)]
            size = spec["tmpfs_mb"] if writable else 1
            options = f"mode={'1777' if writable else '0755'}" + (f",size={size}m" if size else "")
            mount("tmpfs", top, "tmpfs", ms_nosuid | ms_nodev, options)
            made = []  # folders leading to mount points: nobody may write there (they are not the run's)
            for path, fd in inside:
                parts = path[len(top) :].strip("/").split("/")
                for depth in range(1, len(parts)):
                    folder = top.rstrip("/") + "/" + "/".join(parts[:depth])
                    if not os.path.isdir(folder):
                        made.append(folder)
                os.makedirs(path, mode=0o755, exist_ok=True)
                mount(f"/proc/self/fd/{fd}", path, None, ms_bind | ms_rec)
                os.close(fd)
            for folder in made:
                os.chmod(folder, 0o555)
        for point, options in mountinfo():
            if under(point, "/proc") or point in writable_tops:
                continue
            try:
                mount(None, point, None, ms_bind | ms_remount | ms_rdonly | ms_nosuid | kept_flags(options))
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.EINVAL):  # shadowed by a mount on top
                    problems.append(f"cannot make {point} read-only: {exc.strerror}")
        for point, _ in mountinfo():
            if under(point, "/proc") or any(under(point, top) for top in writable_tops):
                continue
            try:
                if not os.statvfs(point).f_flag & os.ST_RDONLY:
                    problems.append(f"{point} is still writable")
            except OSError:
                pass
        workdir = spec["workdir"]
        mount(workdir, workdir, None, ms_bind | ms_rec)
        keep = kept_flags(mount_options_of(workdir)) & ~(ms_nodev | ms_nosuid)
        mount(None, workdir, None, ms_bind | ms_remount | ms_nosuid | ms_nodev | keep)
        for path in spec["readonly_inside"]:
            if os.path.isdir(path):
                mount(path, path, None, ms_bind | ms_rec)
                mount(None, path, None, ms_bind | ms_remount | ms_rdonly | ms_nosuid | ms_nodev | keep)
        if os.statvfs(workdir).f_flag & os.ST_RDONLY:
            problems.append("the work folder is read-only")
        return not problems, problems

    def loopback_up() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            request = struct.pack("16sH22x", b"lo", 0)
            current = struct.unpack("16sH22x", fcntl.ioctl(sock, 0x8913, request))[1]  # SIOCGIFFLAGS
            fcntl.ioctl(sock, 0x8914, struct.pack("16sH22x", b"lo", current | 1))  # SIOCSIFFLAGS, IFF_UP

    # --- the command ---------------------------------------------------------------------------
    def tasks_of_uid(uid: int) -> int:
        table = _proc_table()
        count = 0
        for pid, row in table.items():
            try:
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    count += row[3]
            except OSError:
                pass
        return count

    def set_rlimits(drop: bool, in_pids_cgroup: bool) -> bool:
        wanted = dict(spec["rlimits"])
        procs = spec["procs"]
        if procs is not None:
            if mode == "userns":
                procs += 2  # the two helpers live in the same user namespace
            elif not drop:
                procs += tasks_of_uid(os.geteuid())  # RLIMIT_NPROC counts all processes of the uid
            elif in_pids_cgroup:
                procs += 8  # let the pids cgroup trip first: it reports the failed forks
            wanted["RLIMIT_NPROC"] = procs
        ok = True
        for name, value in wanted.items():
            which = getattr(resource, name)
            soft_hard = value if isinstance(value, list) else [value, value]
            _, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                soft_hard = [min(v, hard) for v in soft_hard]
            try:
                resource.setrlimit(which, tuple(soft_hard))
            except (OSError, ValueError) as exc:
                ok = False
                os.write(2, f"sandbox: cannot set {name}: {exc}\n".encode())
        return ok

    def exec_command(drop: bool, in_pids_cgroup: bool) -> None:
        try:
            os.setsid()
            for number in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
                signal.signal(number, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            try:
                write_file("/proc/self/oom_score_adj", "0")
            except OSError:
                pass
            rlimits_ok = set_rlimits(drop, in_pids_cgroup)
            if drop:
                try:
                    os.setgroups([])
                except OSError:
                    pass
                os.setgid(sandbox_gid)
                os.setuid(sandbox_uid)
            prctl(pr_set_no_new_privs, 1)
            prctl(pr_set_pdeathsig, signal.SIGKILL)
            os.umask(caller_umask)
            os.chdir(spec["workdir"])
            report("child", uid=os.geteuid(), rlimits=rlimits_ok)
            if spec["executable"]:
                os.execve(spec["executable"], spec["argv"], spec["env"])
            os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
        except BaseException as exc:  # noqa: BLE001 - anything here means the command never started
            os.write(2, f"sandbox: cannot run {spec['argv'][0]!r}: {exc}\n".encode())
            report("exec_error", error=str(exc))
        os._exit(127)

    def supervise(command_pid: int) -> int | None:
        status = None
        while True:
            try:
                pid, wait_status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid == command_pid:
                status = wait_status
                break
        report("exit", status=status)
        return status

    def refuse_if_required(drop: bool) -> None:
        isolation["unprivileged"] = real_uid != 0 or drop
        if not spec["require"]:
            return
        wanted = ["processes", "filesystem", "unprivileged"] + ([] if spec["network"] else ["network"])
        missing = [name for name in wanted if not isolation[name]]
        if missing:
            report("refuse", missing=missing, notes=notes)
            os._exit(125)

    in_pids_cgroup = spec["pids_procs_file"] in joined

    if mode == "none":
        drop = sandbox_uid is not None
        if drop:
            # Without a mount namespace nothing can be hidden or re-exposed: the unprivileged uid must
            # reach the interpreter and the work folder as they are.
            for path in spec["exposures"]:
                parts = path.strip("/").split("/")
                for depth in range(1, len(parts)):
                    ancestor = "/" + "/".join(parts[:depth])
                    if os.path.isdir(ancestor) and not os.stat(ancestor).st_mode & 0o001:
                        drop = False
                        notes.append(f"kept root: {ancestor} is not reachable for an unprivileged uid")
                        break
                if not drop:
                    break
        refuse_if_required(drop)
        isolation["rlimits"] = True
        report("ready", isolation=isolation, notes=notes)
        prctl(pr_set_child_subreaper, 1)  # orphans of the command stay below us, so we can kill them
        command_pid = os.fork()
        if command_pid == 0:
            exec_command(drop, in_pids_cgroup)
        status = supervise(command_pid)
        for _ in range(500):
            leftovers = _descendants(_proc_table(), os.getpid())
            if not leftovers:
                break
            for pid in leftovers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            while True:
                try:
                    if os.waitpid(-1, os.WNOHANG)[0] == 0:
                        break
                except ChildProcessError:
                    break
            time.sleep(0.01)
        os._exit(exit_code_of(status))

    alive_read, alive_write = os.pipe()
    pid1 = os.fork()
    if pid1 != 0:
        os.close(alive_read)
        report("pid1", pid=pid1)
        _, status = os.waitpid(pid1, 0)
        os._exit(exit_code_of(status))

    # --- PID 1 of the new namespace ---------------------------------------------------------------
    os.close(alive_write)
    prctl(pr_set_pdeathsig, signal.SIGKILL)
    if select.select([alive_read], [], [], 0)[0]:
        os._exit(1)  # the outer helper died before we could tie our life to it
    try:
        isolation["filesystem"], problems = setup_filesystem()
        notes.extend(problems)
    except OSError as exc:
        notes.append(f"filesystem isolation failed: {exc}")
    if isolation["network"]:
        try:
            loopback_up()
        except OSError as exc:
            notes.append(f"could not bring up loopback: {exc}")
    libc.sethostname(b"sandbox", 7)
    drop = sandbox_uid is not None
    refuse_if_required(drop)
    isolation["rlimits"] = True
    report("ready", isolation=isolation, notes=notes)
    command_pid = os.fork()
    if command_pid == 0:
        os.close(alive_read)
        exec_command(drop, in_pids_cgroup)
    os._exit(exit_code_of(supervise(command_pid)))


# --- the caller's side ---------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_MEMORY_ERROR = re.compile(r"^(?:\w+\.)*_?(?:Array)?MemoryError\b|std::bad_alloc|Cannot allocate memory", re.M)
# A thread or fork refused for lack of room: pthread_create and fork fail with EAGAIN at RLIMIT_NPROC.
_PROCS_ERROR = re.compile(
    r"can't start new thread|fork: (?:retry|Resource temporarily unavailable)"
    r"|fork\(\)[^\n]*\n(?:[^\n]*\n){0,2}BlockingIOError: \[Errno 11\]"
)
_EAGAIN = "Resource temporarily unavailable"
_DISK_ERROR = re.compile(r"File too large|No space left on device|Disk quota exceeded")
_HELPER_CODE: str | None = None


def _helper_code() -> str:
    """Source of the helper program: the stdlib-only functions above plus a call to `_sandbox_init`."""
    global _HELPER_CODE
    if _HELPER_CODE is None:
        try:
            parts = [inspect.getsource(function) for function in (_proc_table, _descendants, _sandbox_init)]
        except (OSError, TypeError) as exc:
            raise SandboxError(
                "the sandbox helper's source code is not available",
                hint="install scientist-core with its .py files (not a bytecode-only build)",
            ) from exc
        prelude = "from __future__ import annotations\nimport errno, json, os, re, select, signal, sys, time\n\n"
        _HELPER_CODE = prelude + "\n\n".join(parts) + "\n\n_sandbox_init()\n"
    return _HELPER_CODE


def _under(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


def _read_keyed(path: Path) -> dict[str, int]:
    """'key value' lines (pids.events, memory.events, cpu.stat...) as a dict; empty when unreadable."""
    values = {}
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                values[key] = int(value)
    except OSError:
        pass
    return values


class _Cgroups:
    """This run's cgroups (memory, pids, cpu accounting) where the hierarchy is writable: normally root.

    Works with cgroup v1 controllers and with cgroup v2 where the caller's cgroup delegates the
    controllers. Anything that fails leaves that controller out; the rlimits still apply.
    """

    def __init__(self, name: str, limits: Limits) -> None:
        self.dirs: dict[str, Path] = {}  # "memory" | "pids" | "cpu" -> this run's cgroup folder
        self.v2: set[str] = set()
        try:
            v1, v2, own = self._hierarchies()
        except (OSError, ValueError):
            return
        v2_dir: Path | None = None
        for key, v1_name, v2_name in (("memory", "memory", "memory"), ("pids", "pids", "pids"), ("cpu", "cpuacct", "cpu")):
            if v1_name in v1 and v1_name in own:
                point, root = v1[v1_name]
                folder = self._join(point, root, own[v1_name]) / name
                try:
                    folder.mkdir()
                except OSError:
                    continue
                self.dirs[key] = folder
            elif v2 is not None and "" in own:
                base = self._join(v2[0], v2[1], own[""])
                try:
                    (base / "cgroup.subtree_control").write_text(f"+{v2_name}")
                except OSError:
                    pass
                try:
                    if v2_dir is None:
                        v2_dir = base / name
                        v2_dir.mkdir()
                    if v2_name in (v2_dir / "cgroup.controllers").read_text().split():
                        self.dirs[key] = v2_dir
                        self.v2.add(key)
                except OSError:
                    continue
        self._set_limits(limits)

    @staticmethod
    def _hierarchies() -> tuple[dict[str, tuple[Path, str]], tuple[Path, str] | None, dict[str, str]]:
        v1: dict[str, tuple[Path, str]] = {}
        v2 = None
        with open("/proc/self/mountinfo") as handle:
            for line in handle:
                parts = line.split()
                fstype, options = parts[parts.index("-") + 1], parts[parts.index("-") + 3]
                point = Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[4]))
                if fstype == "cgroup2":
                    v2 = (point, parts[3])
                elif fstype == "cgroup":
                    for option in options.split(","):
                        v1.setdefault(option, (point, parts[3]))
        own = {}
        with open("/proc/self/cgroup") as handle:
            for line in handle:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for controller in controllers.split(",") if controllers else [""]:
                    own[controller] = path
        return v1, v2, own

    @staticmethod
    def _join(point: Path, root: str, path: str) -> Path:
        if root != "/" and (path == root or path.startswith(root + "/")):
            path = path[len(root) :]
        return point / path.lstrip("/")

    def _set_limits(self, limits: Limits) -> None:
        writes: dict[str, list[tuple[str, str, bool]]] = {"memory": [], "pids": []}
        if limits.memory_mb is not None:
            size = str(limits.memory_mb * MB)
            if "memory" in self.v2:
                writes["memory"] = [("memory.max", size, True), ("memory.swap.max", "0", False)]
            else:
                writes["memory"] = [("memory.limit_in_bytes", size, True), ("memory.memsw.limit_in_bytes", size, False)]
        if limits.procs is not None:
            writes["pids"] = [("pids.max", str(limits.procs + 2), True)]  # + the two helper processes
        for key, files in writes.items():
            if key not in self.dirs:
                continue
            if not files:  # no limit asked for: no need for the cgroup
                self._remove(key)
                continue
            for filename, value, required in files:
                try:
                    (self.dirs[key] / filename).write_text(value)
                except OSError:
                    if required:
                        self._remove(key)
                        break

    def _remove(self, key: str) -> None:
        folder = self.dirs.pop(key)
        self.v2.discard(key)
        if folder not in self.dirs.values():
            try:
                folder.rmdir()
            except OSError:
                pass

    def procs_files(self) -> list[str]:
        return sorted({str(folder / "cgroup.procs") for folder in self.dirs.values()})

    def pids_procs_file(self) -> str | None:
        return str(self.dirs["pids"] / "cgroup.procs") if "pids" in self.dirs else None

    def oom_kills(self) -> int:
        if "memory" not in self.dirs:
            return 0
        name = "memory.events" if "memory" in self.v2 else "memory.oom_control"
        return _read_keyed(self.dirs["memory"] / name).get("oom_kill", 0)

    def peak_bytes(self) -> int:
        if "memory" not in self.dirs:
            return 0
        name = "memory.peak" if "memory" in self.v2 else "memory.max_usage_in_bytes"
        try:
            return int((self.dirs["memory"] / name).read_text())
        except (OSError, ValueError):
            return 0

    def failed_forks(self) -> int:
        return _read_keyed(self.dirs["pids"] / "pids.events").get("max", 0) if "pids" in self.dirs else 0

    def cpu_s(self) -> float:
        if "cpu" not in self.dirs:
            return 0.0
        if "cpu" in self.v2:
            return _read_keyed(self.dirs["cpu"] / "cpu.stat").get("usage_usec", 0) / 1e6
        try:
            return int((self.dirs["cpu"] / "cpuacct.usage").read_text()) / 1e9
        except (OSError, ValueError):
            return 0.0

    def pids(self) -> set[int]:
        found: set[int] = set()
        for folder in set(self.dirs.values()):
            try:
                found.update(int(pid) for pid in (folder / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return found

    def remove(self) -> list[str]:
        """Kill whatever is left in the cgroups and delete them; returns problems."""
        problems = []
        for folder in set(self.dirs.values()):
            for _ in range(200):
                for pid in self.pids():
                    _kill(pid)
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.01)
            else:
                problems.append(f"could not remove cgroup {folder}")
        self.dirs.clear()
        return problems


def _signal_name(number: int | None) -> str | None:
    if not number:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _walk(root: Path, skip: Sequence[Path] = ()):
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


def _disk_usage(root: Path, skip: Sequence[Path] = ()) -> int:
    """Bytes allocated below root, every file counted as at least one 4 KiB block (so empty files count)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for _, info in _walk(root, skip):
        if (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            total += max(info.st_blocks * 512, 4096)
    return total


def _take_ownership(
    workdir: Path, uid: int, gid: int, skip: Sequence[Path], notes: list[str]
) -> dict[str, tuple[int, int]]:
    """Hand the work folder to the run's uid; returns the previous owners to restore afterwards."""
    import stat

    saved = {}
    for path, info in _walk(workdir, skip):
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


def _give_back_ownership(
    workdir: Path, uid: int, gid: int, saved: dict[str, tuple[int, int]], owner: tuple[int, int], skip: Sequence[Path]
) -> None:
    """Return what the run's uid owns in the work folder to its previous (or the folder's) owner."""
    import stat

    for path, info in _walk(workdir, skip):
        if info.st_uid != uid and info.st_gid != gid:
            continue
        try:
            os.chown(path, *saved.get(path, owner), follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and info.st_mode & 0o6000:
                os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o6000)  # no set-uid files left behind
        except OSError:
            pass


def _remove_tree(path: Path) -> None:
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


def _pick_uid() -> int:
    for _ in range(100):
        uid = _UID_BASE + random.randrange(_UID_SPAN)
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    raise SandboxError("found no free uid for the sandbox", hint=f"free some uids between {_UID_BASE} and {_UID_BASE + _UID_SPAN}")


def _pss_bytes(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            pass
    return total


def _marked_processes(marker: bytes) -> set[int]:
    """Processes whose environment holds `marker` (the run's SCIENTIST_SANDBOX_ID=...)."""
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open(f"/proc/{name}/environ", "rb") as handle:
                    if marker in handle.read().split(b"\0"):
                        found.add(int(name))
            except OSError:
                pass
    return found


def _tail(path: Path, chars: int) -> str:
    if chars <= 0:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 4 * chars))
            return handle.read().decode("utf-8", "replace")[-chars:]
    except OSError:
        return ""


class _Capture(threading.Thread):
    """Copies one pipe into a log file, up to `cap` bytes; past the cap it sets `overflow` and discards."""

    def __init__(self, fd: int, path: Path, cap: int) -> None:
        super().__init__(daemon=True, name=f"sandbox-capture-{path.name}")
        self.fd, self.cap, self.written = fd, cap, 0
        self.out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        self.overflow = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if not select.select([self.fd], [], [], 0.2)[0]:
                    continue
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    break
                room = self.cap - self.written
                if room > 0:
                    os.write(self.out, chunk[:room])
                    self.written += min(room, len(chunk))
                if len(chunk) > room:
                    self.overflow.set()
        except OSError:
            pass
        finally:
            os.close(self.fd)
            os.close(self.out)


def _sandbox_env(limits: Limits, sandbox_id: str, scratch: Path) -> dict[str, str]:
    """The command's whole environment: an allow-list of the caller's, the sandbox's own, limits.env."""
    env = {key: value for key, value in os.environ.items() if key in PASSTHROUGH_ENV or key.startswith("LC_")}
    env.setdefault("LANG", "C.UTF-8")
    env.update(
        HOME=str(scratch / "home"),
        TMPDIR=str(scratch),
        TMP=str(scratch),
        TEMP=str(scratch),
        USER="sandbox",
        LOGNAME="sandbox",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(limits.env)
    bindir = os.path.dirname(python_executable())
    rest = [part for part in limits.env.get("PATH", SYSTEM_PATH).split(os.pathsep) if part and part != bindir]
    env["PATH"] = os.pathsep.join([bindir, *rest])
    env[ENV_MARKER] = sandbox_id
    return env


def _exposures(workdir: Path) -> list[str]:
    """Folders the command needs even when their parents are hidden: the work folder and the interpreter."""
    executable = python_executable()
    paths = {workdir, Path(executable).parent, Path(os.path.realpath(executable)).parent}
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        paths.add(Path(prefix))
    return sorted({os.path.realpath(path) for path in paths})


def _homes() -> list[str]:
    """The caller's home folders (hidden inside the sandbox: keys, tokens and configs live there)."""
    homes = set()
    for home in (os.environ.get("HOME"), _passwd_home()):
        if home and os.path.isdir(home) and os.path.realpath(home) != "/":
            homes.add(os.path.realpath(home))
    return sorted(homes)


def _passwd_home() -> str | None:
    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return None


class _Run:
    """One execution of `run()`: prepare, spawn, monitor, stop, clean up, report."""

    def __init__(self, command: Sequence[str], workdir: Path, limits: Limits, log_dir: Path | None, tail_chars: int):
        self.command = list(command)
        self.workdir = workdir
        self.limits = limits
        self.tail_chars = tail_chars
        self.id = uuid.uuid4().hex[:16]
        self.log_dir = (log_dir.expanduser().resolve() if log_dir else workdir / LOG_DIR_NAME)
        self.stdout_path = self.log_dir / "stdout.log"
        self.stderr_path = self.log_dir / "stderr.log"
        self.scratch = workdir / SCRATCH_DIR_NAME
        self.skip = [self.log_dir] if _under(self.log_dir, workdir) else []
        self.uid: int | None = None
        self.saved_owners: dict[str, tuple[int, int]] = {}
        self.owner = (0, 0)
        self.cgroups: _Cgroups | None = None
        self.proc: subprocess.Popen | None = None
        self.report_fd: int | None = None
        self.report_buffer = b""
        self.captures: list[_Capture] = []
        self.events: dict[str, dict] = {}
        self.notes: list[str] = []
        self.limit_hit: str | None = None
        self.killed = False
        self.status: int | None = None
        self.rusage = None
        self.start = self.end = 0.0
        self.baseline_disk = 0
        self.peak_disk = 0
        self.peak_memory = 0
        self.next_pss = 0.0
        self.rss_at_pss = 0
        self.peak_tasks = 0
        self.cpu_seen = 0.0
        self._cgroup_dirs_at_start: dict[str, Path] = {}
        self._oom_kills = 0
        self._failed_forks = 0

    # --- lifecycle ---------------------------------------------------------------------------
    def execute(self) -> ExecutionResult:
        try:
            self._prepare()
            self._spawn()
            self._monitor()
        finally:
            self._stop_everything()
            self._clean_up()
        if "refuse" in self.events:
            raise SandboxError(
                "sandbox isolation unavailable: " + ", ".join(self.events["refuse"]["missing"]),
                hint=self._isolation_hint(),
            )
        if "ready" not in self.events:
            detail = self.events.get("error", {}).get("message") or _tail(self.stderr_path, 600).strip()
            raise SandboxError(f"the sandbox failed to start: {detail or 'no report from its helper'}")
        return self._result()

    def _isolation_hint(self) -> str:
        reasons = "; ".join(self.events["refuse"].get("notes", []))
        hint = (
            "run as root, or allow unprivileged user namespaces (Debian: sysctl -w kernel.unprivileged_userns_clone=1; "
            "Ubuntu 24.04+: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0); in a container, give it "
            "CAP_SYS_ADMIN and an unconfined seccomp profile, or set require_isolation=False to accept less"
        )
        return f"{hint} ({reasons})" if reasons else hint

    def _prepare(self) -> None:
        if self.skip and (self.log_dir.is_symlink() or (self.log_dir.exists() and not self.log_dir.is_dir())):
            _remove_tree(self.log_dir)  # a previous run put something in place of its log folder
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for log in (self.stdout_path, self.stderr_path):
            _remove_tree(log)  # the logs are rewritten; never write through a planted link
        _remove_tree(self.scratch)
        (self.scratch / "home").mkdir(parents=True)
        if os.geteuid() == 0:
            self.uid = _pick_uid()
            info = os.stat(self.workdir)
            self.owner = (info.st_uid, info.st_gid)
            self.saved_owners = _take_ownership(self.workdir, self.uid, self.uid, self.skip, self.notes)
        self.baseline_disk = _disk_usage(self.workdir, self.skip)
        self.cgroups = _Cgroups(f"scientist-sandbox-{self.id}", self.limits)
        self._cgroup_dirs_at_start = dict(self.cgroups.dirs)

    def _spec(self, report_fd: int) -> dict:
        limits = self.limits
        argv = list(self.command)
        executable = None
        if argv[0] in ("python", "python3"):
            executable = argv[0] = python_executable()
        rlimits: dict[str, int | list[int]] = {"RLIMIT_CORE": 0}
        if limits.memory_mb is not None:
            rlimits["RLIMIT_DATA"] = limits.memory_mb * MB
        if limits.cpu_time_s is not None:
            seconds = max(1, int(-(-limits.cpu_time_s // 1)))
            rlimits["RLIMIT_CPU"] = [seconds, seconds + 1]
        if limits.disk_mb is not None:
            rlimits["RLIMIT_FSIZE"] = limits.disk_mb * MB
        assert self.cgroups is not None
        return {
            "parent_pid": os.getpid(),
            "report_fd": report_fd,
            "argv": argv,
            "executable": executable,
            "env": _sandbox_env(limits, self.id, self.scratch),
            "workdir": str(self.workdir),
            "readonly_inside": [str(path) for path in self.skip],
            "exposures": _exposures(self.workdir) + [os.path.realpath(path) for path in limits.read_only],
            "homes": _homes(),
            "uid": self.uid,
            "gid": self.uid,
            "network": limits.network,
            "require": limits.require_isolation,
            "no_namespaces": _FORCE_NO_NAMESPACES,
            "rlimits": rlimits,
            "procs": limits.procs,
            "tmpfs_mb": limits.disk_mb,
            "cgroup_procs": self.cgroups.procs_files(),
            "pids_procs_file": self.cgroups.pids_procs_file(),
        }

    def _spawn(self) -> None:
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        self.report_fd, report_write = os.pipe()
        os.set_blocking(self.report_fd, False)
        cap = int(self.limits.stdout_mb * MB)
        self.captures = [_Capture(out_read, self.stdout_path, cap), _Capture(err_read, self.stderr_path, cap)]
        spec = json.dumps(self._spec(report_write)).encode()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _helper_code()],
                stdin=subprocess.PIPE,
                stdout=out_write,
                stderr=err_write,
                pass_fds=(report_write,),
                cwd="/",
                env={},
                start_new_session=True,
            )
        except OSError as exc:
            for fd in (out_read, err_read, *(capture.out for capture in self.captures)):
                os.close(fd)
            self.captures = []
            raise SandboxError(f"cannot start the sandbox helper: {exc}") from exc
        finally:
            for fd in (out_write, err_write, report_write):
                os.close(fd)
        self.start = time.monotonic()
        for capture in self.captures:
            capture.start()
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(spec)
            self.proc.stdin.close()
        except OSError:
            pass  # the helper died at once: its exit status tells

    def _monitor(self) -> None:
        limits = self.limits
        deadline = self.start + limits.timeout_s
        next_disk, disk_every = self.start, 0.1
        while True:
            self._read_reports()
            if "exit" in self.events:  # the command is done; the helpers follow within moments
                self._reap(timeout=2.0)
                return
            if self._reap():
                return
            now = time.monotonic()
            if now >= deadline:
                return self._stop("timeout")
            if any(capture.overflow.is_set() for capture in self.captures):
                return self._stop("stdout")
            if "ready" in self.events:
                reason = self._sample()
                if reason:
                    return self._stop(reason)
            if now >= next_disk:
                began = time.monotonic()
                growth = self._disk_growth()
                next_disk = now + max(disk_every if limits.disk_mb else 1.0, 10 * (time.monotonic() - began))
                if limits.disk_mb is not None and growth > limits.disk_mb * MB:
                    return self._stop("disk")
            time.sleep(max(0.0, min(_POLL_S, deadline - time.monotonic())))

    # --- observation ---------------------------------------------------------------------------
    def _read_reports(self) -> None:
        if self.report_fd is None:
            return
        while True:
            try:
                chunk = os.read(self.report_fd, 1 << 16)
            except BlockingIOError:
                break
            except OSError:
                break
            if not chunk:
                break
            self.report_buffer += chunk
        while b"\n" in self.report_buffer:
            line, self.report_buffer = self.report_buffer.split(b"\n", 1)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.events[event.get("event", "?")] = event

    def _reap(self, timeout: float = 0.0) -> bool:
        """Collect the outer helper's exit status; True once it has exited."""
        if self.status is not None or self.proc is None:
            return True
        until = time.monotonic() + timeout
        while True:
            try:
                pid, status, rusage = os.wait4(self.proc.pid, os.WNOHANG)
            except ChildProcessError:  # somebody else reaped it
                pid, status, rusage = self.proc.pid, 0, None
                self.notes.append("the helper's exit status was collected elsewhere")
            if pid:
                self.status, self.rusage, self.end = status, rusage, time.monotonic()
                self.proc.returncode = os.waitstatus_to_exitcode(status) if rusage is not None else 0
                return True
            if time.monotonic() >= until:
                return False
            time.sleep(0.005)

    def _pid1(self) -> int | None:
        """Host pid of the namespace's PID 1, if it is (still) the outer helper's child."""
        pid = self.events.get("pid1", {}).get("pid")
        if not pid or self.proc is None:
            return None
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                data = handle.read()
            return pid if int(data[data.rfind(b")") + 2 :].split()[1]) == self.proc.pid else None
        except (OSError, ValueError, IndexError):
            return None

    def _sample(self) -> str | None:
        """Measure the run's processes; returns the name of a limit that is exceeded, if any."""
        assert self.proc is not None and self.cgroups is not None
        limits, cgroups = self.limits, self.cgroups
        table = _proc_table()
        pids = _descendants(table, self.proc.pid)
        pid1 = self.events.get("pid1", {}).get("pid")
        command = pids - {pid1}
        rss = sum(table[pid][2] for pid in command) * _PAGE
        tasks = sum(table[pid][3] for pid in command)
        ticks = sum(table[pid][1] for pid in pids)
        self.peak_tasks = max(self.peak_tasks, tasks)
        now = time.monotonic()
        if now >= self.next_pss or rss > 1.2 * self.rss_at_pss:
            # Proportional set size: a page shared by n processes counts 1/n in each (RSS counts it n times).
            self.peak_memory = max(self.peak_memory, _pss_bytes(command))
            self.next_pss, self.rss_at_pss = now + _PSS_EVERY_S, rss
        self.cpu_seen = max(self.cpu_seen, ticks / _CLK_TCK, cgroups.cpu_s())
        if "memory" in cgroups.dirs:
            if cgroups.oom_kills() > 0:
                return "memory"
        elif limits.memory_mb is not None and rss > limits.memory_mb * MB:
            if _pss_bytes(command) > limits.memory_mb * MB:  # RSS counts shared pages once per process
                return "memory"
        if "pids" in cgroups.dirs:
            if cgroups.failed_forks() > 0:
                return "procs"
        elif limits.procs is not None and tasks >= limits.procs:
            return "procs"
        if limits.cpu_time_s is not None and self.cpu_seen >= limits.cpu_time_s:
            return "cpu_time"
        return None

    def _disk_growth(self) -> int:
        used = _disk_usage(self.workdir, self.skip)
        mounted = self.events.get("ready", {}).get("isolation", {}).get("filesystem", False)
        pid1 = self._pid1() if mounted else None  # before "ready", /proc/<pid1>/root/tmp is still the host's /tmp
        if pid1 is not None:  # the private tmpfs folders live in the run's mount namespace
            for folder in ("tmp", "var/tmp", "dev/shm"):
                try:
                    info = os.statvfs(f"/proc/{pid1}/root/{folder}")
                    used += (info.f_blocks - info.f_bfree) * info.f_frsize
                except OSError:
                    pass
        growth = max(0, used - self.baseline_disk)
        self.peak_disk = max(self.peak_disk, growth)
        return growth

    # --- stopping ------------------------------------------------------------------------------
    def _stop(self, reason: str) -> None:
        self.limit_hit = self.limit_hit or reason
        self._kill_tree()

    def _kill_tree(self) -> None:
        """Kill every process of the run: the namespace's PID 1 if there is one, else the whole tree."""
        if self.proc is None or self.status is not None:
            return
        self.killed = True
        pid1 = self._pid1()
        if pid1 is not None:
            _kill(pid1)  # the kernel then kills everything in the PID namespace
        else:
            for _ in range(100):
                leftovers = _descendants(_proc_table(), self.proc.pid) | (self.cgroups.pids() if self.cgroups else set())
                leftovers.discard(self.proc.pid)
                if not leftovers:
                    break
                for pid in leftovers:
                    _kill(pid)
                time.sleep(0.01)
        if not self._reap(timeout=2.0):
            _kill(self.proc.pid)
            if not self._reap(timeout=_KILL_WAIT_S):
                self.notes.append("the sandbox helper did not exit after SIGKILL")

    def _stop_everything(self) -> None:
        """Whatever happened (including an exception in the caller): leave no process of the run behind."""
        if self.proc is not None and self.status is None:
            self._kill_tree()
        marker = f"{ENV_MARKER}={self.id}".encode()
        strays: set[int] = set()
        for _ in range(200):
            found = _marked_processes(marker) | (self.cgroups.pids() if self.cgroups else set())
            if not found:
                break
            strays |= found
            for pid in found:
                _kill(pid)
            time.sleep(0.01)
        if strays:
            self.notes.append(f"killed {len(strays)} process(es) that had left the sandbox's process tree")
        if self.cgroups is not None:
            self._oom_kills = self.cgroups.oom_kills()
            if self._oom_kills:  # killed at the cgroup's limit, maybe between two samples
                self.peak_memory = max(self.peak_memory, self.cgroups.peak_bytes())
            self._failed_forks = self.cgroups.failed_forks()
            self.cpu_seen = max(self.cpu_seen, self.cgroups.cpu_s())
        self._read_reports()
        for capture in self.captures:
            capture.join(timeout=2.0)
            capture.stop.set()
        for capture in self.captures:
            capture.join(timeout=1.0)

    def _clean_up(self) -> None:
        if self.proc is not None and self.status is not None:
            try:
                self._disk_growth()
            except OSError:
                pass
        if self.report_fd is not None:
            os.close(self.report_fd)
            self.report_fd = None
        if self.cgroups is not None:
            self.notes.extend(self.cgroups.remove())
        try:
            _remove_tree(self.scratch)
        except OSError as exc:
            self.notes.append(f"could not remove {self.scratch}: {exc}")
        if self.uid is not None:
            _give_back_ownership(self.workdir, self.uid, self.uid, self.saved_owners, self.owner, self.skip)

    # --- the result ----------------------------------------------------------------------------
    def _result(self) -> ExecutionResult:
        exit_code = sig = None
        status = self.events.get("exit", {}).get("status")
        if status is None and self.status is not None and not self.killed and "exit" not in self.events:
            status = self.status  # the helper mirrors the command's status in its own
        if status is not None:
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
            else:
                exit_code = os.WEXITSTATUS(status)
        elif self.killed:
            sig = signal.SIGKILL
        self._classify(exit_code, sig)

        isolation = dict(self.events["ready"]["isolation"])
        child = self.events.get("child")
        isolation["unprivileged"] = bool(child) and child["uid"] != 0
        isolation["rlimits"] = bool(child) and child["rlimits"]
        joined = set(self.events.get("cgroups", {}).get("joined", []))
        for key in ("memory", "pids", "cpu"):
            folder = self._cgroup_dirs_at_start.get(key)
            isolation[f"{key}_cgroup"] = folder is not None and str(folder / "cgroup.procs") in joined
        notes = list(dict.fromkeys(self.events["ready"].get("notes", []) + self.notes))
        if "exec_error" in self.events:
            notes.append(f"the command could not be started: {self.events['exec_error']['error']}")

        ru_cpu = ru_rss = 0.0
        if self.rusage is not None:
            ru_cpu = self.rusage.ru_utime + self.rusage.ru_stime
            ru_rss = self.rusage.ru_maxrss * 1024.0
        cpu = max(ru_cpu, self.cpu_seen)
        return ExecutionResult(
            sandbox_id=self.id,
            command=self.command,
            workdir=str(self.workdir),
            exit_code=exit_code,
            signal=sig,
            signal_name=_signal_name(sig),
            limit_hit=self.limit_hit,
            ok=exit_code == 0 and self.limit_hit is None,
            wall_s=round((self.end or time.monotonic()) - self.start, 3),
            cpu_s=round(cpu, 3),
            peak_memory_mb=round(max(float(self.peak_memory), ru_rss) / MB, 2),
            disk_used_mb=round(self.peak_disk / MB, 2),
            stdout_path=str(self.stdout_path),
            stderr_path=str(self.stderr_path),
            stdout_tail=_tail(self.stdout_path, self.tail_chars),
            stderr_tail=_tail(self.stderr_path, self.tail_chars),
            isolation=isolation,
            notes=notes,
        )

    def _procs_failure(self, text: str) -> bool:
        """Did the command die of a refused fork or thread? (Used when the monitor did not see the cap.)"""
        limits = self.limits
        assert limits.procs is not None
        memory_tight = limits.memory_mb is not None and self.peak_memory >= 0.8 * limits.memory_mb * MB
        if _PROCS_ERROR.search(text):
            return not memory_tight  # thread stacks refused by the memory cap fail the same way
        return _EAGAIN in text and self.peak_tasks * 2 >= limits.procs

    def _classify(self, exit_code: int | None, sig: int | None) -> None:
        """Name the limit behind a run that ended on its own (the monitor names the ones it stopped)."""
        if self.limit_hit:
            return
        limits = self.limits
        failed = sig is not None or exit_code not in (0, None)
        text = _tail(self.stderr_path, 8000) if failed else ""
        checks: list[tuple[str, bool]] = [
            ("memory", self._oom_kills > 0),
            ("procs", self._failed_forks > 0),
            ("cpu_time", sig == signal.SIGXCPU),
            ("cpu_time", sig == signal.SIGKILL and limits.cpu_time_s is not None and self.cpu_seen >= 0.9 * limits.cpu_time_s),
            ("disk", sig == signal.SIGXFSZ),
            ("stdout", any(capture.overflow.is_set() for capture in self.captures)),
            ("disk", limits.disk_mb is not None and self.peak_disk > limits.disk_mb * MB),
            ("memory", failed and limits.memory_mb is not None and bool(_MEMORY_ERROR.search(text))),
            ("procs", failed and limits.procs is not None and self._procs_failure(text)),
            ("disk", failed and limits.disk_mb is not None and bool(_DISK_ERROR.search(text))),
        ]
        self.limit_hit = next((name for name, hit in checks if hit), None)


def run(
    command: Sequence[str],
    workdir: Path,
    limits: Limits,
    *,
    log_dir: Path | None = None,
    tail_chars: int = 4000,
) -> ExecutionResult:
    """Run `command` in `workdir` inside the sandbox, under `limits`; wait for it and report.

    Never raises for what the command does (failure, crash, limits): that is in the result. Raises
    SandboxError for caller mistakes: an empty command, a missing work folder, or
    `limits.require_isolation` when an isolation is unavailable.
    """
    if isinstance(command, str) or not command or not all(isinstance(part, str) and part for part in command):
        raise SandboxError(f"invalid command {command!r}", hint="give the command as a non-empty list of strings")
    if not isinstance(limits, Limits):
        raise SandboxError(f"limits must be a sandbox.Limits, not {type(limits).__name__}")
    workdir = Path(workdir).expanduser()
    if not workdir.is_dir():
        raise SandboxError(f"work folder {workdir} does not exist", hint="create it first; the sandbox never picks one")
    workdir = workdir.resolve()
    if workdir == Path("/") or workdir == Path(os.path.realpath(os.path.expanduser("~"))):
        raise SandboxError(f"refusing to use {workdir} as a work folder", hint="give each run a folder of its own")
    return _Run(command, workdir, limits, Path(log_dir) if log_dir is not None else None, tail_chars).execute()
