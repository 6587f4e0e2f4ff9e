"""What a comparison may say: nothing is clear from one seed, a difference is clear beyond 2 combined standard errors
of two seeds or more, a deterministic template compares exactly; which way a metric improves comes from its
template's declaration (the name only as a fallback, with a warning); and the paper says so, table and prose."""

from __future__ import annotations

import logging


from scientist_core import DatasetResult, FinalInfo, Metric, Template, resolve_metric
from scientist_core.pipeline.context import RunRecord
from scientist_core.pipeline.writeup import write_paper
from scientist_paper.results import compare_with_baseline, result_values, results_table_tex
from tests.test_writeup import IDEA, make_ctx, needs_latex, pdf_text  # noqa: F401


def record(index: int, changes: dict, means: dict[str, float], stderrs: dict[str, float] | None = None,
           n: int | None = None, dataset: str = "spirals") -> RunRecord:
    result = DatasetResult(means=means, stderrs=stderrs or {}, n=n)
    return RunRecord(index=index, name=f"run_{index}", description=f"Variant {index}.", knob_changes=changes,
                     results=FinalInfo(datasets={dataset: result}))


def compared(base: RunRecord, run: RunRecord, key: str = "run1.spirals.val_accuracy", **declarations):
    values = result_values([base, run], **declarations)
    return compare_with_baseline(values[key], values)


# -- the rules of a comparison ----------------------------------------------------------------------------------

def test_one_seed_on_either_side_makes_nothing_clear_whatever_the_gap():
    base = record(0, {}, {"val_accuracy": 0.50}, n=1)
    for run in (record(1, {"lr": 1}, {"val_accuracy": 0.99}, n=1), record(1, {"lr": 1}, {"val_accuracy": 0.01}, n=1),
                record(1, {"lr": 1}, {"val_accuracy": 0.99}, {"val_accuracy": 0.001}, n=3)):
        comparison = compared(base, run)
        assert not comparison.clear and not comparison.improvement and not comparison.worse, run
        assert "from a single seed: no clear difference" in comparison.stated()
        assert "(better)" not in comparison.describe() and "(worse)" not in comparison.describe()


def test_a_standard_error_of_zero_from_one_seed_is_no_standard_error():
    """What the templates used to write for one seed (stderr 0.0), with n or in an older file without it."""
    for n in (1, None):
        base = record(0, {}, {"val_accuracy": 0.8123}, {"val_accuracy": 0.0}, n=n)
        run = record(1, {"lr": 1}, {"val_accuracy": 0.8131}, {"val_accuracy": 0.0}, n=n)
        values = result_values([base, run])
        assert "run0.spirals.val_accuracy.stderr" not in values and values["run0.spirals.val_accuracy"].n == 1
        assert not compare_with_baseline(values["run1.spirals.val_accuracy"], values).clear
        table = results_table_tex([base, run], values)
        assert r"$\pm$" not in table and r"\result{run0.spirals.val_accuracy} & 1 \\" in table


def test_two_seeds_or_more_are_clear_only_beyond_two_combined_standard_errors():
    base = record(0, {}, {"val_accuracy": 0.80}, {"val_accuracy": 0.01}, n=3)
    clear = compared(base, record(1, {"lr": 1}, {"val_accuracy": 0.83}, {"val_accuracy": 0.01}, n=3))
    assert clear.clear and clear.improvement and clear.proven and not clear.worse
    assert clear.stated() == "higher (better) than the baseline's by more than two standard errors"
    within = compared(base, record(1, {"lr": 1}, {"val_accuracy": 0.82}, {"val_accuracy": 0.01}, n=3))
    assert not within.clear and not within.improvement  # 0.02 < 2 * sqrt(0.01^2 + 0.01^2) = 0.028
    worse = compared(base, record(1, {"lr": 1}, {"val_accuracy": 0.70}, {"val_accuracy": 0.02}, n=2))
    assert worse.worse and not worse.improvement and "(worse)" in worse.stated()
    unknown = compared(base, record(1, {"lr": 1}, {"val_accuracy": 0.90}, n=3))  # n=3 but no stderr written
    assert not unknown.clear and "without a recorded standard error" in unknown.stated()
    older = compared(record(0, {}, {"val_accuracy": 0.80}, {"val_accuracy": 0.01}),  # no n, positive stderrs
                     record(1, {"lr": 1}, {"val_accuracy": 0.90}, {"val_accuracy": 0.01}))
    assert older.improvement


def test_a_deterministic_template_compares_exactly():
    base, run = record(0, {}, {"val_accuracy": 0.8123}, n=1), record(1, {"lr": 1}, {"val_accuracy": 0.8131}, n=1)
    exact = compared(base, run, deterministic=True)
    assert exact.clear and exact.improvement and "exactly" in exact.stated()
    same = compared(base, record(1, {"lr": 1}, {"val_accuracy": 0.8123}, n=1), deterministic=True)
    assert same.direction == "same" and not same.clear



def test_integer_metrics_stay_integers_and_a_deterministic_one_shows_no_plus_minus():
    """Counts (a peak day, steps to a target) print as 25, not 25.0; a deterministic template records one value
    per run and its table cell is that value alone."""
    base = record(0, {}, {"outbreak_peak_day": 25.0, "peak_infected": 0.1234}, n=1)
    run = record(1, {"lockdown_days": 60}, {"outbreak_peak_day": 31.0, "peak_infected": 0.0987}, n=1)
    values = result_values([base, run], deterministic=True)
    assert (values["run0.spirals.outbreak_peak_day"].plain, values["run1.spirals.outbreak_peak_day"].plain) == \
        ("25", "31")
    assert values["run0.spirals.peak_infected"].plain == "0.123"
    table = results_table_tex([base, run], values)
    assert r"\pm" not in table and r"\result{run1.spirals.outbreak_peak_day} &" in table

# -- which way a metric improves ----------------------------------------------------------------------------------

def test_a_declared_metric_is_compared_by_its_declaration_and_an_undeclared_one_by_its_name_with_a_warning(caplog):
    """A third-party epidemic template: the name `infected_peak_day` says nothing; declared, lower is better."""
    base = record(0, {}, {"infected_peak_day": 40.0}, {"infected_peak_day": 0.5}, n=4)
    later = record(1, {"distancing": 0.5}, {"infected_peak_day": 30.0}, {"infected_peak_day": 0.5}, n=4)
    key = "run1.spirals.infected_peak_day"
    with caplog.at_level(logging.WARNING, logger="scientist.metrics"):
        guessed = compared(base, later, key)
        compared(base, later, key)
    warnings = [r.getMessage() for r in caplog.records if "infected_peak_day" in r.getMessage()]
    assert len(warnings) == 1 and "declare it" in warnings[0]  # once per metric
    assert guessed.clear and guessed.better is None and not guessed.improvement and not guessed.worse
    caplog.clear()
    declared = {"infected_peak_day": Metric(direction="lower", unit="days", description="day of the peak")}
    with caplog.at_level(logging.WARNING, logger="scientist.metrics"):
        comparison = compared(base, later, key, metrics=declared)
    assert comparison.improvement and "lower (better)" in comparison.stated() and caplog.records == []
    # the declaration wins over the name too: a "score" that should be low
    assert resolve_metric("penalty_score", {"penalty_score": Metric(direction="lower")}).direction == "lower"
    assert resolve_metric("val_accuracy").direction == "higher"  # the fallback


def test_a_templates_metrics_and_determinism_default_to_none_declared():
    assert Template.metrics == {} and Template.deterministic is False


# -- the paper: one seed claims nothing, three seeds with a real effect do ------------------------------------------

def study_runs(seeds: int) -> list[RunRecord]:
    """The baseline, a larger learning rate that is better and a narrower layer that is worse, by far; with one
    seed as the templates used to write it (stderr 0.0), or with `seeds` seeds and their standard errors."""
    def one(index: int, changes: dict, accuracy: float, loss: float, se: float) -> RunRecord:
        stderrs = {"val_accuracy": se, "val_loss": se} if seeds > 1 else {"val_accuracy": 0.0, "val_loss": 0.0}
        return record(index, changes, {"val_accuracy": accuracy, "val_loss": loss}, stderrs, n=seeds)

    return [one(0, {}, 0.80, 0.45, 0.01), one(1, {"learning_rate": 0.03}, 0.90, 0.30, 0.01),
            one(2, {"hidden_size": 8}, 0.60, 0.70, 0.02)]


CLAIM = "Raising the learning rate improved the accuracy to \\result{run1.spirals.val_accuracy}."


def write(make_ctx, fake_llm, seeds: int):
    ctx, workspace, figures = make_ctx(writeup="structured", citation_rounds=0, writeup_fix_rounds=0)
    fake_llm.answer("Motivation", {"latex": "Choosing the step size is the first question of training."})
    fake_llm.answer("Interpretation", {"latex": CLAIM})
    fake_llm.answer("NextSteps", {"latex": "Future work should try a schedule for the learning rate."})
    result = write_paper(ctx, IDEA, study_runs(seeds), figures)
    assert result.pdf_path is not None and result.pdf_path.is_file()
    files = {path.name: path.read_text() for path in (result.latex_dir / "generated").glob("*.tex")}
    return files, " ".join(pdf_text(result.pdf_path)[0].split())


@needs_latex
def test_with_one_seed_the_table_shows_n_1_and_the_paper_claims_no_difference(make_ctx, fake_llm):
    files, text = write(make_ctx, fake_llm, seeds=1)
    table = files["results-table.tex"]
    assert r"& n \\" in table and r"\result{run0.spirals.val_loss} & 1 \\" in table and r"$\pm$" not in table
    assert "±" not in text and "0.000" not in text
    assert ("Every run used a single seed, so none of the 4 comparisons can tell a difference from seed noise: "
            "this study claims no difference from the baseline.") in files["abstract.tex"]
    assert "Each run trains one seed per dataset" in files["sec-experimental-setup.tex"]
    assert "(better)" not in files["sec-results.tex"] and "(worse)" not in files["sec-results.tex"]
    assert CLAIM not in files["sec-results.tex"]  # the model's "improved" from one seed is spin: removed
    conclusion = files["sec-conclusion.tex"]
    assert conclusion.count("showed no clear difference from the baseline (one seed per run cannot show one)") == 2
    assert "better" not in conclusion and "worse" not in conclusion


@needs_latex
def test_with_three_seeds_and_a_real_effect_the_paper_says_better_and_worse(make_ctx, fake_llm):
    files, text = write(make_ctx, fake_llm, seeds=3)
    table = files["results-table.tex"]
    assert r"\result{run1.spirals.val_loss} $\pm$ \result{run1.spirals.val_loss.stderr} & 3 \\" in table
    assert "±" in text
    assert ("Of the 4 comparisons, 2 are better than the baseline by more than two standard errors, 2 are worse, "
            "and 0 show no clear difference.") in files["abstract.tex"]
    assert "Each run trains 3 seeds per dataset" in files["sec-experimental-setup.tex"]
    assert CLAIM in files["sec-results.tex"]  # a real improvement may be called one
    conclusion = files["sec-conclusion.tex"]
    assert (r"The \emph{learning\_rate=0.03} variant was clearly better than the baseline in val accuracy on spirals "
            r"(\result{run1.spirals.val_accuracy}) and val loss on spirals (\result{run1.spirals.val_loss}).") \
        in conclusion
    assert (r"The \emph{hidden\_size=8} variant was worse in val accuracy on spirals "
            r"(\result{run2.spirals.val_accuracy}) and val loss on spirals (\result{run2.spirals.val_loss}).") \
        in conclusion
