"""The anthropic plugin over real HTTP, against the loopback fake server's Messages API (`/v1/messages`)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from scientist_core.chat import Chat, MissingAPIKey, RetryPolicy
from scientist_core.testing.fake_openai import Reply
from scientist_llm_anthropic.plugin import AnthropicProvider

pytestmark = pytest.mark.usefixtures("scientist_env")

KEY = "sk-ant-test-0123456789abcdef"
RUN = "run-anthropic"


class Verdict(BaseModel):
    decision: str
    score: int


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def store(run_store, tmp_path):
    run_store.create_run(RUN, "run", "example", tmp_path)
    return run_store


@pytest.fixture
def provider(openai_server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    return AnthropicProvider.from_settings({"base_url": openai_server.url})


def test_text_cost_and_headers(openai_server, provider, store):
    openai_server.enqueue(Reply(text="Hello from Claude", tokens_in=20, tokens_out=4))
    chat = Chat(provider, "claude-sonnet-4-5", store=store, run_id=RUN, stage="review", max_tokens=100)
    assert chat.ask([{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}]) \
        == "Hello from Claude"
    [request] = openai_server.chat_requests()
    assert request.path == "/v1/messages" and request.headers.get("x-api-key") == KEY
    assert request.json["system"][0]["text"] == "Be kind."      # the system message moved where Claude wants it
    [row] = store.llm_calls(RUN)
    assert row["model"] == "anthropic/claude-sonnet-4-5" and (row["tokens_in"], row["tokens_out"]) == (20, 4)
    assert row["cost_usd"] == pytest.approx(20 * 3e-6 + 4 * 15e-6)   # litellm's price for Sonnet 4.5
    assert KEY not in store.path.read_bytes().decode("latin-1")


def test_structured_output_uses_the_native_schema(openai_server, provider, store):
    openai_server.enqueue({"decision": "Accept", "score": 7})
    verdict = Chat(provider, "claude-sonnet-4-5", store=store, run_id=RUN).ask_structured("Judge.", Verdict)
    assert verdict == Verdict(decision="Accept", score=7)
    [request] = openai_server.chat_requests()
    sent = request.json
    schema = (sent.get("output_format") or {}).get("schema") or sent.get("tools", [{}])[0].get("input_schema")
    assert schema and set(schema["properties"]) == {"decision", "score"}


def test_overloaded_then_success(openai_server, provider, store):
    openai_server.enqueue(Reply(status=529, text="Overloaded"), Reply.rate_limited(retry_after=1), "fine")
    sleeps = Sleeps()
    chat = Chat(provider, "claude-haiku-4-5", store=store, run_id=RUN, sleep=sleeps,
                retry=RetryPolicy(max_retries=3, base_delay_s=0.01))
    assert chat.ask("hi") == "fine"
    assert len(sleeps) == 2 and sleeps[1] == 1.0
    assert [r["error"] is None for r in store.llm_calls(RUN)] == [False, False, True]


def test_missing_key(monkeypatch, store):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    provider = AnthropicProvider.from_settings({})
    assert provider.readiness("claude-sonnet-4-5").detail == "ANTHROPIC_API_KEY is not set"
    with pytest.raises(MissingAPIKey, match="ANTHROPIC_API_KEY is not set"):
        Chat(provider, "claude-sonnet-4-5", store=store, run_id=RUN).ask("hi")
    assert store.llm_calls(RUN) == []


def test_lists_claude_models():
    names = [m.id for m in AnthropicProvider.from_settings({}).models()]
    assert "anthropic/claude-sonnet-4-5" in names
