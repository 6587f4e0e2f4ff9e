"""A scripted model for scientist, answering from a file of replies; the plugin lives in `scientist_llm_script.plugin`."""

__version__ = "0.1.0"
