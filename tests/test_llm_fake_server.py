"""The loopback OpenAI-compatible server that provider tests run against (scientist_core.testing.fake_openai)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from pydantic import BaseModel

from scientist_core.testing.fake_openai import FakeOpenAIServer, Reply


def post(url: str, body: dict, timeout: float = 5) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": "Bearer k"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


class Point(BaseModel):
    x: int


def test_scripted_replies_in_openai_dialect(openai_server):
    openai_server.enqueue("plain words here", {"a": 1}, Point(x=2), Reply.rate_limited(retry_after=3), 500)
    url = f"{openai_server.base_url}/chat/completions"
    body = {"model": "m", "messages": [{"role": "user", "content": "two words"}]}
    status, _, data = post(url, body)
    assert status == 200 and data["choices"][0]["message"]["content"] == "plain words here"
    assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert post(url, body)[2]["choices"][0]["message"]["content"] == '{"a": 1}'
    assert post(url, body)[2]["choices"][0]["message"]["content"] == '{"x":2}'
    status, headers, data = post(url, body)
    assert status == 429 and headers["Retry-After"] == "3" and data["error"]["type"] == "rate_limit_error"
    status, _, data = post(url, body)
    assert status == 500 and data["error"]["type"] == "api_error"
    status, _, data = post(url, body)                                  # nothing queued: a 500 that says so
    assert status == 500 and "no reply was queued" in data["error"]["message"]
    recorded = openai_server.chat_requests()
    assert len(recorded) == 6 and recorded[0].json == body and recorded[0].headers["authorization"] == "Bearer k"


def test_other_dialects_and_listings(openai_server):
    openai_server.models = ["a-model"]
    openai_server.enqueue("from ollama", "from anthropic")
    body = {"model": "a-model", "messages": [{"role": "user", "content": "hi"}]}
    assert post(f"{openai_server.url}/api/chat", body)[2]["message"]["content"] == "from ollama"
    data = post(f"{openai_server.url}/v1/messages", body)[2]
    assert data["content"][0]["text"] == "from anthropic" and data["usage"]["output_tokens"] == 2
    with urllib.request.urlopen(f"{openai_server.base_url}/models") as response:
        assert [m["id"] for m in json.loads(response.read())["data"]] == ["a-model"]
    with urllib.request.urlopen(f"{openai_server.url}/api/tags") as response:
        assert json.loads(response.read())["models"][0]["name"] == "a-model"
    assert post(f"{openai_server.url}/nowhere", {})[0] == 404


def test_delay_makes_a_client_time_out():
    with FakeOpenAIServer() as server:
        server.enqueue(Reply.slow(10))
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            post(f"{server.base_url}/chat/completions", {"messages": []}, timeout=0.3)
        assert time.monotonic() - start < 2
    # leaving the block stopped the server at once, delayed reply or not


def test_stop_cuts_a_delay_short():
    server = FakeOpenAIServer().start()
    server.enqueue(Reply.slow(30))
    thread = threading.Thread(target=lambda: pytest.raises(Exception, post, f"{server.base_url}/chat/completions",
                                                            {"messages": []}, 60), daemon=True)
    thread.start()
    time.sleep(0.2)
    start = time.monotonic()
    server.stop()
    thread.join(5)
    assert time.monotonic() - start < 5 and not thread.is_alive()
