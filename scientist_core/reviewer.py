"""Reviewers: read a paper and fill the NeurIPS review form."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, Field

from scientist_core.component import Component
from scientist_core.models import Review, Usage

if TYPE_CHECKING:
    from scientist_core.chat import Chat
    from scientist_core.plugins import PluginHost
    from scientist_core.settings import Settings



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

    `review` reads a paper's text and asks `chat` (a scientist_core.chat.Chat bound to the reviewer's
    model, ledger and budget) to fill the form. A reviewer may run calls concurrently.
    """

    kind: ClassVar[str] = "reviewer"

    def review(self, paper_text: str, chat: "Chat") -> ReviewResult:
        raise NotImplementedError

    def review_file(self, path: Path, chat: "Chat") -> ReviewResult:
        """Review the paper at `path` (a PDF, or its text as .txt / .md / .tex)."""
        from scientist_core.pdf_text import paper_text

        return self.review(paper_text(path), chat)


def create_reviewer(host: "PluginHost", settings: "Settings", name: str | None = None,
                    **overrides: Any) -> Reviewer:
    """The reviewer `name` (default: the `reviewer` setting where it exists, else "llm"), configured by its
    `[reviewers.NAME]` section with `overrides` (command-line flags; None means not given) on top."""
    from pydantic import ValidationError

    from scientist_core.errors import SettingsError
    from scientist_core.settings import settings_file

    name = name or settings.reviewer
    cls = host.get("reviewer", name).cls
    flags = {key: value for key, value in overrides.items() if value is not None}
    try:
        config = cls.Config.model_validate({**(settings.reviewers.get(name) or {}), **flags})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        source = (f"--{where.replace('_', '-')}" if where in flags
                  else f"[reviewers.{name}] {where or '(section)'} in {settings_file()} or the environment")
        raise SettingsError(f"reviewer {name}: {where + ': ' if where else ''}{first['msg']} (from {source})",
                            "fix that value; `scientist config show` lists the settings") from None
    return cls(config)
