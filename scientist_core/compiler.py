"""LaTeX compilers: turn a paper folder into a PDF."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from scientist_core.component import Component, Config
from scientist_core.models import CompileResult


class Compiler(Component):
    """Base class of LaTeX compilers; `check` lints without compiling (e.g. chktex). A paper's LaTeX is written by
    a model: a compiler runs it as untrusted code, and its Config derives from `Compiler.Config`."""

    kind: ClassVar[str] = "compiler"
    chosen_by_default: ClassVar[str | None] = "latexmk"
    chosen_for: ClassVar[str] = "what turns the paper into a PDF"

    class Config(Config):
        allow_unisolated_code: bool = Field(False, description="compile even where the sandbox cannot isolate "
                                            "the compile (else SandboxError); the core sets it from [sandbox] "
                                            "allow_unisolated_code")

    def check(self, source_dir: Path, main: str) -> list[str]:
        """Warnings a model can fix, one per line; empty when clean."""
        return []

    def compile(self, source_dir: Path, main: str) -> CompileResult:
        raise NotImplementedError
