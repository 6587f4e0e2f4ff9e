"""OpenAI models, and any OpenAI-compatible server, for scientist; the plugin lives in `scientist_llm_openai.plugin`."""

__version__ = "0.1.0"
