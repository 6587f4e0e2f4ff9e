"""A real Semantic Scholar Graph API server on the loopback interface, for tests (yours and plugin authors').

It serves `GET /graph/v1/paper/search` over real HTTP, so a searcher is tested through its HTTP client,
its retries and its error mapping exactly as it talks to api.semanticscholar.org:

    with FakeSemanticScholar(papers=[s2_paper("Attention is All you Need", ["Ashish Vaswani"], 2017)]) as s2:
        s2.enqueue(S2Reply.rate_limited(retry_after=1))   # the next search gets a 429, then the corpus answers
        ... point the searcher's api_url at s2.api_url ...
        s2.requests                                        # every request: path, query, headers, time

With nothing queued a search answers from `papers` (every query word counted in title and abstract, best
first), honouring `fields`, `limit` and `offset` as the real API does; queued `S2Reply`s answer first, in order:
`S2Reply.rate_limited(retry_after)`, `S2Reply.error(500)`, `S2Reply.results([...])`, `S2Reply.slow(5)`.
`s2_paper(...)` builds a record in the API's JSON shape, `citationStyles.bibtex` written the way S2 writes it
(entry type as a Python list: `@['JournalArticle', 'Conference']{Key,`, values unescaped).

Only the standard library is used; the server binds 127.0.0.1 on a free port and stops when the `with`
block ends (or on `stop()`); a delayed reply is cut short when the server stops.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from scientist_core.testing.loopback import JSONHandler, LoopbackServer

__all__ = ["FakeSemanticScholar", "S2Reply", "S2Request", "s2_paper"]

SEARCH_PATH = "/graph/v1/paper/search"
RATE_LIMIT_MESSAGE = ("Too Many Requests. Please wait and try again or apply for a key for higher rate limits. "
                      "https://www.semanticscholar.org/product/api#api-key-form")


@dataclass
class S2Reply:
    """One scripted answer to a search: `papers` (a 200 with these records; None: search the corpus), or an
    error `status` with `headers` and `body`; `delay_s` waits before answering."""

    status: int = 200
    papers: list[dict] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay_s: float = 0.0

    @classmethod
    def results(cls, papers: Sequence[dict]) -> "S2Reply":
        return cls(papers=list(papers))

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1) -> "S2Reply":
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        return cls(status=429, headers=headers, body={"message": RATE_LIMIT_MESSAGE, "code": "429"})

    @classmethod
    def error(cls, status: int = 500, message: str = "Internal Server Error") -> "S2Reply":
        body = {"error": message} if status < 500 else {"message": message}
        return cls(status=status, body=body)

    @classmethod
    def slow(cls, delay_s: float) -> "S2Reply":
        return cls(delay_s=delay_s)


@dataclass
class S2Request:
    """A request the server received; header names are lowercase, `query` holds the last value of each."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    time: float


def _s2_bibtex_key(authors: Sequence[str], year: int | None, title: str) -> str:
    """S2's own key style: Vaswani2017AttentionIA (last name, year, first title word, initials of the next two)."""
    last = re.sub(r"[^A-Za-z]", "", authors[0].split()[-1]) if authors else "Anonymous"
    words = [w for w in re.findall(r"[A-Za-z]+", title)]
    first = words[0].capitalize() if words else ""
    initials = "".join(w[0].upper() for w in words[1:3])
    return f"{last}{year or ''}{first}{initials}"


def s2_paper(title: str, authors: Iterable[str] = (), year: int | None = None, venue: str = "",
             abstract: str | None = None, citation_count: int = 0, *,
             publication_types: Sequence[str] = ("JournalArticle", "Conference"), bibtex: str | bool = True,
             external_ids: dict[str, str] | None = None, paper_id: str | None = None) -> dict:
    """A paper record as the Graph API returns it. `bibtex=True` writes `citationStyles.bibtex` as S2 does,
    a string is sent as is, False leaves `citationStyles` out (S2 omits it for some records)."""
    names = list(authors)
    record: dict[str, Any] = {
        "paperId": paper_id or hashlib.sha1(f"{title}|{year}".encode()).hexdigest(),
        "externalIds": dict(external_ids or {}),
        "title": title,
        "abstract": abstract,
        "venue": venue,
        "year": year,
        "citationCount": citation_count,
        "publicationTypes": list(publication_types) or None,
        "authors": [{"authorId": str(1000 + i), "name": name} for i, name in enumerate(names)],
    }
    if bibtex is True:
        lines = [f"@{list(publication_types)!r}{{{_s2_bibtex_key(names, year, title)},"]
        if names:
            lines.append(f" author = {{{' and '.join(names)}}},")
        if venue:
            lines.append(f" booktitle = {{{venue}}},")
        lines.append(f" title = {{{title}}},")
        if year:
            lines.append(f" year = {{{year}}}")
        lines.append("}\n")
        record["citationStyles"] = {"bibtex": "\n".join(lines)}
    elif isinstance(bibtex, str):
        record["citationStyles"] = {"bibtex": bibtex}
    return record


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class FakeSemanticScholar(LoopbackServer):
    """A scripted Semantic Scholar server in a background thread; see the module docstring."""

    thread_name = "fake-s2"

    def __init__(self, papers: Iterable[dict] = (), host: str = "127.0.0.1", port: int = 0) -> None:
        self.papers: list[dict] = list(papers)
        self.requests: list[S2Request] = []
        super().__init__(host, port)

    @property
    def api_url(self) -> str:
        """The API root, e.g. http://127.0.0.1:PORT (what `https://api.semanticscholar.org` is for the real one)."""
        return self.url

    # -- the script ------------------------------------------------------------------------------------

    def enqueue(self, *replies: S2Reply | int) -> "FakeSemanticScholar":
        """Queue answers for the next searches: S2Reply, or an int for that HTTP error."""
        self._push(r if isinstance(r, S2Reply) else S2Reply.error(r) for r in replies)
        return self

    def search_requests(self) -> list[S2Request]:
        with self._lock:
            return [r for r in self.requests if r.path == SEARCH_PATH]

    def _next(self) -> S2Reply:
        return self._pop(S2Reply())

    def _search(self, query: str) -> list[dict]:
        wanted = set(_words(query))
        scored = []
        for index, paper in enumerate(self.papers):
            words = _words(f"{paper.get('title') or ''} {paper.get('abstract') or ''}")
            score = sum(1 for w in words if w in wanted)
            if score:
                scored.append((-score, index, paper))
        return [paper for _, _, paper in sorted(scored, key=lambda item: item[:2])]

    # -- HTTP ------------------------------------------------------------------------------------------

    def _answer(self, request: S2Request) -> tuple[int, Any, dict[str, str]]:
        if request.path != SEARCH_PATH:
            return 404, {"error": f"Requested resource {request.path} not found"}, {}
        reply = self._next()
        if reply.delay_s and self._stopping.wait(reply.delay_s):
            return 503, {"message": "server stopping"}, {}
        if reply.status != 200:
            return reply.status, reply.body if reply.body is not None else {"error": "error"}, reply.headers
        query = request.query.get("query", "")
        if not query.strip():
            return 400, {"error": "Missing required parameter: 'query'"}, {}
        try:
            limit = int(request.query.get("limit", "100"))
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            return 400, {"error": "Unacceptable query params: limit and offset must be integers"}, {}
        if not 1 <= limit <= 100:
            return 400, {"error": "Unacceptable query params: limit must be <= 100"}, {}
        found = reply.papers if reply.papers is not None else self._search(query)
        fields = [f for f in request.query.get("fields", "title").split(",") if f]
        page = found[offset:offset + limit]
        body: dict[str, Any] = {"total": len(found), "offset": offset}
        if offset + limit < len(found):
            body["next"] = offset + limit
        if page:
            body["data"] = [{"paperId": p.get("paperId"), **{f: p.get(f) for f in fields if f in p}} for p in page]
        return 200, body, reply.headers

    def _handler_class(self) -> type[JSONHandler]:
        server = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
                request = S2Request("GET", parts.path, query, {k.lower(): v for k, v in self.headers.items()},
                                    time.monotonic())
                with server._lock:
                    server.requests.append(request)
                status, body, headers = server._answer(request)
                self.send_json(status, body, headers)

        return Handler
