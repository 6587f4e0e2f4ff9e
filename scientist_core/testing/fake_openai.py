"""A real OpenAI-compatible HTTP server on the loopback interface, for tests (yours and plugin authors').

It answers over real HTTP from a scripted queue, so a provider is tested through its SDK, its retries and
its error mapping exactly as it talks to a remote service:

    with FakeOpenAIServer() as server:
        server.enqueue("plain text", {"a": 1}, Reply.rate_limited(retry_after=1), Reply.error(500),
                       Reply(text="late", delay_s=5))
        ... point the client at server.base_url (".../v1") ...
        server.requests  # every request received: method, path, headers, JSON body

Endpoints, each answering in its own dialect from the same queue:
- OpenAI: POST /v1/chat/completions, GET /v1/models
- Ollama: POST /api/chat, GET /api/tags, GET /api/version, POST /api/show
- Anthropic: POST /v1/messages

Only the standard library is used; the server binds 127.0.0.1 on a free port and stops by itself when the
`with` block ends (or on `stop()`); a delayed reply is cut short when the server stops.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from scientist_core.testing.loopback import JSONHandler, LoopbackServer

__all__ = ["FakeOpenAIServer", "RecordedRequest", "Reply"]

CHAT_PATHS = {"/v1/chat/completions": "openai", "/chat/completions": "openai", "/api/chat": "ollama",
              "/v1/messages": "anthropic"}


@dataclass
class Reply:
    """One scripted answer.

    `text` is the assistant's content (a 200 answer); `status` other than 200 sends an error body in the
    endpoint's dialect (or `body` when given) with `headers`. `delay_s` waits before answering (to test
    timeouts). `tokens_in` / `tokens_out` override the usage the server reports (default: word counts).
    """

    text: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay_s: float = 0.0
    tokens_in: int | None = None
    tokens_out: int | None = None
    finish_reason: str = "stop"

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1, message: str = "Rate limit reached") -> "Reply":
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        return cls(status=429, headers=headers, text=message)

    @classmethod
    def error(cls, status: int = 500, message: str = "The server had an error", **headers: str) -> "Reply":
        return cls(status=status, headers=dict(headers), text=message)

    @classmethod
    def slow(cls, delay_s: float, text: str = "too late") -> "Reply":
        return cls(text=text, delay_s=delay_s)


@dataclass
class RecordedRequest:
    """A request the server received: `headers` with lower-case names, `json` the parsed body (None when it
    was not JSON), `time` when it arrived (time.time())."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    time: float

    @property
    def messages(self) -> list[dict]:
        return list((self.json or {}).get("messages", []))


def _as_reply(item: Any) -> Reply:
    if isinstance(item, Reply):
        return item
    if isinstance(item, BaseModel):
        return Reply(text=item.model_dump_json(by_alias=True))
    if isinstance(item, (dict, list)):
        return Reply(text=json.dumps(item))
    if isinstance(item, int):
        return Reply.error(item)
    return Reply(text=str(item))


def _words(value: Any) -> int:
    """A stand-in token count: the words of the messages' contents (or of a text)."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, dict):
        return sum(_words(value[key]) for key in ("content", "text") if key in value)
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    return 0


class FakeOpenAIServer(LoopbackServer):
    """A scripted OpenAI-compatible server in a background thread; see the module docstring."""

    thread_name = "fake-openai"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, models: list[str] | None = None) -> None:
        self.requests: list[RecordedRequest] = []
        self.models: list[str] = list(models or ["gpt-4o-mini", "fake-model"])
        self.default: Reply | None = None  # what to send when the queue is empty (None: a 500 saying so)
        # or a function of the request, asked when the queue is empty: scripts whole runs by what is asked
        self.responder: Callable[[RecordedRequest], Any] | None = None
        super().__init__(host, port)

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. http://127.0.0.1:PORT/v1 (OPENAI_BASE_URL's form); `url` is Ollama's form."""
        return f"{self.url}/v1"

    # -- the script ------------------------------------------------------------------------------------

    def enqueue(self, *items: Any) -> "FakeOpenAIServer":
        """Queue answers: str (text), dict/list/BaseModel (as JSON text), int (that HTTP error), Reply."""
        self._push(_as_reply(item) for item in items)
        return self

    def chat_requests(self) -> list[RecordedRequest]:
        """The chat requests received (any dialect), in order."""
        return [r for r in self.requests if r.method == "POST" and r.path in CHAT_PATHS]

    def _next(self, request: RecordedRequest | None = None) -> Reply:
        queued = self._pop()
        if queued is not None:
            return queued
        if self.responder is not None and request is not None:
            return _as_reply(self.responder(request))
        return self.default or Reply.error(500, "fake server: no reply was queued for this request")

    # -- HTTP --------------------------------------------------------------------------------------------

    def _handler_class(self) -> type[JSONHandler]:
        server = self

        class Handler(JSONHandler):
            def _record(self) -> RecordedRequest:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                headers = {key.lower(): value for key, value in self.headers.items()}
                record = RecordedRequest(self.command, self.path.split("?")[0], headers, body, time.time())
                with server._lock:
                    server.requests.append(record)
                return record

            def do_GET(self) -> None:
                record = self._record()
                if record.path in ("/v1/models", "/models"):
                    self.send_json(200, {"object": "list", "data": [
                        {"id": name, "object": "model", "created": 0, "owned_by": "fake"} for name in server.models]})
                elif record.path == "/api/tags":
                    self.send_json(200, {"models": [{"name": name, "model": name, "size": 0} for name in server.models]})
                elif record.path == "/api/version":
                    self.send_json(200, {"version": "0.0.0-fake"})
                else:
                    self.send_json(404, {"error": {"message": f"no route {record.path}", "type": "not_found"}})

            def do_POST(self) -> None:
                record = self._record()
                dialect = CHAT_PATHS.get(record.path)
                if record.path == "/api/show":  # Ollama's model details, asked before a chat
                    self.send_json(200, {"details": {"family": "fake"}, "model_info": {}, "template": ""})
                    return
                if dialect is None:
                    self.send_json(404, {"error": {"message": f"no route {record.path}", "type": "not_found"}})
                    return
                reply = server._next(record)
                if reply.delay_s and server._stopping.wait(reply.delay_s):
                    return
                request = record.json if isinstance(record.json, dict) else {}
                if reply.status != 200:
                    body = reply.body if reply.body is not None else _error_body(dialect, reply)
                    self.send_json(reply.status, body, reply.headers)
                    return
                tokens_in = reply.tokens_in if reply.tokens_in is not None else max(1, _words(request.get("messages")))
                tokens_out = reply.tokens_out if reply.tokens_out is not None else max(1, _words(reply.text))
                model = str(request.get("model", "fake"))
                body = reply.body if reply.body is not None else _ok_body(dialect, model, reply, tokens_in, tokens_out)
                self.send_json(200, body, reply.headers)

        return Handler


def _error_body(dialect: str, reply: Reply) -> dict:
    kind = {429: "rate_limit_error", 401: "authentication_error", 400: "invalid_request_error"}.get(
        reply.status, "api_error" if reply.status >= 500 else "invalid_request_error")
    if dialect == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": reply.text}}
    if dialect == "ollama":
        return {"error": reply.text}
    return {"error": {"message": reply.text, "type": kind, "param": None, "code": str(reply.status)}}


def _ok_body(dialect: str, model: str, reply: Reply, tokens_in: int, tokens_out: int) -> dict:
    if dialect == "anthropic":
        return {"id": f"msg_{uuid.uuid4().hex[:20]}", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": reply.text}],
                "stop_reason": "end_turn" if reply.finish_reason == "stop" else "max_tokens", "stop_sequence": None,
                "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}}
    if dialect == "ollama":
        return {"model": model, "created_at": "2026-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": reply.text}, "done": True,
                "done_reason": reply.finish_reason, "prompt_eval_count": tokens_in, "eval_count": tokens_out}
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                         "finish_reason": reply.finish_reason}],
            "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                      "total_tokens": tokens_in + tokens_out}}
