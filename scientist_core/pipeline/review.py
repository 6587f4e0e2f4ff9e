"""Stage 7: review. The reviewer plugin reads the compiled PDF; the review is kept beside the paper, in the
store, and in the template's idea archive (where later ideation sees its score)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from scientist_core.models import Idea
from scientist_core.pipeline.archive import save_to_archive
from scientist_core.pipeline.context import RunContext
from scientist_core.reviewer import ReviewResult
from scientist_core.untrusted import write_atomic

STAGE = "review"


def review_paper(ctx: RunContext, idea: Idea, pdf: Path, name: str = "review",
                 problems: Sequence[str] = ()) -> ReviewResult:
    """Review the paper `pdf` of `idea`, told the `problems` its check against the records found; the review is
    kept as <idea folder>/<name>.json."""
    reviewer = ctx.plugin("reviewer")
    result = reviewer.review_file(pdf, ctx.chat(STAGE, role="reviewer"), problems=list(problems))
    path = ctx.idea_dir(idea) / f"{name}.json"
    write_atomic(path, result.model_dump_json(by_alias=True, indent=2))
    ctx.store.add_artifact(ctx.run_id, name, path, {"idea": idea.name, "overall": result.review.overall,
                                                    "decision": result.review.decision})
    save_to_archive(ctx, idea, review_overall=result.review.overall, paper=str(pdf))
    ctx.report(f"review: {idea.name}: overall {result.review.overall}/10, {result.review.decision}")
    return result
