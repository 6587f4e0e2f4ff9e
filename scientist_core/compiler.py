"""LaTeX compilers: turn a paper folder into a PDF."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from scientist_core.component import Component
from scientist_core.models import CompileResult


class Compiler(Component):
    """Base class of LaTeX compilers; `check` lints without compiling (e.g. chktex)."""

    kind: ClassVar[str] = "compiler"
    chosen_by_default: ClassVar[str | None] = "latexmk"
    chosen_for: ClassVar[str] = "what turns the paper into a PDF"

    def check(self, source_dir: Path, main: str) -> list[str]:
        """Warnings a model can fix, one per line; empty when clean."""
        return []

    def compile(self, source_dir: Path, main: str) -> CompileResult:
        raise NotImplementedError
