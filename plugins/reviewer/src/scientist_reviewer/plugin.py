"""The hooks of scientist-reviewer: the reviewer `llm`, imported when a paper is first reviewed, and the command
`scientist review`."""

from __future__ import annotations

from scientist_core import hookimpl


@hookimpl
def register_reviewers(register):
    from scientist_reviewer.llm import LLMReviewer

    register(LLMReviewer)


@hookimpl
def register_commands(cli):
    from scientist_reviewer.command import review

    cli.command("review")(review)
