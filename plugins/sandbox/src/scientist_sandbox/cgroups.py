"""A run's cgroups: its memory, pids and cpu accounting where this machine lets the caller make them."""

from __future__ import annotations

import re
import time
from pathlib import Path

from scientist_core import Limits
from scientist_sandbox.helper import kill

MB = 1024 * 1024


def read_keyed(path: Path) -> dict[str, int]:
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


class Cgroups:
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
        return read_keyed(self.dirs["memory"] / name).get("oom_kill", 0)

    def peak_bytes(self) -> int:
        if "memory" not in self.dirs:
            return 0
        name = "memory.peak" if "memory" in self.v2 else "memory.max_usage_in_bytes"
        try:
            return int((self.dirs["memory"] / name).read_text())
        except (OSError, ValueError):
            return 0

    def failed_forks(self) -> int:
        return read_keyed(self.dirs["pids"] / "pids.events").get("max", 0) if "pids" in self.dirs else 0

    def cpu_s(self) -> float:
        if "cpu" not in self.dirs:
            return 0.0
        if "cpu" in self.v2:
            return read_keyed(self.dirs["cpu"] / "cpu.stat").get("usage_usec", 0) / 1e6
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
                    kill(pid)
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.01)
            else:
                problems.append(f"could not remove cgroup {folder}")
        self.dirs.clear()
        return problems
