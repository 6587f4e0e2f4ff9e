"""The openai plugin over real HTTP, against the loopback OpenAI-compatible server (fixture `openai_server`).

Every test goes through scientist_core.chat.Chat with a real run store, so the ledger, costs, retries and
budget are checked as a run would see them. No key or network is needed.
"""

from __future__ import annotations

import time

import pytest
from pydantic import BaseModel, Field

from scientist_core.chat import (
    BudgetExceeded, Chat, LLMError, LLMNotReady, LLMTimeout, MissingAPIKey, RetryPolicy, TransientLLMError,
)
from scientist_core.testing.fake_openai import Reply
from scientist_core.model_choice import open_chat
from scientist_core.models import Message
from scientist_core.settings import load_settings
from scientist_llm_openai.plugin import OpenAIProvider

pytestmark = pytest.mark.usefixtures("scientist_env")

KEY = "sk-test-0123456789abcdefSECRET"
RUN = "run-http"
# litellm's bundled prices for gpt-4o-mini, USD per token
IN_PRICE, OUT_PRICE = 0.15e-6, 0.6e-6


class Plan(BaseModel):
    name: str
    steps: int = Field(ge=1, le=100)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def store(run_store, tmp_path):
    run_store.create_run(RUN, "run", "example", tmp_path)
    return run_store


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def chat_for(server, store, model="gpt-4o-mini", retry=None, sleep=None, **config) -> Chat:
    provider = OpenAIProvider.from_settings({"base_url": server.base_url, **config})
    return Chat(provider, model, store=store, run_id=RUN, stage="test",
                retry=retry or RetryPolicy(max_retries=3, base_delay_s=0.01, max_delay_s=0.05),
                sleep=time.sleep if sleep is None else sleep, max_tokens=200)


def test_plain_text_and_the_ledger(openai_server, store):
    openai_server.enqueue(Reply(text="Hello from the fake server", tokens_in=12, tokens_out=5))
    chat = chat_for(openai_server, store)
    assert chat.ask([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]) \
        == "Hello from the fake server"

    [request] = openai_server.chat_requests()
    assert request.path == "/v1/chat/completions"
    assert request.json["model"] == "gpt-4o-mini" and request.json["max_tokens"] == 200
    assert request.json["messages"] == [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Say hello"}]
    assert request.headers.get("authorization") == f"Bearer {KEY}"          # the key is sent ...

    [row] = store.llm_calls(RUN)
    assert row["model"] == "openai/gpt-4o-mini" and row["stage"] == "test" and row["error"] is None
    assert row["response"] == "Hello from the fake server"
    assert (row["tokens_in"], row["tokens_out"]) == (12, 5)
    assert row["cost_usd"] == pytest.approx(12 * IN_PRICE + 5 * OUT_PRICE)   # litellm's price map
    assert row["latency_s"] > 0
    assert store.total_cost(RUN) == pytest.approx(row["cost_usd"])
    assert KEY not in store.path.read_bytes().decode("latin-1")               # ... and never stored


def test_openai_base_url_is_honoured(openai_server, store, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    openai_server.enqueue("via the environment")
    provider = OpenAIProvider.from_settings({})
    assert provider.base_url() == openai_server.base_url
    assert Chat(provider, "gpt-4o-mini", store=store, run_id=RUN).ask("hi") == "via the environment"
    assert len(openai_server.chat_requests()) == 1


def test_a_server_of_your_own_needs_no_key(openai_server, store, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    openai_server.models = ["my-local-model"]
    openai_server.enqueue("no key needed")
    provider = OpenAIProvider.from_settings({"base_url": openai_server.base_url})
    assert [m.id for m in provider.models()] == ["openai/my-local-model"]
    assert provider.readiness("my-local-model").ready
    assert Chat(provider, "my-local-model", store=store, run_id=RUN).ask("hi") == "no key needed"
    assert store.llm_calls(RUN)[0]["cost_usd"] == 0          # litellm has no price for it


def test_json_schema_mode(openai_server, store):
    openai_server.enqueue({"name": "warmup", "steps": 12})
    plan = chat_for(openai_server, store).ask_structured("Plan a warm-up.", Plan)
    assert plan == Plan(name="warmup", steps=12)
    [request] = openai_server.chat_requests()
    response_format = request.json["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Plan"
    assert response_format["json_schema"]["schema"]["properties"]["steps"]["maximum"] == 100
    assert len(store.llm_calls(RUN)) == 1


def test_repair_round_over_http(openai_server, store):
    openai_server.enqueue("{not json", {"name": "x", "steps": 500}, {"name": "fixed", "steps": 3})
    plan = chat_for(openai_server, store).ask_structured("Plan.", Plan)
    assert plan.name == "fixed"
    requests = openai_server.chat_requests()
    assert len(requests) == 3 and len(store.llm_calls(RUN)) == 3
    assert requests[1].messages[-2] == {"role": "assistant", "content": "{not json"}
    assert "not valid JSON" in requests[1].messages[-1]["content"]
    assert "less than or equal to 100" in requests[2].messages[-1]["content"]


def test_rate_limit_with_retry_after_then_success(openai_server, store):
    openai_server.enqueue(Reply.rate_limited(retry_after=2), "after the wait")
    sleeps = Sleeps()
    assert chat_for(openai_server, store, sleep=sleeps).ask("hi") == "after the wait"
    assert sleeps == [2.0]                                  # the server's Retry-After, not the backoff
    first, second = store.llm_calls(RUN)
    assert "429" in first["error"] and first["response"] is None and first["cost_usd"] == 0
    assert second["error"] is None and second["response"] == "after the wait"
    assert store.total_cost(RUN) == pytest.approx(second["cost_usd"])


def test_retry_after_is_waited_for_real(openai_server, store):
    openai_server.enqueue(Reply(status=429, text="slow down", headers={"retry-after-ms": "300"}), "ok")
    assert chat_for(openai_server, store).ask("hi") == "ok"
    first, second = openai_server.chat_requests()
    assert second.time - first.time >= 0.3


def test_server_errors_until_the_retry_bound(openai_server, store):
    openai_server.enqueue(*[Reply.error(500)] * 3, "never reached")
    sleeps = Sleeps()
    chat = chat_for(openai_server, store, retry=RetryPolicy(max_retries=2, base_delay_s=0.5), sleep=sleeps)
    with pytest.raises(TransientLLMError, match="gave up after 3 attempts") as caught:
        chat.ask("hi")
    assert "HTTP 500" in caught.value.one_line()
    assert len(openai_server.chat_requests()) == 3 and openai_server.pending == 1
    rows = store.llm_calls(RUN)
    assert len(rows) == 3 and all("500" in r["error"] for r in rows)
    assert len(sleeps) == 2 and 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0   # backoff with jitter
    # a 5xx may come after the model ran: each attempt is counted at its worst case
    worst = chat.estimate_cost([Message(role="user", content="hi")])
    assert [r["cost_usd"] for r in rows] == pytest.approx([worst] * 3) and worst > 0


def test_503_then_success(openai_server, store):
    openai_server.enqueue(Reply.error(503, "overloaded"), Reply.error(502), "ok")
    assert chat_for(openai_server, store).ask("hi") == "ok"
    assert [r["error"] is None for r in store.llm_calls(RUN)] == [False, False, True]


def test_timeout_is_retried_then_succeeds(openai_server, store):
    openai_server.enqueue(Reply.slow(10), "in time")
    start = time.monotonic()
    assert chat_for(openai_server, store, timeout_s=1.0).ask("hi") == "in time"
    assert time.monotonic() - start < 8
    first, second = store.llm_calls(RUN)
    assert "did not answer within 1 s" in first["error"] and 0.9 <= first["latency_s"] < 8
    assert second["error"] is None


def test_timeouts_until_the_bound(openai_server, store):
    openai_server.enqueue(Reply.slow(5), Reply.slow(5))
    with pytest.raises(LLMTimeout, match="gave up after 2 attempts"):
        chat_for(openai_server, store, timeout_s=0.3, retry=RetryPolicy(max_retries=1, base_delay_s=0.01)).ask("hi")
    assert len(store.llm_calls(RUN)) == 2


def test_refused_key_is_not_retried_and_not_stored(openai_server, store):
    openai_server.enqueue(Reply.error(401, f"Incorrect API key provided: {KEY}"))
    with pytest.raises(LLMError, match="OPENAI_API_KEY") as caught:
        chat_for(openai_server, store).ask("hi")
    assert KEY not in caught.value.one_line()
    [row] = store.llm_calls(RUN)
    assert "401" in row["error"] and KEY not in row["error"]
    assert len(openai_server.chat_requests()) == 1


def test_missing_key_is_one_line_naming_the_variable(monkeypatch, store):
    monkeypatch.delenv("OPENAI_API_KEY")
    provider = OpenAIProvider.from_settings({})
    readiness = provider.readiness("gpt-4o-mini")
    assert not readiness.ready and readiness.detail == "OPENAI_API_KEY is not set"
    with pytest.raises(MissingAPIKey) as caught:
        Chat(provider, "gpt-4o-mini", store=store, run_id=RUN).ask("hi")
    line = caught.value.one_line()
    assert "OPENAI_API_KEY" in line and "\n" not in line
    assert store.llm_calls(RUN) == []

    monkeypatch.setenv("SCIENTIST_MODEL", "openai/gpt-4o-mini")
    with pytest.raises(LLMNotReady, match="OPENAI_API_KEY is not set"):
        open_chat(load_settings(), stage="ideas")


def test_budget_stops_before_the_call_that_would_exceed_it(openai_server, store):
    # gpt-4o: $2.5 / 1M in, $10 / 1M out; max_tokens 200 => each call may cost about $0.002
    openai_server.enqueue(Reply(text="one", tokens_in=100, tokens_out=100), "never sent")
    provider = OpenAIProvider.from_settings({"base_url": openai_server.base_url})
    chat = Chat(provider, "gpt-4o", store=store, run_id=RUN, stage="test", max_cost=0.003, max_tokens=200)
    assert chat.ask("first question") == "one"
    spent = store.total_cost(RUN)
    assert spent == pytest.approx(100 * 2.5e-6 + 100 * 10e-6)      # 0.00125
    with pytest.raises(BudgetExceeded) as caught:
        chat.ask("second question")                                # 0.00125 + ~0.00203 > 0.003
    assert len(openai_server.chat_requests()) == 1                  # not sent
    assert store.total_cost(RUN) == pytest.approx(spent) and spent <= 0.003
    assert caught.value.spent == pytest.approx(spent) and caught.value.limit == 0.003
    assert "max_cost" in caught.value.one_line() and RUN in caught.value.one_line()


def test_budget_estimate_uses_litellm_prices_and_tokens(openai_server):
    provider = OpenAIProvider.from_settings({"base_url": openai_server.base_url})
    chat = Chat(provider, "gpt-4o-mini", max_tokens=1000)
    messages = [Message(role="user", content="hello world")]
    tokens = provider.count_tokens("gpt-4o-mini", messages)
    assert 3 <= tokens <= 20
    assert chat.estimate_cost(messages) == pytest.approx(tokens * IN_PRICE + 1000 * OUT_PRICE)


def test_price_override_from_settings(openai_server, store):
    openai_server.enqueue(Reply(text="priced", tokens_in=1000, tokens_out=1000))
    chat = chat_for(openai_server, store, model="my-model", input_cost_per_million=1.0,
                    output_cost_per_million=2.0)
    chat.ask("hi")
    assert store.llm_calls(RUN)[0]["cost_usd"] == pytest.approx(0.001 + 0.002)


def test_models_listing_without_a_server():
    provider = OpenAIProvider.from_settings({"models": ["ft:gpt-4o-mini:my-org"]})
    names = [m.name for m in provider.models()]
    assert "gpt-4o-mini" in names and "ft:gpt-4o-mini:my-org" in names


def test_unknown_setting_is_one_line():
    from scientist_core.errors import SettingsError

    with pytest.raises(SettingsError, match=r"\[llms.openai\] api_key"):
        OpenAIProvider.from_settings({"api_key": "sk-do-not-put-keys-in-files"})


def test_a_refused_schema_falls_back_to_the_prompt(openai_server, store):
    openai_server.enqueue(Reply.error(400, "Invalid schema for response_format 'Plan'"), {"name": "p", "steps": 2},
                          {"name": "q", "steps": 3})
    chat = chat_for(openai_server, store)
    assert chat.ask_structured("Plan.", Plan) == Plan(name="p", steps=2)
    assert chat.ask_structured("Plan.", Plan) == Plan(name="q", steps=3)
    first, second, third = openai_server.chat_requests()
    assert "response_format" in first.json and "response_format" not in second.json
    assert "response_format" not in third.json                   # remembered for this model
    assert '"steps"' in second.json["messages"][0]["content"]     # the schema is still in the prompt
