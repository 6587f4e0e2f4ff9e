"""Every hook a plugin can implement. Collector hooks receive `register` and call it once per class."""

from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("scientist")
hookimpl = pluggy.HookimplMarker("scientist")

Register = Callable[[type], None]


@hookspec
def register_templates(register: Register) -> None:
    """Called once when templates are first needed; call `register(cls)` for each Template subclass."""


@hookspec
def register_llms(register: Register) -> None:
    """Called once when models are first needed; call `register(cls)` for each LLM provider subclass."""


@hookspec
def register_searchers(register: Register) -> None:
    """Called once when literature search is first needed; call `register(cls)` for each Searcher subclass."""


@hookspec
def register_compilers(register: Register) -> None:
    """Called once when a paper is first compiled; call `register(cls)` for each Compiler subclass."""


@hookspec
def register_reviewers(register: Register) -> None:
    """Called once when a paper is first reviewed; call `register(cls)` for each Reviewer subclass."""


@hookspec
def register_coders(register: Register) -> None:
    """Called once when code is first edited; call `register(cls)` for each Coder subclass."""


@hookspec
def register_executors(register: Register) -> None:
    """Called once when a run first executes; call `register(cls)` for each Executor subclass."""


@hookspec
def register_commands(cli: object) -> None:
    """Called after the built-in commands exist; `cli` is the typer app: add commands or sub-apps to it."""
