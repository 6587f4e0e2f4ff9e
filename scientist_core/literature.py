"""Literature search across searchers: a fallback chain, bounded retries, and the errors both report.

`search_with_fallback(searchers, query, limit)` asks each searcher in order and returns the first answer
with the source that gave it and every failure before it; a searcher that is not ready, cannot reach its
service, is still rate-limited after its bounded retries, or breaks, is skipped to the next. The default
order (the `searchers_order` setting) is Semantic Scholar, OpenAlex, then the offline index, which needs
no network.

`get_json(...)` is the one HTTP path the online searchers share: one try per `max_tries`, exponential backoff
with jitter on 429 and 5xx answers, the server's Retry-After honoured, never more than `max_wait_s` slept in
all; a refused connection or a timeout fails at once (retrying cannot help and the next searcher can).
Secrets (API keys) never appear in messages: callers pass them to be masked.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field

from scientist_core.chat import parse_retry_after, redact
from scientist_core.component import Config
from scientist_core.errors import ScientistError
from scientist_core.models import Paper

if TYPE_CHECKING:
    import httpx

    from scientist_core.plugins import PluginHost
    from scientist_core.searcher import Searcher
    from scientist_core.settings import Settings

__all__ = [
    "FailedSearch", "HTTPSearchConfig", "LiteratureError", "RateLimited", "SearchUnavailable",
    "get_json", "search_with_fallback", "searchers_from_settings",
]

logger = logging.getLogger("scientist.literature")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class LiteratureError(ScientistError):
    """A literature search failed; the fallback chain moves on to the next searcher."""


class SearchUnavailable(LiteratureError):
    """The service cannot be reached (no network, DNS, refused, timed out) or the searcher is not ready."""


class RateLimited(LiteratureError):
    """The service still answered 429 after the bounded retries."""

    def __init__(self, message: str, hint: str | None = None, *, tries: int = 0, waited_s: float = 0.0) -> None:
        super().__init__(message, hint)
        self.tries = tries
        self.waited_s = waited_s


class HTTPSearchConfig(Config):
    """Settings every online searcher shares: how long to wait, and how often to retry."""

    timeout_s: float = Field(20.0, gt=0, le=300, description="seconds to wait for one answer")
    max_tries: int = Field(3, ge=1, le=10, description="requests per search, the first included, on 429/5xx")
    max_wait_s: float = Field(30.0, ge=0, le=3600, description="most seconds slept between tries in one search")
    base_delay_s: float = Field(1.0, ge=0, le=60, description="first backoff delay without Retry-After")


@dataclass(frozen=True)
class FailedSearch:
    """One searcher that did not answer: why (`not_ready`, `unavailable`, `rate_limited`, `error`)."""

    searcher: str
    reason: str
    message: str
    elapsed_s: float = 0.0

    def __str__(self) -> str:
        return f"{self.searcher}: {self.message}"


# -- helpers ---------------------------------------------------------------------------------------


def _snippet(response: "httpx.Response", secrets: Sequence[str | None]) -> str:
    try:
        body = response.json()
        text = str(body.get("message") or body.get("error") or body) if isinstance(body, dict) else str(body)
    except ValueError:
        text = response.text
    return redact(" ".join(text.split())[:200], secrets)


def get_json(client: "httpx.Client", url: str, *, service: str, params: Mapping[str, Any] | None = None,
             headers: Mapping[str, str] | None = None, max_tries: int = 3, max_wait_s: float = 30.0,
             base_delay_s: float = 1.0, secrets: Sequence[str | None] = (), rate_limit_hint: str | None = None,
             sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> Any:
    """GET `url` and return its JSON, retrying 429 and 5xx answers within the bounds.

    Waits Retry-After when the server sends it (giving up at once when that would pass `max_wait_s`),
    else base_delay_s·2^n with ±50 % jitter, clipped to what is left of `max_wait_s`."""
    import httpx

    rng = rng or random.Random()
    waited = 0.0
    last_status = 0
    last_detail = ""
    asked = ""
    for attempt in range(1, max_tries + 1):
        try:
            response = client.get(url, params=params, headers=headers)
        except httpx.TimeoutException:
            raise SearchUnavailable(f"{service} did not answer in time",
                                    "raise timeout_s in [searchers] settings, or rely on the next searcher") from None
        except httpx.HTTPError as exc:
            raise SearchUnavailable(f"{service} cannot be reached ({type(exc).__name__}: "
                                    f"{redact(str(exc), secrets)})", "check the network; the next searcher answers") \
                from None
        status = response.status_code
        if status == 200:
            try:
                return response.json()
            except ValueError:
                raise LiteratureError(f"{service} answered with invalid JSON",
                                      "retry later; the next searcher answers meanwhile") from None
        last_status, last_detail = status, _snippet(response, secrets)
        if status not in RETRY_STATUSES:
            raise LiteratureError(f"{service} answered HTTP {status}: {last_detail}",
                                  "check the query and the API key" if status in (400, 401, 403)
                                  else "retry later")
        if attempt == max_tries:
            break
        retry_after = parse_retry_after(response.headers)
        left = max_wait_s - waited
        if retry_after is not None:
            if retry_after > left:
                logger.info("%s: HTTP %d, Retry-After %.1fs exceeds the %.1fs left; giving up",
                            service, status, retry_after, left)
                asked = f"; it asked to wait {retry_after:.0f}s more, beyond max_wait_s"
                break
            delay = retry_after
        else:
            delay = min(base_delay_s * 2 ** (attempt - 1) * (0.5 + rng.random()), left)
            if delay <= 0 and base_delay_s > 0:
                break
        logger.info("%s: HTTP %d, retrying in %.2fs (try %d of %d)", service, status, delay, attempt + 1, max_tries)
        sleep(delay)
        waited += delay
    tries = attempt
    counted = f"{tries} {'try' if tries == 1 else 'tries'}, {waited:.1f}s waited{asked}"
    if last_status == 429:
        raise RateLimited(f"{service} is rate-limiting (HTTP 429 after {counted})",
                          rate_limit_hint or "retry later; the next searcher answers meanwhile",
                          tries=tries, waited_s=waited)
    raise LiteratureError(f"{service} answered HTTP {last_status} after {counted}: {last_detail}",
                          "retry later; the next searcher answers meanwhile")


# -- the fallback chain ----------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RateLimited):
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


def searchers_from_settings(settings: "Settings | None" = None, host: "PluginHost | None" = None,
                            order: Sequence[str] | None = None) -> list["Searcher"]:
    """The searchers named by `order`, else by the `searchers_order` setting, created with their
    `[searchers.NAME]` sections. A name no plugin provides is a PluginError."""
    from scientist_core.plugins import get_host
    from scientist_core.settings import load_settings

    settings = settings or load_settings()
    host = host or get_host()
    names = list(order or settings.searchers_order)
    return [host.create("searcher", name, settings.searchers) for name in names]
