"""Reviewers: read a paper's PDF and fill the NeurIPS review form."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from scientist_core.component import Component
from scientist_core.models import Review


class Reviewer(Component):
    """Base class of reviewers. `chat` is the reviewer model's handle (see scientist_core.llm)."""

    kind: ClassVar[str] = "reviewer"

    def review(self, pdf_path: Path, chat: object) -> Review:
        raise NotImplementedError
