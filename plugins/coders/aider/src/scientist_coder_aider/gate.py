"""The budget gate: a loopback HTTP proxy between aider and the model's endpoint, so each of aider's requests
is held against the run's budget before it leaves, and settled to what it cost after, like the core's own calls.

aider's litellm makes its requests itself, in its own process, and may make several per invocation (its
reflections on failed edits); a check before it starts cannot bound them, and its own report comes after the
money is spent. So aider is given the gate's address as its endpoint. For each request the gate holds the
request's worst case (its body's length as tokens, conservatively, plus its max_tokens, at the model's price)
with `chat.reserve`, forwards it byte for byte (the key travels in aider's own headers; the gate adds nothing),
and settles it with `chat.settle` from the usage the endpoint reports: one ledger row per request, with the
messages and the answer. A request the budget cannot hold is answered with an error and never forwarded, and
aider is stopped (`stop`, which kills its process group); the coder then raises BudgetExceeded.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from scientist_core import Message, ScientistError, Usage, estimate_tokens

# the provider's endpoint when its settings name none (litellm's defaults; the path aider's litellm appends,
# e.g. /chat/completions or /v1/messages, is kept as it is)
DEFAULT_UPSTREAM = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
HOP_HEADERS = {"host", "content-length", "connection", "accept-encoding", "keep-alive", "transfer-encoding"}


class BudgetGate:
    """`with BudgetGate(chat, upstream, max_output, timeout_s) as gate:` aider's endpoint is `gate.url`; set
    `gate.stop` to what stops aider. `gate.refused` is the error that stopped it (BudgetExceeded, or an
    UnpricedModel), if one did."""

    def __init__(self, chat: Any, upstream: str, max_output: int, timeout_s: float) -> None:
        self.chat = chat
        self.upstream = upstream.rstrip("/")
        self.max_output = max_output
        self.timeout_s = timeout_s
        self.stop: Callable[[], None] = lambda: None
        self.refused: ScientistError | None = None
        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="aider-budget-gate", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "BudgetGate":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()  # waits for requests in flight: every hold is settled before this returns
        self._thread.join()

    # -- one request ---------------------------------------------------------------------------------------

    def worst_case(self, body: dict) -> float:
        """The most the request can cost: its whole body as prompt tokens (more than the prompt's own) plus
        the answer's limit (the request's own, else the model's)."""
        price = self.chat.price()
        if price is None:
            return 0.0
        options = body.get("options") if isinstance(body.get("options"), dict) else {}
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or options.get("num_predict")
        limit = int(limit) if isinstance(limit, int) and limit > 0 else self.max_output
        return price.cost(estimate_tokens(json.dumps(body)), limit)

    def forward(self, path: str, raw: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        """Send the request on; (status, body, headers) of the endpoint's answer. Raises OSError when there is
        none (refused, timed out, cut off)."""
        request = urllib.request.Request(f"{self.upstream}{path}", data=raw, method="POST",
                                         headers={k: v for k, v in headers.items() if k.lower() not in HOP_HEADERS})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310 (the endpoint)
                return answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as answer:
            return answer.code, answer.read(), dict(answer.headers)

    def handle(self, path: str, raw: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return 400, _error("the budget gate forwards JSON requests only"), {}
        try:
            reservation = self.chat.reserve(self.worst_case(body))
        except ScientistError as exc:  # BudgetExceeded: nothing is forwarded, and aider is stopped
            self.refused = self.refused or exc
            self.stop()
            return 400, _error(exc.one_line()), {}
        self.requests += 1
        messages = _messages(body)
        start = time.monotonic()
        try:
            status, answer, answer_headers = self.forward(path, raw, headers)
        except Exception as exc:  # no answer: the request may still have been billed
            self.chat.settle(reservation, messages, None, None, time.monotonic() - start,
                             f"no answer from {self.upstream}: {type(exc).__name__}: {exc} (counted at its worst "
                             "case)")
            return 502, _error(f"the budget gate got no answer: {exc}"), {}
        latency = time.monotonic() - start
        text, usage = _read_answer(answer, self.chat.price())
        if status == 200 and usage is not None:
            self.chat.settle(reservation, messages, text, usage, latency)
        else:
            refused = status == 429 or (400 <= status < 500 and status not in (408, 409))
            self.chat.settle(reservation, messages, None, Usage() if refused else None, latency,
                             f"HTTP {status} from {self.upstream}: {answer[:300].decode(errors='replace')}"
                             + ("" if refused else " (counted at its worst case)"))
        return status, answer, answer_headers

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer, headers = gate.handle(self.path, raw, dict(self.headers))
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        if key.lower() not in HOP_HEADERS:
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):  # aider was stopped meanwhile
                    pass

        return Handler


def _error(text: str) -> bytes:
    return json.dumps({"error": {"message": text, "type": "invalid_request_error", "code": "budget"}}).encode()


def _messages(body: dict) -> list[Message]:
    """The request's messages for the ledger (a content that is not text is kept as its JSON)."""
    out = []
    system = body.get("system")  # Anthropic's Messages API keeps the system prompt apart
    if system:
        out.append(Message(role="system", content=system if isinstance(system, str) else json.dumps(system)))
    for item in body.get("messages") or []:
        if isinstance(item, dict):
            role = item.get("role") if item.get("role") in ("system", "user", "assistant") else "user"
            content = item.get("content")
            out.append(Message(role=role, content=content if isinstance(content, str) else json.dumps(content)))
    return out


def _read_answer(raw: bytes, price: Any) -> tuple[str | None, Usage | None]:
    """The answer's text and what it cost, from any of the three dialects aider's litellm speaks (OpenAI,
    Anthropic, Ollama); usage None when the answer reports none."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    tokens_in = usage.get("prompt_tokens", usage.get("input_tokens", body.get("prompt_eval_count")))
    tokens_out = usage.get("completion_tokens", usage.get("output_tokens", body.get("eval_count")))
    if not isinstance(tokens_in, int) or not isinstance(tokens_out, int):
        return None, None
    if body.get("choices"):
        text = (body["choices"][0].get("message") or {}).get("content")
    elif isinstance(body.get("content"), list):
        text = "".join(part.get("text", "") for part in body["content"] if isinstance(part, dict))
    else:
        text = (body.get("message") or {}).get("content")
    cost = price.cost(tokens_in, tokens_out) if price is not None else 0.0
    return text, Usage(tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost)
