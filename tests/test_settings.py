"""Settings precedence: defaults < scientist.toml < SCIENTIST_* environment < flags."""

import json
from pathlib import Path

import pytest

from scientist_core.errors import SettingsError
from scientist_core.settings import load_settings
from tests.helpers import run_cli


def write_toml(text: str) -> None:
    Path("scientist.toml").write_text(text)


def test_defaults(scientist_env):
    settings = load_settings()
    assert settings.out_dir == Path("scientist-runs")
    assert settings.executor == "local"
    assert settings.data_dir == scientist_env.parent / "data"  # SCIENTIST_DATA_DIR from the fixture
    assert settings.sandbox.timeout_s is None


def test_default_data_dir_is_the_users_data_folder(monkeypatch):
    monkeypatch.delenv("SCIENTIST_DATA_DIR")
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    home = Path.home()
    assert load_settings().data_dir == home / ".local" / "share" / "scientist"


def test_precedence(monkeypatch):
    write_toml('model = "toml/model"\nmax_cost = 1.5\n[sandbox]\ntimeout_s = 10\nmemory_mb = 100\n')
    settings = load_settings()
    assert (settings.model, settings.max_cost, settings.sandbox.timeout_s) == ("toml/model", 1.5, 10)

    monkeypatch.setenv("SCIENTIST_MODEL", "env/model")
    monkeypatch.setenv("SCIENTIST_SANDBOX__TIMEOUT_S", "20")
    settings = load_settings()
    assert (settings.model, settings.sandbox.timeout_s, settings.sandbox.memory_mb) == ("env/model", 20, 100)

    settings = load_settings(model="flag/model", out_dir=None)
    assert settings.model == "flag/model"
    assert settings.out_dir == Path("scientist-runs")  # a flag not given keeps the layers below


def test_plugin_section_validated_by_plugin_config(plugin_host, monkeypatch):
    write_toml("[templates.example]\nsteps = 5\n")
    with pytest.raises(SettingsError) as raised:
        plugin_host.create("template", "example", load_settings().templates)
    assert "[templates.example] steps" in raised.value.one_line()
    monkeypatch.setenv("SCIENTIST_EXECUTORS__LOCAL__BOGUS", "1")
    with pytest.raises(SettingsError, match="bogus"):
        plugin_host.create("executor", "local", load_settings().executors)


def test_invalid_value_names_key_and_source(monkeypatch):
    monkeypatch.setenv("SCIENTIST_MAX_COST", "-3")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    line = raised.value.one_line()
    assert "max_cost" in line and "SCIENTIST_MAX_COST" in line


def test_unknown_top_level_key_rejected():
    write_toml('modle = "typo"\n')
    with pytest.raises(SettingsError, match="modle"):
        load_settings()


def test_broken_toml_is_one_line():
    write_toml("model = \n")
    result = run_cli("config", "show")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "scientist.toml is not valid TOML" in result.stderr


def test_config_show_reports_sources(scientist_env):
    write_toml('model = "toml/model"\n[sandbox]\nmemory_mb = 64\n')
    result = run_cli("config", "show", "--json", env={"SCIENTIST_REVIEWER_MODEL": "env/reviewer"},
                     cwd=scientist_env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["model"] == {"value": "toml/model", "source": "scientist.toml"}
    assert shown["reviewer_model"] == {"value": "env/reviewer", "source": "environment SCIENTIST_REVIEWER_MODEL"}
    assert shown["sandbox.memory_mb"]["source"] == "scientist.toml"
    assert shown["executor"] == {"value": "local", "source": "default"}
    text = run_cli("config", "show", cwd=scientist_env).stdout
    assert 'model = "toml/model"  # scientist.toml' in text


def test_scientist_config_names_another_file(tmp_path, monkeypatch):
    other = tmp_path / "profile.toml"
    other.write_text("[run]\nnum_ideas = 7\nquick = true\n")
    write_toml("[run]\nnum_ideas = 3\n")
    assert load_settings().run.num_ideas == 3
    monkeypatch.setenv("SCIENTIST_CONFIG", str(other))
    settings = load_settings()
    assert (settings.run.num_ideas, settings.run.quick) == (7, True)
    monkeypatch.setenv("SCIENTIST_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(SettingsError, match="SCIENTIST_CONFIG names"):
        load_settings()


def test_shipped_offline_profile_is_valid(monkeypatch):
    profile = Path(__file__).resolve().parents[1] / "configs" / "offline-cpu.toml"
    monkeypatch.setenv("SCIENTIST_CONFIG", str(profile))
    settings = load_settings()
    assert settings.run.quick and settings.searchers_order == ["offline"]
    assert settings.reviewers["llm"] == {"ensemble": 1, "reflections": 1, "fewshot": 0}


def test_bad_run_flag_is_one_line():
    result = run_cli("run", "example", "--num-ideas", "0")
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "--num-ideas" in result.stderr
