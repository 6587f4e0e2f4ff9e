"""The CLI as a user meets it: help, one-line errors, logs, models, templates."""

import json

from scientist_core.store import Store
from tests.helpers import make_distribution, run_cli

PROVIDER = """
    import os
    from scientist_core import LLM, hookimpl
    from scientist_core.models import ModelInfo, Readiness

    class Keyed(LLM):
        name = "keyed"
        description = "needs KEYED_API_KEY"

        def models(self):
            return [ModelInfo(provider="keyed", name="big"), ModelInfo(provider="keyed", name="small")]

        def readiness(self, model):
            if "KEYED_API_KEY" in os.environ:
                return Readiness(ready=True)
            return Readiness(ready=False, detail="set KEYED_API_KEY")

    @hookimpl
    def register_llms(register):
        register(Keyed)
"""


def test_help_lists_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("plugins", "templates", "models", "config", "logs", "baseline", "sandbox"):
        assert command in result.stdout


def test_error_is_one_line_and_debug_shows_traceback():
    result = run_cli("baseline", "nonesuch", env={"SCIENTIST_LOAD_PLUGINS": "scientist-example"})
    assert result.returncode == 1
    assert result.stderr.startswith("Error: no template named 'nonesuch' is loaded: SCIENTIST_LOAD_PLUGINS="
                                    "'scientist-example' selects the plugins that load (loaded: example);")
    assert result.stderr.count("\n") == 1
    debug = run_cli("baseline", "nonesuch", env={"SCIENTIST_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "PluginError" in debug.stderr


def test_models_lists_providers_with_readiness(tmp_path):
    site = make_distribution(tmp_path / "site", "scientist-llm-keyed", "0.1", {"keyed": "keyed_plugin"},
                             {"keyed_plugin": PROVIDER})
    env = {"PYTHONPATH": str(site), "SCIENTIST_MODEL": "keyed/big", "SCIENTIST_LOAD_PLUGINS": "scientist-llm-keyed"}
    rows = json.loads(run_cli("models", "--json", env=env).stdout)
    assert [(r["id"], r["ready"], r["detail"], r["scientist"]) for r in rows] == [
        ("keyed/big", False, "set KEYED_API_KEY", True), ("keyed/small", False, "set KEYED_API_KEY", False)]
    ready = json.loads(run_cli("models", "--json", env={**env, "KEYED_API_KEY": "k"}).stdout)
    assert all(r["ready"] for r in ready)
    no_plugins = {"SCIENTIST_LOAD_PLUGINS": ""}
    assert json.loads(run_cli("models", "--json", env=no_plugins).stdout) == []
    assert "No LLM plugin is installed" in run_cli("models", env=no_plugins).stderr


def test_templates_json_has_knobs():
    (example,) = [t for t in json.loads(run_cli("templates", "--json").stdout) if t["name"] == "example"]
    assert example["distribution"] == "scientist-example"
    assert example["knobs"] and example["quick_knobs"]
    assert example["metrics"]["val_accuracy"]["direction"] == "higher" and example["deterministic"] is False
    assert "example" in run_cli("templates").stdout


def test_logs_shows_ledger_and_totals(scientist_env):
    store = Store(scientist_env / "runs" / "scientist.db")
    store.create_run("r-old", "run", "example", scientist_env)
    store.create_run("r-new", "run", "example", scientist_env)
    store.record_llm_call(run_id="r-new", stage="ideas", model="fake/m", messages=[], response="a",
                          tokens_in=100, tokens_out=10, cost_usd=0.25)
    store.record_llm_call(run_id="r-new", stage="review", model="fake/m", messages=[], response="b",
                          tokens_in=50, tokens_out=5, cost_usd=0.5)
    store.record_llm_call(run_id="r-old", stage="ideas", model="fake/m", messages=[], response="c", cost_usd=9)
    store.close()

    latest = json.loads(run_cli("logs", "--out", "runs", "--json", cwd=scientist_env).stdout)
    assert latest["run"]["id"] == "r-new"
    assert latest["total"]["tokens_in"] == 150 and latest["total"]["cost_usd"] == 0.75
    assert [s["stage"] for s in latest["usage_by_stage"]] == ["ideas", "review"]
    old = json.loads(run_cli("logs", "--out", "runs", "--run", "r-old", "--json", cwd=scientist_env).stdout)
    assert old["total"]["cost_usd"] == 9
    text = run_cli("logs", "--out", "runs", cwd=scientist_env).stdout
    assert "total" in text and "0.7500" in text


def test_logs_without_store_is_one_line(scientist_env):
    result = run_cli("logs", "--out", "nowhere", cwd=scientist_env)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "no run store" in result.stderr
