"""The plugin kinds: one base class each, the one list every other table is derived from. A kind `x` is
registered through the hook `register_xs` (hookspecs.py), chosen by the setting `x` and configured in the
`[xs.NAME]` sections (settings.py)."""

from __future__ import annotations

from scientist_core.coder import Coder
from scientist_core.compiler import Compiler
from scientist_core.executor import Executor
from scientist_core.llm import LLM
from scientist_core.reviewer import Reviewer
from scientist_core.searcher import Searcher
from scientist_core.template import Template
from scientist_core.writer import Writer

BASE_CLASSES = {cls.kind: cls for cls in (Template, LLM, Searcher, Writer, Compiler, Reviewer, Coder, Executor)}
# kind -> the collector hook that registers classes of that kind
KIND_HOOKS = {kind: f"register_{kind}s" for kind in BASE_CLASSES}
