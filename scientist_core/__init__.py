"""scientist: automated ML research, built from plugins.

This module is the public API, the one door for plugin authors: a plugin imports from `scientist_core` (and its
tests from `scientist_core.testing`), never from the modules behind it, which may move. The base class of each
plugin kind, its Config base, the hook marker, the data models and the errors load with it; what needs more of
the core (the chat, the settings, a run's context and records) loads on first use, so that importing a plugin
stays cheap and `scientist --help` fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from scientist_core.coder import CodeRequest, Coder
from scientist_core.compiler import Compiler
from scientist_core.component import Config
from scientist_core.errors import (ExperimentError, PathError, PluginError, SandboxError, ScientistError,
                                   SettingsError, StoreError, first_problem)
from scientist_core.executor import ACCEPT_UNISOLATED, LOG_DIR_NAME, ExecutionResult, Executor, Limits
from scientist_core.hookspecs import hookimpl
from scientist_core.llm import LLM
from scientist_core.metrics import Metric, better_direction, measures_time, resolve_metric
from scientist_core.models import (CodeChange, CompileResult, Completion, DatasetResult, FinalInfo, Idea, Message,
                                   ModelInfo, Paper, Readiness, Review, Usage)
from scientist_core.reviewer import Reviewer, ReviewResult
from scientist_core.searcher import (LiteratureError, Searcher, SearchRateLimited, SearchUnavailable,
                                     search_with_fallback)
from scientist_core.template import LATEX_SKELETON, Template
from scientist_core.untrusted import UntrustedOutput, copy_out, read_bytes, write_atomic, write_into
from scientist_core.writer import PaperCheck, Writer, WriteupResult

# name -> the module it lives in, imported when the name is first used
_ON_FIRST_USE = {
    **dict.fromkeys(("BudgetExceeded", "Chat", "LLMError", "LLMNotReady", "LLMTimeout", "MissingAPIKey",
                     "NoModelConfigured", "Price", "RateLimited", "Reservation", "StructuredOutputError",
                     "TransientLLMError", "UnpricedModel", "estimate_tokens", "parse_retry_after", "redact"),
                    "scientist_core.chat"),
    **dict.fromkeys(("open_chat", "resolve_model"), "scientist_core.model_choice"),
    **dict.fromkeys(("Figure", "RunContext", "RunRecord", "checkpoint_file", "new_run_id"),
                    "scientist_core.pipeline.context"),
    "facts_for_run": "scientist_core.pipeline.machine",
    "describe_changes": "scientist_core.pipeline.plans",
    "get_host": "scientist_core.plugins",
    "load_settings": "scientist_core.settings",
    **dict.fromkeys(("writable_file", "writable_folder", "writable_outputs"), "scientist_core.paths"),
    "Store": "scientist_core.store",
    **dict.fromkeys(("console", "shown"), "scientist_core.terminal"),
}

__all__ = [
    "ACCEPT_UNISOLATED", "CodeChange", "CodeRequest", "Coder", "CompileResult", "Compiler", "Completion", "Config",
    "DatasetResult", "ExecutionResult", "Executor", "ExperimentError", "FinalInfo", "Idea", "LATEX_SKELETON", "LLM",
    "LOG_DIR_NAME", "Limits", "LiteratureError", "Message", "Metric", "ModelInfo", "Paper", "PaperCheck",
    "PathError", "PluginError", "Readiness", "Review", "ReviewResult", "Reviewer", "SandboxError", "ScientistError",
    "SearchRateLimited", "SearchUnavailable", "Searcher", "SettingsError", "StoreError", "Template",
    "UntrustedOutput", "Usage", "WriteupResult", "Writer", "better_direction", "copy_out", "first_problem",
    "hookimpl", "measures_time", "read_bytes", "resolve_metric", "search_with_fallback", "write_atomic",
    "write_into",
    *sorted(_ON_FIRST_USE),
]


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module 'scientist_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ON_FIRST_USE))
