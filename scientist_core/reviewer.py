"""Reviewers: read a paper and fill the NeurIPS review form."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, Field

from scientist_core.component import Component
from scientist_core.models import Review, Usage

if TYPE_CHECKING:
    from scientist_core.chat import Chat


class ReviewResult(BaseModel):
    """What a reviewer returns: the final review, and how it was reached."""

    review: Review = Field(description="the final review; its Decision follows the reviewer's threshold")
    reviews: list[Review] = Field(default_factory=list, description="each ensemble member's review, as written")
    meta_review: Review | None = Field(None, description="the area chair's aggregate (ensembles of 2 or more)")
    failures: list[str] = Field(default_factory=list, description="ensemble members that gave no valid review")
    calls: int = Field(0, description="model requests made, repair rounds included")
    usage: Usage = Field(default_factory=Usage, description="tokens and cost of all those requests")
    model: str = Field("", description="the model that reviewed, provider/name")
    seconds: float = Field(0.0, description="wall time of the review")


class Reviewer(Component):
    """Base class of reviewers.

    `review_file` reads a paper (the PDF a run made), `review` its text; both ask `chat` (a scientist_core.Chat
    bound to the reviewer's model, ledger and budget) to fill the form. A reviewer may run calls concurrently.
    """

    kind: ClassVar[str] = "reviewer"
    chosen_by_default: ClassVar[str | None] = "llm"
    chosen_for: ClassVar[str] = "what reviews the paper"

    def review(self, paper_text: str, chat: "Chat", problems: Sequence[str] = ()) -> ReviewResult:
        raise NotImplementedError

    def review_file(self, path: Path, chat: "Chat", problems: Sequence[str] = ()) -> ReviewResult:
        """Review the paper at `path` (the PDF `scientist run` made): how to read it is the reviewer's choice.
        `problems`: what the paper's check against the experiment records found (`scientist check`), one line
        each, for the reviewer to weigh."""
        raise NotImplementedError
