"""Stage 6: the write-up, by the configured writer (the `writer` setting; scientist-paper's `latex` by default),
and its check against the records.

    result = write_paper(ctx, idea, runs, figures)   # WriteupResult: pdf_path, problems, ...
    check = check_paper(ctx, idea, result)           # PaperCheck (None: the writer cannot check), in check.json
"""

from __future__ import annotations

import json

from scientist_core.models import Idea
from scientist_core.pipeline.context import Figure, RunContext, RunRecord
from scientist_core.untrusted import write_atomic
from scientist_core.writer import PaperCheck, WriteupResult


def write_paper(ctx: RunContext, idea: Idea, runs: list[RunRecord], figures: list[Figure],
                feedback: str | None = None) -> WriteupResult:
    """Write, check and compile the paper of `idea` in its folder from its recorded `runs` and `figures`; with
    `feedback` (a review, as text) revise it instead. The writer records the PDF as the run's `paper` artifact."""
    return ctx.plugin("writer").write(ctx, idea, ctx.idea_dir(idea), runs, figures, feedback)


def check_paper(ctx: RunContext, idea: Idea, paper: WriteupResult, name: str = "check") -> PaperCheck | None:
    """Trace every item of the written `paper` to the run's records (what `scientist check` prints): the report is
    kept as <idea folder>/<name>.json and as the run's `check` artifact."""
    check = ctx.plugin("writer").check_paper(ctx, paper.latex_dir)
    if check is None:
        return None
    path = ctx.idea_dir(idea) / f"{name}.json"
    write_atomic(path, json.dumps(check.report, indent=1))
    ctx.store.add_artifact(ctx.run_id, "check", path, {"idea": idea.name, "items": check.items,
                                                       "problems": len(check.problems)})
    ctx.report(f"{name}: {idea.name}: {check.summary}")
    return check
