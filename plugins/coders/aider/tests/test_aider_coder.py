"""The aider coder with the real aider executable, offline: scripted model replies through aider's model settings
(`extra_params.mock_response`, which aider hands to litellm), or a loopback OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scientist_core.chat import BudgetExceeded, Chat
from scientist_core.coder import CodeRequest
from scientist_core.errors import PluginError
from scientist_core.models import Idea
from scientist_coder_aider.environment import AIDER_VERSION, AiderEnvironment
from scientist_coder_aider.plugin import AiderCoder
from scientist_coder_aider.runner import AiderResult, ModelRoute, _read_report, build_env, model_settings
from scientist_core.testing.fake_openai import Reply
from scientist_llm_openai.plugin import OpenAIProvider

pytestmark = pytest.mark.usefixtures("scientist_env")

KEY = "sk-test-aider-0123456789SECRETKEY"
OTHER_KEY = "sk-ant-other-provider-SECRET9876"
RUN = "run-aider"
DEAD_ENDPOINT = "http://127.0.0.1:9/v1"  # nothing listens there: a request would fail at once

SEARCH = """            nn.Linear(3 * knobs.embedding_dim, knobs.hidden_size),
            *[ResidualBlock(knobs.hidden_size) for _ in range(knobs.hidden_layers)],
"""
REPLACE = """            nn.Linear(3 * knobs.embedding_dim, knobs.hidden_size),
            nn.GELU(),
            *[ResidualBlock(knobs.hidden_size) for _ in range(knobs.hidden_layers)],
"""
GOOD_REPLY = f"""I add a GELU after the input layer of the denoiser.

experiment.py
```python
<<<<<<< SEARCH
{SEARCH}=======
{REPLACE}>>>>>>> REPLACE
```
"""
MALFORMED = {
    "no edit block": "The change is a good idea; I would add a GELU after the first layer of the network.",
    "search text not in the file": ("experiment.py\n```python\n<<<<<<< SEARCH\n    this_line_is_not_there = 1\n"
                                    "=======\n    replaced = 2\n>>>>>>> REPLACE\n```\n"),
    "unterminated block": ("experiment.py\n```python\n<<<<<<< SEARCH\n            nn.ReLU(),\n=======\n"
                           "            nn.GELU(),\n```\n"),
}
IDEA = Idea(Name="gelu_denoiser", Title="GELU activations in the denoiser", Experiment="Swap ReLU for GELU.",
            Interestingness=5, Feasibility=9, Novelty=4)


@pytest.fixture(autouse=True)
def _keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", OTHER_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def chat(run_store, tmp_path):
    run_store.create_run(RUN, "run", "diffusion", tmp_path)

    def make(base_url: str = DEAD_ENDPOINT) -> Chat:
        provider = OpenAIProvider(OpenAIProvider.Config(base_url=base_url, input_cost_per_million=1.0,
                                                        output_cost_per_million=2.0))
        return Chat(provider, "fake-model", store=run_store, run_id=RUN, stage="experiments:gelu_denoiser")

    return make


def coder(venv: Path, reply: str | None = None, **config) -> AiderCoder:
    settings = {"extra_params": {"mock_response": reply}} if reply is not None else {}
    return AiderCoder(AiderCoder.Config(venv=venv, model_settings=settings, **config))


def request(**changes) -> CodeRequest:
    values = dict(instruction="Add a GELU after the input layer of the denoiser.", files=["experiment.py", "plot.py"],
                  read_only=["notes.txt"], idea=IDEA, run="run_2", budget="run 2 of at most 3, attempt 2 of 4",
                  command="python experiment.py --out_dir run_2 --knobs run_2/knobs.json",
                  knob_changes={"learning_rate": 0.001},
                  previous_results='run_0 (baseline): {"circle": {"kl_divergence": 0.3441}}',
                  failure="the experiment exited with 1; stderr ends with:\nRuntimeError: shapes cannot be multiplied")
    return CodeRequest(**{**values, **changes})


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()}


def assert_key_nowhere(*texts: str) -> None:
    for text in texts:
        assert KEY not in text and OTHER_KEY not in text


def test_a_search_replace_edit_is_applied_to_a_real_template_copy(aider_venv, workspace, chat, run_store,
                                                                  openai_server):
    openai_server.enqueue(GOOD_REPLY)
    before = snapshot(workspace)
    change = coder(aider_venv).apply(workspace, request(), chat(openai_server.base_url))

    assert change.ok, change.message
    assert change.files_edited == ["experiment.py"]
    assert "+            nn.GELU(),\n" in change.diff and change.diff.startswith("--- experiment.py")
    text = (workspace / "experiment.py").read_text()
    assert text == before["experiment.py"].replace(SEARCH, REPLACE)
    after = snapshot(workspace)
    assert set(after) == set(before), "aider left files in the run folder"  # no .aider.chat.history.md etc.
    assert all(after[name] == before[name] for name in before if name != "experiment.py")
    # aider's own report: tokens from its analytics log, cost at the provider's price ($1 / $2 per 1M tokens)
    assert change.usage.tokens_in > 0 and change.usage.tokens_out > 0
    assert change.usage.cost_usd == pytest.approx((change.usage.tokens_in * 1 + change.usage.tokens_out * 2) / 1e6)
    # the budget gate's ledger row for aider's one request: what the endpoint reported, the same as aider's
    (row,) = run_store.llm_calls(RUN)
    assert row["stage"] == "experiments:gelu_denoiser" and row["model"] == "openai/fake-model"
    assert (row["tokens_in"], row["tokens_out"]) == (change.usage.tokens_in, change.usage.tokens_out)
    assert row["cost_usd"] == pytest.approx(change.usage.cost_usd)
    assert row["error"] is None and row["response"] == GOOD_REPLY
    assert "GELU activations in the denoiser" in json.dumps(row["messages"])
    assert run_store.reservations(RUN) == []
    assert_key_nowhere(change.model_dump_json(), json.dumps(run_store.llm_calls(RUN)), *after.values())


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_malformed_reply_is_a_failed_edit_that_changes_nothing(aider_venv, workspace, chat, run_store, kind):
    before = snapshot(workspace)
    change = coder(aider_venv, MALFORMED[kind]).apply(workspace, request(), chat())

    assert not change.ok and change.files_edited == [] and change.diff == ""
    expected = {"no edit block": ["no edit made: the model's answer held no SEARCH/REPLACE edit"],
                "search text not in the file": ["aider's edits did not apply after its retries",
                                                "SearchReplaceNoExactMatch", "this_line_is_not_there"],
                "unterminated block": ["aider's edits did not apply", "Expected `>>>>>>> REPLACE`"]}[kind]
    for text in expected:
        assert text in change.message
    assert snapshot(workspace) == before
    assert run_store.llm_calls(RUN) == []  # a scripted reply never leaves aider: nothing reached a provider


def test_aider_is_stopped_before_a_request_that_could_pass_max_cost(aider_venv, workspace, chat, run_store,
                                                                   openai_server):
    """aider retries a failed edit with more requests; its third would pass max_cost. The gate forwards two,
    refuses the third, stops aider at once, and the coder raises BudgetExceeded: the ledger stays under it."""
    # every answer costs $0.1 (50k answer tokens at $2 / 1M); each request may cost up to $0.2 (100k), plus its
    # prompt: with $0.35, the second request fits (0.1 + 0.2 + prompt) and the third never does (0.2 + 0.2)
    openai_server.default = Reply(text=MALFORMED["search text not in the file"], tokens_in=100, tokens_out=50_000)
    before = snapshot(workspace)
    member = chat(openai_server.base_url)
    member.max_cost = 0.35
    started = time.monotonic()
    with pytest.raises(BudgetExceeded) as caught:
        coder(aider_venv, max_output_tokens=100_000).apply(workspace, request(), member)
    elapsed = time.monotonic() - started

    assert len(openai_server.chat_requests()) == 2
    rows = run_store.llm_calls(RUN)
    assert [row["cost_usd"] for row in rows] == pytest.approx([0.1001, 0.1001])
    assert run_store.total_cost(RUN) <= 0.35 and run_store.reservations(RUN) == []
    assert all(row["max_tokens"] == 100_000 for row in (r.json for r in openai_server.chat_requests()))
    line = caught.value.one_line()
    assert "max_cost $0.3500" in line and f"scientist resume {RUN}" in line and "\n" not in line
    assert snapshot(workspace) == before
    assert elapsed < 60


def test_no_network_connection_is_attempted(aider_venv, workspace, chat, network_recorder, monkeypatch):
    """The audit hook sees every connect, name lookup and send in aider's process, and the proxy variables
    send any HTTP client to a recording listener; with a scripted reply neither may see anything."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, network_recorder.proxy_url)
    monkeypatch.setenv("NO_PROXY", "")
    started = time.monotonic()
    change = coder(aider_venv, GOOD_REPLY, env=network_recorder.env()).apply(workspace, request(), chat())
    elapsed = time.monotonic() - started

    assert change.ok, change.message
    events = network_recorder.events()
    assert events and events[0]["event"] == "hook-loaded", "the audit hook did not run inside aider"
    assert network_recorder.network_events() == []
    assert network_recorder.proxy_hits == []
    started_programs = {Path(e["args"].split("'")[1]).name for e in events if e["event"] == "subprocess.Popen"}
    assert started_programs <= {"git", "uname"}, started_programs  # no pip, no browser, no shell command
    assert elapsed < 60, "aider waited for something (a retry against an unreachable network?)"


def test_with_a_loopback_server_the_prompt_carries_the_run_context_and_the_detector_sees_the_request(
        aider_venv, workspace, chat, openai_server, network_recorder):
    """The same recorder sees aider's connection to a real (loopback) endpoint: the detector above can fail.
    The server sees what the paper's loop gives aider, and the key, handed to aider only."""
    openai_server.enqueue(GOOD_REPLY)
    change = coder(aider_venv, env=network_recorder.env()).apply(workspace, request(), chat(openai_server.base_url))

    assert change.ok, change.message
    assert "nn.GELU()" in (workspace / "experiment.py").read_text()
    connects = [e for e in network_recorder.network_events() if e["event"] == "socket.connect"]
    assert any("('127.0.0.1', " in e["args"] for e in connects), connects  # the budget gate, on to the server
    (sent,) = openai_server.chat_requests()
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    prompt = "\n".join(m["content"] for m in sent.messages if isinstance(m.get("content"), str))
    for expected in ("Add a GELU after the input layer of the denoiser.", "GELU activations in the denoiser",
                     "run 2 of at most 3, attempt 2 of 4", "kl_divergence", "RuntimeError: shapes cannot be multiplied",
                     '"learning_rate": 0.001', "class MLPDenoiser", "results: circle kl 0.4"):
        assert expected in prompt, expected


def test_only_the_models_key_reaches_aider_and_never_a_file(tmp_path, aider_venv):
    route = ModelRoute(name="openai/fake-model", api_base=DEAD_ENDPOINT, key_env="OPENAI_API_KEY", key=KEY,
                       metadata={"max_input_tokens": 1000, "max_output_tokens": 500})
    env = build_env(route, tmp_path, AiderEnvironment(aider_venv), {})
    assert env["OPENAI_API_KEY"] == KEY and "ANTHROPIC_API_KEY" not in env
    assert env["HOME"] == str(tmp_path) and env["AIDER_CHECK_UPDATE"] == "false"
    assert env["PATH"].startswith(str(aider_venv / "bin"))
    settings = model_settings(route, "diff", 60, {"extra_params": {"temperature": 0}})
    assert settings[0]["extra_params"] == {"timeout": 60, "api_base": DEAD_ENDPOINT, "temperature": 0,
                                           "max_tokens": 500}
    assert KEY not in json.dumps(settings)


def test_an_uninstalled_aider_is_one_clear_line(tmp_path, chat, workspace):
    missing = AiderCoder(AiderCoder.Config(venv=tmp_path / "nowhere"))
    readiness = missing.readiness()
    assert not readiness.ready
    assert readiness.detail.startswith("the aider coder is not installed")
    assert readiness.detail.endswith("run `scientist coder install aider`")
    with pytest.raises(PluginError, match="scientist coder install aider"):
        missing.apply(workspace, request(), chat())


def test_a_model_litellm_cannot_reach_is_not_ready(aider_venv, plugin_host, fake_llm):
    ready = coder(aider_venv).readiness()
    assert ready.ready and AIDER_VERSION in ready.detail
    not_litellm = coder(aider_venv).readiness("fake/scripted")
    assert not not_litellm.ready and "fake/scripted" in not_litellm.detail


def test_install_is_idempotent_and_refuses_a_foreign_folder(aider_venv, tmp_path):
    said: list[str] = []
    started = time.monotonic()
    AiderEnvironment(aider_venv).install(say=said.append)
    assert time.monotonic() - started < 10 and said == [said[0]] and "already installed" in said[0]
    foreign = tmp_path / "precious"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    with pytest.raises(PluginError, match="is not a virtual environment"):
        AiderEnvironment(foreign).install(say=said.append)
    assert (foreign / "thesis.tex").read_text() == "years of work"


def test_aiders_printed_report_is_read_when_its_log_is_missing(tmp_path):
    result = AiderResult(exit_code=0, seconds=1.0, output=(
        "Tokens: 2.3k sent, 150 received. Cost: $0.0012 message, $0.0012 session.\n"
        "The LLM did not conform to the edit format.\nhttps://aider.chat/docs/troubleshooting/edit-errors.html\n\n"
        "# 1 SEARCH/REPLACE block failed to match!\n\nTokens: 12k sent, 1.5k received. Cost: $0.03 message, "
        "$0.0312 session.\nOnly 3 reflections allowed, stopping.\n"))
    _read_report(result, tmp_path / "no-log.jsonl")
    assert (result.calls, result.usage.tokens_in, result.usage.tokens_out) == (2, 14_300, 1_650)
    assert result.usage.cost_usd == pytest.approx(0.0312)
    assert result.gave_up and result.edit_error == "# 1 SEARCH/REPLACE block failed to match!"


def test_scientist_run_with_aider_chosen_but_not_installed_stops_before_spending(openai_server):
    """Pre-flight: one line on stderr, exit status 1, and no model was asked anything."""
    env = {**os.environ, "OPENAI_BASE_URL": openai_server.base_url}
    done = subprocess.run([sys.executable, "-m", "scientist_core.cli", "run", "diffusion", "--quick", "--coder",
                           "aider", "--model", "openai/fake-model"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: the coder 'aider' is not ready: the aider coder is not installed")
    assert "run `scientist coder install aider`" in line
    assert openai_server.chat_requests() == []


def test_scientist_coder_list_says_what_is_missing():
    done = subprocess.run([sys.executable, "-m", "scientist_core.cli", "coder", "list", "--json"], capture_output=True,
                          text=True, timeout=120)
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["search_replace"]["ready"] and rows["search_replace"]["chosen"]
    assert not rows["aider"]["ready"] and "scientist coder install aider" in rows["aider"]["detail"]
