"""aider's own virtual environment: where it lives, whether it is installed, and installing it.

aider-chat pins about a hundred exact versions (litellm, numpy, pydantic, typer ...) that conflict with the
core's, and unpinned it silently resolves to a 2023 release; so one exact version goes into a virtual
environment of its own, `<data_dir>/coders/aider-<version>/` by default, shared by every run. A marker file
written last says the environment is complete: an interrupted install is started again from scratch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scientist_core import PluginError
from scientist_litellm import OFFLINE_ENV

AIDER_VERSION = "0.86.2"
REQUIREMENTS = (f"aider-chat=={AIDER_VERSION}", "litellm!=1.107.0")  # 1.107.0 was a compromised release
MARKER = "scientist-aider.json"
INSTALL_LOG = "install.log"
INSTALL_HINT = "run `scientist coder install aider`"
# aider 0.86.2 declares Requires-Python >=3.10,<3.13
SUPPORTED_PYTHON = ((3, 10), (3, 12))


def default_venv() -> Path:
    """`<data_dir>/coders/aider-<version>`, data_dir as the user set it (SCIENTIST_DATA_DIR, scientist.toml)."""
    from scientist_core import load_settings

    return Path(load_settings().data_dir) / "coders" / f"aider-{AIDER_VERSION}"


def quiet_env(home: Path | None = None) -> dict[str, str]:
    """Environment switches that keep aider and litellm from reaching the network on their own: no update
    check, no analytics, no price-list, model-list or tokenizer download."""
    env = {
        "AIDER_CHECK_UPDATE": "false",
        "AIDER_ANALYTICS": "false",
        "AIDER_ANALYTICS_DISABLE": "true",
        "AIDER_SHOW_RELEASE_NOTES": "false",
        "AIDER_DISABLE_PLAYWRIGHT": "true",
        **OFFLINE_ENV,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUTF8": "1",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "COLUMNS": "160",
    }
    if home is not None:
        env["HOME"] = str(home)
    return env


def tree_size(path: Path) -> int:
    """Bytes on disk under `path` (allocated blocks, as `du` counts them)."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            try:
                stat = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += getattr(stat, "st_blocks", 0) * 512 or stat.st_size
    return total


@dataclass(frozen=True)
class AiderEnvironment:
    """A virtual environment holding aider-chat AIDER_VERSION."""

    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def executable(self) -> Path:
        return self.path / "bin" / "aider"

    def marker(self) -> dict | None:
        try:
            return json.loads((self.path / MARKER).read_text())
        except (OSError, ValueError):
            return None

    def installed(self) -> bool:
        marker = self.marker()
        return bool(marker) and marker.get("aider_version") == AIDER_VERSION and self.executable.is_file()

    def problem(self) -> str:
        """Why aider cannot run from here ("" when it can)."""
        if self.installed():
            return ""
        if self.path.exists() and (self.path / MARKER).exists():
            found = (self.marker() or {}).get("aider_version", "an unknown version")
            return f"{self.path} holds aider {found}, not {AIDER_VERSION}; {INSTALL_HINT} --force"
        return f"the aider coder is not installed (no aider {AIDER_VERSION} in {self.path}); {INSTALL_HINT}"

    def install(self, python: str | None = None, say: Callable[[str], None] = print, force: bool = False) -> dict:
        """Create the environment and install the pinned aider into it; returns the marker (time, size).
        Nothing happens when it is installed already, unless `force`."""
        if self.installed() and not force:
            marker = self.marker() or {}
            say(f"aider {AIDER_VERSION} is already installed in {self.path} "
                f"({marker.get('size_bytes', tree_size(self.path)) / 2**20:.0f} MiB)")
            return marker
        interpreter = python or _base_python()
        self._check_python(interpreter)
        self._clear()
        started = time.monotonic()
        say(f"creating {self.path} with {interpreter} ...")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._step([interpreter, "-m", "venv", str(self.path)], "creating the virtual environment", log=None)
        say(f"installing {' '.join(REQUIREMENTS)} (about a minute) ...")
        self._step([str(self.python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                    *REQUIREMENTS], f"installing aider-chat=={AIDER_VERSION}", log=self.path / INSTALL_LOG)
        version = self.version()
        if version != AIDER_VERSION:
            raise PluginError(f"the installed aider reports version {version or '(none)'}, not {AIDER_VERSION}",
                              f"see {self.path / INSTALL_LOG}")
        seconds = time.monotonic() - started
        marker = {"aider_version": AIDER_VERSION, "python": interpreter, "seconds": round(seconds, 1),
                  "size_bytes": tree_size(self.path), "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (self.path / MARKER).write_text(json.dumps(marker, indent=2))  # last: the environment is complete
        say(f"aider {AIDER_VERSION} installed in {self.path} in {seconds:.0f} s "
            f"({marker['size_bytes'] / 2**20:.0f} MiB)")
        return marker

    def version(self) -> str:
        """What `aider --version` says, without the leading name ("" when it does not run)."""
        try:
            done = subprocess.run([str(self.executable), "--version"], capture_output=True, text=True, timeout=120,
                                  env={"PATH": os.environ.get("PATH", ""), **quiet_env(self.path / "home")},
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        words = done.stdout.split()
        return words[-1] if done.returncode == 0 and words else ""

    # -- helpers ---------------------------------------------------------------------------------------------

    def _check_python(self, interpreter: str) -> None:
        try:
            done = subprocess.run([interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=60)
            major, minor = (int(part) for part in done.stdout.split(".")[:2])
        except (OSError, ValueError, subprocess.TimeoutExpired):
            raise PluginError(f"cannot run the Python interpreter {interpreter}",
                              "set [coders.aider] python to a Python 3.10 - 3.12 interpreter") from None
        low, high = SUPPORTED_PYTHON
        if not low <= (major, minor) <= high:
            raise PluginError(f"aider {AIDER_VERSION} needs Python {low[0]}.{low[1]} - {high[0]}.{high[1]}, and "
                              f"{interpreter} is {major}.{minor}",
                              "set [coders.aider] python to such an interpreter (e.g. /usr/bin/python3.12)")

    def _clear(self) -> None:
        """Remove an incomplete or forced environment, but never a folder that is not one of ours."""
        if not self.path.exists():
            return
        ours = (self.path / "pyvenv.cfg").is_file() or (self.path / MARKER).is_file()
        if not ours and any(self.path.iterdir()):
            raise PluginError(f"{self.path} exists and is not a virtual environment",
                              "remove it, or set [coders.aider] venv to another folder")
        shutil.rmtree(self.path)

    def _step(self, command: list[str], what: str, log: Path | None) -> None:
        try:
            done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise PluginError(f"{what} failed: {exc}", "check the interpreter and the disk") from None
        if log is not None:
            log.write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()
                     and not line.startswith("WARNING: Location")]
            last = lines[-1].strip() if lines else f"exit status {done.returncode}"
            where = f"; the full output is in {log}" if log is not None else ""
            raise PluginError(f"{what} failed: {last}",
                              f"check the network or the package index{where}, then run the install again")


def _base_python() -> str:
    """The interpreter this process runs on, outside any virtual environment it may be in."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base if base and Path(base).exists() else sys.executable
