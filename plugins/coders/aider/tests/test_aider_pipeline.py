"""One `scientist run` on the diffusion template in quick mode with `coder = "aider"`: the run's model is
openai/fake-model served by the loopback OpenAI-compatible server, for the scientist's calls and for aider's.
The plan asks for a code change; aider's first answer makes no edit, which goes back to the retry loop, and its
second applies a SEARCH/REPLACE edit; the changed experiment runs in the sandbox and the paper is written. It is the suite's one run that trains
the main job's template for real, so it also checks what is particular to it: the live status, the plots, the PDF."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections import deque
from pathlib import Path

import pymupdf
import pytest

from scientist_core.testing.fake_openai import RecordedRequest, Reply
from scientist_core.models import Message
from scientist_core.pipeline.context import RunOptions
from scientist_core.pipeline.run import start_run
from scientist_core.settings import load_settings
from scientist_core.store import Store
from scientist_core.testing import Call, Script
from scientist_paper.results import result_values

try:
    from tests.pipeline_script import recorded_runs, script_full_run
except ImportError:  # run from elsewhere than the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
    from tests.pipeline_script import recorded_runs, script_full_run

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (make test installs it)")]

KEY = "sk-test-e2e-aider-SECRET-0123456789"
INSTRUCTION = "Add a GELU activation after the first linear layer of the MLP denoiser."
SEARCH = """            nn.Linear(3 * knobs.embedding_dim, knobs.hidden_size),
            *[ResidualBlock(knobs.hidden_size) for _ in range(knobs.hidden_layers)],
"""
REPLACE = """            nn.Linear(3 * knobs.embedding_dim, knobs.hidden_size),
            nn.GELU(),
            *[ResidualBlock(knobs.hidden_size) for _ in range(knobs.hidden_layers)],
"""
AIDER_REPLIES = [
    "A GELU would smooth the denoiser's first features; I think that is a good change.",  # no edit block
    f"Adding the GELU now.\n\nexperiment.py\n```python\n<<<<<<< SEARCH\n{SEARCH}=======\n{REPLACE}"
    ">>>>>>> REPLACE\n```\n",
]
SETTINGS = """
model = "openai/fake-model"
coder = "aider"
searchers_order = ["offline"]
[searchers.offline]
sources = ["nips*"]
[reviewers.llm]
ensemble = 1
reflections = 1
[llms.openai]
base_url = "{base_url}"
input_cost_per_million = 1.0
output_cost_per_million = 2.0
[coders.aider]
venv = "{venv}"
"""


def is_aiders(request: RecordedRequest) -> bool:
    return "response_format" not in (request.json or {}) and "SEARCH/REPLACE" in json.dumps(request.messages)


def serve_script(script: Script, aider_replies: deque):
    """The loopback server's answers: a structured request gets the scripted answer for its schema (named in
    its response_format), aider's requests get `aider_replies` in order."""
    def respond(request: RecordedRequest):
        if is_aiders(request):
            return aider_replies.popleft() if aider_replies else Reply.error(400, "no aider reply left")
        name = ((request.json or {}).get("response_format") or {}).get("json_schema", {}).get("name")
        messages = [Message(role=m["role"], content=m["content"]) for m in request.messages]
        try:
            return script.next_reply(Call("fake-model", messages, type(name, (), {}) if name else None))
        except AssertionError as exc:
            return Reply.error(400, str(exc))  # not retried: the stage fails and says why

    return respond


def test_a_quick_diffusion_run_goes_through_aider_end_to_end(scientist_env, plugin_host, openai_server, aider_venv,
                                                              monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    Path("scientist.toml").write_text(SETTINGS.format(base_url=openai_server.base_url, venv=aider_venv))
    script = Script()
    script_full_run(script, ideas=("gelu_denoiser",), metric="circle.kl_divergence")
    script.by_schema["ExperimentPlan"].clear()
    planned = {"description": "a GELU after the first layer, half the steps", "knob_changes": {"steps": 500},
               "code_change": INSTRUCTION}
    script.answer("ExperimentPlan", {"runs": [planned]})
    script.answer("PlannedRun", planned)  # the retry after aider's first answer made no edit
    openai_server.responder = serve_script(script, deque(AIDER_REPLIES))
    options = RunOptions(template="diffusion", num_ideas=1, reflections=2, novelty_rounds=3, max_runs=1,
                         max_tries=2, citation_rounds=1, quick=True)

    started, progress, statuses = time.monotonic(), [], []
    summary = start_run(load_settings(), plugin_host, options, status=statuses.append,
                        report=lambda line: progress.append(f"{time.monotonic() - started:5.0f} s {line}"))

    (item,) = summary.ideas
    assert item.problem == "" and item.runs_done == 1 and item.paper and Path(item.paper).is_file(), progress
    print("\n".join(progress))  # where the time went (pytest -s)
    # the main job's template for real: DDPM training in the sandbox (the live status followed each run's
    # training output and was cleared when it ended), its two plots, and a paper holding the recorded values
    assert any(line.startswith("experiments: gelu_denoiser: run_0: ") and ": step " in line for line in statuses)
    assert statuses[-1] == ""
    workspace = summary.run_dir / "gelu_denoiser"
    assert {"train_loss.png", "generated_images.png"} <= {p.name for p in (workspace / "figures").glob("*.png")}
    values = result_values(recorded_runs(summary.run_dir, "gelu_denoiser"))
    with pymupdf.open(item.paper) as pdf:
        assert pdf.page_count >= 2
        text = " ".join(page.get_text() for page in pdf)
    for key in ("run0.circle.kl_divergence", "run1.circle.kl_divergence"):
        assert values[key].plain in text, key
    assert "nn.GELU()" in (workspace / "code" / "run_1" / "experiment.py").read_text()  # the code that produced run_1
    record = json.loads((summary.run_dir / ".stages" / "experiments--gelu_denoiser--run_1.json").read_text())
    assert record["code_changed"] is True and record["knob_changes"] == {"steps": 500}
    store = Store.open_existing(load_settings().store_path)
    first, second = [a["meta"] for a in store.artifacts(summary.run_id) if a["kind"] == "code_change"]
    assert (first["coder"], first["ok"], first["attempt"]) == ("aider", False, 0)
    assert first["message"].startswith("no edit made")
    assert (second["ok"], second["attempt"], second["files"]) == (True, 1, ["experiment.py"])
    assert "+            nn.GELU(),\n" in second["diff"] and second["usage"]["tokens_in"] > 0
    assert second["usage"]["cost_usd"] > 0
    # aider talked to the loopback server with the run's key, and its retry was told why the first try failed
    aider_requests = [r for r in openai_server.chat_requests() if is_aiders(r)]
    assert len(aider_requests) == 2
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in aider_requests)
    retry_prompt = "\n".join(str(m.get("content")) for m in aider_requests[1].messages)
    assert "The previous attempt failed" in retry_prompt and "no edit made" in retry_prompt
    assert '"steps": 500' in retry_prompt and INSTRUCTION in retry_prompt
    # its requests went through the budget gate into the ledger of the idea's experiments stage, one row each
    # with aider's answer, and count toward the run's cost
    aider_rows = [row for row in store.llm_calls(summary.run_id)
                  if row["stage"] == "experiments:gelu_denoiser" and row["response"] in AIDER_REPLIES]
    assert [row["response"] for row in aider_rows] == AIDER_REPLIES
    assert all(row["cost_usd"] > 0 and "SEARCH/REPLACE" in json.dumps(row["messages"]) for row in aider_rows)
    assert store.reservations(summary.run_id) == []
    # the key is in no file of the run folder nor in the store; aider left no history there
    for path in Path(load_settings().out_dir).rglob("*"):  # the run folders, the store and its journal
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert not list(summary.run_dir.rglob(".aider*"))
