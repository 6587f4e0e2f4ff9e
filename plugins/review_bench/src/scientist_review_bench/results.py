"""Reviewing a benchmark's papers into an append-only results file, so an interrupted benchmark resumes.

Each finished review is appended as soon as it exists, keyed by paper id and by the reviewer's settings, so
a rerun makes no model calls. The threshold is not part of the key: decisions are re-derived from the stored
Overall, so re-thresholding costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from scientist_core import ReviewResult, ScientistError

from scientist_review_bench.dataset import BenchPaper


class BenchRecord(BaseModel):
    """One line of the results file: a paper's review (or why there is none)."""

    id: str
    config_key: str
    decision: Literal["Accept", "Reject"]
    human_scores: list[float] = Field(default_factory=list)
    overall: int | None = None
    llm_decision: Literal["Accept", "Reject"] | None = None
    result: ReviewResult | None = None
    error: str | None = None
    cost_usd: float = 0.0
    calls: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.overall is not None and self.error is None


def config_key(reviewer_name: str, model: str, config: dict[str, Any]) -> str:
    """What makes two reviews comparable: the reviewer, the model and its settings (the threshold aside,
    since decisions are re-derived from Overall)."""
    settings = {key: value for key, value in config.items() if key != "threshold"}
    blob = json.dumps({"reviewer": reviewer_name, "model": model, "config": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ResultsFile:
    """An append-only JSONL of BenchRecords; the last record of a paper under a config key wins."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def records(self, key: str) -> dict[str, BenchRecord]:
        found: dict[str, BenchRecord] = {}
        if not self.path.is_file():
            return found
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = BenchRecord.model_validate_json(line)
            except ValidationError:
                # an interrupted write leaves a partial last line; that paper is simply reviewed again
                continue
            if record.config_key == key:
                found[record.id] = record
        return found

    def append(self, record: BenchRecord) -> None:
        line = record.model_dump_json(by_alias=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+b") as handle:
                if handle.tell():  # a write cut short (a full disk, a kill) leaves a partial line: end it first
                    handle.seek(-1, 2)
                    line = line if handle.read(1) == b"\n" else "\n" + line
                handle.write(line.encode("utf-8"))
                handle.flush()


def _fatal(exc: BaseException) -> bool:
    """Errors that no other paper would escape either: stop the benchmark rather than record them (a run store
    that cannot be written, e.g. on a full disk, would leave every further paper's calls paid and unrecorded)."""
    from scientist_core import BudgetExceeded, LLMNotReady, NoModelConfigured, PathError, StoreError

    return isinstance(exc, (BudgetExceeded, LLMNotReady, NoModelConfigured, PathError, StoreError))


def run_bench(papers: Sequence[BenchPaper], review: Callable[[str], ReviewResult], results: ResultsFile, key: str,
              *, threshold: int | None = None, jobs: int = 1,
              on_done: Callable[[BenchRecord], None] | None = None) -> dict[str, BenchRecord]:
    """Review the papers not yet in `results` under `key` (earlier failures are retried), `jobs` at a time.

    `review(text)` reviews one paper's text. Each record is appended as it finishes; `on_done` is told too.
    Returns every paper's record under `key`, cached ones included."""
    done = {pid: r for pid, r in results.records(key).items() if r.ok}
    todo = [p for p in papers if p.id not in done]

    def one(paper: BenchPaper) -> BenchRecord:
        base = {"id": paper.id, "config_key": key, "decision": paper.decision, "human_scores": paper.human_scores}
        try:
            result = review(paper.read_text())
        except ScientistError as exc:
            if _fatal(exc):
                raise
            return BenchRecord(**base, error=exc.one_line())
        overall = result.review.overall
        decision = result.review.decision if threshold is None else ("Accept" if overall >= threshold else "Reject")
        return BenchRecord(**base, overall=overall, llm_decision=decision, result=result,
                           cost_usd=result.usage.cost_usd, calls=result.calls, seconds=result.seconds)

    def finish(record: BenchRecord) -> None:
        results.append(record)
        done[record.id] = record
        if on_done is not None:
            on_done(record)

    if jobs <= 1:
        for paper in todo:
            finish(one(paper))
    else:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="review-bench") as pool:
            futures = [pool.submit(one, paper) for paper in todo]
            try:
                for future in as_completed(futures):
                    finish(future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    order = {p.id: i for i, p in enumerate(papers)}
    return {pid: done[pid] for pid in sorted(done, key=lambda pid: order.get(pid, len(order))) if pid in order}
