"""Ordinary use of the sandbox: results, logs, the interpreter, caller mistakes, the models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scientist_core.errors import SandboxError
from scientist_sandbox import runner as sandbox

pytestmark = pytest.mark.usefixtures("scientist_env")  # an empty folder, HOME and data folder per test


def test_normal_command_succeeds_with_tails_and_logs(hostile):
    result, _ = hostile.run(
        """
        import sys
        print("hello from the sandbox")
        print("a warning", file=sys.stderr)
        with open("results.json", "w") as handle:
            handle.write('{"loss": 0.5}')
        """,
        timeout_s=20,
    )
    workdir = Path(result.workdir)
    assert result.ok and result.exit_code == 0 and result.limit_hit is None and result.signal is None
    assert result.stdout_tail == "hello from the sandbox\n"
    assert result.stderr_tail == "a warning\n"
    assert Path(result.stdout_path).read_text() == "hello from the sandbox\n"
    assert Path(result.stdout_path).parent == workdir / sandbox.LOG_DIR_NAME
    assert (workdir / "results.json").read_text() == '{"loss": 0.5}'
    assert (workdir / "results.json").stat().st_uid == os.stat(workdir).st_uid == os.geteuid()
    assert 0 < result.wall_s < 10 and result.cpu_s > 0 and result.peak_memory_mb > 1
    assert result.isolation["env"] and result.isolation["rlimits"]


def test_failing_command_reports_its_exit_code(hostile):
    result, _ = hostile.run("import sys\nprint('bad input', file=sys.stderr)\nsys.exit(3)\n", timeout_s=20)
    assert result.exit_code == 3
    assert not result.ok and result.limit_hit is None
    assert "bad input" in result.stderr_tail


def test_killed_command_reports_its_signal(hostile):
    result, _ = hostile.run("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n", timeout_s=20)
    assert result.exit_code is None and result.signal == 15 and result.signal_name == "SIGTERM"
    assert not result.ok and result.limit_hit is None


def test_tail_chars_limits_the_tails(tmp_path):
    result = sandbox.run(["python", "-c", "print('x' * 5000)"], tmp_path, sandbox.Limits(timeout_s=20), tail_chars=10)
    assert result.stdout_tail == "x" * 9 + "\n"


def test_python_means_this_interpreter_even_with_another_on_path(tmp_path):
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir(mode=0o755)
    fake = fake_bin / "python"
    fake.write_text("#!/bin/sh\necho FAKE\n")
    fake.chmod(0o755)
    os.chmod(tmp_path, 0o755)  # so that the run's uid could reach the fake, were it chosen
    workdir = tmp_path / "run"
    workdir.mkdir()
    code = "import os, sys; print(sys.executable); print(os.environ['PATH'])"
    result = sandbox.run(
        ["python", "-c", code], workdir, sandbox.Limits(timeout_s=20, env={"PATH": f"{fake_bin}:/usr/bin:/bin"})
    )
    executable, path = result.stdout_tail.splitlines()
    assert result.ok, result.stderr_tail
    assert executable == sandbox.python_executable() == sys.executable
    assert path.split(":")[0] == os.path.dirname(sys.executable)
    assert str(fake_bin) in path.split(":")
    result3 = sandbox.run(["python3", "-c", "import sys; print(sys.executable)"], workdir, sandbox.Limits(timeout_s=20))
    assert result3.stdout_tail.strip() == sys.executable


def test_commands_are_found_on_the_sandbox_path(tmp_path):
    result = sandbox.run(["sh", "-c", "echo $0 ran in $PWD"], tmp_path, sandbox.Limits(timeout_s=20))
    assert result.ok and result.stdout_tail == f"sh ran in {tmp_path}\n"


def test_a_missing_program_is_a_failed_run_not_an_exception(tmp_path):
    result = sandbox.run(["no-such-program-anywhere"], tmp_path, sandbox.Limits(timeout_s=20))
    assert result.exit_code == 127 and not result.ok
    assert "no-such-program-anywhere" in result.stderr_tail


def test_a_missing_workdir_is_a_caller_mistake(tmp_path):
    with pytest.raises(SandboxError, match="does not exist"):
        sandbox.run(["python", "-c", "pass"], tmp_path / "missing", sandbox.Limits())


@pytest.mark.parametrize("command", [[], "python -c pass", ["python", ""]])
def test_a_malformed_command_is_a_caller_mistake(tmp_path, command):
    with pytest.raises(SandboxError, match="invalid command"):
        sandbox.run(command, tmp_path, sandbox.Limits())


def test_a_run_without_isolation_is_refused_unless_allowed(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "_FORCE_NO_NAMESPACES", True)
    marker = tmp_path / "ran"
    with pytest.raises(SandboxError) as caught:
        sandbox.run(["touch", str(marker)], tmp_path, sandbox.Limits(timeout_s=20))
    line = caught.value.one_line()
    assert "your processes" in line and "the network" in line and "your files" in line
    assert "user namespaces" in line and "allow_unisolated_code = true" in line and "--allow-unisolated-code" in line
    assert not marker.exists()  # refused before the command started
    allowed = sandbox.run(["touch", str(marker)], tmp_path, sandbox.Limits(timeout_s=20, allow_unisolated_code=True))
    assert allowed.ok and marker.exists() and not allowed.isolation["processes"]


def test_the_refusal_names_the_sysctl_that_forbids_user_namespaces(tmp_path):
    (tmp_path / "kernel").mkdir()
    (tmp_path / "user").mkdir()
    (tmp_path / "kernel" / "unprivileged_userns_clone").write_text("0\n")
    (tmp_path / "user" / "max_user_namespaces").write_text("63000\n")
    assert "sysctl -w kernel.unprivileged_userns_clone=1" in sandbox.namespace_fix(tmp_path)
    (tmp_path / "user" / "max_user_namespaces").write_text("0\n")
    fix = sandbox.namespace_fix(tmp_path)
    assert "kernel.unprivileged_userns_clone=1 and sysctl -w user.max_user_namespaces=15000" in fix
    assert "apparmor" not in fix


def test_every_isolation_is_in_force_where_the_machine_allows_it(tmp_path, full_isolation):
    result = sandbox.run(["python", "-c", "pass"], tmp_path, sandbox.Limits(timeout_s=20))
    assert result.ok
    for name in ("processes", "network", "filesystem", "unprivileged", "rlimits", "env"):
        assert result.isolation[name] is True, name


def test_logs_can_go_to_another_folder(tmp_path):
    workdir, logs = tmp_path / "run", tmp_path / "logs"
    workdir.mkdir()
    result = sandbox.run(["python", "-c", "print(42)"], workdir, sandbox.Limits(timeout_s=20), log_dir=logs)
    assert Path(result.stdout_path) == logs / "stdout.log"
    assert (logs / "stdout.log").read_text() == "42\n"
    assert not (workdir / sandbox.LOG_DIR_NAME).exists()


def test_limits_model_forbids_unknown_fields_and_documents_every_field():
    with pytest.raises(ValueError):
        sandbox.Limits(timeout=5)
    with pytest.raises(ValueError):
        sandbox.Limits(timeout_s=0)
    with pytest.raises(ValueError):
        sandbox.Limits(env={"BAD=NAME": "x"})
    assert sandbox.Limits().model_dump() == {
        "timeout_s": 3600,
        "memory_mb": 8192,
        "cpu_time_s": None,
        "procs": 256,
        "disk_mb": 2048,
        "stdout_mb": 10,
        "network": False,
        "allow_unisolated_code": False,
        "env": {},
        "read_only": [],
    }
    for model in (sandbox.Limits, sandbox.ExecutionResult):
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"


def test_peak_memory_is_the_runs_not_the_callers(tmp_path):
    """Linux keeps a process's peak RSS across exec, so a helper forked from a caller holding a model reported the
    caller's memory (2.6 GB for a 200 MB run). The peak is measured from the command, which starts small."""
    held = bytearray(800 * 2**20)
    for offset in range(0, len(held), 4096):
        held[offset] = 1  # resident, not only reserved
    result = sandbox.run(["python3", "-c", "block = bytearray(60 * 2**20)"], tmp_path, sandbox.Limits(timeout_s=30))
    del held
    assert result.ok
    assert 60 < result.peak_memory_mb < 300


def test_the_caller_is_not_dumpable_once_it_runs_anything(tmp_path):
    """A run sharing the caller's uid (user namespaces, or mode none) must not read /proc/<caller>/environ, where
    the provider keys are: the caller makes itself non-dumpable (PR_GET_DUMPABLE is 0), in a fresh process here."""
    code = ("import ctypes, pathlib, sys; from scientist_core import Limits; from scientist_sandbox import run; "
            "run(['python', '-c', 'pass'], pathlib.Path(sys.argv[1]), Limits(timeout_s=20)); "
            "print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))")
    before = subprocess.run([sys.executable, "-c", "import ctypes; print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))"],
                            capture_output=True, text=True, check=True)
    after = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert (before.stdout.strip(), after.stdout.strip()) == ("1", "0")
