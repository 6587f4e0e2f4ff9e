"""The sandbox: the only way generated code runs.

`run()` starts one command in a contained environment and always returns an `ExecutionResult`
saying what happened (exit status, which limit was hit, resources used, log tails). It raises
`SandboxError` only for caller mistakes: a missing work folder, or an isolation this machine cannot
provide while `allow_unisolated_code` is off.

Layout of one run (`workdir` is the run folder chosen by the caller)::

    workdir/                 read-write for the command; what it writes counts against disk_mb
    workdir/.sandbox/        stdout.log and stderr.log (the default log_dir; read-only inside)
    workdir/.sandbox-tmp/    the command's TMPDIR and HOME; deleted after the run

Processes::

    caller, in run()         monitor loop: wall clock, disk quota, stdout cap, cpu, procs, memory
      helper "outer"         `python -I -S`, stdlib only: joins the cgroups, unshares namespaces
        helper "init"        PID 1 of the new PID namespace: mounts, then forks and reaps
          the command        own session, rlimits, unprivileged uid, scrubbed environment

The helpers are helper.py, run by a fresh interpreter (standard library only); cgroups.py makes the
run's cgroups, files.py walks and hands over its folder. docs/sandbox.md says what is isolated in each
mode (root, user namespace, none) and what is not.
"""

from __future__ import annotations

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
from scientist_core import ACCEPT_UNISOLATED, LOG_DIR_NAME, ExecutionResult, Limits, SandboxError
from scientist_sandbox.cgroups import MB, Cgroups
from scientist_sandbox.files import disk_usage, give_back_ownership, remove_tree, take_ownership
from scientist_sandbox.helper import PR_SET_DUMPABLE, descendants, kill, prctl, proc_table

HELPER = Path(__file__).with_name("helper.py")

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

SCRATCH_DIR_NAME = ".sandbox-tmp"

# What a run with `system_only` sees besides its own folders: the system's programs, libraries and devices.
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/dev", "/proc")

# When run as root, each run gets its own unprivileged uid/gid from this range (no passwd entry),
# so RLIMIT_NPROC counts only that run's processes and runs cannot signal each other.
_UID_BASE = 1_500_000_000
_UID_SPAN = 1_000_000

_POLL_S = 0.05
_PSS_EVERY_S = 0.25
_KILL_WAIT_S = 5.0
# Tests set this to exercise the fallback used where namespaces are unavailable.
_FORCE_NO_NAMESPACES = False


def python_executable() -> str:
    """The interpreter of this environment; `python`/`python3` in a sandboxed command mean this one."""
    if sys.executable:
        return sys.executable
    found = shutil.which("python3")
    if not found:
        raise SandboxError("cannot tell which Python interpreter to use", hint="run scientist with a full path to python")
    return found



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


def _under(path: Path, top: Path) -> bool:
    return path == top or top in path.parents



def _signal_name(number: int | None) -> str | None:
    if not number:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"




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
    # the interpreter's library folders outside its prefixes: those a .pth file adds (a virtual environment
    # layered on another one, as a template author's test environment is); read-only like the rest
    paths.update(Path(entry) for entry in sys.path
                 if Path(entry).name in ("site-packages", "dist-packages") and os.path.isdir(entry))
    return sorted({os.path.realpath(path) for path in paths})


def _beyond_system() -> list[str]:
    """Everything at the top of the filesystem but SYSTEM_FOLDERS (links left out: they lead to one of the two)."""
    with os.scandir("/") as entries:
        return sorted(entry.path for entry in entries if entry.path not in SYSTEM_FOLDERS and not entry.is_symlink())


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

    def __init__(self, command: Sequence[str], workdir: Path, limits: Limits, log_dir: Path | None, tail_chars: int,
                 system_only: bool = False):
        self.command = list(command)
        self.system_only = system_only
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
        self.cgroups: Cgroups | None = None
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
            raise _refusal(self.events["refuse"])
        if "ready" not in self.events:
            detail = self.events.get("error", {}).get("message") or _tail(self.stderr_path, 600).strip()
            raise SandboxError(f"the sandbox failed to start: {detail or 'no report from its helper'}")
        return self._result()

    def _prepare(self) -> None:
        if self.skip and (self.log_dir.is_symlink() or (self.log_dir.exists() and not self.log_dir.is_dir())):
            remove_tree(self.log_dir)  # a previous run put something in place of its log folder
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for log in (self.stdout_path, self.stderr_path):
            remove_tree(log)  # the logs are rewritten; never write through a planted link
        remove_tree(self.scratch)
        (self.scratch / "home").mkdir(parents=True)
        if os.geteuid() == 0:
            self.uid = _pick_uid()
            info = os.stat(self.workdir)
            self.owner = (info.st_uid, info.st_gid)
            self.saved_owners = take_ownership(self.workdir, self.uid, self.uid, self.skip, self.notes)
        self.baseline_disk = disk_usage(self.workdir, self.skip)
        self.cgroups = Cgroups(f"scientist-sandbox-{self.id}", self.limits)
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
            "hidden": _beyond_system() if self.system_only else [],
            "uid": self.uid,
            "gid": self.uid,
            "network": limits.network,
            "allow_unisolated": limits.allow_unisolated_code,
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
                [sys.executable, "-I", "-S", str(HELPER)],
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
        table = proc_table()
        pids = descendants(table, self.proc.pid)
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
        used = disk_usage(self.workdir, self.skip)
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
            kill(pid1)  # the kernel then kills everything in the PID namespace
        else:
            for _ in range(100):
                leftovers = descendants(proc_table(), self.proc.pid) | (self.cgroups.pids() if self.cgroups else set())
                leftovers.discard(self.proc.pid)
                if not leftovers:
                    break
                for pid in leftovers:
                    kill(pid)
                time.sleep(0.01)
        if not self._reap(timeout=2.0):
            kill(self.proc.pid)
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
                kill(pid)
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
            remove_tree(self.scratch)
        except OSError as exc:
            self.notes.append(f"could not remove {self.scratch}: {exc}")
        if self.uid is not None:
            give_back_ownership(self.workdir, self.uid, self.uid, self.saved_owners, self.owner, self.skip)

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

        ru_cpu = 0.0
        if self.rusage is not None:
            ru_cpu = self.rusage.ru_utime + self.rusage.ru_stime
        # The command's peak RSS as its helper reaped it; not the helper's own, which Linux carries across exec
        # from the caller it was forked from (measured: 2.6 GB for a 200 MB run, from a caller holding a model).
        ru_rss = self.events.get("exit", {}).get("maxrss_kb", 0) * 1024.0
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
            gpus_visible=_sandbox_env(self.limits, self.id, self.scratch).get("CUDA_VISIBLE_DEVICES"),
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


# what a run could reach without each isolation, in the words of the refusal
_REACHES = {"processes": "your processes", "filesystem": "your files", "network": "the network",
            "unprivileged": "root"}


def _refusal(event: dict) -> SandboxError:
    """The one line a refused run becomes: what the command would reach, why, and the two ways out."""
    reaches = ", ".join(_REACHES.get(name, name) for name in event["missing"])
    why = "; ".join(event.get("notes", [])) or "no reason given"
    fix = namespace_fix() if event.get("mode") == "none" else f"fix what stopped it ({why})"
    return SandboxError(
        f"the sandbox cannot isolate generated code on this machine (mode {event.get('mode', '?')}: {why}): "
        f"it would reach {reaches}",
        hint=f"fix the machine: {fix}; or accept the risk: {ACCEPT_UNISOLATED} (docs/sandbox.md)",
    )


def namespace_fix(sysctl: Path = Path("/proc/sys")) -> str:
    """How to give the sandbox namespaces here: the sysctl that forbids them when one does, else the usual ones."""

    def value(name: str) -> str | None:
        try:
            return (sysctl / name).read_text().strip()
        except OSError:
            return None

    blockers = [f"sysctl -w {name.replace('/', '.')}={wanted}" for name, bad, wanted in (
        ("kernel/unprivileged_userns_clone", "0", "1"),
        ("user/max_user_namespaces", "0", "15000"),
        ("kernel/apparmor_restrict_unprivileged_userns", "1", "0"),
    ) if value(name) == bad]
    userns = (" and ".join(blockers) if blockers else
              "sysctl -w kernel.unprivileged_userns_clone=1 (Debian) or "
              "kernel.apparmor_restrict_unprivileged_userns=0 (Ubuntu 24.04+)")
    if os.geteuid() == 0:
        return f"let root create namespaces (a container needs --cap-add SYS_ADMIN --security-opt " \
               f"seccomp=unconfined), or allow user namespaces ({userns})"
    return f"allow unprivileged user namespaces ({userns})"


def run(
    command: Sequence[str],
    workdir: Path,
    limits: Limits,
    *,
    log_dir: Path | None = None,
    tail_chars: int = 4000,
    system_only: bool = False,
) -> ExecutionResult:
    """Run `command` in `workdir` inside the sandbox, under `limits`; wait for it and report.

    `system_only`: the run sees only its work folder, the interpreter, `limits.read_only` and the system's
    programs, libraries and devices (SYSTEM_FOLDERS): every other folder at the top of the filesystem (/etc,
    /var, /opt, /srv, /home ...) is covered by an empty read-only tmpfs, and every file there by an empty file.
    For a tool that reads what a model wrote (the LaTeX compiler), so that a file it is told to read is not there.
    Only with filesystem isolation: in mode "none" nothing can be hidden (it is refused unless `allow_unisolated_code`).

    Never raises for what the command does (failure, crash, limits): that is in the result. Raises
    SandboxError for caller mistakes: an empty command, a missing work folder, or an isolation this machine
    cannot give while `limits.allow_unisolated_code` is off (the command then never starts).
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
    _undumpable_caller()
    return _Run(command, workdir, limits, Path(log_dir) if log_dir is not None else None, tail_chars,
                system_only).execute()


def _undumpable_caller() -> None:
    """Make this process non-dumpable: a run that shares its uid (user namespaces, or mode none) can then neither
    read /proc/<caller>/environ, which holds the provider keys, nor trace it. Children are dumpable again after exec."""
    try:
        prctl(PR_SET_DUMPABLE, 0)
    except OSError:
        pass
