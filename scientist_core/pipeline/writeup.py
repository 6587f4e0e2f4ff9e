"""Stage 6: the write-up, by the configured writer (the `writer` setting; scientist-paper's `latex` by default).

    result = write_paper(ctx, idea, runs, figures)   # WriteupResult: pdf_path, problems, ...
"""

from __future__ import annotations

from scientist_core.models import Idea
from scientist_core.pipeline.context import Figure, RunContext, RunRecord
from scientist_core.writer import WriteupResult


def write_paper(ctx: RunContext, idea: Idea, runs: list[RunRecord], figures: list[Figure],
                feedback: str | None = None) -> WriteupResult:
    """Write, check and compile the paper of `idea` in its folder from its recorded `runs` and `figures`; with
    `feedback` (a review, as text) revise it instead. The writer records the PDF as the run's `paper` artifact."""
    return ctx.plugin("writer").write(ctx, idea, ctx.idea_dir(idea), runs, figures, feedback)
