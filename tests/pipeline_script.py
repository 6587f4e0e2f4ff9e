"""Scripted model answers for a whole `scientist run` on the example template, through the public harness
(scientist_core.testing's Script): every answer is valid except where a test adds broken ones; each stage's reply
kind gets its own queue so the order of ideas, runs and sections does not matter."""

from __future__ import annotations

from scientist_core.testing import Script, recorded_runs

__all__ = ["DEFAULT_PLAN", "GOOD_REVIEW", "recorded_runs", "script_full_run"]

GOOD_REVIEW = Script().review().by_schema["Review"][0]

DEFAULT_PLAN = (("double the hidden size", {"hidden_size": 64}),
                ("a tenth of the learning rate", {"learning_rate": 0.001}))


def script_full_run(fake_llm, ideas=("wider_hidden_layers", "slower_learning"), metric="spirals.val_accuracy",
                    plan=DEFAULT_PLAN) -> None:
    """Every answer of a run of the example template (`plan`: (description, knob changes) per run; by default
    hidden_size and learning_rate, knobs of the example and diffusion templates), citing `metric` of runs 0 and 1,
    queued by reply kind on `fake_llm`: a Script, or anything with its `answer(kind, *replies)` (a loopback
    server's queues)."""
    for kind, replies in Script().full_run(ideas=ideas, metric=metric, plan=plan).by_schema.items():
        fake_llm.answer(kind, *replies)
