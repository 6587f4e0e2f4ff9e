"""Fixtures for the sandbox suite: run a program in a fresh run folder, then check the host is unharmed."""

from __future__ import annotations

import os
import socket
import textwrap
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scientist_core.errors import SandboxError
from scientist_sandbox import runner as sandbox
from scientist_sandbox.cgroups import Cgroups
from scientist_sandbox.files import remove_tree


def processes_with(marker: str) -> list[int]:
    """Pids (other than ours) whose command line or environment contains `marker`."""
    found = []
    needle = marker.encode()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        for part in ("cmdline", "environ"):
            try:
                with open(f"/proc/{name}/{part}", "rb") as handle:
                    if needle in handle.read():
                        found.append(int(name))
                        break
            except OSError:
                continue
    return found


@pytest.fixture(scope="session")
def find_processes():
    """`processes_with`, for tests that look for a run's processes themselves."""
    return processes_with


def tree_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file() and not path.is_symlink())


@dataclass
class Hostile:
    """Runs a Python program as `experiment.py` in a fresh run folder under `tmp_path`."""

    tmp_path: Path
    runs: list[tuple[sandbox.ExecutionResult, str]] = field(default_factory=list)
    before: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.before = {path.name for path in self.tmp_path.iterdir()}

    def workdir(self) -> Path:
        folder = self.tmp_path / f"run-{len(self.runs)}"
        folder.mkdir(exist_ok=True)
        return folder

    def run(self, code: str, workdir: Path | None = None, **limits) -> tuple[sandbox.ExecutionResult, str]:
        """Run `code` (dedented) with `marker` in argv; `{marker}` in the code is replaced by it."""
        marker = f"hostile-{uuid.uuid4().hex}"
        folder = workdir or self.workdir()
        (folder / "experiment.py").write_text(textwrap.dedent(code).replace("{marker}", marker))
        result = sandbox.run(["python", "experiment.py", marker], folder, sandbox.Limits(**limits))
        self.runs.append((result, marker))
        return result, marker

    def assert_host_unharmed(self) -> None:
        for result, marker in self.runs:
            assert processes_with(marker) == [], f"processes of {marker} survived the run"
            assert processes_with(f"{sandbox.ENV_MARKER}={result.sandbox_id}") == []
            assert not (Path(result.workdir) / sandbox.SCRATCH_DIR_NAME).exists(), "private tmp folder left behind"
            leftover_cgroups = list(Path("/sys/fs/cgroup").glob(f"*/**/scientist-sandbox-{result.sandbox_id}"))
            assert leftover_cgroups == []
        new = {path.name for path in self.tmp_path.iterdir()} - self.before
        assert {name for name in new if not name.startswith("run-")} == set(), "files appeared outside the run folders"


@pytest.fixture
def hostile(tmp_path: Path):
    """A Hostile runner; after the test, checks no process, file or cgroup of any run is left."""
    runner = Hostile(tmp_path)
    yield runner
    runner.assert_host_unharmed()


@pytest.fixture(scope="session")
def full_isolation() -> None:
    """Skip (saying what is missing) where this machine cannot give PID, network and filesystem isolation."""
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"sandbox-probe-{uuid.uuid4().hex}"
    probe.mkdir()
    try:
        sandbox.run(["python", "-c", "pass"], probe, sandbox.Limits(timeout_s=30))
    except SandboxError as exc:
        pytest.skip(f"needs root or unprivileged user namespaces: {exc.one_line()}")
    finally:
        remove_tree(probe)


@pytest.fixture(scope="session")
def writable_cgroups() -> None:
    """Skip where this process cannot create cgroups (normally: it is not root)."""
    probe = Cgroups(f"scientist-sandbox-probe-{uuid.uuid4().hex}", sandbox.Limits())
    found = set(probe.dirs)
    probe.remove()
    if not {"memory", "pids"} <= found:
        pytest.skip(f"needs root with a writable /sys/fs/cgroup: uid {os.geteuid()} could create only {sorted(found)}")


@pytest.fixture
def loopback_server():
    """A TCP server on 127.0.0.1 in the host's network; yields (port, list of received payloads)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    received: list[bytes] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:  # timeout: look at `done` again
                continue
            with conn:
                conn.settimeout(2)
                received.append(conn.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    done.set()
    thread.join(timeout=2)
    server.close()


@pytest.fixture
def no_cgroups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the sandbox find no cgroup hierarchy, as on machines where it is not writable."""

    def unavailable():
        raise OSError("cgroups disabled for this test")

    monkeypatch.setattr(Cgroups, "_hierarchies", staticmethod(unavailable))
