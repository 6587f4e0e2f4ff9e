"""The `openai` LLM provider: OpenAI's models, or any server that speaks the OpenAI chat API.

Point it at another server with `[llms.openai] base_url = "http://localhost:8000/v1"` or, as the OpenAI SDK
does, the OPENAI_BASE_URL environment variable (vLLM, LM Studio, llama.cpp's llama-server, a LiteLLM proxy).
The key comes from OPENAI_API_KEY (or the variable named by `api_key_env`); a server at a base URL of your
own may need none.
"""

from __future__ import annotations

import os
import urllib.error
from typing import ClassVar

from pydantic import Field

from scientist_core import MissingAPIKey, ModelInfo, Readiness, hookimpl
from scientist_litellm import LiteLLMProvider, get_json

DEFAULT_BASE_URL = "https://api.openai.com/v1"
NO_KEY = "sk-no-key-needed"  # what an OpenAI-compatible server without authentication is sent


class OpenAIProvider(LiteLLMProvider):
    name = "openai"
    description = "OpenAI models, or any OpenAI-compatible server through base_url / OPENAI_BASE_URL"
    litellm_prefix = "openai"
    key_env = "OPENAI_API_KEY"
    known_models: ClassVar[tuple[tuple[str, str], ...]] = (
        ("gpt-4o-mini", "small, cheap; good for tests and drafts"),
        ("gpt-4o", "the model of the AI Scientist paper's runs"),
        ("gpt-4.1", "long context, strong at code"),
        ("gpt-4.1-mini", "cheaper gpt-4.1"),
        ("gpt-5", "reasoning model"),
        ("gpt-5-mini", "cheaper gpt-5"),
        ("o3", "reasoning model"),
    )

    class Config(LiteLLMProvider.Config):
        list_server_models: bool = Field(True, description="with a base URL, list the models its /models offers")

    def base_url(self) -> str | None:
        url = self.config.base_url or os.environ.get("OPENAI_BASE_URL", "").strip() or None
        return url.rstrip("/") if url else None

    def custom_server(self) -> bool:
        url = self.base_url()
        return bool(url) and url != DEFAULT_BASE_URL

    def api_key(self) -> str | None:
        try:
            return super().api_key()
        except MissingAPIKey:
            if self.custom_server():
                return NO_KEY
            raise

    def _server_models(self) -> list[str] | None:
        """The ids a custom server's /models lists; None when it does not answer."""
        headers = {}
        key = os.environ.get(self.key_variable() or "", "").strip()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        try:
            listing = get_json(f"{self.base_url()}/models", timeout=1.0, headers=headers)
            return [str(item["id"]) for item in listing.get("data", []) if "id" in item]
        except urllib.error.HTTPError:
            return []  # it answers, only not this question
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            return None

    def models(self) -> list[ModelInfo]:
        if self.custom_server() and self.config.list_server_models:
            names = self._server_models()
            if names is not None:
                listed = names + [n for n in self.config.models if n not in names]
                return [ModelInfo(provider=self.name, name=n, description=f"served by {self.base_url()}")
                        for n in listed]
            return [ModelInfo(provider=self.name, name=n, description="from settings") for n in self.config.models]
        return super().models()

    def readiness(self, model: str) -> Readiness:
        if self.custom_server():
            names = self._server_models()
            if names is None:
                return Readiness(ready=False, detail=f"no OpenAI-compatible server answers at {self.base_url()}")
            return Readiness(ready=True, detail=f"via {self.base_url()}")
        return super().readiness(model)


@hookimpl
def register_llms(register) -> None:
    register(OpenAIProvider)
