"""`scientist sandbox exec`, through typer's runner and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scientist_core.testing.no_namespaces import supported as no_namespaces_here
from scientist_sandbox import runner as sandbox
from scientist_sandbox.command import app

pytestmark = pytest.mark.usefixtures("scientist_env")  # an empty folder, HOME and data folder per test

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def test_exec_prints_the_result_as_json_and_exits_0(tmp_path):
    outcome = runner.invoke(app, ["exec", "--timeout", "20", "--workdir", str(tmp_path), "--", "python", "-c", "print(6 * 7)"])
    assert outcome.exit_code == 0, outcome.output
    result = json.loads(outcome.stdout)
    assert result["ok"] is True and result["stdout_tail"] == "42\n" and result["workdir"] == str(tmp_path)


def test_exec_exits_1_when_the_command_fails_or_hits_a_limit(tmp_path):
    failed = runner.invoke(app, ["exec", "-w", str(tmp_path), "--", "python", "-c", "raise SystemExit(4)"])
    assert failed.exit_code == 1 and json.loads(failed.stdout)["exit_code"] == 4
    looped = runner.invoke(app, ["exec", "--timeout", "1", "-w", str(tmp_path), "python", "-c", "while True: pass"])
    assert looped.exit_code == 1 and json.loads(looped.stdout)["limit_hit"] == "timeout"


def test_exec_options_become_limits(tmp_path):
    code = (
        "import os, resource; "
        "print(resource.getrlimit(resource.RLIMIT_DATA)[0], resource.getrlimit(resource.RLIMIT_FSIZE)[0], os.environ['K'])"
    )
    outcome = runner.invoke(
        app, ["exec", "--memory", "300", "--disk", "0", "-e", "K=v=1", "-w", str(tmp_path), "--", "python", "-c", code]
    )
    assert outcome.exit_code == 0, outcome.output
    data, fsize, value = json.loads(outcome.stdout)["stdout_tail"].split()
    assert int(data) == 300 * 1024 * 1024
    assert int(fsize) == -1  # RLIM_INFINITY: --disk 0 switched the quota off
    assert value == "v=1"


def test_exec_without_workdir_makes_a_fresh_folder_not_the_current_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome = runner.invoke(app, ["exec", "--", "python", "-c", "open('made-here', 'w').close()"])
    assert outcome.exit_code == 0, outcome.output
    workdir = Path(json.loads(outcome.stdout)["workdir"])
    assert workdir.parent == tmp_path and workdir.name.startswith("sandbox-")
    assert (workdir / "made-here").exists() and not (tmp_path / "made-here").exists()


def test_usage_errors_exit_2(tmp_path):
    missing = runner.invoke(app, ["exec", "-w", str(tmp_path / "nope"), "--", "true"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    no_command = runner.invoke(app, ["exec", "-w", str(tmp_path)])
    assert no_command.exit_code == 2
    bad_limit = runner.invoke(app, ["exec", "--timeout", "-1", "-w", str(tmp_path), "--", "true"])
    assert bad_limit.exit_code == 2 and "timeout_s" in bad_limit.output
    bad_env = runner.invoke(app, ["exec", "-e", "NOEQUALS", "-w", str(tmp_path), "--", "true"])
    assert bad_env.exit_code == 2 and "KEY=VALUE" in bad_env.output


def test_help_states_the_limits_defaults():
    text = " ".join(runner.invoke(app, ["exec", "--help"], terminal_width=200).output.split())
    defaults = sandbox.Limits()
    for value in (defaults.timeout_s, defaults.memory_mb, defaults.disk_mb, defaults.procs, defaults.stdout_mb):
        assert f"(default: {value:g})" in text


def _subprocess(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-c", "from scientist_sandbox.command import app; app()", "exec", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_exec_as_a_real_process(tmp_path):
    done = _subprocess("--timeout", "20", "-w", str(tmp_path), "--", "python", "-c", "import sys; print(sys.executable)")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stdout_tail"].strip() == sys.executable
    failed = _subprocess("--timeout", "1", "-w", str(tmp_path), "--", "python", "-c", "while True: pass")
    assert failed.returncode == 1 and json.loads(failed.stdout)["limit_hit"] == "timeout"
    usage = _subprocess("-w", str(tmp_path / "nope"), "--", "true")
    assert usage.returncode == 2 and usage.stderr.startswith("Error: work folder") and usage.stderr.count("\n") == 1


@pytest.mark.skipif(no_namespaces_here() is not None, reason=str(no_namespaces_here()))
def test_exec_where_the_kernel_refuses_namespaces_runs_only_when_allowed(tmp_path):
    """Under a seccomp filter that fails unshare(2), as in a Docker container: refused (one line, exit 2) and the
    command never ran; with --allow-unisolated-code it runs and its result says what it lacked."""
    code = "open('ran', 'w').close()"
    command = [sys.executable, "-m", "scientist_core.testing.no_namespaces", sys.executable, "-c",
               "from scientist_sandbox.command import app; app()", "exec", "-w", str(tmp_path), "--", "python", "-c",
               code]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "cannot isolate generated code" in refused.stderr and "--allow-unisolated-code" in refused.stderr
    assert not (tmp_path / "ran").exists()
    command.insert(command.index("-w"), "--allow-unisolated-code")
    allowed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert allowed.returncode == 0, allowed.stderr
    isolation = json.loads(allowed.stdout)["isolation"]
    assert (tmp_path / "ran").exists() and not isolation["processes"] and not isolation["filesystem"]
