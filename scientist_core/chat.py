"""The one path every model call takes: retries, timeouts, a budget, structured output and the ledger.

    chat = open_chat(settings, stage="ideas", store=store, run_id=run_id)     # resolves the model
    text = chat.ask([Message(role="user", content="...")])
    idea = chat.ask_structured([...], Idea)                                     # a validated Idea

Every request sent to a provider becomes one row of the run store's LLM ledger (model, messages, response,
tokens, cost, latency, error), failed attempts and repair rounds included. Retries (rate limits, 5xx,
timeouts, dropped connections) are bounded, back off exponentially with jitter and honour Retry-After.
Before each request the call's worst-case cost (prompt tokens plus max_tokens at the model's price) is
reserved against `max_cost`, and after it the reservation is settled to what the call cost; a call whose
reservation would take the run past `max_cost` is not sent, and BudgetExceeded says how to go on. With a run
store the reservation is a row of the store written in one BEGIN IMMEDIATE transaction with the sum it was
checked against, so threads (an ensemble of reviewers, `--workers`) and processes sharing the store cannot
overspend together. A call that failed in a way that may have been billed (a timeout, a dropped connection, a
5xx) is settled at its worst case; a model without a price is refused while `max_cost` is set.

This module imports no provider SDK; providers translate their own errors into the LLMError family below.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from scientist_core.errors import ScientistError
from scientist_core.models import Completion, Message, Usage

if TYPE_CHECKING:
    from scientist_core.llm import LLM
    from scientist_core.store import Store

__all__ = [
    "BudgetExceeded", "Chat", "LLMError", "LLMNotReady", "LLMTimeout", "MissingAPIKey", "NoModelConfigured",
    "Price", "RateLimited", "Reservation", "RetryPolicy", "StructuredOutputError", "TransientLLMError",
    "UnpricedModel", "estimate_tokens", "extract_json", "may_have_been_billed", "parse_retry_after", "redact",
    "refuse_unpriced", "split_model_id",
]

T = TypeVar("T", bound=BaseModel)

LOCAL_PROVIDER = "local"
KEY_ENV_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
INSTALL_LOCAL_HINT = ("install the local model with `make run` (or `pip install -e plugins/llm_backends/local` "
                      "then `scientist-llm-local install`)")


# -- errors ---------------------------------------------------------------------------------------------

class LLMError(ScientistError):
    """A model call failed in a way retrying will not fix (bad request, refused key, unknown model...)."""


class LLMNotReady(LLMError):
    """The provider cannot answer at all right now (no key, server down, weights missing): nothing was sent."""


class MissingAPIKey(LLMNotReady):
    """The environment variable holding a provider's key is not set."""

    def __init__(self, env_var: str, provider: str = "") -> None:
        who = f"the {provider} models need" if provider else "this model needs"
        super().__init__(f"{env_var} is not set: {who} an API key",
                         f"export {env_var}=... (it is read from the environment only), or choose another model "
                         "with --model (see `scientist models`)")
        self.env_var = env_var


class TransientLLMError(LLMError):
    """A failure worth retrying: 5xx, a dropped connection, a timeout; `retry_after` is the server's wish."""

    def __init__(self, message: str, hint: str | None = None, *, retry_after: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(message, hint)
        self.retry_after = retry_after
        self.status = status


class RateLimited(TransientLLMError):
    """HTTP 429."""


class LLMTimeout(TransientLLMError):
    """The provider did not answer in time."""


class StructuredOutputError(LLMError):
    """The model gave no valid instance of the schema within the repair rounds."""


class BudgetExceeded(ScientistError):
    """The next call could take the run past `max_cost`; it was not sent."""

    def __init__(self, spent: float, limit: float, estimate: float, model: str, run_id: str | None = None,
                 held: float = 0.0) -> None:
        resume = f" then `scientist resume {run_id}`" if run_id else ""
        in_flight = f" (and ${held:.4f} held by calls in flight)" if held > 0 else ""
        super().__init__(
            f"budget reached: ${spent:.4f} of max_cost ${limit:.4f} spent{in_flight}, and the next call to {model} "
            f"could cost up to ${estimate:.4f}",
            f"raise max_cost (--max-cost, SCIENTIST_MAX_COST or max_cost in scientist.toml){resume}")
        self.spent, self.limit, self.estimate, self.model, self.held = spent, limit, estimate, model, held


class UnpricedModel(LLMNotReady):
    """`max_cost` is set and the model has no known price, so no call to it can be held to the budget."""


def refuse_unpriced(provider: "LLM", model: str, max_cost: float | None) -> None:
    """Raise UnpricedModel when `max_cost` is set and `provider` knows no price for `model`; nothing is sent.
    The hint names the provider's price settings when it has them (the litellm-based providers do)."""
    if max_cost is None or _price_of(provider, model) is not None:
        return
    settings = getattr(getattr(provider, "Config", None), "model_fields", {})
    if "input_cost_per_million" in settings:
        fix = (f"set its price in scientist.toml ([llms.{provider.name}] input_cost_per_million and "
               "output_cost_per_million, USD per 1M tokens)")
    else:
        fix = f"the {provider.name} provider has no price setting: choose a priced model"
    raise UnpricedModel(f"{provider.name}/{model} has no known price, so max_cost ${max_cost:g} cannot be kept",
                        f"{fix}, or run without max_cost")


def _price_of(provider: "LLM", model: str) -> "Price | None":
    price_of = getattr(provider, "price", None)
    return price_of(model) if callable(price_of) else None


def may_have_been_billed(exc: BaseException) -> bool:
    """Whether a failed request may still have been billed: it may unless the provider answered that it refused
    it (HTTP 429 or another 4xx: a RateLimited, or an LLMError that is not transient) or it was never sent."""
    if isinstance(exc, (RateLimited, LLMNotReady)):
        return False
    return isinstance(exc, TransientLLMError) or not isinstance(exc, LLMError)


class NoModelConfigured(ScientistError):
    """No model was chosen and the local model's plugin is not installed."""


# -- small helpers ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Price:
    """USD per token, in and out; what a provider's `price(model)` returns."""

    input_per_token: float = 0.0
    output_per_token: float = 0.0

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return tokens_in * self.input_per_token + tokens_out * self.output_per_token


@dataclass(frozen=True)
class Reservation:
    """A call's worst-case cost, held against the budget until the call is settled; `id` is the store's row
    (None for a chat without a run, whose holds live in memory)."""

    worst_case: float
    id: int | None = None


class _LocalBudget:
    """Spending and holds of a chat without a run (shared by its copies, as the reviewers' forks are)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spent = 0.0
        self.held = 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: `max_retries` more attempts after the first, delays base·2^n (≤ max_delay_s) with
    jitter, or the server's Retry-After when it sends one (≤ max_retry_after_s, else give up)."""

    max_retries: int = 4
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    jitter: float = 0.5
    max_retry_after_s: float = 120.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return max(0.0, retry_after)
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** attempt))
        return ceiling * (1 - self.jitter * rng.random())


_SECRET_PATTERNS = (
    (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}"), "***"),            # OpenAI / Anthropic style keys
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-.=]{8,}"), r"\1***"),
    (re.compile(r"(?i)((?:x-)?api[-_]?key['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9_\-]{8,}"), r"\1***"),
)


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """`text` with API keys masked: the given secret values, and anything shaped like a key."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` (seconds or an HTTP date); None if absent."""
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in dict(headers).items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def estimate_tokens(text: str) -> int:
    """A conservative token count for text (about 3 characters a token) when a provider offers none."""
    return math.ceil(len(text) / 3)


def split_model_id(model_id: str) -> tuple[str, str]:
    """"provider/name" -> ("provider", "name"); the name may itself contain slashes."""
    provider, sep, name = model_id.partition("/")
    if not sep or not provider or not name:
        raise LLMError(f"model {model_id!r} is not of the form provider/name",
                       "e.g. --model openai/gpt-4o-mini or local/qwen2.5-coder-1.5b-instruct (see `scientist models`)")
    return provider, name


def extract_json(text: str) -> Any:
    """The JSON value in a model's answer: the whole text, a ```json fence, or the outermost {...} / [...]."""
    stripped = text.strip()
    candidates = [stripped]
    fence = re.search(r"```(?:json)?\s*(.*?)```", stripped, re.S)
    if fence:
        candidates.append(fence.group(1).strip())
    for open_, close in (("{", "}"), ("[", "]")):
        start, end = stripped.find(open_), stripped.rfind(close)
        if 0 <= start < end:
            candidates.append(stripped[start:end + 1])
    error: json.JSONDecodeError | None = None
    for candidate in candidates:
        try:
            return json.loads(candidate, strict=False)  # raw newlines and tabs inside strings are forgiven
        except json.JSONDecodeError as exc:
            error = error or exc
    assert error is not None
    raise error


def _closed_json(text: str) -> str | None:
    """A JSON object cut off mid-way (at a model's token limit), closed where it stopped: the open string ended
    and the open arrays and objects closed; None when it does not start like one or stops after a key."""
    start = text.find("{")
    if start < 0:
        return None
    body, closers, in_string, escaped = text[start:].rstrip(), [], False, False
    for char in body:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            closers.append("}" if char == "{" else "]")
        elif char in "}]" and closers:
            closers.pop()
    if not closers:
        return None
    if in_string:
        body = body[:-1] if escaped else body
        body += '"'
    body = body.rstrip().rstrip(",")
    if body.endswith(":"):
        return None
    return body + "".join(reversed(closers))


def _copied_descriptions(answer: BaseModel, schema: type[BaseModel]) -> list[str]:
    """Fields of `answer` whose text is a description from `schema` (small models copy them as content)."""
    descriptions: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "description" and isinstance(value, str):
                    descriptions.add(_plain(value))
                else:
                    collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    collect(schema.model_json_schema())
    copied: list[str] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, str) and len(value.split()) >= 3 and _plain(value) in descriptions:
            copied.append(where)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}" if where else str(key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{where}[{index}]")

    walk(answer.model_dump(by_alias=True), "")
    return copied


def _plain(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _validation_summary(exc: ValidationError, limit: int = 8) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


# -- the chat ------------------------------------------------------------------------------------------

class Chat:
    """A model bound to where its calls are recorded and what they may cost.

    `provider` is an LLM plugin instance and `model` the name it knows (no provider prefix). Calls are
    recorded in `store` under `run_id` and `stage`; with `max_cost` set, the run's spending (the store's
    total for `run_id`, or this chat's own when there is no run) may not pass it.
    """

    def __init__(self, provider: "LLM", model: str, *, store: "Store | None" = None, run_id: str | None = None,
                 stage: str = "chat", max_cost: float | None = None, temperature: float = 0.7,
                 max_tokens: int = 4096, retry: RetryPolicy | None = None, repair_rounds: int = 2,
                 schema_in_prompt: bool = True, sleep: Callable[[float], None] = time.sleep,
                 seed: int | None = None) -> None:
        self.provider = provider
        self.model = model
        self.store = store
        self.run_id = run_id
        self.stage = stage
        self.max_cost = max_cost
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.retry = retry or RetryPolicy()
        self.repair_rounds = repair_rounds
        self.schema_in_prompt = schema_in_prompt
        self.sleep = sleep
        self._rng = random.Random(seed)
        self._local = _LocalBudget()
        self.usage = Usage()          # what this chat's calls used, all attempts together
        self.last: Completion | None = None

    @property
    def model_id(self) -> str:
        return f"{self.provider.name}/{self.model}"

    # -- money -----------------------------------------------------------------------------------------

    @property
    def _in_store(self) -> bool:
        return self.store is not None and self.run_id is not None

    @property
    def spent(self) -> float:
        """USD spent so far by the run (from the store) or, without a run, by this chat."""
        if self._in_store:
            return self.store.total_cost(self.run_id)
        return self._local.spent

    def price(self) -> Price | None:
        return _price_of(self.provider, self.model)

    def count_tokens(self, messages: Sequence[Message], schema: type[BaseModel] | None = None) -> int:
        counter = getattr(self.provider, "count_tokens", None)
        extra = estimate_tokens(json.dumps(schema.model_json_schema())) if schema is not None else 0
        if callable(counter):
            try:
                return int(counter(self.model, list(messages))) + extra
            except Exception:  # a tokenizer problem must not stop the call; fall back to the estimate
                pass
        return sum(estimate_tokens(m.content) + 4 for m in messages) + extra

    def estimate_cost(self, messages: Sequence[Message], schema: type[BaseModel] | None = None,
                      max_tokens: int | None = None) -> float:
        """The most the next call can cost: its prompt tokens plus max_tokens at the model's price."""
        price = self.price()
        if price is None or (price.input_per_token == 0 and price.output_per_token == 0):
            return 0.0
        return price.cost(self.count_tokens(messages, schema), max_tokens or self.max_tokens)

    def reserve(self, worst_case: float) -> Reservation:
        """Hold `worst_case` USD of the budget for a call about to be made, or raise BudgetExceeded (nothing is
        held then). Every reservation must end in `settle` (or `release` when the call was never made)."""
        refuse_unpriced(self.provider, self.model, self.max_cost)
        if self._in_store:
            hold, spent, held = self.store.reserve(self.run_id, stage=self.stage, model=self.model_id,
                                                   cost_usd=worst_case, limit=self.max_cost)
            if hold is None:
                raise BudgetExceeded(spent, self.max_cost, worst_case, self.model_id, self.run_id, held)
            return Reservation(worst_case, hold)
        with self._local.lock:
            spent, held = self._local.spent, self._local.held
            if self.max_cost is not None and spent + held + worst_case > self.max_cost:
                raise BudgetExceeded(spent, self.max_cost, worst_case, self.model_id, None, held)
            self._local.held += worst_case
        return Reservation(worst_case)

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose call was never sent."""
        if reservation.id is not None:
            self.store.release(reservation.id)
        else:
            with self._local.lock:
                self._local.held -= reservation.worst_case

    def settle(self, reservation: Reservation, messages: Sequence[Message], response: str | None,
               usage: Usage | None, latency_s: float, error: str | None = None) -> None:
        """Turn a reservation into the call's ledger row: `usage` is what it cost, None when that is unknown
        (a timeout, a dropped connection, a process killed mid-call), which settles at the worst case."""
        if usage is None:
            usage = Usage(cost_usd=reservation.worst_case)
        self.usage = Usage(tokens_in=self.usage.tokens_in + usage.tokens_in,
                           tokens_out=self.usage.tokens_out + usage.tokens_out,
                           cost_usd=self.usage.cost_usd + usage.cost_usd)
        if reservation.id is None:
            with self._local.lock:
                self._local.held -= reservation.worst_case
                self._local.spent += usage.cost_usd
        if self.store is None:
            return
        self.store.record_llm_call(
            run_id=self.run_id, stage=self.stage, model=self.model_id,
            messages=[m.model_dump() for m in messages], response=response, tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out, cost_usd=usage.cost_usd, latency_s=latency_s, error=error,
            reservation=reservation.id)

    def check_budget(self, messages: Sequence[Message], max_tokens: int | None = None) -> None:
        """Raise BudgetExceeded if a call with `messages` could take the run past max_cost now (a look only:
        nothing is held; a call made outside this chat holds its cost with `reserve`)."""
        self.release(self.reserve(self.estimate_cost(messages, None, max_tokens or self.max_tokens)))

    def record_external(self, messages: Sequence[Message], response: str | None, usage: Usage, latency_s: float,
                        error: str | None = None) -> None:
        """Record model use that went around this chat and held nothing (prefer `reserve` then `settle`)."""
        self.settle(Reservation(0.0), messages, response, usage, latency_s, error)

    # -- one request, retried ----------------------------------------------------------------------------

    def complete(self, messages: Sequence[Message | Mapping[str, str]], *, schema: type[BaseModel] | None = None,
                 temperature: float | None = None, max_tokens: int | None = None) -> Completion:
        """Send `messages` (retrying transient failures) and return the provider's Completion; each attempt
        holds its worst case first (see `reserve`) and is settled after."""
        msgs = [m if isinstance(m, Message) else Message.model_validate(m) for m in messages]
        max_tokens = max_tokens or self.max_tokens
        temperature = self.temperature if temperature is None else temperature
        attempt = 0
        while True:
            reservation = self.reserve(self.estimate_cost(msgs, schema, max_tokens))
            start = time.monotonic()
            try:
                completion = self.provider.complete(self.model, msgs, schema=schema, temperature=temperature,
                                                    max_tokens=max_tokens)
            except LLMNotReady:
                self.release(reservation)
                raise  # nothing was sent: no ledger row
            except BaseException as exc:
                text = exc.one_line() if isinstance(exc, ScientistError) else f"{type(exc).__name__}: {exc}"
                billed = may_have_been_billed(exc)
                if billed and reservation.worst_case > 0:
                    text += f" (counted at its worst case, ${reservation.worst_case:.4f}: it may have been billed)"
                self.settle(reservation, msgs, None, None if billed else Usage(), time.monotonic() - start,
                            redact(text))
                if not isinstance(exc, TransientLLMError):
                    raise
                too_long = exc.retry_after is not None and exc.retry_after > self.retry.max_retry_after_s
                if attempt >= self.retry.max_retries or too_long:
                    tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                    raise type(exc)(f"{self.model_id}: {exc.message} (gave up after {tries})",
                                    exc.hint or "try again later, or choose another model with --model",
                                    retry_after=exc.retry_after, status=exc.status) from exc
                self.sleep(self.retry.delay(attempt, exc.retry_after, self._rng))
                attempt += 1
                continue
            latency = time.monotonic() - start
            usage = completion.usage
            if usage.cost_usd == 0:
                price = self.price()
                if price is not None:
                    usage = Usage(tokens_in=usage.tokens_in, tokens_out=usage.tokens_out,
                                  cost_usd=price.cost(usage.tokens_in, usage.tokens_out))
                    completion = completion.model_copy(update={"usage": usage})
            self.settle(reservation, msgs, completion.text, usage, latency, None)
            self.last = completion
            return completion

    # -- the two ways to ask -------------------------------------------------------------------------------

    def ask(self, messages: Sequence[Message | Mapping[str, str]] | str, *, temperature: float | None = None,
            max_tokens: int | None = None) -> str:
        """Chat messages (or one user prompt as a string) in, the answer's text out."""
        return self.complete(_as_messages(messages), temperature=temperature, max_tokens=max_tokens).text

    def ask_structured(self, messages: Sequence[Message | Mapping[str, str]] | str, schema: type[T], *,
                       temperature: float | None = None, max_tokens: int | None = None,
                       repair_rounds: int | None = None) -> T:
        """A validated instance of `schema`: the provider's JSON-schema mode where it has one, then
        validation; an invalid answer is sent back with the error for another try, `repair_rounds` times."""
        msgs = _as_messages(messages)
        if self.schema_in_prompt:
            msgs = _with_schema_instruction(msgs, schema)
        rounds = self.repair_rounds if repair_rounds is None else repair_rounds
        limit = max_tokens or self.max_tokens
        for round_ in range(rounds + 1):
            completion = self.complete(msgs, schema=schema, temperature=temperature, max_tokens=max_tokens)
            text, problem = completion.text, ""
            try:
                value = extract_json(text)
            except json.JSONDecodeError as exc:
                problem = f"it is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
                salvaged = _closed_json(text) if completion.usage.tokens_out >= limit else None
                if salvaged is None:
                    if completion.usage.tokens_out >= limit:
                        problem = f"it was cut off at the limit of {limit} tokens: answer much more briefly"
                else:  # cut off at the token limit: keep what was written
                    value = json.loads(salvaged, strict=False)
                    problem = ""
            if not problem:
                try:
                    answer = schema.model_validate(value)
                except ValidationError as exc:
                    problem = f"it does not match the schema: {_validation_summary(exc)}"
                else:
                    copied = _copied_descriptions(answer, schema)
                    if not copied:
                        return answer
                    problem = (f"{', '.join(copied)} repeat{'s' if len(copied) == 1 else ''} the schema's "
                               "description instead of giving your own content")
            if round_ == rounds:
                raise StructuredOutputError(
                    f"{self.model_id} gave no valid {schema.__name__} after {rounds + 1} tries: the last answer: "
                    f"{problem}",
                    "try a stronger model (--model), or allow more repair rounds")
            msgs = [*msgs, Message(role="assistant", content=text),
                    Message(role="user", content=f"Your answer cannot be used: {problem}. Reply again with only "
                            f"the corrected JSON object for {schema.__name__}, nothing else.")]
        raise AssertionError("unreachable")


def _as_messages(messages: Sequence[Message | Mapping[str, str]] | str) -> list[Message]:
    if isinstance(messages, str):
        return [Message(role="user", content=messages)]
    return [m if isinstance(m, Message) else Message.model_validate(m) for m in messages]


def _with_schema_instruction(messages: list[Message], schema: type[BaseModel]) -> list[Message]:
    """The schema goes after the conversation, never into the system message: calls that share a conversation's
    opening then share a prompt prefix, which local models (llama.cpp's KV cache) and hosted ones (prompt
    caching) evaluate only once."""
    line = (f"Answer with a single JSON object for {schema.__name__} that matches this JSON schema, and nothing "
            f"else:\n{json.dumps(schema.model_json_schema(), separators=(',', ':'))}")
    if messages and messages[-1].role == "user":
        return [*messages[:-1], Message(role="user", content=f"{messages[-1].content}\n\n{line}")]
    return [*messages, Message(role="user", content=line)]
