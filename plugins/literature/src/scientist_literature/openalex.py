"""OpenAlex: works search over api.openalex.org, abstracts rebuilt from the inverted index, BibTeX built by code.

OpenAlex gives no BibTeX (v1's OpenAlex fallback broke citations for that reason: SakanaAI/AI-Scientist#179),
so every entry here is written by scientist_literature.bibtex from the record's metadata: title, authors, year,
venue (the primary location's source), pages and volume, and a DOI or arXiv id.

Plain httpx (one GET to /works) rather than pyalex, which would add `requests` and keeps its settings
(base URL, retries) in module globals. The API key, when `OPENALEX_API_KEY` holds one, is sent as the
`api_key` query parameter OpenAlex asks for and is masked in every message; `mailto` (or `OPENALEX_MAILTO`)
joins the polite pool. Without a key OpenAlex's daily allowance covers only a few searches; past it, it
answers 429 and the fallback chain moves on.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field

from scientist_core import Paper, Readiness, Searcher
from scientist_literature.bibtex import entry_type_for, paper_to_bibtex
from scientist_literature.http import HTTPSearchConfig, get_json

SELECT = ("id,display_name,publication_year,authorships,primary_location,abstract_inverted_index,cited_by_count,"
          "type,doi,biblio")
KEY_PAGE = "https://openalex.org/settings/api"


class OpenAlexSearcher(Searcher):
    name = "openalex"
    description = "OpenAlex works search: abstracts, citation counts, BibTeX built from metadata (OPENALEX_API_KEY)"

    class Config(HTTPSearchConfig):
        api_url: str = Field("https://api.openalex.org", description="API root (a loopback fake in tests)")
        api_key_env: str = Field("OPENALEX_API_KEY", description="environment variable holding the API key")
        mailto: str | None = Field(None, description="e-mail for OpenAlex's polite pool (default: OPENALEX_MAILTO)")

    def _api_key(self) -> str | None:
        return os.environ.get(self.config.api_key_env) or None

    def readiness(self, model: str | None = None) -> Readiness:
        """Cheap: no network probe."""
        if self._api_key():
            return Readiness(ready=True, detail=f"API key from {self.config.api_key_env}")
        return Readiness(ready=True, detail=f"no {self.config.api_key_env}: OpenAlex's keyless daily allowance "
                                            f"covers only a few searches (free key: {KEY_PAGE})")

    def search(self, query: str, limit: int = 10) -> list[Paper]:
        import httpx

        query = " ".join(query.split())
        if not query:
            return []
        key = self._api_key()
        params: dict[str, Any] = {"search": query, "per_page": max(1, min(int(limit), 100)), "select": SELECT}
        mailto = self.config.mailto or os.environ.get("OPENALEX_MAILTO")
        if mailto:
            params["mailto"] = mailto
        if key:
            params["api_key"] = key
        hint = (f"set {self.config.api_key_env} (a free key: {KEY_PAGE}); the next searcher answers meanwhile"
                if not key else "the daily allowance may be spent; the next searcher answers meanwhile")
        with httpx.Client(timeout=self.config.timeout_s) as client:
            data = get_json(client, self.config.api_url.rstrip("/") + "/works", service="OpenAlex", params=params,
                            max_tries=self.config.max_tries, max_wait_s=self.config.max_wait_s,
                            base_delay_s=self.config.base_delay_s, secrets=[key], rate_limit_hint=hint)
        results = (data.get("results") or []) if isinstance(data, dict) else []
        return [paper for paper in (to_paper(work) for work in results if isinstance(work, dict)) if paper]


def abstract_from_inverted_index(index: dict[str, list[int]] | None) -> str:
    """OpenAlex's {word: [positions]} back to text."""
    if not index:
        return ""
    placed = sorted((pos, word) for word, positions in index.items() for pos in positions or [])
    return " ".join(word for _, word in placed)


def to_paper(work: dict[str, Any]) -> Paper | None:
    """An OpenAlex work as a Paper with BibTeX built from its metadata."""
    title = " ".join((work.get("display_name") or work.get("title") or "").split())
    if not title:
        return None
    authors = [a["author"]["display_name"] for a in work.get("authorships") or []
               if isinstance(a, dict) and isinstance(a.get("author"), dict) and a["author"].get("display_name")]
    source = ((work.get("primary_location") or {}).get("source") or {})
    venue = (source.get("display_name") or "").strip()
    doi = (work.get("doi") or "").removeprefix("https://doi.org/") or None
    arxiv_id = None
    if doi and doi.lower().startswith("10.48550/arxiv."):
        arxiv_id, doi = doi[len("10.48550/arxiv."):], None
    if arxiv_id or venue.lower().startswith("arxiv"):
        venue = "arXiv"
    year = work.get("publication_year") if isinstance(work.get("publication_year"), int) else None
    count = work.get("cited_by_count")
    paper = Paper(title=title, authors=authors, year=year, venue=venue,
                  abstract=abstract_from_inverted_index(work.get("abstract_inverted_index")),
                  citation_count=count if isinstance(count, int) else None, source=OpenAlexSearcher.name)
    source_type = source.get("type") or ""
    if source_type == "conference" or work.get("type") == "proceedings-article":
        kind = "inproceedings"
    elif source_type in ("journal", "repository"):
        kind = "article"
    else:
        kind = entry_type_for(venue)
    biblio = work.get("biblio") or {}
    first, last = biblio.get("first_page"), biblio.get("last_page")
    pages = f"{first}--{last}" if first and last and first != last else (first or None)
    paper.bibtex = paper_to_bibtex(paper, entry_type=kind, doi=doi, arxiv_id=arxiv_id, pages=pages,
                                   volume=biblio.get("volume"))
    return paper
