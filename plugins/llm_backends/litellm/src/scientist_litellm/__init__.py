"""The base class of the LLM providers reached through litellm, shared by the openai, anthropic and ollama plugins.

A library rather than a plugin (it registers nothing), so that only the providers that need litellm bring it:
the core, and a run with the local model alone, never install or import it.
"""

from scientist_litellm.provider import OFFLINE_ENV, LiteLLMProvider, get_json, import_litellm

__all__ = ["OFFLINE_ENV", "LiteLLMProvider", "get_json", "import_litellm"]
__version__ = "0.1.0"
