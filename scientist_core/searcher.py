"""Literature searchers: Semantic Scholar, OpenAlex, an offline index ..."""

from __future__ import annotations

from typing import ClassVar

from scientist_core.component import Component
from scientist_core.models import Paper, Readiness


class Searcher(Component):
    """Base class of literature searchers; results carry BibTeX built from real metadata."""

    kind: ClassVar[str] = "searcher"

    def readiness(self) -> Readiness:
        return Readiness(ready=True)

    def search(self, query: str, limit: int = 10) -> list[Paper]:
        raise NotImplementedError
