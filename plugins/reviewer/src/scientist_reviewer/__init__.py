"""scientist-reviewer: the reviewer `llm`, a language model filling the NeurIPS review form (see llm.py)."""

__version__ = "0.1.0"
