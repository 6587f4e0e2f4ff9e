"""scientist: automated ML research, built from plugins.

The public API for plugin authors: the hook marker, one base class per plugin kind, their Config base,
the data models and the error family.
"""

from scientist_core.coder import CodeRequest, Coder
from scientist_core.compiler import Compiler
from scientist_core.component import Config
from scientist_core.errors import ExperimentError, ScientistError
from scientist_core.executor import Executor
from scientist_core.hookspecs import hookimpl
from scientist_core.llm import LLM
from scientist_core.models import FinalInfo, Idea
from scientist_core.reviewer import Reviewer
from scientist_core.sandbox import ExecutionResult, Limits
from scientist_core.searcher import Searcher
from scientist_core.template import Template

__all__ = [
    "CodeRequest", "Coder", "Compiler", "Config", "ExecutionResult", "Executor", "ExperimentError", "FinalInfo", "Idea", "LLM",
    "Limits", "Reviewer", "ScientistError", "Searcher", "Template", "hookimpl",
]
