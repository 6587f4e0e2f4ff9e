"""Anthropic Claude models for scientist; the plugin lives in `scientist_llm_anthropic.plugin`."""

__version__ = "0.1.0"
