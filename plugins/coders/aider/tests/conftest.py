"""Fixtures of the aider coder's tests: the real aider environment, a copy of the diffusion template, and a
network recorder (a Python audit hook loaded into aider's process, plus a loopback proxy that records).

The tests run the real aider executable, so they need its environment. It is found, before any test isolates
HOME and the data folder, at SCIENTIST_AIDER_VENV or else where `scientist coder install aider` puts it by
default. Missing, the tests fail under CI (CI=true) with what to run, and are skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest

from scientist_coder_aider.environment import AiderEnvironment, default_venv

VENV_VARIABLE = "SCIENTIST_AIDER_VENV"


def _where_aider_is() -> Path:
    given = os.environ.get(VENV_VARIABLE)
    if given:
        return Path(given).expanduser()
    try:
        return default_venv()
    except Exception:  # settings that do not load: the variable is the way
        return Path("/nonexistent/aider-venv")


AIDER_VENV = _where_aider_is()  # read at import, before scientist_env replaces HOME and SCIENTIST_DATA_DIR


@pytest.fixture
def aider_venv() -> Path:
    environment = AiderEnvironment(AIDER_VENV)
    if not environment.installed():
        message = (f"aider is not installed at {AIDER_VENV}: run `scientist coder install aider` (or set "
                   f"{VENV_VARIABLE} to an environment it made)")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return AIDER_VENV


@pytest.fixture
def workspace(plugin_host, tmp_path) -> Path:
    """A run's copy of the diffusion template, with a notes.txt as the pipeline writes it."""
    folder = tmp_path / "idea"
    plugin_host.create("template", "diffusion").prepare_workspace(folder)
    (folder / "notes.txt").write_text("## run_1: double the hidden size\nresults: circle kl 0.4\n\n")
    return folder


HOOK = '''
import json, os, sys
_LOG = os.environ.get("SCIENTIST_TEST_NETLOG")
_WATCHED = ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
            "socket.sendto", "socket.sendmsg", "subprocess.Popen", "os.system", "urllib.Request")

def _record(event, args):
    if event in _WATCHED:
        try:
            with open(_LOG, "a") as log:
                log.write(json.dumps({"event": event, "args": repr(args)[:300]}) + "\\n")
        except Exception:
            pass

if _LOG:
    with open(_LOG, "a") as log:
        log.write(json.dumps({"event": "hook-loaded", "args": sys.executable}) + "\\n")
    sys.addaudithook(_record)
'''


class NetworkRecorder:
    """What aider's process did on the network: every socket connect, name lookup, send, URL request and
    process start, seen by an audit hook (sitecustomize.py on its PYTHONPATH), and every connection to a
    loopback listener that the proxy variables point at."""

    def __init__(self, folder: Path) -> None:
        self.hook_dir = folder / "hook"
        self.hook_dir.mkdir(parents=True)
        (self.hook_dir / "sitecustomize.py").write_text(HOOK)
        self.log = folder / "netlog.jsonl"
        self.proxy_hits: list[tuple[str, int]] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def env(self) -> dict[str, str]:
        """Variables for aider's process (the coder's `env` setting): load the hook, log here."""
        return {"PYTHONPATH": str(self.hook_dir), "SCIENTIST_TEST_NETLOG": str(self.log)}

    def events(self) -> list[dict]:
        if not self.log.is_file():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def network_events(self) -> list[dict]:
        return [e for e in self.events() if e["event"].startswith(("socket.", "urllib."))]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, address = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            self.proxy_hits.append(address)
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._listener.close()


@pytest.fixture
def network_recorder(tmp_path):
    recorder = NetworkRecorder(tmp_path / "network")
    yield recorder
    recorder.close()
