"""Every hook a plugin can implement. Collector hooks receive `register` and call it once per class."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:
    from scientist_core.coder import Coder
    from scientist_core.compiler import Compiler
    from scientist_core.executor import Executor
    from scientist_core.llm import LLM
    from scientist_core.reviewer import Reviewer
    from scientist_core.searcher import Searcher
    from scientist_core.template import Template
    from scientist_core.writer import Writer

hookspec = pluggy.HookspecMarker("scientist")
hookimpl = pluggy.HookimplMarker("scientist")


@hookspec
def register_templates(register: Callable[[type[Template]], None]) -> None:
    """Called once when templates are first needed; call `register(cls)` for each Template subclass."""


@hookspec
def register_llms(register: Callable[[type[LLM]], None]) -> None:
    """Called once when models are first needed; call `register(cls)` for each LLM provider subclass."""


@hookspec
def register_searchers(register: Callable[[type[Searcher]], None]) -> None:
    """Called once when literature search is first needed; call `register(cls)` for each Searcher subclass."""


@hookspec
def register_writers(register: Callable[[type[Writer]], None]) -> None:
    """Called once when a paper is first written; call `register(cls)` for each Writer subclass."""


@hookspec
def register_compilers(register: Callable[[type[Compiler]], None]) -> None:
    """Called once when a paper is first compiled; call `register(cls)` for each Compiler subclass."""


@hookspec
def register_reviewers(register: Callable[[type[Reviewer]], None]) -> None:
    """Called once when a paper is first reviewed; call `register(cls)` for each Reviewer subclass."""


@hookspec
def register_coders(register: Callable[[type[Coder]], None]) -> None:
    """Called once when code is first edited; call `register(cls)` for each Coder subclass."""


@hookspec
def register_executors(register: Callable[[type[Executor]], None]) -> None:
    """Called once when a run first executes; call `register(cls)` for each Executor subclass."""


@hookspec
def register_commands(cli: object) -> None:
    """Called after the built-in commands exist; `cli` is the typer app: add commands or sub-apps to it."""
