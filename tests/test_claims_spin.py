"""A scripted run whose only variant is worse than the baseline, written up by a model that spins it (hedged and
unhedged, in the title, the figure captions and the interpretation): the final paper says what the records say,
and no sentence of it calls the variant an improvement. And the free style's one round on the whole paper's
problems: the model sees them once, and what it keeps is removed by code."""

from __future__ import annotations

import re
import shutil

import pytest

from scientist_core.pipeline.context import RunOptions
from scientist_core.pipeline.run import start_run
from scientist_core.settings import load_settings
from scientist_paper.claims import claims_in  # the checker's own reading of a sentence's claims
from scientist_paper.results import compare_with_baseline, result_values
from scientist_core.pipeline.writeup import write_paper
from tests.pipeline_script import recorded_runs, script_full_run
from tests.test_writeup import (IDEA as WRITEUP_IDEA, RUNS, SECTIONS, make_ctx, needs_latex,  # noqa: F401
                                script_paper)

pytestmark = pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (make test installs it)")

IDEA = "single_unit"
SPIN_TITLE = "A Single Hidden Unit Improves Tiny Networks"
SPIN_CAPTION = "The single-unit network clearly outperforms the baseline on every dataset."
HEDGED = ("Unlike the baseline, which does not adapt, the single-unit network might improve the validation "
          "accuracy to \\result{run1.spirals.val_accuracy}.")
UNHEDGED = "The single-unit network outperforms the baseline and reduces the validation loss by 35\\%."


def figure_notes(call):
    files = dict.fromkeys(re.findall(r"[\w.-]+\.png", call.messages[-1].content))
    return {"figures": [{"file": name, "caption": SPIN_CAPTION} for name in files]}


def test_a_worse_variant_is_never_called_an_improvement(configured, plugin_host, fake_llm):
    script_full_run(fake_llm, ideas=(IDEA,), plan=(("a single hidden unit", {"hidden_size": 1}),))
    fake_llm.by_schema["Idea"][0]["Title"] = SPIN_TITLE
    fake_llm.by_schema["FigureNotes"].clear()
    fake_llm.answer("FigureNotes", figure_notes)
    fake_llm.answer("Motivation", {"latex": "Tiny networks are cheap to train, so their width is easy to study."})
    fake_llm.answer("Interpretation", *[{"latex": f"{HEDGED} {UNHEDGED}"}] * 4)  # it insists, round after round
    fake_llm.answer("NextSteps", {"latex": "Other widths would show where the accuracy recovers."})
    fake_llm.answer("RelatedWork", {"sentences": []})
    options = RunOptions(template="example", num_ideas=1, reflections=1, novelty_rounds=2, max_runs=1, max_tries=1,
                         citation_rounds=1, quick=True, writeup="structured")
    summary = start_run(load_settings(), plugin_host, options, report=lambda line: None)
    assert summary.ideas[0].paper, summary.ideas[0].problem

    runs = recorded_runs(summary.run_dir, IDEA)
    results = result_values(runs)
    accuracy = results["run1.spirals.val_accuracy"]
    comparison = compare_with_baseline(accuracy, results)
    assert not comparison.improvement  # the premise: the only variant is no better than the baseline

    latex = summary.run_dir / IDEA / "latex"
    parts = {path.name: path.read_text() for path in (latex / "generated").glob("*.tex")}
    title = (latex / "generated" / "title.txt").read_text()
    paper = "\n".join([title, *parts.values()])
    # the paper says what the records say of it, in code's words
    assert comparison.stated() in " ".join(parts["sec-results.tex"].split())
    # no spin survived: not the title, the captions, nor the hedged or the unhedged sentence
    for spin in (SPIN_TITLE, SPIN_CAPTION, "might improve", "outperforms the baseline", "35\\%"):
        assert spin not in paper
    for sentence in re.split(r"(?<=[.!?])\s+", " ".join(paper.split())):
        assert not claims_in(sentence, [("hidden", "size")]).get("better"), sentence
    # the pipeline checked the paper, stored the check, and the summary shows it
    check = summary.run_dir / IDEA / "check.json"
    assert check.is_file() and summary.ideas[0].check.startswith("check: ")
    problems = [call for call in fake_llm.history if call.schema is not None and call.schema.__name__ == "Review"]
    told = "automatic check of this paper" in problems[0].messages[-1].content
    assert told == (summary.ideas[0].check != "check: clean")


SPIN = "The larger learning rate clearly outperforms the baseline on every dataset."


@needs_latex
def test_the_free_style_sends_the_whole_papers_problems_back_once_then_removes_them(make_ctx, fake_llm):
    ctx, workspace, figures = make_ctx()
    script_paper(fake_llm, sections={"conclusion": f"{SECTIONS['conclusion']} {SPIN}"})
    insisted = f"{SECTIONS['conclusion']} {SPIN}"
    fake_llm.enqueue({"latex": insisted})  # the one round: the model keeps its claim

    result = write_paper(ctx, WRITEUP_IDEA, RUNS, figures)

    assert not fake_llm.replies
    rounds = [call for call in fake_llm.history if "Checking the whole paper" in call.messages[-1].content]
    assert len(rounds) == 1 and "cites no result of a run" in rounds[0].messages[-1].content
    assert SPIN in rounds[0].messages[-2].content  # the model saw its own text with the problem
    conclusion = (result.latex_dir / "generated" / "sec-conclusion.tex").read_text()
    assert "outperforms" not in conclusion and "Future work should vary the learning rate" in conclusion
    assert result.pdf_path is not None


def test_comparisons_said_in_several_words_are_claims_whatever_their_hedges():
    """A real main-job paper said "the quadratic beta schedule might be more suitable for circle, line and moons"
    where it was worse: a comparison in several words, hedged, is still a claim about the result."""
    knobs = [("beta", "schedule")]
    for sentence, claim in (("This suggests that the quadratic beta schedule might be more suitable for circle.",
                             "better"),
                            ("The wider denoiser is well suited to the moons data.", "better"),
                            ("It may perform poorly on dino due to its noise patterns.", "worse"),
                            ("The variant appears less effective on the line dataset.", "worse")):
        assert claims_in(sentence, knobs).get(claim), sentence
    assert not claims_in("The schedule was not more suitable for any dataset.", knobs).get("better")
