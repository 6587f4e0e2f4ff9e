"""How well a reviewer's decisions and scores agree with human ones, with bootstrap 95% intervals.

Accuracy, balanced accuracy, F1, ROC AUC from Overall, FPR, FNR, and the Pearson correlation of Overall with
the mean human score, each with a percentile bootstrap interval over papers: plain Python arithmetic, no numpy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from scientist_review_bench.results import BenchRecord


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
