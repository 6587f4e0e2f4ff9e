"""What a small model's worst answers cannot do to a paper: repeat the prompt, write Markdown, say the same
paragraph in every section, move a knob the wrong way, invent data, call one seed's difference better, or leave
"This section could not be written." behind; and the structured style, where code writes what the records say.

The write-ups compile for real (skipped without LaTeX); the checks are also tested on their own.
"""

from __future__ import annotations

from scientist_core.models import DatasetResult, FinalInfo
from scientist_core.pipeline.context import RunRecord
from scientist_core.pipeline.writeup import write_paper
from scientist_paper.checks import SectionRules, check_section, record_terms, word_ngrams
from scientist_paper.latex import SECTIONS as PAPER_SECTIONS
from scientist_paper.repairs import drop_repeats, repair_section
from scientist_paper.results import Study, result_values, run_label, title_is_supported
from tests.test_writeup import (ABSTRACT, ADAM_KEY, IDEA, RULES, RUNS, SECTIONS, make_ctx, needs_latex,  # noqa: F401
                                pdf_text)

PARA = ("Small models loop, and this very paragraph about loops appears in every single part of the paper they "
        "write.")
MACHINE_LINE = "The machine every run used"
REFERENCES_LINE = "References you may cite"


def one_seed(index: int, changes: dict, accuracy: float, loss: float) -> RunRecord:
    """A run with one seed per dataset: means, no standard errors (the diffusion template's runs)."""
    results = FinalInfo(datasets={"spirals": DatasetResult(means={"val_accuracy": accuracy, "val_loss": loss})})
    return RunRecord(index=index, name=f"run_{index}", description=f"Variant {index}.", knob_changes=changes,
                     results=results)


ONE_SEED_RUNS = [one_seed(0, {}, 0.81, 0.44), one_seed(1, {"learning_rate": 0.03}, 0.87, 0.33),
                 one_seed(2, {"hidden_size": 8}, 0.60, 0.65)]
EXAMPLE_BASELINE = {"learning_rate": 0.01, "hidden_size": 32, "num_seeds": 1, "seed": 0, "steps": 1000}


def study(runs=ONE_SEED_RUNS) -> Study:
    return Study(runs, result_values(runs), EXAMPLE_BASELINE, "Tiny numpy MLP on 2-D toy data (spirals, XOR blobs, "
                 "circles); seconds per run on a CPU.", fixed=["num_seeds", "seed"], quick=["steps"],
                 facts={"cpu": "Some CPU", "cores": "2", "gpu": "none", "python": "3.11.7"})


def rules_for(runs, **extra) -> SectionRules:
    return SectionRules(**{"results": result_values(runs), "cite_keys": {ADAM_KEY}, "labels": {"tab:results"},
                           "run_names": {run.index: run_label(run) for run in runs}, "facts": {"gpu": "none"},
                           "allowed_numbers": {0.01, 0.03, 8.0, 32.0},
                           "knob_directions": study(runs).knob_directions(), **extra})


def generated(result) -> dict[str, str]:
    """The paper's generated LaTeX, by file name (abstract.tex, sec-method.tex, ...)."""
    return {path.name: path.read_text() for path in (result.latex_dir / "generated").glob("*.tex")}


def prompt_lines(call, start: str, count: int = 1) -> str:
    """`count` lines of the prompt a call sent, from the line starting with `start`: what a model recites."""
    lines = "\n".join(message.content for message in call.messages if message.role == "user").split("\n")
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    return "\n".join(lines[first:first + count])


# -- the checks, on their own ---------------------------------------------------------------------------

def test_the_method_of_the_structured_style_writes_each_knob_change_from_the_records():
    method = study().method()
    assert r"\item \emph{learning\_rate=0.03}: the learning rate (\texttt{learning\_rate}) raised from 0.01 to 0.03." \
        in method
    assert r"\item \emph{hidden\_size=8}: the hidden size (\texttt{hidden\_size}) lowered from 32 to 8." in method
    changed = Study(ONE_SEED_RUNS, {}, {"learning_rate": 0.01}, "x").changes(ONE_SEED_RUNS[2])
    assert [(c.name, c.direction) for c in changed] == [("hidden_size", "set")]  # no baseline value: no direction


def test_code_calls_a_single_seed_neither_better_nor_worse():
    results = study().results(["fig:val-accuracy"])
    assert "(better)" not in results and "(worse)" not in results
    assert "every run used a single seed, so none of the differences below is a clear one" in results
    assert (r"For its val accuracy: on spirals (\result{run1.spirals.val_accuracy} against "
            r"\result{run0.spirals.val_accuracy}) it was higher than the baseline's, from a single seed: no clear "
            "difference.") in results
    assert "it was lower than the baseline's, from a single seed: no clear difference" in results
    assert ("Every run used a single seed, so none of the 4 comparisons can tell a difference from seed noise: this "
            "study claims no difference from the baseline.") in study().abstract()
    assert "showed no clear difference from the baseline (one seed per run cannot show one)" in study().conclusion()
    assert "each trained with a single seed" in study().limitations()
    with_errors = study(RUNS).results()
    assert "higher (better) than the baseline's by more than two standard errors" in with_errors
    assert "but within two standard errors: no clear difference" in with_errors


def test_what_code_writes_passes_every_check_and_repeats_nothing():
    parts = study()
    texts = [parts.abstract(), parts.introduction(), parts.method(), parts.setup(), parts.results(),
             parts.limitations(), parts.conclusion()]
    rules = rules_for(ONE_SEED_RUNS, labels={section.label for section in PAPER_SECTIONS} | {"tab:results"})
    for text in texts:
        assert check_section(text, rules) == [], text
    assert drop_repeats(texts) == (texts, 0)
    assert r"\texttt{num\_seeds}=1 and \texttt{seed}=0" in parts.setup() and r"\EnvCores{} cores" in parts.setup()
    assert "Each run trains one seed per dataset, so no result has a standard error" in parts.setup()


def test_praise_and_findings_that_the_records_do_not_hold_are_caught_in_any_words():
    """Sentences of the main job's paper (seed 0, 1.5B model), moved to this study's knobs: with no clear
    improvement recorded, praise of a change is spin whatever metric it names; where no results belong, a finding
    in any words is result talk."""
    interpretation = rules_for(ONE_SEED_RUNS)
    for spin in ("Overall, the larger learning rate resulted in better performance on the toy data.",
                 "The learning rate provided a good balance between speed and accuracy.",
                 "A larger learning rate helped; the narrower network was worse."):
        assert [p.kind for p in check_section(spin, interpretation)] == ["spin"], spin
    assert [p.kind for p in check_section(  # seed 2 of the main job: the negation is of the second claim only
        "This suggests that the larger learning rate improves accuracy on spirals, while it does not improve it on "
        "circles.", interpretation)] == ["spin"]
    for fine in ("With one seed per run, no variant was clearly better than the baseline.",
                 f"Adam improves the step size of each coordinate \\citep{{{ADAM_KEY}}}.",
                 "A larger learning rate could speed up training."):
        assert check_section(fine, interpretation) == [], fine
    background = rules_for(ONE_SEED_RUNS, states_results=False)
    for talk in ("The larger learning rate resulted in lower validation losses and higher validation accuracies.",
                 "This suggests that the larger learning rate is more effective for toy data."):
        assert "result_talk" in [p.kind for p in check_section(talk, background)], talk
    assert check_section("The learning rate sets the size of each optimizer step.", background) == []


def test_the_background_of_the_structured_style_is_the_templates_own_account_of_each_changed_knob():
    notes = {"learning_rate": "step size of the optimizer", "hidden_size": "units per hidden layer.", "steps": "x"}
    text = Study(ONE_SEED_RUNS, result_values(ONE_SEED_RUNS), EXAMPLE_BASELINE, "x", knob_notes=notes).background()
    assert text == ("The variants change these settings of the experiment, as its code describes them:\n"
                    "\\begin{itemize}\n\\item the learning rate (\\texttt{learning\\_rate}): step size of the "
                    "optimizer; the baseline's value is 0.01.\n\\item the hidden size (\\texttt{hidden\\_size}): "
                    "units per hidden layer; the baseline's value is 32.\n\\end{itemize}\n")
    assert study().background() == ""  # no notes from the code: no Background


def test_a_sentence_copied_from_the_prompt_is_caught_and_removed():
    prompt = ("The runs (name each by what it changed, never by its number):\n- learning_rate=0.03: A larger "
              "learning rate.\nThe machine every run used (write the macros, not their values): \\EnvCPU (Some "
              "CPU)\nPlaced by code in the Results section (refer to them with \\ref):\nName runs by what they "
              "changed (for example \"the run with a larger learning rate\").")
    facts = ["A larger learning rate.", "learning_rate=0.03", "Some CPU"]
    rules = rules_for(RUNS, prompt_ngrams=frozenset(word_ngrams(prompt).difference(*map(word_ngrams, facts))))
    leak = ("Training is cheap. The machine every run used (write the macros, not their values): \\EnvCPU. "
            "Placed by code in the Results section, the table helps.")
    assert [p.kind for p in check_section(leak, rules)] == ["prompt_text", "prompt_text"]
    assert repair_section(leak, rules)[0] == "Training is cheap.\n"
    # the facts the prompt carried, and its quoted examples, may be restated
    assert check_section("The run with a larger learning rate was named learning\\_rate=0.03 in the table.",
                         rules) == []


def test_markdown_becomes_latex_or_goes():
    text = ("# Results\n\nThe runs differ.\n\n| run | accuracy |\n|---|---|\n| baseline | 0.812 |\n\n"
            "- the larger learning rate\n- the narrower layer\n\n```\nNothing here.\n```\n")
    assert [p.kind for p in check_section(text, RULES)].count("markdown") == 8  # heading, 3 rows, 2 bullets, 2 fences
    repaired, done = repair_section(text, RULES)
    assert repaired == ("The runs differ.\n\n\\begin{itemize}\n\\item the larger learning rate\n\\item the narrower "
                        "layer\n\\end{itemize}\n\nNothing here.\n")
    assert check_section(repaired, RULES) == [] and "Markdown" in done[0]


def test_a_knob_said_to_move_the_wrong_way_is_caught():
    rules = rules_for(RUNS)
    for wrong in ("We decreased the learning rate to 0.03 to speed up training.",
                  "A lower learning rate made the spirals easier.",
                  "The hidden size was increased to 8.",
                  "Decreasing the learning rate increased the loss."):
        assert [p.kind for p in check_section(wrong, rules)] == ["knob_direction"], wrong
    for right in ("We raised the learning rate to 0.03.", "The hidden size was lowered to 8.",
                  "Raising the learning rate lowered the loss.", "The learning rate went from 0.01 to 0.03."):
        assert check_section(right, rules) == [], right
    assert repair_section("Two runs. We decreased the learning rate. The end.", rules)[0] == "Two runs. The end.\n"


def test_a_term_nothing_recorded_is_caught_unless_a_cited_reference_has_it():
    rules = rules_for(RUNS, terms=record_terms(["Tiny numpy MLP on 2-D toy data", "L2 penalty"]),
                      cited_terms={ADAM_KEY: record_terms(["PointConv on 3D point clouds"])})
    assert [p.kind for p in check_section("It was also tested on the 3D moon dataset.", rules)] == ["unsupported_term"]
    assert check_section("Our 2D data, the 2nd variant and an L2 penalty are recorded; $x_3$ is math.", rules) == []
    assert check_section(f"Work on 3D point clouds \\citep{{{ADAM_KEY}}} is different.", rules) == []
    assert check_section(f"Work on 3D point clouds is different \\citep{{{ADAM_KEY}}}.", rules) == []


def test_a_verdict_the_records_do_not_hold_is_caught():
    rules = rules_for(ONE_SEED_RUNS)  # one seed: neither variant is clearly better or worse
    for wrong in ("The hidden size=8 variant was worse in val accuracy.",
                  "The larger learning rate improved the validation accuracy.",
                  "The hidden size=8 variant also had lower val accuracy and val loss compared to the baseline.",
                  "The hidden size variant performed worse than the baseline by 2 combined standard errors."):
        assert [p.kind for p in check_section(wrong, rules)] == ["contradiction"], wrong
    for right in (r"The \textbf{hidden size=8} variant showed no clear difference in the validation accuracy or "
                  "val loss compared to the baseline.",
                  "The hidden size=8 variant also showed no clear difference in these metrics.",
                  "The learning rate variant made no clear difference in validation loss.",
                  "A larger learning rate changed little; the narrower one was worse.",  # no metric named
                  "Both the learning rate and the hidden size changed the val loss.",    # no verdict, two runs
                  "The hidden size=8 variant had a lower val accuracy, without standard errors to judge it by.",
                  "Changing the hidden size could have significant implications for the val loss."):
        assert check_section(right, rules) == [], right
    assert check_section("The larger learning rate improved the validation accuracy.", rules_for(RUNS)) == []
    assert check_section("The hidden size=8 variant was worse in val accuracy.", rules_for(RUNS)) == []
    wrong = "The hidden size=8 variant showed no clear difference in the validation accuracy."
    assert [p.kind for p in check_section(wrong, rules_for(RUNS))] == ["contradiction"]


def test_a_title_naming_a_setting_no_run_changed_is_not_used():
    """Seed 4 of the main job: "Designing a low-dimensional denoising model with weight decay" when only the
    learning rate and the hidden size changed."""
    records = "an MLP denoiser on 2-D data; learning_rate hidden_size weight_decay steps; denoising"
    title = "Denoising with weight decay"
    assert title_is_supported(title, records)
    assert not title_is_supported(title, records, unchanged=["weight_decay", "steps"])
    assert title_is_supported("Denoising 2-D data", records, unchanged=["weight_decay", "steps"])


def test_a_setting_said_to_move_the_other_way_is_caught():
    """The fresh clone's paper: "changing the beta schedule from quadratic to linear" when the run changed it from
    linear to quadratic."""
    runs = [one_seed(0, {}, 0.81, 0.44), one_seed(1, {"beta_schedule": "quadratic"}, 0.80, 0.47)]
    moves = Study(runs, result_values(runs), {"beta_schedule": "linear"}, "x").knob_moves()
    assert moves == {"beta_schedule": frozenset({("linear", "quadratic")})}
    rules = rules_for(runs, knob_moves=moves)
    wrong = "In this study, we investigate how changing the beta schedule from quadratic to linear affects the samples."
    assert [p.kind for p in check_section(wrong, rules)] == ["knob_direction"]
    for right in ("We change the beta schedule from linear to quadratic.",
                  "A next study could move the beta schedule from quadratic to linear again."):
        assert check_section(right, rules) == [], right


def test_a_verdict_is_checked_on_each_dataset_the_sentence_names():
    """The fresh clone's paper: "lower evaluation loss on the circle, line, and moons datasets" when it was lower
    on circle only. A claim about named datasets must hold on each of them."""
    def two_datasets(index: int, changes: dict, spirals: float, circles: float) -> RunRecord:
        results = FinalInfo(datasets={"spirals": DatasetResult(means={"val_loss": spirals}),
                                      "circles": DatasetResult(means={"val_loss": circles})})
        return RunRecord(index=index, name=f"run_{index}", description="-", knob_changes=changes, results=results)

    runs = [two_datasets(0, {}, 0.44, 0.11), two_datasets(1, {"learning_rate": 0.03}, 0.33, 0.19)]
    rules = rules_for(runs)
    wrong = "The learning rate variant led to a lower validation loss on the spirals and circles datasets."
    problem, = check_section(wrong, rules)
    assert problem.kind == "contradiction" and "val_loss on circles" in problem.message
    for right in ("The learning rate variant led to a lower validation loss on the spirals dataset.",
                  "The learning rate variant led to a higher validation loss on circles.",
                  "The baseline had the lower validation loss on circles."):
        assert check_section(right, rules) == [], right
    # with one variant, a sentence that names no run speaks of it (seed 2 of the main job)
    problem, = check_section("The higher val loss on spirals shows the model did not fit it as well.", rules)
    assert problem.kind == "contradiction" and "val_loss on spirals" in problem.message


def test_a_part_that_states_no_results_keeps_none():
    quiet = rules_for(ONE_SEED_RUNS, states_results=False)  # a motivation, a background, next steps
    for talk in ("The baseline's val loss is lower than the other variants' for all datasets.",  # the 1.5B model's
                 "The baseline reaches \\result{run0.spirals.val_accuracy}.",
                 "Both variants had a worse validation accuracy."):
        assert [p.kind for p in check_section(talk, quiet)] == ["result_talk"], talk
        assert "result_talk" not in [p.kind for p in check_section(talk, rules_for(ONE_SEED_RUNS))]
    for fine in ("For each dataset we measure the val loss and the val accuracy.",
                 "A smaller hidden size could reduce the val loss.",
                 "Future work should test whether a schedule lowers the val loss."):
        assert check_section(fine, quiet) == [], fine


def test_one_seed_called_better_is_spin_in_every_style():
    claim = "The larger learning rate improved the accuracy to \\result{run1.spirals.val_accuracy}."
    assert [p.kind for p in check_section(claim, rules_for(ONE_SEED_RUNS))] == ["spin"]
    assert check_section(claim, rules_for(RUNS)) == []  # beyond two standard errors


def test_a_sentence_repeated_across_parts_is_kept_in_the_first_only():
    nearly = PARA.replace("very", "same")
    kept, dropped = drop_repeats([f"First part. {PARA}", f"{nearly} Second part has its own words here.",
                                  f"Third part.\n\n{PARA}"])
    assert kept == [f"First part. {PARA}", "Second part has its own words here.\n", "Third part.\n"]
    assert dropped == 2
    # the same words about other results are not repeats
    runs = [f"The variant reached \\result{{run{i}.spirals.val_accuracy}} on the spirals data in the end."
            for i in (1, 2)]
    assert drop_repeats(runs) == (runs, 0)


def test_the_title_names_what_was_run_and_a_model_title_must_hold_to_the_records():
    assert study().title() == "Changing the learning rate and the hidden size of Tiny numpy MLP on 2-D toy data"
    records = "DDPM with an MLP denoiser on 2-D point clouds (circle, dino, line, moons); learning_rate"
    assert not title_is_supported("Improving DDPM on 3D Point Clouds", records)
    assert not title_is_supported("DDPM on 3D Point Clouds", records)
    assert title_is_supported("Learning Rates of DDPM on 2-D Point Clouds", records)


# -- whole papers from the worst answers, compiled ---------------------------------------------------------

BAD = ("write the macros", "References you may cite", "What code wrote", "|", "**", "could not be written",
       "decreased the learning rate", "3D", "improved the accuracy", "# ")


def assert_clean(result) -> str:
    """The paper compiled and holds none of the bad answers' text; its text, flattened."""
    assert result.pdf_path is not None and result.pdf_path.is_file()
    for name, text in generated(result).items():
        for bad in BAD:
            assert bad not in text, (name, bad, text)
    text = " ".join(pdf_text(result.pdf_path)[0].split())
    assert text.count("appears in every single part") == 1 and "could not be written" not in text
    return text


@needs_latex
def test_the_free_style_keeps_none_of_the_worst_answers(make_ctx, fake_llm):
    ctx, workspace, figures = make_ctx(writeup_fix_rounds=0)

    def recited(call) -> dict:  # the setup with lines of its own prompt in it
        return {"latex": f"{SECTIONS['experimental-setup']}\n\n{prompt_lines(call, MACHINE_LINE)}\n"
                         f"{prompt_lines(call, REFERENCES_LINE, 2)}\n\n{PARA}"}
    worst = {
        "introduction": {"latex": f"{SECTIONS['introduction']}\n\n{PARA}"},
        "background": {"latex": "This section could not be written."},
        "method": {"latex": f"{SECTIONS['method']} We decreased the learning rate to speed up training.\n\n{PARA}"},
        "experimental-setup": recited,
        "results": {"latex": f"{SECTIONS['results']}\n\n| run | accuracy |\n|---|---|\n| baseline | 0.812 |\n\n"
                             f"**Spirals** are the hardest data here.\n\n{PARA}"},
        "conclusion": {"latex": f"{SECTIONS['conclusion']}\n\n{PARA}"},
        "related-work": {"latex": f"{SECTIONS['related-work']}\n\n{PARA}"},
    }
    fake_llm.enqueue({"title": "T", "abstract": ABSTRACT}, {"critique": "-", "title": "T", "abstract": ABSTRACT},
                     {"done": False, "query": "adam"}, {"indices": [1, 2]})
    for name in ("introduction", "background", "method", "experimental-setup", "results", "conclusion",
                 "related-work"):
        fake_llm.enqueue(worst[name], lambda call, answer=worst[name]: {
            "critique": "-", **(answer(call) if callable(answer) else answer)})

    result = write_paper(ctx, IDEA, RUNS, figures)

    assert not fake_llm.replies
    text = assert_clean(result)
    files = generated(result)
    assert PARA in files["sec-introduction.tex"] and "\\textbf{Spirals} are the hardest" in files["sec-results.tex"]
    assert "\\citep{kingma2015adam}" in files["sec-related-work.tex"] and "Related Work" in text
    assert files["sec-background.tex"].startswith("The variants change these settings")  # code's, from the records
    assert "the model gave no usable Background section: code wrote it from the records" in result.problems


@needs_latex
def test_the_structured_style_writes_the_records_and_keeps_only_checked_pieces(make_ctx, fake_llm):
    ctx, workspace, figures = make_ctx(writeup="structured", writeup_fix_rounds=0, quick=True)
    fake_llm.answer("CitationQuery", {"done": False, "query": "adam"})
    fake_llm.answer("CitationChoice", {"indices": [1, 2]})

    def motivation(call) -> dict:  # Markdown, and lines of its own prompt and of the citation round's
        return {"latex": "# Introduction\n\nChoosing the step size is the first question of training a small network. "
                         f"**Adam** adapts it per coordinate \\citep{{{ADAM_KEY}}}. A larger step makes faster "
                         "progress until the updates overshoot, and a narrower network has fewer units to fit a "
                         "curved boundary.\n\n"
                         f"{prompt_lines(fake_llm.history[0], MACHINE_LINE)}\n{prompt_lines(call, 'What code')}\n\n"
                         f"{PARA}"}

    fake_llm.answer("Motivation", motivation)
    fake_llm.answer("Interpretation", {"latex": (
        "Raising the learning rate improved the accuracy to \\result{run1.spirals.val_accuracy}. We decreased the "
        "learning rate to 0.03, which made training faster. The model was also tested on the 3D moon dataset. "
        "A narrower network has less capacity, which fits its lower accuracy on the intricate spirals. With one "
        "seed per run, the larger learning rate's gain may be noise rather than an effect. Neither change touched "
        "the data, so the differences come from optimisation and capacity alone.\n\n"
        f"| run | accuracy |\n|---|---|\n| baseline | 0.81 |\n\n{PARA}")})
    fake_llm.answer("NextSteps", {"latex": f"{PARA} Future work should try a schedule for the learning rate."})
    fake_llm.answer("RelatedWork", {"sentences": [
        {"key": ADAM_KEY, "sentence": "The results show that this change leads to a lower val loss but a higher "
                                      "val accuracy."},  # the 1.5B model: these runs' findings, as a reference's
        {"key": ADAM_KEY, "sentence": "Adam was used to train the model, which improved its performance on "
                                      "various datasets."},  # the same of every reference: refused
        {"key": "bengio2012practical", "sentence": "Deep architectures were used to train the model, which improved "
                                                   "its performance on various datasets."},
        {"key": "bengio2012practical", "sentence": "Bengio introduces a method for stochastic optimization of deep "
                                                   "architectures."},  # Adam's title in Bengio's sentence: refused
        {"key": "bengio2012practical", "sentence": "Bengio recommends tuning the learning rate first, as these "
                                                   "runs do one setting at a time."}]})

    result = write_paper(ctx, IDEA, ONE_SEED_RUNS, figures)

    assert not fake_llm.replies and len(fake_llm.history) == 2 + 4  # code writes the Background
    text = assert_clean(result)
    files = generated(result)
    assert files["sec-introduction.tex"].startswith(
        "Choosing the step size is the first question of training a small network. \\textbf{Adam} adapts it per "
        f"coordinate \\citep{{{ADAM_KEY}}}. A larger step makes faster progress until the updates overshoot, and a "
        f"narrower network has fewer units to fit a curved boundary.\n\n{PARA}\n\nThe starting point of this study "
        "is Tiny numpy MLP")
    assert r"the learning rate (\texttt{learning\_rate}) raised from 0.01 to 0.03" in files["sec-method.tex"]
    assert ("Each run trains one seed per dataset, so no result has a standard error" in
            files["sec-experimental-setup.tex"])
    assert r"quick mode, which shortens it: \texttt{steps}=1000 and \texttt{num\_seeds}=2." in \
        files["sec-experimental-setup.tex"]
    results = files["sec-results.tex"]
    assert "(better)" not in results and "from a single seed: no clear difference" in results
    # a comparison without the result it rests on: the whole paper's check removed it (claims.py)
    assert "A narrower network has less capacity" not in results and "the differences come from" in results
    assert files["sec-background.tex"].startswith("The variants change these settings of the experiment")
    assert "step size of the optimizer; the baseline's value is 0.01" in files["sec-background.tex"]
    assert results.rstrip().endswith("it says nothing about other models or data.")
    assert files["sec-related-work.tex"] == (
        f"\\citet{{{ADAM_KEY}}} studied \\emph{{Adam: A Method for Stochastic Optimization}}. Bengio recommends "
        "tuning the learning rate first, as these runs do one setting at a time \\citep{bengio2012practical}.\n")
    assert files["sec-conclusion.tex"].endswith("Future work should try a schedule for the learning rate.\n")
    assert "\\section{Background}" in files["body.tex"] and "Kingma" in text
    title = (result.latex_dir / "generated" / "title.txt").read_text().strip()
    assert title == ("Step Size and Width in Tiny Networks: changing the learning rate and the hidden size of Tiny "
                     "numpy MLP on 2-D toy data")


@needs_latex
def test_the_structured_style_without_references_leaves_related_work_out(make_ctx, fake_llm):
    ctx, workspace, figures = make_ctx(writeup="structured", citation_rounds=0, writeup_fix_rounds=0)
    assert not (ctx.template.files_dir() / "latex" / "references.bib").exists()  # nothing to cite at all
    for schema in ("Motivation", "Interpretation", "NextSteps"):
        fake_llm.answer(schema, {"latex": "Nothing usable."})
    idea = IDEA.model_copy(update={"title": "Tiny Networks on 3D Point Clouds", "experiment": "Raise the learning "
                                   "rate on 3D point clouds. Shrink the hidden layer."})

    result = write_paper(ctx, idea, ONE_SEED_RUNS, figures)

    files = generated(result)
    assert result.pdf_path is not None and files["sec-related-work.tex"].strip() == ""
    assert "\\section{Related Work}" not in files["body.tex"] and "\\section{Method}" in files["body.tex"]
    assert [call.schema.__name__ for call in fake_llm.history] == ["Motivation", "Interpretation", "NextSteps"]
    # an idea that says more than the records: not in the title, and its prompt keeps only what they hold
    title = (result.latex_dir / "generated" / "title.txt").read_text().strip()
    assert title == "Changing the learning rate and the hidden size of Tiny numpy MLP on 2-D toy data"
    prompts = [call.messages[-1].content for call in fake_llm.history]
    assert all("3D" not in prompt and "The idea behind these runs: Shrink the hidden layer." in prompt
               for prompt in prompts)


@needs_latex
def test_the_structured_related_work_says_nothing_it_says_of_every_reference(make_ctx, fake_llm):
    ctx, workspace, figures = make_ctx(writeup="structured", writeup_fix_rounds=0)
    fake_llm.answer("CitationQuery", {"done": False, "query": "adam"})
    fake_llm.answer("CitationChoice", {"indices": [1, 2]})
    for schema in ("Motivation", "Interpretation", "NextSteps"):
        fake_llm.answer(schema, {"latex": "Nothing usable."})
    said_of_each = "This research relates to the idea of generative models and deep learning."  # the 1.5B model's
    fake_llm.answer("RelatedWork", {"sentences": [
        {"key": ADAM_KEY,
         "sentence": f"Adam is a stochastic optimization method with a step per weight. {said_of_each}"},
        {"key": "bengio2012practical", "sentence": f"Bengio gives practical advice on choosing the learning rate. "
                                                   f"{said_of_each}"}]})

    result = write_paper(ctx, IDEA, ONE_SEED_RUNS, figures)

    assert generated(result)["sec-related-work.tex"] == (  # what is said of every reference is said of none
        f"Adam is a stochastic optimization method with a step per weight \\citep{{{ADAM_KEY}}}. "
        "Bengio gives practical advice on choosing the learning rate \\citep{bengio2012practical}.\n")


@needs_latex
def test_a_structured_paper_is_revised_after_a_review(make_ctx, fake_llm):
    ctx, workspace, figures = make_ctx(writeup="structured", writeup_fix_rounds=0, citation_rounds=0)
    for schema in ("Motivation", "Interpretation", "NextSteps"):
        fake_llm.answer(schema, {"latex": "Nothing usable."}, {"latex": "Nothing usable either."})
    first = write_paper(ctx, IDEA, ONE_SEED_RUNS, figures)

    improved = write_paper(ctx, IDEA, ONE_SEED_RUNS, figures, feedback='{"Weaknesses": ["one seed only"]}')

    assert first.pdf_path.is_file() and improved.pdf_path == workspace / f"{IDEA.name}-improved.pdf"
    assert "one seed only" in fake_llm.history[-1].messages[-1].content and not fake_llm.by_schema["NextSteps"]
    assert generated(improved)["sec-method.tex"] == generated(first)["sec-method.tex"]
