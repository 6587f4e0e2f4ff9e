"""What a metric's name says: which way it improves, and whether it measures the machine rather than the method.
The experiments stage leaves timings out of its prompts by it; the paper's comparisons and checks use both."""

from __future__ import annotations

import re

_HIGHER_IS_BETTER = re.compile(r"tokens_per|per_s(ec(ond)?)?\b|throughput", re.IGNORECASE)
_LOWER_IS_BETTER = re.compile(r"step|time|loss|err|kl\b|kl_|divergence|perplexity|ppl|nll|mse|mae|bpc|bpd|"
                              r"latency|regret", re.IGNORECASE)
_HIGHER_IS_BETTER_TOO = re.compile(r"acc|f1|auc|precision|recall|bleu|rouge|psnr|ssim|reward|score|win",
                                   re.IGNORECASE)


def measures_time(metric: str) -> bool:
    """A timing or a speed (training_time, train_time_s, tokens_per_s): a measure of the machine and its load,
    not of the method; it differs between two runs of the same code, so no prompt shows it and no comparison of
    the paper's text rests on it (the results table still lists it)."""
    return bool(re.search(r"time|per_s|_s$|seconds|tokens_per|throughput|latency", metric, re.I))


def better_direction(metric: str) -> str | None:
    """"lower" or "higher": which way `metric` improves, judged by its name; None when the name does not say
    (steps and times to reach a target, losses, errors and divergences go down; accuracies and rates go up)."""
    if _HIGHER_IS_BETTER.search(metric):
        return "higher"
    if _LOWER_IS_BETTER.search(metric):
        return "lower"
    if _HIGHER_IS_BETTER_TOO.search(metric):
        return "higher"
    return None
