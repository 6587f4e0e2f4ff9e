"""The ollama plugin over real HTTP, against the loopback fake server's Ollama endpoints."""

from __future__ import annotations

import socket

import pytest
from pydantic import BaseModel

from scientist_core.chat import Chat
from scientist_core.testing.fake_openai import Reply
from scientist_llm_ollama.plugin import OllamaProvider, normalise_host

pytestmark = pytest.mark.usefixtures("scientist_env")

RUN = "run-ollama"


class Plan(BaseModel):
    name: str
    steps: int


@pytest.fixture
def store(run_store, tmp_path):
    run_store.create_run(RUN, "run", "example", tmp_path)
    return run_store


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_models_and_readiness_follow_the_server(openai_server, monkeypatch):
    openai_server.models = ["qwen2.5-coder:7b", "llama3.2:latest"]
    monkeypatch.setenv("OLLAMA_HOST", openai_server.url)
    provider = OllamaProvider.from_settings({})
    assert [m.id for m in provider.models()] == ["ollama/qwen2.5-coder:7b", "ollama/llama3.2:latest"]
    assert provider.readiness("qwen2.5-coder:7b").ready
    assert provider.readiness("llama3.2").ready                   # ":latest" is implied
    missing = provider.readiness("mistral")
    assert not missing.ready and "ollama pull mistral" in missing.detail


def test_server_down(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")
    provider = OllamaProvider.from_settings({"models": ["llama3.2"]})
    readiness = provider.readiness("llama3.2")
    assert not readiness.ready and "no Ollama server answers" in readiness.detail and "OLLAMA_HOST" in readiness.detail
    assert [m.name for m in provider.models()] == ["llama3.2"]


def test_chat_and_structured_output(openai_server, store):
    openai_server.models = ["qwen2.5-coder:7b"]
    openai_server.enqueue(Reply(text="hello", tokens_in=9, tokens_out=1), {"name": "warmup", "steps": 3})
    provider = OllamaProvider.from_settings({"base_url": openai_server.url})
    chat = Chat(provider, "qwen2.5-coder:7b", store=store, run_id=RUN, max_cost=0.0)   # free: never stopped
    assert chat.ask("hi") == "hello"
    assert chat.ask_structured("plan", Plan) == Plan(name="warmup", steps=3)
    first, second = openai_server.chat_requests()
    assert first.path == "/api/chat" and first.json["model"] == "qwen2.5-coder:7b"
    assert second.json["format"]["properties"].keys() == {"name", "steps"}   # schema-constrained on the server
    rows = store.llm_calls(RUN)
    assert [(r["tokens_in"], r["tokens_out"], r["cost_usd"]) for r in rows][0] == (9, 1, 0.0)


def test_normalise_host():
    assert normalise_host("0.0.0.0") == "http://127.0.0.1:11434"
    assert normalise_host("localhost:11434") == "http://localhost:11434"
    assert normalise_host("http://gpu-box:8000/") == "http://gpu-box:8000"
    assert normalise_host("https://ollama.example.org") == "https://ollama.example.org:443"
