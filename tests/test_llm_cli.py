"""`scientist llm prompt` and `scientist llm install-local` (scientist_core.commands.llm)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from scientist_core.chat import LLMNotReady
from scientist_core.commands import llm
from scientist_core.errors import ScientistError

from tests.helpers import run_cli

runner = CliRunner()


def test_prompt_prints_the_answer_and_usage(fake_llm, monkeypatch):
    monkeypatch.setenv("SCIENTIST_MODEL", "fake/scripted")
    fake_llm.enqueue("Hello, scientist")
    result = runner.invoke(llm.app, ["prompt", "--system", "Be brief.", "Say hello"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Hello, scientist"
    assert "fake/scripted: 4 tokens in, 2 out, $0.000000" in result.stderr
    sent = fake_llm.history[0].messages
    assert [(m.role, m.content) for m in sent] == [("system", "Be brief."), ("user", "Say hello")]


def test_prompt_from_stdin_and_model_flag(fake_llm):
    fake_llm.enqueue("read it")
    result = runner.invoke(llm.app, ["prompt", "--model", "fake/scripted", "-"], input="a prompt on stdin\n")
    assert result.exit_code == 0 and result.stdout.strip() == "read it"
    assert fake_llm.history[0].messages[-1].content == "a prompt on stdin\n"


def test_prompt_with_a_json_schema_file_repairs_then_validates(fake_llm, tmp_path):
    schema = {"title": "Plan", "type": "object", "required": ["name", "steps"],
              "properties": {"name": {"type": "string"}, "steps": {"type": "integer", "minimum": 1}}}
    path = tmp_path / "plan.schema.json"
    path.write_text(json.dumps(schema))
    fake_llm.enqueue({"name": "x", "steps": 0}, {"name": "warmup", "steps": 4})
    result = runner.invoke(llm.app, ["prompt", "--model", "fake/scripted", "--schema", str(path), "Plan it"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"name": "warmup", "steps": 4}
    assert fake_llm.history[0].schema.model_json_schema() == schema
    assert "minimum" in fake_llm.history[1].messages[-1].content or "less than" in \
        fake_llm.history[1].messages[-1].content


def test_prompt_with_a_pydantic_schema(fake_llm):
    idea = {"Name": "warmup", "Title": "T", "Experiment": "E", "Interestingness": 3, "Feasibility": 4, "Novelty": 5}
    fake_llm.enqueue(idea)
    result = runner.invoke(llm.app, ["prompt", "-m", "fake/scripted", "--schema", "scientist_core.models:Idea", "x"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["Name"] == "warmup"


def test_bad_schema_is_a_scientist_error(fake_llm, tmp_path):
    result = runner.invoke(llm.app, ["prompt", "-m", "fake/scripted", "--schema", str(tmp_path / "none.json"), "x"])
    assert isinstance(result.exception, ScientistError) and "no schema file" in str(result.exception)


def test_missing_key_is_one_line(monkeypatch):
    pytest.importorskip("scientist_llm_openai")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = runner.invoke(llm.app, ["prompt", "--model", "openai/gpt-4o-mini", "hi"])
    assert isinstance(result.exception, LLMNotReady)
    line = result.exception.one_line()
    assert "OPENAI_API_KEY is not set" in line and "\n" not in line


def test_the_real_command_when_wired(monkeypatch):
    """Through the installed `scientist` script, once cli.py adds the `llm` sub-app."""
    if "llm" not in run_cli("--help").stdout:
        pytest.skip("`scientist llm` is not wired into cli.py yet")
    pytest.importorskip("scientist_llm_openai")
    result = run_cli("llm", "prompt", "--model", "openai/gpt-4o-mini", "hi",
                     env={"OPENAI_API_KEY": None, "OPENAI_BASE_URL": None})
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "OPENAI_API_KEY is not set" in result.stderr


def test_install_local_without_the_plugin(monkeypatch):
    monkeypatch.setenv("SCIENTIST_LOAD_PLUGINS", "")
    from scientist_core.plugins import reset_host

    reset_host()
    result = runner.invoke(llm.app, ["install-local"])
    assert isinstance(result.exception, ScientistError)
    assert "pip install -e plugins/llm_backends/local" in result.exception.one_line()
