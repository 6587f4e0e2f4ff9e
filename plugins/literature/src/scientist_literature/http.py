"""The one HTTP path the online searchers share.

`get_json(...)`: one try per `max_tries`, exponential backoff with jitter on 429 and 5xx answers, the server's
Retry-After honoured, never more than `max_wait_s` slept in all; a refused connection or a timeout fails at once
(retrying cannot help and the next searcher can). Secrets (API keys) never appear in messages: callers pass them
to be masked.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from scientist_core import Config, LiteratureError, SearchRateLimited, SearchUnavailable, parse_retry_after, redact

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger("scientist.literature")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class HTTPSearchConfig(Config):
    """Settings every online searcher shares: how long to wait, and how often to retry."""

    timeout_s: float = Field(20.0, gt=0, le=300, description="seconds to wait for one answer")
    max_tries: int = Field(3, ge=1, le=10, description="requests per search, the first included, on 429/5xx")
    max_wait_s: float = Field(30.0, ge=0, le=3600, description="most seconds slept between tries in one search")
    base_delay_s: float = Field(1.0, ge=0, le=60, description="first backoff delay without Retry-After")


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
        raise SearchRateLimited(f"{service} is rate-limiting (HTTP 429 after {counted})",
                          rate_limit_hint or "retry later; the next searcher answers meanwhile",
                          tries=tries, waited_s=waited)
    raise LiteratureError(f"{service} answered HTTP {last_status} after {counted}: {last_detail}",
                          "retry later; the next searcher answers meanwhile")
