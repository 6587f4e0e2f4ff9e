"""Literature searchers (Semantic Scholar, OpenAlex, an offline index ... in scientist-literature), the errors
they raise, and the fallback chain across them.

`search_with_fallback(searchers, query, limit)` asks each searcher in order and returns the first answer with
the source that gave it and every failure before it; a searcher that is not ready, cannot reach its service, is
still rate-limited after its bounded retries, or breaks, is skipped to the next. The default order (the
`searchers_order` setting) is Semantic Scholar, OpenAlex, then the offline index, which needs no network.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from scientist_core.component import Component
from scientist_core.errors import ScientistError
from scientist_core.models import Paper

logger = logging.getLogger("scientist.literature")


class LiteratureError(ScientistError):
    """A literature search failed; the fallback chain moves on to the next searcher."""


class SearchUnavailable(LiteratureError):
    """The service cannot be reached (no network, DNS, refused, timed out) or the searcher is not ready."""


class SearchRateLimited(LiteratureError):
    """The service still answered 429 after the bounded retries."""

    def __init__(self, message: str, hint: str | None = None, *, tries: int = 0, waited_s: float = 0.0) -> None:
        super().__init__(message, hint)
        self.tries = tries
        self.waited_s = waited_s


@dataclass(frozen=True)
class FailedSearch:
    """One searcher that did not answer: why (`not_ready`, `unavailable`, `rate_limited`, `error`)."""

    searcher: str
    reason: str
    message: str
    elapsed_s: float = 0.0

    def __str__(self) -> str:
        return f"{self.searcher}: {self.message}"


class Searcher(Component):
    """Base class of literature searchers; results carry BibTeX built from real metadata."""

    kind: ClassVar[str] = "searcher"

    def search(self, query: str, limit: int = 10) -> list[Paper]:
        raise NotImplementedError


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SearchRateLimited):
        return "rate_limited"
    if isinstance(exc, SearchUnavailable):
        return "unavailable"
    return "error"


def search_with_fallback(searchers: Sequence["Searcher"], query: str,
                         limit: int = 10) -> tuple[list[Paper], str, list[FailedSearch]]:
    """The first answer in `searchers` order: (papers, the name of the searcher that gave them, failures).

    A searcher answering with no papers has answered (nothing matches). When every searcher fails the result
    is ([], "", failures); nothing is raised, so the caller decides whether that is fatal."""
    failures: list[FailedSearch] = []
    for searcher in searchers:
        name = searcher.name or type(searcher).__name__
        started = time.monotonic()
        try:
            readiness = searcher.readiness()
        except Exception as exc:  # a broken plugin must not stop the chain
            failures.append(FailedSearch(name, "error", f"readiness failed: {type(exc).__name__}: {exc}"))
            continue
        if not readiness.ready:
            failures.append(FailedSearch(name, "not_ready", readiness.detail or "not ready"))
            continue
        try:
            papers = searcher.search(query, limit)
        except Exception as exc:
            message = str(exc) if isinstance(exc, ScientistError) else f"{type(exc).__name__}: {exc}"
            failure = FailedSearch(name, _reason(exc), message, round(time.monotonic() - started, 3))
            logger.warning("literature search with %s failed (%s): %s", name, failure.reason, message)
            failures.append(failure)
            continue
        for paper in papers:
            if not paper.source:
                paper.source = name
        return list(papers)[:limit], name, failures
    return [], "", failures
