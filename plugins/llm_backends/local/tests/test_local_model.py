"""The real local model answers a schema-constrained request with a valid instance, through Chat and the ledger.

It needs llama-cpp-python and the installed weights (`make install` does both). Where they are missing the
test is skipped on a developer's machine and fails in CI (CI=true), so CI cannot pass without it.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from scientist_core.chat import Chat
from scientist_core.models import Message
from scientist_llm_local import weights as W
from scientist_llm_local.plugin import LocalLLM, default_data_dir

# where `make install` put the weights: read before the tests' isolated environment replaces HOME and the data dir
INSTALLED = W.weights_path(W.DEFAULT, default_data_dir())
RUN = "run-local"


class ParameterChange(BaseModel):
    parameter: Literal["learning_rate", "num_layers", "hidden_size", "batch_size"]
    new_value: float = Field(gt=0)
    reason: str = Field(max_length=120)


def _missing() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed"
    if not INSTALLED.is_file():
        return f"the weights are not installed at {INSTALLED}"
    return None


@pytest.fixture
def provider(scientist_env):
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: `make install` must build llama-cpp-python and install the local model in CI")
        pytest.skip(f"{missing}: run `make install`")
    return LocalLLM.from_settings({"model_path": str(INSTALLED), "n_ctx": 2048})


@pytest.mark.slow
def test_local_model_answers_a_schema_constrained_request(provider, run_store, tmp_path):
    W.verify(W.DEFAULT, INSTALLED)   # the sha256 check the plugin does before loading its own weights
    run_store.create_run(RUN, "run", "example", tmp_path)
    chat = Chat(provider, W.DEFAULT.name, store=run_store, run_id=RUN, stage="plan", temperature=0.0, max_tokens=96)
    change = chat.ask_structured(
        [Message(role="system", content="You tune experiments. Reply in JSON."),
         Message(role="user", content="The MLP trains with learning_rate 0.001 and its loss plateaus early. "
                                      "Propose one parameter change.")],
        ParameterChange, repair_rounds=1)
    assert isinstance(change, ParameterChange) and change.new_value > 0
    rows = run_store.llm_calls(RUN)
    assert rows and rows[-1]["error"] is None and rows[-1]["model"] == f"local/{W.DEFAULT.name}"
    assert rows[-1]["tokens_in"] > 20 and rows[-1]["tokens_out"] > 5 and rows[-1]["cost_usd"] == 0


@pytest.mark.slow
def test_another_seed_reseeds_the_loaded_model_instead_of_loading_it_again(provider):
    """A benchmark over seeds made one provider per seed: each loaded its own 1.2 GB copy of the model, and 19
    seeds were killed for memory. One copy serves every seed, and sampling follows the seed as a fresh load would."""
    def answers(seed: int) -> tuple[object, str]:
        seeded = LocalLLM.from_settings({"model_path": str(INSTALLED), "n_ctx": 2048, "seed": seed})
        reply = seeded.complete(W.DEFAULT.name, [Message(role="user", content="Name a random animal.")],
                                temperature=1.5, max_tokens=12)
        return seeded.load(W.DEFAULT.name), reply.text

    model_1, first = answers(1)
    model_2, _ = answers(2)
    model_1_again, again = answers(1)
    assert model_1 is model_2 is model_1_again
    assert again == first  # seed 1 after seed 2 samples what seed 1 sampled first
