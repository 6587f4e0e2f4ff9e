"""The `ollama` LLM provider: the models a local Ollama serves (`ollama pull NAME` first).

The server is `[llms.ollama] base_url`, else OLLAMA_HOST (as the ollama CLI reads it), else
http://localhost:11434. `scientist models` lists what its /api/tags reports; a model is ready when the
server answers and has pulled it. No key; calls cost nothing. Structured output uses Ollama's `format`
with the JSON schema (constrained decoding on the server).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from scientist_core import ModelInfo, Price, Readiness, hookimpl
from scientist_litellm import LiteLLMProvider, get_json

DEFAULT_HOST = "http://localhost:11434"


def normalise_host(value: str) -> str:
    """OLLAMA_HOST's forms ("0.0.0.0", "localhost:11434", "http://host:port/") as a base URL."""
    value = value.strip().rstrip("/")
    parts = urlsplit(value if "://" in value else f"http://{value}")
    host = parts.hostname or "localhost"
    if host in ("0.0.0.0", "::"):  # the address a server listens on, not one to call
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (443 if parts.scheme == "https" else 11434)
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path, "", ""))


class OllamaProvider(LiteLLMProvider):
    name = "ollama"
    description = "models served by a local Ollama (OLLAMA_HOST)"
    litellm_prefix = "ollama_chat"
    key_env = None

    def base_url(self) -> str | None:
        return normalise_host(self.config.base_url or os.environ.get("OLLAMA_HOST", "") or DEFAULT_HOST)

    def _tags(self) -> list[str] | None:
        """The names of the models the server has pulled; None when it does not answer."""
        try:
            listing = get_json(f"{self.base_url()}/api/tags", timeout=1.0)
            return [str(m.get("name") or m.get("model")) for m in listing.get("models", [])]
        except (OSError, ValueError, AttributeError, TypeError):
            return None

    def models(self) -> list[ModelInfo]:
        tags = self._tags() or []
        listed = tags + [n for n in self.config.models if n not in tags]
        return [ModelInfo(provider=self.name, name=n,
                          description="pulled" if n in tags else "from settings (not pulled)") for n in listed]

    def readiness(self, model: str) -> Readiness:
        tags = self._tags()
        if tags is None:
            return Readiness(ready=False, detail=f"no Ollama server answers at {self.base_url()}: start it with "
                                                 "`ollama serve`, or set OLLAMA_HOST")
        names = set(tags) | {t.removesuffix(":latest") for t in tags}
        if model not in names:
            return Readiness(ready=False, detail=f"{model} is not pulled: run `ollama pull {model}`")
        return Readiness(ready=True, detail=f"via {self.base_url()}")

    def price(self, model: str) -> Price | None:
        return Price(0.0, 0.0)


@hookimpl
def register_llms(register) -> None:
    register(OllamaProvider)
