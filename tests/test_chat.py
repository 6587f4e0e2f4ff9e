"""The shared call path (scientist_core.chat): ledger rows, retries, budget, structured output, model choice."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from scientist_core.chat import (
    BudgetExceeded, Chat, LLMError, LLMNotReady, MissingAPIKey, NoModelConfigured, Price, RateLimited, RetryPolicy,
    StructuredOutputError, TransientLLMError, extract_json, parse_retry_after, redact, split_model_id,
)
from scientist_core.hookspecs import hookimpl
from scientist_core.model_choice import open_chat, resolve_model
from scientist_core.models import Message, ModelInfo, Readiness
from scientist_core.plugins import PluginInfo
from scientist_core.settings import load_settings
from scientist_core.testing import FakeLLM, Script, register_fake_llm

RUN = "run-1"


class Plan(BaseModel):
    name: str = Field(pattern=r"^[a-z_]+$")
    steps: int = Field(ge=1, le=100)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def priced(script: Script, per_in: float = 1e-3, per_out: float = 2e-3) -> FakeLLM:
    """A fake provider with a price per token (USD), so budgets have something to count."""
    cls = type("PricedFake", (FakeLLM,), {"script": script, "price": lambda self, model: Price(per_in, per_out)})
    return cls()


def make_chat(script: Script, store=None, **kwargs) -> tuple[Chat, Sleeps]:
    sleeps = Sleeps()
    provider = kwargs.pop("provider", None) or priced(script)
    kwargs.setdefault("retry", RetryPolicy(max_retries=3, base_delay_s=1.0, max_delay_s=8.0))
    return Chat(provider, "scripted", store=store, run_id=RUN if store else None, stage="ideas", sleep=sleeps,
                seed=1, **kwargs), sleeps


@pytest.fixture
def store(run_store, tmp_path):
    run_store.create_run(RUN, "run", "example", tmp_path)
    return run_store


def test_ask_records_one_ledger_row_per_call(store):
    script = Script().enqueue("hello there", "second answer")
    chat, _ = make_chat(script, store)
    assert chat.ask("say hello please") == "hello there"
    assert chat.ask([{"role": "system", "content": "be brief"}, {"role": "user", "content": "again"}]) == "second answer"
    rows = store.llm_calls(RUN)
    assert len(rows) == 2
    first = rows[0]
    assert first["model"] == "fake/scripted" and first["stage"] == "ideas" and first["error"] is None
    assert first["messages"] == [{"role": "user", "content": "say hello please"}]
    assert first["response"] == "hello there"
    assert (first["tokens_in"], first["tokens_out"]) == (3, 2)
    assert first["cost_usd"] == pytest.approx(3 * 1e-3 + 2 * 2e-3)   # from the provider's price
    assert first["latency_s"] >= 0
    assert store.total_cost(RUN) == pytest.approx(chat.spent) == pytest.approx(chat.usage.cost_usd)


def test_transient_errors_are_retried_with_backoff_and_recorded(store):
    script = Script().enqueue(TransientLLMError("HTTP 500"), TransientLLMError("HTTP 502"), "finally")
    chat, sleeps = make_chat(script, store)
    assert chat.ask("hi") == "finally"
    rows = store.llm_calls(RUN)
    assert [r["error"] is not None for r in rows] == [True, True, False]
    # a 5xx may come after the model ran: each failed attempt is counted at its worst case, the answer at its cost
    worst = chat.estimate_cost([Message(role="user", content="hi")])
    assert "HTTP 500" in rows[0]["error"] and "counted at its worst case" in rows[0]["error"]
    assert [r["cost_usd"] for r in rows[:2]] == pytest.approx([worst, worst]) and worst > rows[2]["cost_usd"] > 0
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0   # exponential, jittered


def test_retry_after_is_honoured(store):
    script = Script().enqueue(RateLimited("429", retry_after=7.0), "ok")
    chat, sleeps = make_chat(script, store)
    assert chat.ask("hi") == "ok"
    assert sleeps == [7.0]
    refused = store.llm_calls(RUN)[0]
    assert refused["error"] and refused["cost_usd"] == 0      # a 429 is the server refusing: nothing billed


def test_retries_are_bounded(store):
    script = Script().enqueue(*[TransientLLMError("HTTP 503", status=503) for _ in range(4)])
    chat, sleeps = make_chat(script, store)
    with pytest.raises(TransientLLMError, match="gave up after 4 attempts"):
        chat.ask("hi")
    assert len(store.llm_calls(RUN)) == 4 and len(sleeps) == 3
    assert all(r["error"] for r in store.llm_calls(RUN))


def test_a_retry_after_beyond_the_limit_gives_up_at_once(store):
    script = Script().enqueue(RateLimited("429", retry_after=3600))
    chat, sleeps = make_chat(script, store)
    with pytest.raises(RateLimited, match="gave up after 1 attempt"):
        chat.ask("hi")
    assert sleeps == []


def test_other_errors_are_recorded_and_not_retried(store):
    script = Script().enqueue(LLMError("bad request"), ValueError("boom"))
    chat, sleeps = make_chat(script, store)
    with pytest.raises(LLMError, match="bad request"):
        chat.ask("hi")
    with pytest.raises(ValueError):
        chat.ask("hi")
    refused, broken = store.llm_calls(RUN)
    assert (refused["error"], refused["cost_usd"]) == ("bad request.", 0)         # the server said no: not billed
    assert broken["error"].startswith("ValueError: boom (counted at its worst case")  # unknown: maybe billed
    assert broken["cost_usd"] == pytest.approx(chat.estimate_cost([Message(role="user", content="hi")]))
    assert sleeps == []


def test_not_ready_sends_nothing_and_records_nothing(store):
    script = Script().enqueue(MissingAPIKey("OPENAI_API_KEY", "openai"))
    chat, _ = make_chat(script, store)
    with pytest.raises(LLMNotReady) as caught:
        chat.ask("hi")
    assert "OPENAI_API_KEY" in caught.value.one_line() and "\n" not in caught.value.one_line()
    assert store.llm_calls(RUN) == []


# -- budget ----------------------------------------------------------------------------------------------

def test_budget_stops_before_the_call_that_could_exceed_it(store):
    # estimate: (ceil(chars/3) + 4) prompt tokens at $0.001 plus max_tokens 10 at $0.002; "a b" => $0.025
    # actual (the fake counts words): 2 in, 2 out => $0.006
    script = Script().enqueue("one two", "three four", "five six")
    chat, _ = make_chat(script, store, max_cost=0.05, max_tokens=10)
    chat.ask("a b")                                 # 0 + 0.025 <= 0.05; spent 0.006
    chat.ask("a b")                                 # 0.006 + 0.025 <= 0.05; spent 0.012
    chat.ask("a b")                                 # 0.012 + 0.025 <= 0.05; spent 0.018
    spent = store.total_cost(RUN)
    script.enqueue("never sent")
    with pytest.raises(BudgetExceeded) as caught:
        chat.ask("a b " * 10)                       # 0.018 + (14 + 4) * 0.001 + 0.02 = 0.056 > 0.05
    assert len(script.history) == 3 and script.replies      # the fourth call was not sent
    assert store.total_cost(RUN) == pytest.approx(spent) and spent <= 0.05
    assert len(store.llm_calls(RUN)) == 3
    line = caught.value.one_line()
    assert "$0.0180" in line and "$0.0500" in line and "max_cost" in line and RUN in line and "\n" not in line


def test_budget_counts_what_the_run_spent_before(store):
    store.record_llm_call(run_id=RUN, stage="earlier", model="fake/scripted", messages=[], response="x",
                          cost_usd=0.99)
    script = Script().enqueue("never sent")
    chat, _ = make_chat(script, store, max_cost=1.0, max_tokens=100)
    with pytest.raises(BudgetExceeded, match=r"\$0\.9900 of max_cost \$1\.0000"):
        chat.ask("hello")
    assert script.history == []


def test_free_models_are_never_stopped_by_the_budget(store):
    script = Script().enqueue("free")
    free = type("Free", (FakeLLM,), {"script": script, "prices": Price(0.0, 0.0)})()
    chat = Chat(free, "scripted", store=store, run_id=RUN, max_cost=0.0)
    assert chat.ask("hi") == "free"


def test_budget_without_a_run_counts_this_chats_calls():
    script = Script().enqueue("one", "two")
    chat, _ = make_chat(script, None, max_cost=0.03, max_tokens=5)
    chat.ask("x")                                   # estimate 0.015, spent 0.003
    with pytest.raises(BudgetExceeded):
        chat.ask("x " * 30)                         # 0.003 + (20 + 4) * 0.001 + 0.01 = 0.037 > 0.03


# -- structured output -------------------------------------------------------------------------------------

def test_structured_answer_is_validated(store):
    script = Script().enqueue('{"name": "warmup", "steps": 10}')
    chat, _ = make_chat(script, store)
    plan = chat.ask_structured("make a plan", Plan)
    assert plan == Plan(name="warmup", steps=10)
    sent = script.history[0]
    assert sent.schema is Plan
    # the schema, in the prompt: after the question, so two questions with one opening share a prompt prefix
    assert [m.role for m in sent.messages] == ["user"]
    assert sent.messages[0].content.startswith("make a plan\n\n") and '"steps"' in sent.messages[0].content


def test_the_schema_follows_the_conversation_so_its_opening_is_a_shared_prefix(store):
    script = Script().enqueue('{"name": "a", "steps": 1}', '{"name": "b", "steps": 2}')
    chat, _ = make_chat(script, store)
    opening = [Message(role="system", content="You plan."), Message(role="user", content="the context")]
    chat.ask_structured([*opening, Message(role="user", content="first task")], Plan)
    chat.ask_structured([*opening, Message(role="assistant", content="ok"), Message(role="user", content="next")],
                        Plan)
    first, second = (call.messages for call in script.history)
    assert first[:2] == second[:2] == opening
    assert '"steps"' in first[-1].content and '"steps"' in second[-1].content


def test_an_answer_cut_off_at_the_token_limit_keeps_what_was_written(store):
    script = Script().enqueue('{"name": "warmup", "steps": 12, "note": "and then it went on and on')
    chat, _ = make_chat(script, store)
    assert chat.ask_structured("plan", Plan, max_tokens=5) == Plan(name="warmup", steps=12)
    assert len(script.history) == 1                                 # closed by code, no repair round


def test_a_cut_off_answer_that_cannot_be_closed_is_asked_again_more_briefly(store):
    script = Script().enqueue('{"name": "warmup", "steps":', '{"name": "short", "steps": 1}')
    chat, _ = make_chat(script, store)
    assert chat.ask_structured("plan", Plan, max_tokens=2) == Plan(name="short", steps=1)
    assert "cut off at the limit of 2 tokens" in script.history[1].messages[-1].content


class Note(BaseModel):
    title: str = Field(description="A short title in your own words.")
    body: str = Field(description="what you found")


def test_a_field_that_copies_the_schemas_description_is_sent_back(store):
    script = Script().enqueue('{"title": "A short title, in your own words", "body": "ok"}',
                              '{"title": "Wider networks", "body": "what you found"}',
                              '{"title": "Wider networks", "body": "They learn faster."}')
    chat, _ = make_chat(script, store)
    assert chat.ask_structured("note", Note) == Note(title="Wider networks", body="They learn faster.")
    assert "title repeats the schema's description" in script.history[1].messages[-1].content
    assert "body repeats the schema's description" in script.history[2].messages[-1].content
    assert len(script.history) == 3


def test_a_two_word_answer_that_happens_to_match_a_description_is_fine(store):
    script = Script().enqueue('{"title": "Short title", "body": "ok"}')
    chat, _ = make_chat(script, store)

    class Tiny(BaseModel):
        title: str = Field(description="Short title")
        body: str

    assert chat.ask_structured("note", Tiny).title == "Short title"


def test_raw_line_breaks_inside_json_strings_are_forgiven(store):
    script = Script().enqueue('{"name": "warmup",\n "steps": 4, "note": "line one\nline two\tend"}')
    chat, _ = make_chat(script, store)
    assert chat.ask_structured("plan", Plan) == Plan(name="warmup", steps=4)
    assert len(script.history) == 1


def test_an_unfinished_answer_below_the_limit_is_not_patched_up(store):
    script = Script().enqueue('{"name": "warmup", "steps": 12', '{"name": "whole", "steps": 3}')
    chat, _ = make_chat(script, store)
    assert chat.ask_structured("plan", Plan, max_tokens=1000) == Plan(name="whole", steps=3)


def test_repair_rounds_send_the_error_back(store):
    script = Script().enqueue("not json at all", '{"name": "Bad Name", "steps": 1000}',
                              'Here: ```json\n{"name": "good", "steps": 5}\n```')
    chat, _ = make_chat(script, store)
    assert chat.ask_structured("plan", Plan, repair_rounds=2) == Plan(name="good", steps=5)
    rows = store.llm_calls(RUN)
    assert len(rows) == 3 and all(r["error"] is None for r in rows)      # each round is a ledger row
    second = script.history[1].messages
    assert second[-2].role == "assistant" and second[-2].content == "not json at all"
    assert "not valid JSON" in second[-1].content
    third = script.history[2].messages[-1].content
    assert "name" in third and "steps" in third and "less than or equal to 100" in third


def test_repair_rounds_are_bounded(store):
    script = Script().enqueue("{}", "{}")
    chat, _ = make_chat(script, store)
    with pytest.raises(StructuredOutputError, match="no valid Plan after 2 tries"):
        chat.ask_structured("plan", Plan, repair_rounds=1)
    assert len(store.llm_calls(RUN)) == 2


def test_structured_output_with_aliases(store):
    from scientist_core.models import Idea

    idea = {"Name": "lr_warmup", "Title": "Warm-up", "Experiment": "try it", "Interestingness": 5,
            "Feasibility": 8, "Novelty": 3}
    script = Script().enqueue(idea)
    chat, _ = make_chat(script, store)
    assert chat.ask_structured("idea", Idea).name == "lr_warmup"


# -- helpers ------------------------------------------------------------------------------------------------

def test_parse_retry_after():
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({}) is None and parse_retry_after(None) is None
    assert parse_retry_after({"retry-after": "soon"}) is None


def test_redact_masks_keys():
    text = "Incorrect API key provided: sk-proj-abcdefghijklmnop; Authorization: Bearer abcdefghijkl; my-secret-value"
    masked = redact(text, ["my-secret-value"])
    assert "abcdefghijklmnop" not in masked and "Bearer ***" in masked and "my-secret-value" not in masked


def test_extract_json():
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('Sure:\n```json\n{"a": [1, 2]}\n```\nDone.') == {"a": [1, 2]}
    assert extract_json('The answer is {"a": 2}.') == {"a": 2}


def test_split_model_id():
    assert split_model_id("openai/gpt-4o") == ("openai", "gpt-4o")
    assert split_model_id("openai/meta-llama/Llama-3-8B") == ("openai", "meta-llama/Llama-3-8B")
    with pytest.raises(LLMError, match="provider/name"):
        split_model_id("gpt-4o")


def test_retry_policy_delays_grow_and_are_capped():
    import random

    policy = RetryPolicy(base_delay_s=1, max_delay_s=4, jitter=0.5)
    rng = random.Random(0)
    delays = [policy.delay(n, None, rng) for n in range(6)]
    assert all(0.5 * min(4, 2 ** n) <= d <= min(4, 2 ** n) for n, d in enumerate(delays))
    assert policy.delay(0, 12.0, rng) == 12.0


# -- choosing the model ---------------------------------------------------------------------------------------

class LocalStandIn(FakeLLM):
    name = "local"

    def models(self):
        return [ModelInfo(provider="local", name="qwen-test")]


def _register_local(host) -> None:
    class Plugin:
        @hookimpl
        def register_llms(self, register):
            register(LocalStandIn)

    host.add(Plugin(), PluginInfo("local-stand-in", "scientist-llm-local", "test"))


def test_resolve_model_order(plugin_host, monkeypatch):
    monkeypatch.setenv("SCIENTIST_LOAD_PLUGINS", "")
    from scientist_core.plugins import PluginHost

    host = PluginHost().load()
    settings = load_settings()
    with pytest.raises(NoModelConfigured) as caught:
        resolve_model(settings, host=host)
    line = caught.value.one_line()
    assert "make run" in line and "pip install -e plugins/llm_backends/local" in line
    assert "OPENAI_API_KEY" in line and "ANTHROPIC_API_KEY" in line and "\n" not in line

    _register_local(host)
    assert resolve_model(settings, host=host) == "local/qwen-test"
    assert resolve_model(settings, "reviewer", host=host) == "local/qwen-test"
    assert resolve_model(settings, override="openai/gpt-4o", host=host) == "openai/gpt-4o"

    monkeypatch.setenv("SCIENTIST_MODEL", "openai/gpt-4o-mini")
    settings = load_settings()
    assert resolve_model(settings, host=host) == "openai/gpt-4o-mini"
    assert resolve_model(settings, "reviewer", host=host) == "openai/gpt-4o-mini"   # defaults to the scientist's
    monkeypatch.setenv("SCIENTIST_REVIEWER_MODEL", "anthropic/claude-sonnet-4-5")
    settings = load_settings()
    assert resolve_model(settings, "reviewer", host=host) == "anthropic/claude-sonnet-4-5"
    assert resolve_model(settings, "scientist", host=host) == "openai/gpt-4o-mini"


def test_open_chat_binds_provider_store_and_budget(plugin_host, store, monkeypatch):
    monkeypatch.setenv("SCIENTIST_MODEL", "fake/scripted")
    monkeypatch.setenv("SCIENTIST_MAX_COST", "2.5")
    register_fake_llm(plugin_host, Script().enqueue("hi"), prices=Price(1e-6, 2e-6))
    chat = open_chat(load_settings(), stage="review", role="reviewer", store=store, run_id=RUN, host=plugin_host)
    assert chat.model_id == "fake/scripted" and chat.max_cost == 2.5
    assert chat.ask("hello") == "hi"
    assert store.llm_calls(RUN)[0]["stage"] == "review"


def test_open_chat_refuses_a_model_that_is_not_ready(plugin_host, monkeypatch):
    class NotReady(FakeLLM):
        name = "notready"

        def readiness(self, model):
            return Readiness(ready=False, detail="EXAMPLE_API_KEY is not set")

    class Plugin:
        @hookimpl
        def register_llms(self, register):
            register(NotReady)

    plugin_host.add(Plugin(), PluginInfo("notready", "scientist-llm-notready", "test"))
    with pytest.raises(LLMNotReady, match="EXAMPLE_API_KEY is not set"):
        open_chat(load_settings(), stage="x", model="notready/scripted", host=plugin_host)
