"""Models served by a local Ollama, for scientist; the plugin lives in `scientist_llm_ollama.plugin`."""

__version__ = "0.1.0"
