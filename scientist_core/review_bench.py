"""`scientist review-bench`: how well a reviewer's decisions and scores agree with human ones.

A dataset is a JSONL file (one paper per line) or a folder of per-paper JSON files (see docs/reviewer.md):

    {"id": "iclr22-0042", "pdf": "pdfs/0042.pdf", "decision": "Reject", "human_scores": [3, 5, 5, 6]}
    {"id": "toy-1", "text": "Title ... Abstract ...", "decision": "Accept"}

Each finished review is appended to a results file as soon as it exists, keyed by paper id and by the
reviewer's settings, so an interrupted benchmark resumes where it stopped and a rerun makes no model calls.
Metrics (accuracy, balanced accuracy, F1, ROC AUC from Overall, FPR, FNR, Pearson correlation of Overall
with the mean human score) come with percentile bootstrap 95% confidence intervals over papers. The
decision is re-derived from the stored Overall at the current threshold, so re-thresholding costs nothing.
Only the standard library is used.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from scientist_core.errors import ScientistError
from scientist_core.reviewer import ReviewResult

__all__ = [
    "BenchError", "BenchPaper", "BenchRecord", "Estimate", "METRICS", "ResultsFile", "accuracy",
    "balanced_accuracy", "bootstrap", "config_key", "f1_score", "false_negative_rate", "false_positive_rate",
    "load_dataset", "pearson", "roc_auc", "run_bench", "summarise",
]


class BenchError(ScientistError):
    """A benchmark dataset or results file cannot be used."""


# -- the dataset ------------------------------------------------------------------------------------------

class BenchPaper(BaseModel):
    """One labelled paper: its text (or a PDF to read it from), the human decision and scores."""

    id: str = Field(min_length=1)
    pdf: Path | None = Field(None, description="the paper's PDF; relative paths are relative to the dataset file")
    text: str | None = Field(None, description="the paper's text, instead of a PDF")
    decision: Literal["Accept", "Reject"]
    human_scores: list[float] = Field(default_factory=list, description="the human reviewers' Overall scores")
    title: str = ""

    @field_validator("decision", mode="before")
    @classmethod
    def _normalise_decision(cls, value: Any) -> Any:
        # OpenReview writes "Accept (Poster)", "Accept: oral", "Reject" ...
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered.startswith("accept"):
                return "Accept"
            if lowered.startswith("reject"):
                return "Reject"
        return value

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _one_source(self) -> "BenchPaper":
        if (self.pdf is None) == (self.text is None):
            raise ValueError('give exactly one of "pdf" and "text"')
        return self

    @property
    def accepted(self) -> bool:
        return self.decision == "Accept"

    @property
    def human_mean(self) -> float | None:
        return sum(self.human_scores) / len(self.human_scores) if self.human_scores else None

    def read_text(self) -> str:
        if self.text is not None:
            return self.text
        from scientist_core.pdf_text import paper_text

        assert self.pdf is not None
        return paper_text(self.pdf)


def _paper(obj: Any, base: Path, where: str, default_id: str | None = None) -> BenchPaper:
    if not isinstance(obj, dict):
        raise BenchError(f"{where}: expected a JSON object, found {type(obj).__name__}",
                         "see the dataset format in docs/reviewer.md")
    if default_id is not None:
        obj = {"id": default_id, **obj}
    try:
        paper = BenchPaper.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(record)"
        raise BenchError(f"{where}: {field}: {first['msg']}", "see the dataset format in docs/reviewer.md") from None
    if paper.pdf is not None and not paper.pdf.is_absolute():
        paper = paper.model_copy(update={"pdf": (base / paper.pdf)})
    return paper


def load_dataset(path: Path) -> list[BenchPaper]:
    """The papers of a JSONL file, or of a folder whose *.json files each hold one paper (id: file stem;
    without "pdf" or "text", the paper is the PDF or .txt file of the same stem beside it)."""
    path = Path(path)
    papers: list[BenchPaper] = []
    if path.is_file():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchError(f"{path}:{number} is not JSON ({exc.msg})",
                                 "write one JSON object per line (see docs/reviewer.md)") from None
            papers.append(_paper(obj, path.parent, f"{path}:{number}"))
    elif path.is_dir():
        for record in sorted(path.glob("*.json")):
            try:
                obj = json.loads(record.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise BenchError(f"{record} is not JSON ({exc.msg})", "fix or remove it") from None
            if isinstance(obj, dict) and "pdf" not in obj and "text" not in obj:
                for suffix in (".pdf", ".txt"):
                    if record.with_suffix(suffix).is_file():
                        obj = {**obj, "pdf": record.with_suffix(suffix).name}
                        break
            papers.append(_paper(obj, path, str(record), default_id=record.stem))
    else:
        raise BenchError(f"there is no dataset at {path}", "give a .jsonl file or a folder of .json records")
    if not papers:
        raise BenchError(f"the dataset {path} holds no paper", "see the dataset format in docs/reviewer.md")
    seen: set[str] = set()
    for paper in papers:
        if paper.id in seen:
            raise BenchError(f"the dataset {path} uses the id {paper.id!r} twice", "give every paper its own id")
        seen.add(paper.id)
    return papers


# -- results ----------------------------------------------------------------------------------------------

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
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()


def _fatal(exc: BaseException) -> bool:
    """Errors that no other paper would escape either: stop the benchmark rather than record them."""
    from scientist_core.chat import BudgetExceeded, LLMNotReady, NoModelConfigured

    return isinstance(exc, (BudgetExceeded, LLMNotReady, NoModelConfigured))


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


# -- metrics ------------------------------------------------------------------------------------------------

def _confusion(truth: Sequence[bool], predicted: Sequence[bool]) -> tuple[int, int, int, int]:
    tp = sum(1 for t, p in zip(truth, predicted) if t and p)
    fp = sum(1 for t, p in zip(truth, predicted) if not t and p)
    tn = sum(1 for t, p in zip(truth, predicted) if not t and not p)
    fn = sum(1 for t, p in zip(truth, predicted) if t and not p)
    return tp, fp, tn, fn


def accuracy(truth: Sequence[bool], predicted: Sequence[bool]) -> float | None:
    return sum(1 for t, p in zip(truth, predicted) if t == p) / len(truth) if truth else None


def balanced_accuracy(truth: Sequence[bool], predicted: Sequence[bool]) -> float | None:
    """The mean of the true positive and true negative rates; undefined without both classes."""
    tp, fp, tn, fn = _confusion(truth, predicted)
    if tp + fn == 0 or tn + fp == 0:
        return None
    return (tp / (tp + fn) + tn / (tn + fp)) / 2


def f1_score(truth: Sequence[bool], predicted: Sequence[bool]) -> float | None:
    """F1 of the Accept class."""
    tp, fp, tn, fn = _confusion(truth, predicted)
    return 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else None


def false_positive_rate(truth: Sequence[bool], predicted: Sequence[bool]) -> float | None:
    """Rejected papers the reviewer accepted, as a share of rejected papers."""
    tp, fp, tn, fn = _confusion(truth, predicted)
    return fp / (fp + tn) if (fp + tn) else None


def false_negative_rate(truth: Sequence[bool], predicted: Sequence[bool]) -> float | None:
    """Accepted papers the reviewer rejected, as a share of accepted papers."""
    tp, fp, tn, fn = _confusion(truth, predicted)
    return fn / (fn + tp) if (fn + tp) else None


def roc_auc(truth: Sequence[bool], scores: Sequence[float]) -> float | None:
    """The probability that an accepted paper scores above a rejected one (ties count half), from ranks."""
    positives = sum(1 for t in truth if t)
    negatives = len(truth) - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):  # tied scores share their mean rank (1-based)
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, t in zip(ranks, truth) if t)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's r; undefined for fewer than 2 pairs or a constant side."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


class Estimate(BaseModel):
    """A metric on all papers, with its bootstrap 95% interval (None where undefined)."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = Field(0, description="papers it was computed on")


# One reviewed paper: (accepted by humans, accepted by the reviewer, Overall, mean human score or None,
# two human scores drawn at random or None).
Row = tuple[bool, bool, int, float | None, tuple[float, float] | None]
Metric = Callable[[list[Row]], float | None]


def _decision_metric(fn: Callable[[Sequence[bool], Sequence[bool]], float | None]) -> Metric:
    return lambda rows: fn([r[0] for r in rows], [r[1] for r in rows]) if rows else None


def _auc(rows: list[Row]) -> float | None:
    return roc_auc([r[0] for r in rows], [r[2] for r in rows]) if rows else None


def _human_correlation(rows: list[Row]) -> float | None:
    scored = [r for r in rows if r[3] is not None]
    return pearson([r[2] for r in scored], [r[3] for r in scored])  # type: ignore[misc]


def _human_pair_correlation(rows: list[Row]) -> float | None:
    paired = [r[4] for r in rows if r[4] is not None]
    return pearson([p[0] for p in paired], [p[1] for p in paired])  # type: ignore[index]


METRICS: dict[str, Metric] = {
    "accuracy": _decision_metric(accuracy),
    "balanced_accuracy": _decision_metric(balanced_accuracy),
    "f1": _decision_metric(f1_score),
    "roc_auc": _auc,
    "fpr": _decision_metric(false_positive_rate),
    "fnr": _decision_metric(false_negative_rate),
    "human_correlation": _human_correlation,
    "human_pair_correlation": _human_pair_correlation,
}
METRIC_LABELS = {
    "accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "f1": "F1 (Accept)",
    "roc_auc": "ROC AUC (Overall)", "fpr": "false positive rate", "fnr": "false negative rate",
    "human_correlation": "r(Overall, mean human score)",
    "human_pair_correlation": "r(human, human), for reference",
}


def _percentile(sorted_values: list[float], q: float) -> float:
    position = (len(sorted_values) - 1) * q
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * (position - lower)


def bootstrap(rows: list[Row], metrics: dict[str, Metric], samples: int = 1000,
              seed: int = 0, level: float = 0.95) -> dict[str, tuple[float | None, float | None]]:
    """Percentile intervals: resample the papers with replacement `samples` times; resamples where a metric
    is undefined are left out of its interval (none left: None)."""
    rng = random.Random(seed)
    values: dict[str, list[float]] = {name: [] for name in metrics}
    n = len(rows)
    if n and samples:
        for _ in range(samples):
            resample = [rows[i] for i in rng.choices(range(n), k=n)]
            for name, metric in metrics.items():
                value = metric(resample)
                if value is not None:
                    values[name].append(value)
    tail = (1 - level) / 2
    intervals: dict[str, tuple[float | None, float | None]] = {}
    for name, found in values.items():
        found.sort()
        intervals[name] = (_percentile(found, tail), _percentile(found, 1 - tail)) if found else (None, None)
    return intervals


def _rows(records: Iterable[BenchRecord], threshold: int | None, seed: int) -> list[Row]:
    rng = random.Random(seed)
    rows: list[Row] = []
    for record in records:
        if not record.ok:
            continue
        assert record.overall is not None
        predicted = (record.llm_decision == "Accept") if threshold is None else record.overall >= threshold
        scores = record.human_scores
        mean = sum(scores) / len(scores) if scores else None
        pair = tuple(rng.sample(scores, 2)) if len(scores) >= 2 else None
        rows.append((record.decision == "Accept", predicted, record.overall, mean, pair))  # type: ignore[arg-type]
    return rows


def summarise(records: Iterable[BenchRecord], *, threshold: int | None = None, samples: int = 1000,
              seed: int = 0) -> dict[str, Any]:
    """Metrics with bootstrap intervals, counts and cost over the successful records."""
    records = list(records)
    rows = _rows(records, threshold, seed)
    intervals = bootstrap(rows, METRICS, samples=samples, seed=seed)
    metrics = {}
    for name, metric in METRICS.items():
        low, high = intervals[name]
        used = rows
        if name == "human_correlation":
            used = [r for r in rows if r[3] is not None]
        elif name == "human_pair_correlation":
            used = [r for r in rows if r[4] is not None]
        metrics[name] = Estimate(value=metric(rows), low=low, high=high, n=len(used)).model_dump()
    reviewed = [r for r in records if r.ok]
    count = len(reviewed)
    return {
        "papers": len(records),
        "reviewed": count,
        "failed": len(records) - count,
        "accepted_by_humans": sum(1 for r in rows if r[0]),
        "accepted_by_reviewer": sum(1 for r in rows if r[1]),
        "threshold": threshold,
        "bootstrap_samples": samples,
        "metrics": metrics,
        "cost_usd_total": sum(r.cost_usd for r in reviewed),
        "cost_usd_per_review": sum(r.cost_usd for r in reviewed) / count if count else None,
        "calls_per_review": sum(r.calls for r in reviewed) / count if count else None,
        "seconds_per_review": sum(r.seconds for r in reviewed) / count if count else None,
        "errors": {r.id: r.error for r in records if not r.ok},
    }
