"""The `anthropic` LLM provider: Claude models through Anthropic's Messages API.

The key comes from ANTHROPIC_API_KEY (or the variable named by `[llms.anthropic] api_key_env`). A proxy or a
gateway can stand in for api.anthropic.com with `base_url` or ANTHROPIC_BASE_URL. Structured output uses
Claude's native JSON-schema output where the model has it (litellm translates the request).
"""

from __future__ import annotations

import os
from typing import ClassVar

from scientist_core import hookimpl
from scientist_litellm import LiteLLMProvider


class AnthropicProvider(LiteLLMProvider):
    name = "anthropic"
    description = "Anthropic Claude models"
    litellm_prefix = "anthropic"
    key_env = "ANTHROPIC_API_KEY"
    known_models: ClassVar[tuple[tuple[str, str], ...]] = (
        ("claude-sonnet-4-5", "the balanced Claude model (Sonnet 4.5)"),
        ("claude-sonnet-4-6", "Sonnet 4.6"),
        ("claude-opus-4-5", "the strongest Claude 4.5 model"),
        ("claude-haiku-4-5", "fast and cheap"),
    )

    def base_url(self) -> str | None:
        url = self.config.base_url or os.environ.get("ANTHROPIC_BASE_URL", "").strip() or None
        return url.rstrip("/") if url else None


@hookimpl
def register_llms(register) -> None:
    register(AnthropicProvider)
