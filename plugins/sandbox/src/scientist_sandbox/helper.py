"""The sandbox's helper program: reads a run's spec on stdin, isolates itself, runs the command.

Run by the caller as `python -I -S helper.py` (a fresh interpreter that ignores the environment, the user's
site-packages and the current folder), so it uses the standard library only. It runs twice over: as the "outer"
helper, which joins the cgroups and unshares the namespaces, and, forked from it, as PID 1 of the new PID
namespace, which mounts the run's view of the filesystem and then forks, runs and reaps the command. It reports
JSON lines on the fd `report_fd` of the spec: cgroups, mode, pid1, ready | refuse, child | exec_error, exit.
The caller imports `proc_table`, `descendants` and `kill` from here too.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import re
import resource
import select
import signal
import socket
import struct
import sys
import time

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE = 1024, 2048, 4096, 16384, 1 << 18
MS_RELATIME = 1 << 21
OPTION_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
}
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
LIBC.unshare.argtypes = [ctypes.c_int]
LIBC.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
LIBC.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def proc_table() -> dict[int, tuple[int, int, int, int]]:
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


def descendants(table: dict[int, tuple[int, int, int, int]], root: int) -> set[int]:
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


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal `pid`, which may be gone already."""
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def libc_error(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


def prctl(option: int, value: int) -> None:
    if LIBC.prctl(option, value, 0, 0, 0) != 0:
        raise libc_error(f"prctl({option})")


def mount(source, target, fstype, flags, data=None) -> None:
    def enc(text):
        return None if text is None else os.fsencode(text)

    if LIBC.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
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
        flags |= OPTION_FLAGS.get(option, 0)
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


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        current = struct.unpack("16sH22x", fcntl.ioctl(sock, 0x8913, request))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(sock, 0x8914, struct.pack("16sH22x", b"lo", current | 1))  # SIOCSIFFLAGS, IFF_UP


def tasks_of_uid(uid: int) -> int:
    table = proc_table()
    count = 0
    for pid, row in table.items():
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                count += row[3]
        except OSError:
            pass
    return count


def main() -> None:  # noqa: C901 - the helper's whole life, in the order it happens
    """Read the spec, isolate, run the command and exit with its status (see the module's docstring)."""
    spec = json.loads(sys.stdin.buffer.read())
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    report_fd = spec["report_fd"]
    os.set_inheritable(report_fd, False)
    notes: list[str] = []

    def report(event: str, **fields) -> None:
        try:
            os.write(report_fd, (json.dumps({"event": event, **fields}) + "\n").encode())
        except OSError:
            pass

    # --- outer: tie our life to the caller, join the cgroups, pick the isolation mode -------------
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
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
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if not spec["network"]:
        flags |= CLONE_NEWNET
    mode = "none"
    if not spec["no_namespaces"]:
        attempts = ([("root", flags)] if real_uid == 0 else []) + [("userns", flags | CLONE_NEWUSER)]
        for name, attempt in attempts:
            if LIBC.unshare(attempt) == 0:
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
    prctl(PR_SET_DUMPABLE, 0)  # the command may share our uid (user namespace): no ptrace of the helpers
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
        tops += [(path, False) for path in spec["hidden"]]
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
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        try:
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except OSError as exc:  # e.g. a container that masks parts of /proc: the host's list stays visible
            problems.append(f"no private /proc: {exc.strerror}")
        exposures = sorted({p for p in spec["exposures"] if os.path.isdir(p) or os.path.isfile(p)}, key=len)
        minimal: list[str] = []
        for path in exposures:
            if not any(under(path, kept) for kept in minimal):
                minimal.append(path)
        tops = hidden_tops()
        writable_tops = [top for top, writable in tops if writable]
        for top, writable in tops:
            inside = [(p, os.open(p, os.O_PATH)) for p in minimal if under(p, top)]
            size = spec["tmpfs_mb"] if writable else 1
            options = f"mode={'1777' if writable else '0755'}" + (f",size={size}m" if size else "")
            mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, options)
            made = []  # folders leading to mount points: nobody may write there (they are not the run's)
            for path, fd in inside:
                parts = path[len(top) :].strip("/").split("/")
                for depth in range(1, len(parts)):
                    folder = top.rstrip("/") + "/" + "/".join(parts[:depth])
                    if not os.path.isdir(folder):
                        made.append(folder)
                if os.path.isdir(f"/proc/self/fd/{fd}"):
                    os.makedirs(path, mode=0o755, exist_ok=True)
                else:  # a single file (a tool's configuration): an empty one to bind it onto
                    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o444))
                mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
                os.close(fd)
            for folder in made:
                os.chmod(folder, 0o555)
        for path in spec["hidden"]:  # a file at the top of the filesystem: an empty one in its place
            if os.path.isfile(path) and not os.path.islink(path):
                mount("/dev/null", path, None, MS_BIND)
        for point, options in mountinfo():
            if under(point, "/proc") or point in writable_tops:
                continue
            try:
                mount(None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | kept_flags(options))
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
        mount(workdir, workdir, None, MS_BIND | MS_REC)
        keep = kept_flags(mount_options_of(workdir)) & ~(MS_NODEV | MS_NOSUID)
        mount(None, workdir, None, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | keep)
        for path in spec["readonly_inside"]:
            if os.path.isdir(path):
                mount(path, path, None, MS_BIND | MS_REC)
                mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | keep)
        if os.statvfs(workdir).f_flag & os.ST_RDONLY:
            problems.append("the work folder is read-only")
        return not problems, problems

    # --- the command ---------------------------------------------------------------------------
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
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
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
        """Reap until the command exits; report its status and its peak resident memory (its own and its
        waited-for children's: the command was forked from this small helper, so it starts from little)."""
        status, maxrss_kb = None, 0
        while True:
            try:
                pid, wait_status, usage = os.wait4(-1, 0)
            except ChildProcessError:
                break
            if pid == command_pid:
                status, maxrss_kb = wait_status, usage.ru_maxrss
                break
        report("exit", status=status, maxrss_kb=maxrss_kb)
        return status

    def refuse_unless_isolated(drop: bool) -> None:
        """Exit before the command starts if an isolation is missing, unless the caller accepted that."""
        isolation["unprivileged"] = real_uid != 0 or drop
        if spec["allow_unisolated"]:
            return
        wanted = ["processes", "filesystem", "unprivileged"] + ([] if spec["network"] else ["network"])
        missing = [name for name in wanted if not isolation[name]]
        if missing:
            report("refuse", missing=missing, mode=mode, notes=notes)
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
        isolation["env"] = real_uid != 0 or drop  # a command that keeps root reads /proc/<caller>/environ
        refuse_unless_isolated(drop)
        isolation["rlimits"] = True
        report("ready", isolation=isolation, notes=notes)
        prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of the command stay below us, so we can kill them
        command_pid = os.fork()
        if command_pid == 0:
            exec_command(drop, in_pids_cgroup)
        status = supervise(command_pid)
        for _ in range(500):
            leftovers = descendants(proc_table(), os.getpid())
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
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
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
    LIBC.sethostname(b"sandbox", 7)
    drop = sandbox_uid is not None
    refuse_unless_isolated(drop)
    isolation["rlimits"] = True
    report("ready", isolation=isolation, notes=notes)
    command_pid = os.fork()
    if command_pid == 0:
        os.close(alive_read)
        exec_command(drop, in_pids_cgroup)
    os._exit(exit_code_of(supervise(command_pid)))


if __name__ == "__main__":
    main()
