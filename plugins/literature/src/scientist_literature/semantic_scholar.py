"""Semantic Scholar: relevance search over the Graph API, with abstracts, citation counts and BibTeX.

Plain httpx rather than the `semanticscholar` package (0.12.0), which cannot serve this searcher: on a 429 it
raises a ConnectionRefusedError (wrapped in tenacity's RetryError with retry=False) and drops the response, so
Retry-After is lost; and it pastes the query into the URL unencoded, so "R&D" is sent as `query=R` and "C++"
as "C  ". One GET to /graph/v1/paper/search is all a search needs.

The API key comes from the environment variable named by `api_key_env` (S2_API_KEY), is sent as the
`x-api-key` header, and is masked in every message. Without a key S2 shares one rate limit among all
anonymous callers, so 429s are common: retries are bounded (max_tries, max_wait_s) and the fallback chain
(scientist_core.searcher) moves on to the next searcher.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, ClassVar

from pydantic import Field

from scientist_core import Paper, Readiness, Searcher
from scientist_literature.bibtex import normalize_s2_bibtex, paper_to_bibtex
from scientist_literature.http import HTTPSearchConfig, get_json

SEARCH_PATH = "/graph/v1/paper/search"
FIELDS = "title,authors,venue,year,abstract,citationCount,citationStyles,externalIds,publicationTypes"
KEY_FORM = "https://www.semanticscholar.org/product/api#api-key-form"


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"scientist/{version('scientist-core')}"
    except PackageNotFoundError:
        return "scientist"


class SemanticScholarSearcher(Searcher):
    name = "semantic_scholar"
    description = "Semantic Scholar Graph API: abstracts, citation counts, BibTeX (S2_API_KEY optional)"

    class Config(HTTPSearchConfig):
        api_url: str = Field("https://api.semanticscholar.org", description="API root (a loopback fake in tests)")
        api_key_env: str = Field("S2_API_KEY", description="environment variable holding the API key")
        min_interval_s: float = Field(1.0, ge=0, le=60,
                                      description="least seconds between two requests from this process")

    # one request at a time per process, spaced by min_interval_s (S2 allows 1 request/s with a key)
    _pace_lock: ClassVar[threading.Lock] = threading.Lock()
    _last_request: ClassVar[float] = 0.0

    def _api_key(self) -> str | None:
        return os.environ.get(self.config.api_key_env) or None

    def readiness(self, model: str | None = None) -> Readiness:
        """Cheap: no network probe. Whether the service answers is learnt by searching (failures fall through)."""
        if self._api_key():
            return Readiness(ready=True, detail=f"API key from {self.config.api_key_env}")
        return Readiness(ready=True, detail=f"no {self.config.api_key_env}: the shared anonymous rate limit "
                                            f"applies and 429s are likely (free key: {KEY_FORM})")

    def _pace(self) -> None:
        cls = SemanticScholarSearcher
        with cls._pace_lock:
            wait = cls._last_request + self.config.min_interval_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            cls._last_request = time.monotonic()

    def search(self, query: str, limit: int = 10) -> list[Paper]:
        import httpx

        query = " ".join(query.split())
        if not query:
            return []
        key = self._api_key()
        headers = {"User-Agent": _user_agent()}
        if key:
            headers["x-api-key"] = key
        params = {"query": query, "limit": max(1, min(int(limit), 100)), "fields": FIELDS}
        hint = ("raise [searchers.semantic_scholar] max_tries or max_wait_s; the next searcher answers meanwhile"
                if key else f"set {self.config.api_key_env} (a free key: {KEY_FORM}); the next searcher answers "
                            "meanwhile")
        self._pace()
        try:
            with httpx.Client(timeout=self.config.timeout_s) as client:
                data = get_json(client, self.config.api_url.rstrip("/") + SEARCH_PATH, service="Semantic Scholar",
                                params=params, headers=headers, max_tries=self.config.max_tries,
                                max_wait_s=self.config.max_wait_s, base_delay_s=self.config.base_delay_s,
                                secrets=[key], rate_limit_hint=hint)
        finally:
            SemanticScholarSearcher._last_request = time.monotonic()  # the next one waits from the last answer
        items = (data.get("data") or []) if isinstance(data, dict) else []
        return [paper for paper in (to_paper(item) for item in items if isinstance(item, dict)) if paper]


def to_paper(item: dict[str, Any]) -> Paper | None:
    """A Graph API paper record as a Paper; BibTeX from `citationStyles.bibtex` made valid, else built."""
    title = " ".join((item.get("title") or "").split())
    if not title:
        return None
    authors = [a["name"] for a in item.get("authors") or [] if isinstance(a, dict) and a.get("name")]
    year = item.get("year") if isinstance(item.get("year"), int) else None
    count = item.get("citationCount")
    paper = Paper(title=title, authors=authors, year=year, venue=(item.get("venue") or "").strip(),
                  abstract=(item.get("abstract") or "").strip(),
                  citation_count=count if isinstance(count, int) else None, source=SemanticScholarSearcher.name)
    ids = item.get("externalIds") or {}
    types = item.get("publicationTypes") or []
    doi, arxiv_id = ids.get("DOI"), ids.get("ArXiv")
    s2_bibtex = (item.get("citationStyles") or {}).get("bibtex")
    if s2_bibtex:
        paper.bibtex = normalize_s2_bibtex(s2_bibtex, paper, publication_types=types, doi=doi, arxiv_id=arxiv_id)
    else:
        paper.bibtex = paper_to_bibtex(paper, publication_types=types, doi=doi, arxiv_id=arxiv_id)
    return paper
