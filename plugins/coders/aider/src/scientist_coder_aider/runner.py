"""One aider invocation, isolated: its own copy of the files, its own HOME, a clean environment.

aider runs in a fresh temporary folder holding copies of the files it may edit (and the read-only ones), with
HOME pointing into that folder, so nothing of it (chat and input history, analytics id, caches, config files
found by walking up to a git root, a .env of the run folder) touches the run folder or the user's home. Its
environment is built from nothing: the offline switches, the model's key under the name litellm reads, proxy and
certificate settings, and nothing else of this process's environment (no other provider's key). The model
settings and metadata files hold the endpoint and the price, never the key. What it changed is read back from
the copies; the caller decides what to keep.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scientist_core import Usage

from scientist_coder_aider.environment import AiderEnvironment, quiet_env

# variables passed on from this process: locale, temp folder, proxies and certificates; nothing else
PASS_THROUGH = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
                "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
                "http_proxy", "https_proxy", "all_proxy", "no_proxy")
WORK = "work"
MESSAGE_FILE = "message.md"
ANALYTICS_LOG = "analytics.jsonl"


@dataclass
class ModelRoute:
    """How aider's litellm reaches the run's model: its litellm name, endpoint, key and metadata."""

    name: str                                   # litellm's model name, e.g. openai/gpt-4o
    api_base: str | None = None
    key_env: str | None = None                  # the variable litellm reads the key from, e.g. OPENAI_API_KEY
    key: str | None = field(default=None, repr=False)
    metadata: dict[str, Any] = field(default_factory=dict)  # context window and price, litellm's keys


@dataclass
class AiderResult:
    """What one invocation did: the new contents of the files it changed, and what it reported."""

    exit_code: int | None
    output: str
    seconds: float
    edited: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)   # files it made that it was not given (not kept)
    usage: Usage = field(default_factory=Usage)
    calls: int = 0
    timed_out: bool = False
    gave_up: bool = False      # its last round of edits still failed when it ran out of reflections
    edit_error: str = ""       # aider's last complaint about the edits
    model_error: str = ""      # the last error from the model call (connection, authentication ...)


def model_settings(route: ModelRoute, edit_format: str, timeout_s: float, extra: dict[str, Any]) -> list[dict]:
    """aider's model settings for the route: one model for every role (main, weak, editor), SEARCH/REPLACE
    edits by default, no repo map, and the endpoint in `extra_params` (which aider hands to litellm)."""
    entry: dict[str, Any] = {
        "name": route.name, "edit_format": edit_format, "weak_model_name": route.name,
        "editor_model_name": route.name, "editor_edit_format": edit_format, "use_repo_map": False,
        "streaming": False,
    }
    params: dict[str, Any] = {"timeout": timeout_s}
    if route.metadata.get("max_output_tokens"):  # the answer's bound, sent with every request: the worst case
        params["max_tokens"] = route.metadata["max_output_tokens"]
    if route.api_base:
        params["api_base"] = route.api_base
    params.update(extra.get("extra_params") or {})
    entry.update({key: value for key, value in extra.items() if key != "extra_params"})
    entry["extra_params"] = params
    return [entry]


def build_env(route: ModelRoute, home: Path, venv: AiderEnvironment, extra: dict[str, str]) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASS_THROUGH if name in os.environ}
    env["PATH"] = os.pathsep.join(filter(None, [str(venv.path / "bin"), env.get("PATH", "/usr/bin:/bin")]))
    env.update(quiet_env(home))
    env.update(extra)
    if route.key_env and route.key:
        env[route.key_env] = route.key
    return env


def arguments(route: ModelRoute, folder: Path, files: list[str], read_only: list[str], edit_format: str,
              timeout_s: float) -> list[str]:
    args = [
        "--model", route.name, "--weak-model", route.name, "--editor-model", route.name,
        "--edit-format", edit_format, "--editor-edit-format", edit_format,
        "--model-settings-file", str(folder / "model-settings.yml"),
        "--model-metadata-file", str(folder / "model-metadata.json"),
        # aider edits files and nothing else: no git, no shell commands, no lint or test runs, no URL fetches
        "--no-git", "--no-gitignore", "--no-auto-commits", "--no-dirty-commits", "--no-auto-lint", "--no-auto-test",
        "--no-suggest-shell-commands", "--no-detect-urls", "--disable-playwright", "--no-watch-files",
        "--no-copy-paste",
        # and it asks nothing, checks nothing and reports nothing over the network
        "--yes-always", "--no-check-update", "--no-show-release-notes", "--no-analytics", "--analytics-disable",
        "--no-show-model-warnings", "--no-notifications",
        # plain output, one request at a time, history kept out of the run folder
        "--no-stream", "--no-pretty", "--no-fancy-input", "--no-multiline", "--map-tokens", "0",
        "--chat-history-file", str(folder / "chat.history.md"),
        "--input-history-file", str(folder / "input.history"), "--no-restore-chat-history",
        "--analytics-log", str(folder / ANALYTICS_LOG), "--encoding", "utf-8", "--timeout", f"{timeout_s:g}",
        "--message-file", str(folder / MESSAGE_FILE),
    ]
    for name in read_only:
        args += ["--read", name]
    return args + list(files)


def run_aider(venv: AiderEnvironment, workspace: Path, files: list[str], read_only: list[str], message: str,
              route: ModelRoute, *, edit_format: str = "diff", timeout_s: float = 900.0,
              request_timeout_s: float = 600.0, extra_settings: dict[str, Any] | None = None,
              extra_env: dict[str, str] | None = None,
              on_start: Callable[[subprocess.Popen], None] | None = None) -> AiderResult:
    """Run aider once on copies of `files` (relative to `workspace`) with `message`; the workspace itself
    is not touched. Returns the new contents of the files it changed. `on_start` is given aider's process as
    soon as it runs (to stop it early: `stop_process`)."""
    with tempfile.TemporaryDirectory(prefix="scientist-aider-") as scratch:
        folder = Path(scratch)
        work, home = folder / WORK, folder / "home"
        work.mkdir()
        _prepare_home(home, route)
        originals: dict[str, str] = {}
        for name in [*files, *read_only]:
            source, copy = workspace / name, work / name
            copy.parent.mkdir(parents=True, exist_ok=True)
            if source.is_file():
                shutil.copy2(source, copy)
            if name in files:
                originals[name] = source.read_text() if source.is_file() else ""
        given = {str(path.relative_to(work)) for path in work.rglob("*") if path.is_file()}
        (folder / MESSAGE_FILE).write_text(message)
        (folder / "model-settings.yml").write_text(
            json.dumps(model_settings(route, edit_format, request_timeout_s, extra_settings or {}), indent=2))
        (folder / "model-metadata.json").write_text(json.dumps({route.name: route.metadata}, indent=2))
        command = [str(venv.executable), *arguments(route, folder, files, read_only, edit_format, request_timeout_s)]
        env = build_env(route, home, venv, extra_env or {})
        started = time.monotonic()
        exit_code, output, timed_out = _execute(command, work, env, timeout_s, on_start)
        result = AiderResult(exit_code=exit_code, output=output, seconds=time.monotonic() - started,
                             timed_out=timed_out)
        for name, before in originals.items():
            path = work / name
            after = path.read_text(errors="replace") if path.is_file() else ""
            if after != before:
                result.edited[name] = after
        result.created = sorted(str(path.relative_to(work)) for path in work.rglob("*")
                                if path.is_file() and str(path.relative_to(work)) not in given)
        _read_report(result, folder / ANALYTICS_LOG)
        return result


def _prepare_home(home: Path, route: ModelRoute) -> None:
    """A HOME where analytics are off for good and the model's metadata is the fresh price-list cache, so
    aider never asks, and never fetches litellm's price list from GitHub."""
    aider_dir = home / ".aider"
    (aider_dir / "caches").mkdir(parents=True)
    (aider_dir / "analytics.json").write_text(json.dumps(
        {"uuid": "00000000-0000-0000-0000-000000000000", "permanently_disable": True, "asked_opt_in": True}))
    (aider_dir / "caches" / "model_prices_and_context_window.json").write_text(
        json.dumps({route.name: route.metadata}))


def _execute(command: list[str], cwd: Path, env: dict[str, str], timeout_s: float,
             on_start: Callable[[subprocess.Popen], None] | None) -> tuple[int | None, str, bool]:
    process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
    if on_start is not None:
        on_start(process)
    try:
        output, _ = process.communicate(timeout=timeout_s)
        return process.returncode, output, False
    except subprocess.TimeoutExpired:
        stop_process(process)
        output, _ = process.communicate()
        return None, output or "", True


def stop_process(process: subprocess.Popen) -> None:
    """Kill aider and anything it started (it runs in a session of its own)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


TOKENS_LINE = re.compile(r"Tokens: ([\d.]+)([kM]?) sent,.*?([\d.]+)([kM]?) received\.(?: Cost: \$([\d.]+) message)?")
MULTIPLIER = {"": 1, "k": 1_000, "M": 1_000_000}


def _read_report(result: AiderResult, analytics_log: Path) -> None:
    """Tokens and cost from aider's own report: the `message_send` events of its analytics log (exact; the
    log is a local file, nothing is sent), else its printed "Tokens: ... Cost: $..." lines (rounded)."""
    events = []
    try:
        for line in analytics_log.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    except OSError:
        pass
    sends = [e.get("properties", {}) for e in events if e.get("event") == "message_send"]
    if sends:
        result.calls = len(sends)
        result.usage = Usage(tokens_in=sum(int(p.get("prompt_tokens") or 0) for p in sends),
                             tokens_out=sum(int(p.get("completion_tokens") or 0) for p in sends),
                             cost_usd=sum(float(p.get("cost") or 0) for p in sends))
    else:
        tokens_in = tokens_out = 0
        cost = 0.0
        matches = TOKENS_LINE.findall(" ".join(result.output.split()))
        for sent, sent_unit, received, received_unit, message_cost in matches:
            tokens_in += round(float(sent) * MULTIPLIER[sent_unit])
            tokens_out += round(float(received) * MULTIPLIER[received_unit])
            cost += float(message_cost or 0)
        result.calls = len(matches)
        result.usage = Usage(tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost)
    output = result.output
    result.gave_up = re.search(r"Only \d+ reflections allowed, stopping", output) is not None
    complaint = output.rfind("The LLM did not conform to the edit format.")
    if complaint < 0:
        complaint = output.rfind("Exception while updating files:")
    if complaint >= 0:
        tail = output[complaint:]
        end = re.search(r"\n(?:Tokens: |Only \d+ reflections)", tail)
        text = tail[:end.start()] if end else tail
        lines = [line.strip() for line in text.splitlines()[1:]
                 if line.strip() and not line.startswith("https://aider.chat")]
        result.edit_error = " ".join(" ".join(lines).split())[:800]
    errors = [line.strip() for line in output.splitlines()
              if re.search(r"(litellm\.\w+Error|Error:|APIConnectionError|AuthenticationError|NotFoundError)", line)]
    if errors:
        result.model_error = errors[-1][:400]
