"""Pytest fixtures for scientist and its plugin authors (loaded through the `pytest11` entry point).

- `scientist_env`: an isolated home, data folder and working folder; no SCIENTIST_* variable leaks in.
- `plugin_host`: a freshly loaded plugin host (the same one the CLI uses in this process).
- `fake_llm`: a scripted LLM provider `fake` registered as a real plugin: `enqueue()` replies, read `history`.
- `run_store`: a run store in a temporary folder.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from scientist_core.hookspecs import hookimpl
from scientist_core.llm import LLM
from scientist_core.models import Completion, Message, ModelInfo, Usage
from scientist_core.plugins import PluginHost, PluginInfo, get_host, reset_host
from scientist_core.store import Store

FAKE_PROVIDER = "fake"
FAKE_MODEL = "scripted"


@dataclass
class Call:
    """One request the fake LLM received."""

    model: str
    messages: list[Message]
    schema: type[BaseModel] | None


@dataclass
class Script:
    """Replies the fake LLM gives, in order, and the calls it received."""

    replies: deque = field(default_factory=deque)
    history: list[Call] = field(default_factory=list)

    def enqueue(self, *replies: str | dict | BaseModel | Exception) -> "Script":
        """Queue replies: text as is, dicts and models as JSON, exceptions raised when their turn comes."""
        self.replies.extend(replies)
        return self

    def next_reply(self) -> str:
        if not self.replies:
            raise AssertionError("the fake LLM was asked more often than replies were enqueued")
        reply = self.replies.popleft()
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, BaseModel):
            return reply.model_dump_json(by_alias=True)
        if isinstance(reply, dict | list):
            return json.dumps(reply)
        return reply


class FakeLLM(LLM):
    """An LLM that answers from a Script; usage counts words so ledgers have something to add up."""

    name = FAKE_PROVIDER
    description = "scripted replies for tests"
    script: Script = Script()

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(provider=self.name, name=FAKE_MODEL, description=self.description)]

    def complete(self, model, messages, *, schema=None, temperature=0.7, max_tokens=4096) -> Completion:
        self.script.history.append(Call(model, list(messages), schema))
        text = self.script.next_reply()
        usage = Usage(tokens_in=sum(len(m.content.split()) for m in messages), tokens_out=len(text.split()))
        return Completion(text=text, model=f"{self.name}/{model}", usage=usage)


def register_fake_llm(host: PluginHost, script: Script) -> None:
    """Add a fake LLM answering from `script` to `host`, as a plugin named scientist-testing."""
    bound = type("FakeLLM", (FakeLLM,), {"script": script})

    class FakePlugin:
        @hookimpl
        def register_llms(self, register):
            register(bound)

    host.add(FakePlugin(), PluginInfo("scientist-testing", "scientist-core", "test"))


@pytest.fixture
def scientist_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder with a private HOME and SCIENTIST_DATA_DIR; returns that folder."""
    import os

    for name in list(os.environ):
        if name.startswith("SCIENTIST_"):
            monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SCIENTIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(work)
    reset_host()
    yield work
    reset_host()


@pytest.fixture
def plugin_host(scientist_env: Path) -> PluginHost:
    return get_host()


@pytest.fixture
def fake_llm(plugin_host: PluginHost) -> Script:
    script = Script()
    register_fake_llm(plugin_host, script)
    return script


@pytest.fixture
def run_store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "store" / "scientist.db")
    yield store
    store.close()
