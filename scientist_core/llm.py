"""LLM backends: a provider plugin offers models addressed as `provider/name`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from scientist_core.component import Component
from scientist_core.models import Completion, Message, ModelInfo


class LLM(Component):
    """Base class of LLM providers.

    `complete` takes chat messages and returns text; with `schema` the answer's text is JSON for that
    pydantic model (the provider's native JSON-schema mode or constrained decoding where it has one).
    """

    kind: ClassVar[str] = "llm"

    def models(self) -> list[ModelInfo]:
        raise NotImplementedError

    def complete(
        self,
        model: str,
        messages: list[Message],
        *,
        schema: type[BaseModel] | None = None,
        temperature: float = 0.7,
        max_tokens: int = 4096,
    ) -> Completion:
        raise NotImplementedError
