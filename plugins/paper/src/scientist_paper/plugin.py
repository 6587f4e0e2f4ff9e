"""The hooks of scientist-paper: the writer `latex` and the compiler `latexmk`, imported when first needed."""

from __future__ import annotations

from scientist_core import hookimpl


@hookimpl
def register_writers(register):
    from scientist_paper.writer import LatexWriter

    register(LatexWriter)


@hookimpl
def register_compilers(register):
    from scientist_paper.compiler import LatexmkCompiler

    register(LatexmkCompiler)
