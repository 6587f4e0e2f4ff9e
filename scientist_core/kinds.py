"""The base class of each plugin kind, by kind name."""

from __future__ import annotations

from scientist_core.coder import Coder
from scientist_core.compiler import Compiler
from scientist_core.executor import Executor
from scientist_core.llm import LLM
from scientist_core.reviewer import Reviewer
from scientist_core.searcher import Searcher
from scientist_core.template import Template

BASE_CLASSES = {
    "template": Template,
    "llm": LLM,
    "searcher": Searcher,
    "compiler": Compiler,
    "reviewer": Reviewer,
    "coder": Coder,
    "executor": Executor,
}
