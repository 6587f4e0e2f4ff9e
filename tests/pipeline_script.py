"""Scripted model answers for a whole `scientist run` on the example template, by schema.

Every answer is valid except where a test adds broken ones; each stage's schema gets its own queue so the
order of ideas, runs and sections does not matter.
"""

from __future__ import annotations

import itertools

GOOD_REVIEW = {
    "Summary": "The paper studies the width of a small MLP on toy data.", "Strengths": ["Clear setup."],
    "Weaknesses": ["Only toy data."], "Originality": 2, "Quality": 3, "Clarity": 3, "Significance": 2,
    "Questions": ["Does it hold with more seeds?"], "Limitations": ["Toy data only."], "Ethical Concerns": False,
    "Soundness": 3, "Presentation": 3, "Contribution": 2, "Overall": 5, "Confidence": 4, "Decision": "Reject",
}


def idea(name: str) -> dict:
    return {"Name": name, "Title": f"Study of {name.replace('_', ' ')}", "Interestingness": 6, "Feasibility": 9,
            "Novelty": 5, "Experiment": "Change the hidden size and the learning rate and compare validation accuracy."}


def section(metric: str) -> dict:
    """A section that uses recorded results through \\result, never typed numbers."""
    return {"latex": (f"We compare the baseline with the changed runs. The baseline reaches "
                      f"\\result{{run0.{metric}}}, and the wider network reaches \\result{{run1.{metric}}}.")}


DEFAULT_PLAN = (("double the hidden size", {"hidden_size": 64}),
                ("a tenth of the learning rate", {"learning_rate": 0.001}))


def script_full_run(fake_llm, ideas=("wider_hidden_layers", "slower_learning"), metric="spirals.val_accuracy",
                    plan=DEFAULT_PLAN) -> None:
    """Answers for ideas, novelty, the plan (`plan`: (description, knob changes) per run; by default hidden_size
    and learning_rate, knobs of the example and diffusion templates), captions, the paper (citing `metric` of runs
    0 and 1 through \\result) and the reviews."""
    fake_llm.answer("Idea", *[idea(name) for name in ideas])
    fake_llm.answer("IdeaReflection", *[{"idea": idea(name), "done": True} for name in ideas] * 3)
    for _ in ideas:
        fake_llm.answer("NoveltyStep",
                        {"thought": "look it up", "action": "search", "query": "neural network width"},
                        {"thought": "nothing does this", "action": "novel", "query": ""})
    fake_llm.answer("NoveltyDecision", *[{"thought": "nothing does this", "novel": True}] * len(ideas))
    fake_llm.answer("ExperimentPlan", *[{"runs": [
        {"description": description, "knob_changes": changes, "code_change": ""} for description, changes in plan
    ]}] * len(ideas))
    fake_llm.answer("FigureNotes", *[lambda call: {"figures": []}] * len(ideas))
    fake_llm.answer("TitleAbstract", *[{"title": "Wider MLPs on toy data",
                                        "abstract": f"We widen a small MLP; see \\result{{run1.{metric}}}."}] * 4)
    fake_llm.answer("TitleAbstractRevision", *[{"critique": "ok", "title": "Wider MLPs on toy data",
                                                "abstract": "We widen a small MLP and measure accuracy."}] * 4)
    fake_llm.answer("SectionText", *[section(metric)] * 40)
    fake_llm.answer("SectionRevision", *[{"critique": "Fine.", **section(metric)}] * 40)
    fake_llm.answer("CitationQuery", *itertools.chain.from_iterable(
        [{"done": False, "query": "Adam: A Method for Stochastic Optimization"}, {"done": True, "query": ""}]
        for _ in range(4)))
    fake_llm.answer("CitationChoice", *[{"indices": [1]}] * 8)
    fake_llm.answer("Review", *[GOOD_REVIEW] * 20)
    fake_llm.answer("MetaReviewText", *[{k: GOOD_REVIEW[k] for k in
                                         ("Summary", "Strengths", "Weaknesses", "Questions", "Limitations")}] * 4)
    fake_llm.answer("ReviewRevision", *[{"Critique": "none", "Review": GOOD_REVIEW, "Done": True}] * 8)


def recorded_runs(run_dir, idea_name: str) -> list:
    """The RunRecords the experiments stage of `idea_name` saved (baseline first), as the write-up got them."""
    from pydantic import TypeAdapter

    from scientist_core.pipeline.context import RunRecord, checkpoint_file

    saved = checkpoint_file(run_dir, f"experiments:{idea_name}").read_bytes()
    return TypeAdapter(list[RunRecord]).validate_json(saved)
