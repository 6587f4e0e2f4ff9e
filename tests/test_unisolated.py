"""Generated code runs isolated, or not at all unless the user accepts the risk: `scientist run`, `resume` and
`baseline` on a machine whose kernel refuses namespaces (a seccomp filter that fails unshare(2), as Docker's
default profile does: scientist_core.testing.no_namespaces), so the sandbox would fall to its mode "none"."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scientist_core.pipeline.context import RunOptions
from scientist_core.errors import SettingsError
from scientist_core.settings import load_settings
from scientist_core.store import Store
from scientist_core.testing.fake_openai import FakeOpenAIServer
from scientist_core.testing.no_namespaces import supported
from tests.helpers import SCIENTIST

pytestmark = pytest.mark.skipif(supported() is not None, reason=str(supported()))

MODEL_CALLS = ("/chat/completions", "/api/chat", "/messages")


def without_namespaces(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real `scientist` command, on a kernel that refuses it namespaces."""
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-not-a-real-key"}
    return subprocess.run([sys.executable, "-m", "scientist_core.testing.no_namespaces", str(SCIENTIST), *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def assert_refused(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr[-2000:]
    line = result.stderr
    assert "cannot isolate generated code" in line and "your files" in line and "the network" in line
    assert "sysctl" in line and "allow_unisolated_code = true" in line and "--allow-unisolated-code" in line


def nothing_recorded(runs: Path) -> bool:
    """The output folder (made when it was checked writable) holds no run folder and its store no run."""
    store = runs / "scientist.db"
    return not [p for p in runs.glob("*") if p.is_dir()] and (not store.exists() or not Store.open_existing(store).runs())


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (make test installs it)")
def test_run_and_resume_are_refused_before_any_model_call(scientist_env):
    with FakeOpenAIServer() as server:
        Path("scientist.toml").write_text(f'model = "openai/fake-model"\nsearchers_order = ["offline"]\n'
                                          f'[llms.openai]\nbase_url = "{server.base_url}"\n')
        refused = without_namespaces("run", "example", "--quick", cwd=scientist_env)
        assert_refused(refused)
        assert nothing_recorded(scientist_env / "scientist-runs")

        store = Store(load_settings().store_path)
        run_dir = scientist_env / "scientist-runs" / "stopped-run"
        run_dir.mkdir()
        store.create_run("stopped-run", "run", "example", run_dir,
                         RunOptions(template="example", quick=True).model_dump(mode="json"))
        store.set_run_status("stopped-run", "stopped")
        store.close()
        assert_refused(without_namespaces("resume", "stopped-run", cwd=scientist_env))
        assert Store.open_existing(load_settings().store_path).run("stopped-run")["status"] == "stopped"
        assert [r.path for r in server.requests if r.path.endswith(MODEL_CALLS)] == []


def test_baseline_runs_unisolated_only_when_the_user_accepts_the_risk(scientist_env):
    assert_refused(without_namespaces("baseline", "example", "--quick", cwd=scientist_env))
    assert nothing_recorded(scientist_env / "scientist-runs")

    flagged = without_namespaces("baseline", "example", "--quick", "--allow-unisolated-code", cwd=scientist_env)
    assert flagged.returncode == 0, flagged.stderr
    Path("scientist.toml").write_text("[sandbox]\nallow_unisolated_code = true\n")
    configured = without_namespaces("baseline", "example", "--quick", cwd=scientist_env)
    assert configured.returncode == 0, configured.stderr
    store = Store.open_existing(scientist_env / "scientist-runs" / "scientist.db")
    runs = store.runs()
    assert [(run["kind"], run["status"]) for run in runs] == [("baseline", "done")] * 2
    for run in runs:  # each recorded run says what it lacked
        (experiment,) = store.experiments(run["id"])
        isolation = experiment["execution"]["isolation"]
        assert not isolation["processes"] and not isolation["filesystem"] and not isolation["network"]


def test_the_setting_that_required_isolation_is_gone_with_one_line(scientist_env):
    Path("scientist.toml").write_text("[sandbox]\nrequire_isolation = false\n")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "allow_unisolated_code" in caught.value.one_line() and "\n" not in caught.value.one_line()
