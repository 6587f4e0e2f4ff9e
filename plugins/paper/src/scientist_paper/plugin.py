"""The hooks of scientist-paper: the writer `latex` and the compiler `latexmk`, imported when first needed, and
the command `scientist check`."""

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


@hookimpl
def register_commands(cli):
    from scientist_paper.check_command import check

    cli.command("check")(check)
