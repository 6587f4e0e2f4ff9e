"""`LiteLLMProvider(LLM)`: what the litellm-based provider plugins (openai, anthropic, ollama) share.

A subclass names its litellm route (`litellm_prefix`), the environment variable of its key, the models it
lists, and how it finds its server; this class does the call, the JSON-schema mode, usage and cost from
litellm's price map (fetched from no network: OFFLINE_ENV is set before the import), and maps litellm's
exceptions onto scientist_core.chat's LLMError family so Chat can retry the transient ones.

litellm takes seconds to import, so it is imported on the first call, never when this module loads.
Keys are read from the environment at call time, passed to litellm only, and masked in every error.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from scientist_core import (
    LLM, Completion, Config, LLMError, LLMTimeout, Message, MissingAPIKey, ModelInfo, Price, RateLimited, Readiness,
    TransientLLMError, Usage, parse_retry_after, redact,
)

__all__ = ["OFFLINE_ENV", "LiteLLMProvider", "get_json", "import_litellm"]

# litellm's switches that keep it from fetching price lists, header catalogues or tokenizers (the copies bundled
# with the package are used instead), and its logging quiet; also given to aider's litellm in its own process
OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_OFFLINE_MODE": "true",
    "LITELLM_LOG": "ERROR",
}

_import_lock = threading.Lock()
log = logging.getLogger("scientist.llm")


def import_litellm() -> Any:
    """litellm, imported once with its price list read from the installed package (no download)."""
    with _import_lock:
        for variable, value in OFFLINE_ENV.items():
            os.environ.setdefault(variable, value)
        import litellm

        litellm.suppress_debug_info = True
        litellm.telemetry = False
        litellm.drop_params = True  # a parameter a model does not take is dropped, not an error
        return litellm


class LiteLLMProvider(LLM):
    """Base of providers reached through litellm. Subclasses set the class variables below."""

    litellm_prefix: ClassVar[str] = ""                 # litellm's route: "openai", "anthropic", "ollama_chat"
    key_env: ClassVar[str | None] = None               # environment variable holding the API key
    known_models: ClassVar[tuple[tuple[str, str], ...]] = ()  # (name, description) listed by `scientist models`

    class Config(Config):
        base_url: str | None = Field(None, description="the server's base URL (default: the provider's own)")
        api_key_env: str | None = Field(None, description="read the API key from this environment variable "
                                                          "instead of the provider's usual one")
        timeout_s: float = Field(600.0, gt=0, description="seconds to wait for one answer")
        models: list[str] = Field(default_factory=list, description="more model names to list")
        json_mode: Literal["schema", "json_object", "none"] = Field(
            "schema", description="structured output: native JSON schema, plain JSON mode, or prompt only")
        strict_schema: bool = Field(False, description="ask for strict schema adherence where supported")
        input_cost_per_million: float | None = Field(None, ge=0, description="USD per 1M prompt tokens "
                                                                             "(overrides litellm's price map)")
        output_cost_per_million: float | None = Field(None, ge=0, description="USD per 1M answer tokens")

    def __init__(self, config: BaseModel | None = None) -> None:
        super().__init__(config)
        self._schema_refused: set[str] = set()

    # -- what a subclass may override -----------------------------------------------------------------

    def base_url(self) -> str | None:
        """The server to talk to; None lets litellm use the provider's default."""
        return self.config.base_url or None

    def key_variable(self) -> str | None:
        return self.config.api_key_env or self.key_env

    def api_key(self) -> str | None:
        """The key from the environment; raises MissingAPIKey when one is needed and absent."""
        variable = self.key_variable()
        if not variable:
            return None
        key = os.environ.get(variable, "").strip()
        if not key:
            raise MissingAPIKey(variable, self.name)
        return key

    def litellm_model(self, model: str) -> str:
        return f"{self.litellm_prefix}/{model}" if self.litellm_prefix else model

    def extra_params(self, model: str) -> dict[str, Any]:
        """More keyword arguments for litellm.completion."""
        return {}

    # -- LLM ------------------------------------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        listed = list(self.known_models) + [(name, "from settings") for name in self.config.models]
        seen: set[str] = set()
        out = []
        for name, description in listed:
            if name not in seen:
                seen.add(name)
                out.append(ModelInfo(provider=self.name, name=name, description=description))
        return out

    def readiness(self, model: str) -> Readiness:
        try:
            self.api_key()
        except MissingAPIKey as exc:
            return Readiness(ready=False, detail=f"{exc.env_var} is not set")
        where = self.base_url()
        return Readiness(ready=True, detail=f"via {where}" if where else "")

    def price(self, model: str) -> Price | None:
        """USD per token: the settings' override, else litellm's price map; None when unknown."""
        override_in, override_out = self.config.input_cost_per_million, self.config.output_cost_per_million
        if override_in is not None or override_out is not None:
            return Price((override_in or 0) / 1e6, (override_out or 0) / 1e6)
        info = self._model_info(model)
        if not info or info.get("input_cost_per_token") is None:
            return None
        return Price(float(info.get("input_cost_per_token") or 0), float(info.get("output_cost_per_token") or 0))

    def count_tokens(self, model: str, messages: list[Message]) -> int:
        litellm = import_litellm()
        return int(litellm.token_counter(model=self.litellm_model(model), messages=_dicts(messages)))

    def _model_info(self, model: str) -> dict[str, Any] | None:
        cost_map = import_litellm().model_cost
        for key in (self.litellm_model(model), model):
            if key in cost_map:
                return cost_map[key]
        return None

    def response_format(self, model: str, schema: type[BaseModel]) -> dict[str, Any] | None:
        mode = self.config.json_mode
        if mode == "none":
            return None
        if mode == "json_object":
            return {"type": "json_object"}
        return {"type": "json_schema",
                "json_schema": {"name": schema.__name__[:64], "schema": schema.model_json_schema(),
                                "strict": self.config.strict_schema}}

    def complete(self, model: str, messages: list[Message], *, schema: type[BaseModel] | None = None,
                 temperature: float = 0.7, max_tokens: int = 4096) -> Completion:
        key = self.api_key()
        litellm = import_litellm()
        kwargs: dict[str, Any] = {
            "model": self.litellm_model(model), "messages": _dicts(messages), "temperature": temperature,
            "max_tokens": max_tokens, "timeout": self.config.timeout_s, "num_retries": 0, "max_retries": 0,
        }
        if key is not None:
            kwargs["api_key"] = key
        if self.base_url():
            kwargs["api_base"] = self.base_url()
        if schema is not None and model not in self._schema_refused:
            response_format = self.response_format(model, schema)
            if response_format is not None:
                kwargs["response_format"] = response_format
        kwargs.update(self.extra_params(model))
        try:
            response = litellm.completion(**kwargs)
        except Exception as exc:
            if "response_format" in kwargs and getattr(exc, "status_code", None) == 400:
                # the server refuses this schema (or schemas at all): ask with the schema in the prompt only,
                # and validate the answer as always; remembered for this model
                log.warning("%s/%s refused the JSON schema (%s); asking without it", self.name, model,
                            redact(_short(exc), [key] if key else []))
                self._schema_refused.add(model)
                kwargs.pop("response_format")
                try:
                    response = litellm.completion(**kwargs)
                except Exception as retry_exc:
                    raise self._translate(retry_exc, key) from None
            else:
                raise self._translate(exc, key) from None
        text = response.choices[0].message.content or ""
        usage = getattr(response, "usage", None)
        tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
        tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
        return Completion(text=text, model=f"{self.name}/{model}",
                          usage=Usage(tokens_in=tokens_in, tokens_out=tokens_out,
                                      cost_usd=self._cost(model, response, tokens_in, tokens_out)))

    def _cost(self, model: str, response: Any, tokens_in: int, tokens_out: int) -> float:
        if self.config.input_cost_per_million is not None or self.config.output_cost_per_million is not None:
            price = self.price(model)
            return price.cost(tokens_in, tokens_out) if price else 0.0
        try:
            return float(import_litellm().completion_cost(completion_response=response) or 0.0)
        except Exception:  # not in the price map: a local or self-hosted model
            price = self.price(model)
            return price.cost(tokens_in, tokens_out) if price else 0.0

    # -- errors ---------------------------------------------------------------------------------------

    def _translate(self, exc: Exception, key: str | None) -> Exception:
        """litellm's exception as an LLMError, its text free of the key."""
        litellm = import_litellm()
        secrets = [key] if key else []
        status = getattr(exc, "status_code", None)
        headers = getattr(exc, "litellm_response_headers", None)
        if headers is None and getattr(exc, "response", None) is not None:
            headers = getattr(exc.response, "headers", None)
        retry_after = parse_retry_after(headers)
        detail = redact(_short(exc), secrets)
        where = f" at {self.base_url()}" if self.base_url() else ""
        if isinstance(exc, litellm.Timeout):
            return LLMTimeout(f"{self.name} did not answer within {self.config.timeout_s:g} s{where}",
                              f"raise [llms.{self.name}] timeout_s, or try again later", status=status)
        if isinstance(exc, litellm.RateLimitError):
            return RateLimited(f"{self.name} rate limit (HTTP 429): {detail}", retry_after=retry_after, status=429)
        if isinstance(exc, litellm.AuthenticationError):
            variable = self.key_variable() or "the API key"
            return LLMError(f"{self.name} refused the key in {variable} (HTTP {status or 401}): {detail}",
                            f"check {variable}")
        if isinstance(exc, litellm.ContextWindowExceededError):
            return LLMError(f"the prompt is too long for {self.name}: {detail}", "shorten it or use a bigger model")
        if isinstance(exc, litellm.NotFoundError):
            return LLMError(f"{self.name}{where} does not know that model: {detail}",
                            "check the name with `scientist models`")
        if isinstance(exc, litellm.APIConnectionError) and not (status and status >= 500):
            return TransientLLMError(f"cannot reach {self.name}{where}: {detail}",
                                     "check the server or the network", retry_after=retry_after, status=status)
        if isinstance(status, int) and (status >= 500 or status == 408 or status == 409):
            return TransientLLMError(f"{self.name} server error (HTTP {status}): {detail}",
                                     retry_after=retry_after, status=status)
        if isinstance(exc, (litellm.InternalServerError, litellm.ServiceUnavailableError)):
            return TransientLLMError(f"{self.name} server error: {detail}", retry_after=retry_after, status=status)
        return LLMError(f"{self.name} call failed ({type(exc).__name__}{f', HTTP {status}' if status else ''}): "
                        f"{detail}")


def get_json(url: str, *, timeout: float = 1.0, headers: dict[str, str] | None = None) -> Any:
    """GET `url` and parse its JSON body (the standard library only: fast, for listings and health checks).

    Raises OSError (connection refused, timeout, HTTP error) or ValueError (not JSON)."""
    import json
    import urllib.request

    request = urllib.request.Request(url, headers={"Accept": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (a configured server)
        return json.loads(response.read().decode("utf-8"))


def _dicts(messages: list[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def _short(exc: Exception, limit: int = 300) -> str:
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    for prefix in ("litellm.", "OpenAIException - ", "AnthropicException - "):
        text = text.replace(prefix, "")
    return text if len(text) <= limit else text[: limit - 1] + "…"
