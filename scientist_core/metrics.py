"""What the core knows of a metric: which way it improves, its unit, and whether it measures the machine (a timing)
rather than the method. A template declares its metrics (`Template.metrics`, a `Metric` each); `resolve_metric`
reads a declaration, and guesses from the name only for a metric its template did not declare, with a warning.
The experiments stage leaves timings out of its prompts by it; the paper's comparisons, table and checks use it."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger("scientist.metrics")

_HIGHER_IS_BETTER = re.compile(r"tokens_per|per_s(ec(ond)?)?\b|throughput", re.IGNORECASE)
_LOWER_IS_BETTER = re.compile(r"step|time|loss|err|kl\b|kl_|divergence|perplexity|ppl|nll|mse|mae|bpc|bpd|"
                              r"latency|regret", re.IGNORECASE)
_HIGHER_IS_BETTER_TOO = re.compile(r"acc|f1|auc|precision|recall|bleu|rouge|psnr|ssim|reward|score|win",
                                   re.IGNORECASE)


class Metric(BaseModel):
    """A template's declaration of one metric of its final_info.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    direction: Literal["lower", "higher"] | None = Field(
        description="which way the metric improves; None: neither (a count, a diagnostic)")
    unit: str = Field("", description="its unit as a reader writes it (\"s\", \"bits\"); empty: none")
    description: str = Field("", description="what it measures, in a few words")
    timing: bool = Field(False, description="a wall-clock time or a speed: a measure of the machine and its load, "
                                            "not of the method, so no comparison of the paper's text rests on it")


def measures_time(metric: str) -> bool:
    """The name-based guess of `Metric.timing` (training_time, train_time_s, tokens_per_s): a timing or a speed."""
    return bool(re.search(r"time|per_s|_s$|seconds|tokens_per|throughput|latency", metric, re.I))


def better_direction(metric: str) -> str | None:
    """The name-based guess of `Metric.direction`: "lower" or "higher", None when the name does not say (steps and
    times to reach a target, losses, errors and divergences go down; accuracies and rates go up)."""
    if _HIGHER_IS_BETTER.search(metric):
        return "higher"
    if _LOWER_IS_BETTER.search(metric):
        return "lower"
    if _HIGHER_IS_BETTER_TOO.search(metric):
        return "higher"
    return None


_WARNED: set[str] = set()


def resolve_metric(name: str, declared: Mapping[str, Metric] | None = None) -> Metric:
    """`name`'s declaration in `declared` (a template's `metrics`); for an undeclared metric, what its name
    suggests, with a warning (once per metric and process) asking its template to declare it."""
    if declared and name in declared:
        return declared[name]
    if name not in _WARNED:
        _WARNED.add(name)
        guess = better_direction(name)
        logger.warning("metric %r is not declared by its template: %s; declare it in the template's `metrics`",
                       name, f"guessed from its name that {guess} is better" if guess else
                       "its name does not say which way is better, so no result of it is called better or worse")
    return Metric(direction=better_direction(name), timing=measures_time(name))
