"""The write-up: a scripted model writes the prose; code checks it, places the numbers, and compiles for real.

Full write-ups run latexmk, pdflatex, bibtex and chktex (skipped where they are not installed); the checks of
scientist_paper are tested on their own, without a compiler or a model.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import uuid
import zlib
from pathlib import Path

import pytest

from scientist_core.hookspecs import hookimpl
from scientist_core.metrics import better_direction
from scientist_core.models import DatasetResult, FinalInfo, Idea, Paper
from scientist_core.errors import SandboxError
from scientist_core.pipeline.context import Figure, RunContext, RunOptions, RunRecord, configured_plugin
from scientist_core.pipeline.machine import machine_facts
from scientist_core.pipeline.writeup import write_paper
from scientist_core.plugins import PluginInfo
from scientist_core.searcher import Searcher
from scientist_core.settings import SandboxSettings, load_settings
from scientist_core.store import Store
from scientist_core.writer import WriteupResult
from scientist_paper.checks import SectionRules, check_section, normalize_text
from scientist_paper.repairs import plain_text_section, repair_section
from scientist_paper.results import meta_tex, result_values, results_table_tex, run_label
from scientist_paper.writer import preflight_latex
from scientist_sandbox import runner as sandbox_runner

needs_latex = pytest.mark.skipif(shutil.which("latexmk") is None or shutil.which("chktex") is None,
                                 reason="needs latexmk, pdflatex and chktex (scripts/system-packages.txt)")

IDEA = Idea(name="learning_rate_study", title="Step Size and Width in Tiny Networks",
            experiment="Raise the learning_rate knob to 0.03 and, separately, shrink hidden_size to 8.",
            interestingness=5, feasibility=9, novelty=4)


def run(index: int, description: str, changes: dict, values: dict[str, dict[str, tuple[float, float]]]) -> RunRecord:
    datasets = {name: DatasetResult(means={m: v for m, (v, _) in metrics.items()},
                                    stderrs={m: s for m, (_, s) in metrics.items()})
                for name, metrics in values.items()}
    return RunRecord(index=index, name=f"run_{index}", description=description, knob_changes=changes,
                     results=FinalInfo(datasets=datasets))


RUNS = [
    run(0, "Baseline", {}, {"spirals": {"val_accuracy": (0.8123, 0.0112), "val_loss": (0.4417, 0.0203)},
                            "circles": {"val_accuracy": (0.9650, 0.0040), "val_loss": (0.1102, 0.0100)}}),
    run(1, "A larger learning rate.", {"learning_rate": 0.03},
        {"spirals": {"val_accuracy": (0.8731, 0.0098), "val_loss": (0.3312, 0.0150)},
         "circles": {"val_accuracy": (0.9700, 0.0050), "val_loss": (0.0951, 0.0080)}}),
    run(2, "A narrower hidden layer.", {"hidden_size": 8},
        {"spirals": {"val_accuracy": (0.6012, 0.0211), "val_loss": (0.6521, 0.0190)},
         "circles": {"val_accuracy": (0.9425, 0.0060), "val_loss": (0.1633, 0.0110)}}),
]

ADAM = Paper(title="Adam: A Method for Stochastic Optimization", authors=["Diederik P. Kingma", "Jimmy Ba"],
             year=2015, venue="International Conference on Learning Representations",
             abstract="An algorithm for first-order gradient-based optimization of stochastic objective functions.")
BENGIO = Paper(title="Practical Recommendations for Gradient-Based Training of Deep Architectures",
               authors=["Yoshua Bengio"], year=2012, venue="Neural Networks: Tricks of the Trade")
ADAM_KEY = "kingma2015adam"

# -- a model's answers ---------------------------------------------------------------------------------

ABSTRACT = (r"We study how the step size and the width of a small multilayer perceptron change its accuracy on "
            r"toy classification problems. A larger learning rate raised the validation accuracy on the spirals "
            r"data to \result{run1.spirals.val_accuracy}, while a narrower hidden layer lowered it to "
            r"\result{run2.spirals.val_accuracy}. On the circles data neither change made a clear difference.")
SECTIONS = {
    "introduction": r"""Small neural networks trained on toy data are a cheap laboratory for optimisation
questions. Whether a larger step size helps or hurts depends on the problem, and the width of the network
interacts with it. We ask two simple questions about a multilayer perceptron trained with Adam
\citep{kingma2015adam}: does a larger learning rate help, and how much does a narrower hidden layer cost?

Our contributions are the following.
\begin{itemize}
\item We compare a larger learning rate with the baseline on two toy datasets, with standard errors over seeds.
\item We measure the cost of a narrower hidden layer on the same datasets.
\item We report where the differences are within the noise of the experiment.
\end{itemize}
The larger learning rate helped on the spirals data (\result{run1.spirals.val_accuracy}); the narrower network
was worse on both datasets (\result{run2.spirals.val_accuracy}, \result{run2.circles.val_accuracy}).""",
    "background": r"""A multilayer perceptron maps an input $x$ through hidden layers of width $h$ to class
scores, and is trained by minimising the cross-entropy loss with a stochastic gradient method. Adam scales each
coordinate of the gradient by running estimates of its first and second moments \citep{kingma2015adam}. The
learning rate sets the size of every step: too small and training is slow, too large and it diverges. The width
$h$ sets how complex a decision boundary the network can represent. On two interleaved spirals the boundary is
intricate, while two concentric circles need only a simple closed curve.""",
    "method": r"""We keep the baseline experiment and change one setting at a time. The first variant raises
the learning rate of Adam from its default; the second reduces the width of both hidden layers. Everything else
is identical: the data, the number of steps, the batch size and the seeds. Each variant is trained once per
dataset and seed, and we compare the mean validation accuracy and validation loss over the seeds with those of
the baseline. Because the changes are single settings, any difference can be attributed to that setting alone,
within the noise that the standard errors describe.""",
    "experimental-setup": r"""We train on two synthetic datasets of two-dimensional points: two interleaved
spirals and two concentric circles, each split into training and validation sets. We report the validation
accuracy and the validation loss, averaged over seeds, with their standard errors. The baseline uses the default
settings of the template. All runs used a machine with a \EnvCPU{} processor, \EnvCores{} cores and \EnvRAM{}
of memory; its GPU: \EnvGPU. The software was Python \EnvPython. Training one model takes about a second, so
every setting was run with several seeds.""",
    "results": r"""Table~\ref{tab:results} lists every result and Figure~\ref{fig:val-accuracy} shows the
validation accuracy of each run. Raising the learning rate increased the validation accuracy on the spirals
data from \result{run0.spirals.val_accuracy} to \result{run1.spirals.val_accuracy}, a difference larger than two
standard errors, and lowered the validation loss from \result{run0.spirals.val_loss} to
\result{run1.spirals.val_loss}. On the circles data the same change gave \result{run1.circles.val_accuracy}
against \result{run0.circles.val_accuracy}, which is within the standard errors: no clear difference.

The narrower hidden layer made things worse: its accuracy on the spirals data fell to
\result{run2.spirals.val_accuracy}, and on the circles data it reached \result{run2.circles.val_accuracy}, below
the baseline. Figure~\ref{fig:train-loss-spirals} shows its training loss over the steps.

These experiments are small: two datasets, one network family and a handful of seeds, so they say little about
larger models.""",
    "conclusion": r"""A larger learning rate helped the small network on the harder of the two datasets
(\result{run1.spirals.val_accuracy}) and made no clear difference on the easier one, while a narrower hidden layer
hurt on both (\result{run2.spirals.val_accuracy}, \result{run2.circles.val_accuracy}). The experiments are
small and the differences on the circles data are within the noise. Future work should vary the learning rate
over a wider range, combine it with a learning-rate schedule, and test deeper networks.""",
    "related-work": r"""Adam \citep{kingma2015adam} is the optimiser of every run here; its default step size is
the baseline we change. Practical advice on choosing the learning rate and the width of a network has been
collected by \citet{bengio2012practical}, who recommend tuning the learning rate first, as we do. Unlike that
work we measure the effect of each setting with standard errors over seeds on toy data, rather than giving
general guidance.""",
}
ORDER = ("introduction", "background", "method", "experimental-setup", "results", "conclusion", "related-work")


def script_paper(fake_llm, sections: dict[str, str] | None = None, drafts: dict[str, str] | None = None,
                 citation_rounds: int = 1, unusable: tuple[str, ...] = (), first_query: str = "adam optimizer") -> None:
    """Enqueue a whole write-up in the order the stage asks: title and abstract with its reflection, the
    citation rounds (the first picks Adam and Bengio), then each section's draft and reflection; the sections
    in `unusable` get three answers that are not JSON (a try and two repair rounds), and no reflection."""
    texts = {**SECTIONS, **(sections or {})}
    drafts = drafts or {}
    fake_llm.enqueue({"title": "Step size and width", "abstract": ABSTRACT},
                     {"critique": "fine", "title": "Step Size and Width in Tiny Networks", "abstract": ABSTRACT})
    for round_ in range(citation_rounds):
        if round_ == 0:
            fake_llm.enqueue({"done": not first_query, "query": first_query}, {"indices": [1, 2, 7]})
        else:
            fake_llm.enqueue({"done": True, "query": ""})
            break
    for name in ORDER:
        if name in unusable:
            fake_llm.enqueue("I cannot write that.", "Sorry.", "No.")
            continue
        fake_llm.enqueue({"latex": drafts.get(name, texts[name])}, {"critique": "fine", "latex": texts[name]})


class FakeSearcher(Searcher):
    name = "fake-papers"
    description = "two real papers, whatever the query"
    queries: list[str] = []

    def search(self, query: str, limit: int = 10) -> list[Paper]:
        self.queries.append(query)
        return [ADAM, BENGIO][:limit]


class FakeSearcherPlugin:
    @hookimpl
    def register_searchers(self, register):
        register(FakeSearcher)


def png(path: Path, width: int = 64, height: int = 48) -> Path:
    """A small RGB PNG (a gradient), written without any imaging library."""
    rows = b"".join(b"\x00" + b"".join(bytes((x * 4 % 256, y * 5 % 256, 128)) for x in range(width))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def make_ctx(plugin_host, fake_llm, tmp_path):
    plugin_host.add(FakeSearcherPlugin(), PluginInfo("scientist-test-searcher", "tests", "0"))
    stores: list[Store] = []

    def make(**options) -> tuple[RunContext, Path, list[Figure]]:
        settings = load_settings().model_copy(update={"searchers_order": ["fake-papers"]})
        store = Store(tmp_path / "out" / "scientist.db")
        stores.append(store)
        run_dir = tmp_path / "out" / "run"
        store.create_run("run", "run", "example", run_dir)
        template = plugin_host.create("template", "example")
        opts = RunOptions.model_validate({"template": "example", "model": "fake/scripted", "citation_rounds": 1,
                                          "writeup_fix_rounds": 1, **options})
        ctx = RunContext(run_id="run", run_dir=run_dir, options=opts, settings=settings, host=plugin_host,
                         store=store, template=template)
        workspace = template.prepare_workspace(run_dir / IDEA.name)
        figures = [Figure(path=png(workspace / "val_accuracy.png"), caption="Validation accuracy of every run."),
                   Figure(path=png(workspace / "train_loss_spirals.png"), caption="Training loss on spirals.")]
        return ctx, workspace, figures

    yield make
    for store in stores:
        store.close()


def pdf_text(path: Path) -> str:
    pymupdf = pytest.importorskip("pymupdf")
    with pymupdf.open(path) as document:
        return "\n".join(page.get_text() for page in document), document.page_count


# -- full write-ups, compiled -------------------------------------------------------------------------------

@needs_latex
def test_full_writeup_typesets_the_recorded_numbers(make_ctx, fake_llm):
    ctx, workspace, figures = make_ctx()
    typed = SECTIONS["results"].replace(r"\result{run1.spirals.val_accuracy}", "0.873", 1)
    script_paper(fake_llm, drafts={"results": typed})

    result = write_paper(ctx, IDEA, RUNS, figures)

    assert isinstance(result, WriteupResult)
    assert result.pdf_path == workspace / f"{IDEA.name}.pdf" and result.pdf_path.is_file()
    assert result.problems == [] and result.fix_rounds_used == 0
    assert not fake_llm.replies, "every scripted answer was used"
    # the typed number in the draft went back to the model with the key it should use
    reflection = next(call for call in fake_llm.history if "0.873" in call.messages[-2].content)
    assert r"\result{run1.spirals.val_accuracy}" in reflection.messages[-1].content
    # a knob-only run is described to the model by code, from its record, not by the plan's prose
    prompt = fake_llm.history[0].messages[-1].content
    assert "learning_rate from 0.01 to 0.03 (raised)" in prompt and "A larger learning rate." not in prompt
    # only what is cited is in the bibliography, written by code; index 7 was out of range and ignored
    bib = (result.latex_dir / "references.bib").read_text()
    assert ADAM_KEY in bib and "bengio2012practical" in bib and result.citations == 2
    # every LLM call is a ledger row of this stage
    assert {row["stage"] for row in ctx.store.llm_calls("run")} == {"writeup"}
    assert len(ctx.store.llm_calls("run")) == len(fake_llm.history) == 2 + 2 + 2 * len(ORDER)

    meta = (result.latex_dir / "generated" / "meta.tex").read_text()
    values = result_values(RUNS)
    for key, value in values.items():
        assert f"\\@namedef{{scientist@result@{key}}}{{{value.latex}}}" in meta
    assert values["run1.spirals.val_accuracy"].plain == "0.873"
    assert "\\newcommand{\\EnvGPU}" in meta and "\\newcommand{\\EnvCores}" in meta

    text, pages = pdf_text(result.pdf_path)
    assert pages >= 2
    flat = " ".join(text.split())
    for key, value in values.items():  # every recorded number is in the paper (the table holds them all)
        assert value.plain in flat, key
    assert "Step Size and Width in Tiny Networks" in flat
    assert "Kingma" in flat and "??" not in flat
    assert "Run 1" not in flat and "run_1" not in flat
    artifact = next(row for row in ctx.store.artifacts("run") if row["kind"] == "paper")
    assert artifact["path"] == str(result.pdf_path) and artifact["meta"]["citations"] == 2
    assert any(row["kind"] == "machine_facts" for row in ctx.store.artifacts("run"))


@needs_latex
def test_a_model_that_wants_no_references_still_gets_one_search_for_the_papers_topic(make_ctx, fake_llm):
    ctx, workspace, figures = make_ctx(section_max_tokens=700)
    FakeSearcher.queries.clear()
    script_paper(fake_llm, first_query="")                # round 1: {"done": true, "query": ""}
    result = write_paper(ctx, IDEA, RUNS, figures)
    assert FakeSearcher.queries == ["Step Size and Width in Tiny Networks"]
    assert {call.max_tokens for call in fake_llm.history} == {700}  # the cap reaches every call of the stage
    assert result.citations == 2 and not fake_llm.replies


@needs_latex
def test_compile_error_is_fed_back_and_fixed(make_ctx, fake_llm):
    ctx, workspace, figures = make_ctx()
    broken = SECTIONS["method"].replace("We keep the baseline", r"We keep the \baselinemacro{} baseline")
    script_paper(fake_llm, sections={"method": broken})
    fake_llm.enqueue({"latex": SECTIONS["method"]})  # the fix round's answer

    result = write_paper(ctx, IDEA, RUNS, figures)

    assert result.pdf_path is not None and result.problems == []
    assert result.fix_rounds_used == 1
    fix_prompt = fake_llm.history[-1].messages[-1].content
    assert "Undefined control sequence" in fix_prompt and "line 1" in fix_prompt and "Method section" in fix_prompt
    assert r"\baselinemacro" not in (result.latex_dir / "generated" / "sec-method.tex").read_text()


@needs_latex
def test_unfixable_section_falls_back_to_plain_text_and_compiles(make_ctx, fake_llm):
    ctx, workspace, figures = make_ctx()
    broken = SECTIONS["method"].replace("We keep the baseline", r"We keep the \baselinemacro{} baseline")
    script_paper(fake_llm, sections={"method": broken})
    fake_llm.enqueue({"latex": broken})  # the "fix" changes nothing

    result = write_paper(ctx, IDEA, RUNS, figures)

    assert result.pdf_path is not None and result.pdf_path.is_file()
    assert any("the Method section typeset as plain text" in problem for problem in result.problems)
    method = (result.latex_dir / "generated" / "sec-method.tex").read_text()
    assert "\\baselinemacro" not in method and "We keep the" in method
    results_section = (result.latex_dir / "generated" / "sec-results.tex").read_text()
    assert r"\result{run1.spirals.val_accuracy}" in results_section  # other sections keep their LaTeX


@needs_latex
def test_section_problems_go_back_then_code_repairs_them(make_ctx, fake_llm):
    ctx, workspace, figures = make_ctx(writeup_fix_rounds=1)
    bad = (SECTIONS["related-work"] + "\nRun 2 is also discussed by \\citet{smith2020madeup}, who report an "
           "accuracy of 0.8731 with 64 GB of RAM on an A100.")
    script_paper(fake_llm, sections={"related-work": bad})
    fake_llm.enqueue({"latex": bad})  # the check round: the model repeats its mistakes

    result = write_paper(ctx, IDEA, RUNS, figures)

    feedback = fake_llm.history[-1].messages[-1].content  # the last call is that check round
    for expected in ("Run 2", "smith2020madeup", "0.8731", "64 GB of RAM", "A100"):
        assert expected in feedback
    related = (result.latex_dir / "generated" / "sec-related-work.tex").read_text()
    assert "smith2020madeup" not in related and "0.8731" not in related and "A100" not in related
    assert "Run 2" not in related and "kingma2015adam" in related
    assert result.pdf_path is not None
    assert "smith2020madeup" not in (result.latex_dir / "references.bib").read_text()


@needs_latex
def test_a_section_without_a_usable_answer_is_written_by_code_from_the_records(make_ctx, fake_llm):
    ctx, workspace, figures = make_ctx()
    script_paper(fake_llm, unusable=("conclusion", "background"))

    result = write_paper(ctx, IDEA, RUNS, figures)

    assert result.pdf_path is not None and not fake_llm.replies
    assert result.problems == ["the model gave no usable Background section: code wrote it from the records",
                               "the model gave no usable Conclusions and Future Work section: code wrote it from "
                               "the records"]
    conclusion = (result.latex_dir / "generated" / "sec-conclusion.tex").read_text()
    assert conclusion.startswith(r"The \emph{learning\_rate=0.03} variant was clearly better than the baseline in "
                                 r"val accuracy on spirals")
    body = (result.latex_dir / "generated" / "body.tex").read_text()
    assert "\\section{Background}" in body and "\\section{Conclusions and Future Work}" in body
    assert "step size of the optimizer; the baseline's value is 0.01" in \
        (result.latex_dir / "generated" / "sec-background.tex").read_text()
    text = " ".join(pdf_text(result.pdf_path)[0].split())
    assert "could not be written" not in text and "variant was worse in val accuracy on spirals" in text


def test_budget_exceeded_is_never_swallowed(make_ctx, fake_llm):
    from scientist_core.chat import BudgetExceeded

    ctx, workspace, figures = make_ctx()
    fake_llm.enqueue({"title": "T", "abstract": ABSTRACT}, BudgetExceeded(1.0, 1.0, 0.5, "fake/scripted", "run"))
    with pytest.raises(BudgetExceeded):
        write_paper(ctx, IDEA, RUNS, figures)


@needs_latex
def test_revision_after_review_keeps_citations_and_writes_beside(make_ctx, fake_llm):
    ctx, workspace, figures = make_ctx()
    script_paper(fake_llm)
    first = write_paper(ctx, IDEA, RUNS, figures)
    fake_llm.enqueue({"title": "Step Size and Width in Tiny Networks", "abstract": ABSTRACT})
    for name in ORDER:
        fake_llm.enqueue({"latex": SECTIONS[name] + "\nWe thank the reviewer for the comments."})

    improved = write_paper(ctx, IDEA, RUNS, figures, feedback='{"Weaknesses": ["too short"]}')

    assert improved.pdf_path == workspace / f"{IDEA.name}-improved.pdf" and first.pdf_path.is_file()
    assert improved.latex_dir == workspace / "latex-improved" and improved.citations == 2
    asked = fake_llm.history[-1].messages[-1].content
    assert "too short" in asked and "The current text of the Related Work section" in asked
    assert not fake_llm.replies


# A model trying to read a file with each section (the routes of plugins/paper/tests/test_tex_confinement.py).
FILE_READS = {
    "introduction": r"As background we quote $^^5cinput{{{canary}}}$ here.",
    "background": r"The file reads \pdffiledump offset 0 length 40 {{{canary}.tex}} in hex.",
    "method": r"We include \begin{{input}}{{{canary}}} the notes.",
    "experimental-setup": r"\ExplSyntaxOn \file_get:nnNTF {{{canary}.tex}} {{}} \l_tmpa_tl {{\tl_use:N \l_tmpa_tl}} "
                          r"{{}} \ExplSyntaxOff The setup follows.",
    "results": r"\newread\leak\openin\leak={canary}.tex \read\leak to\got \got\closein\leak The results follow.",
    "conclusion": r"\catcode`\|=0 |input{{{canary}}} We conclude.",
    "related-work": r"\csname input\endcsname{{{canary}}} Related work follows.",
}


@needs_latex
def test_a_paper_whose_model_tries_to_read_a_file_leaks_it_nowhere(make_ctx, fake_llm, tmp_path):
    """Every section tries to read a canary outside the paper folder; the checks refuse each try and code removes
    it (no fix rounds here): the canary is in no PDF, no file under the output folder and no ledger row."""
    canary = tmp_path / "outside" / "canary"
    canary.parent.mkdir()
    token = "CANARY" + uuid.uuid4().hex.upper()
    canary.with_suffix(".tex").write_text(token + "\n")
    ctx, workspace, figures = make_ctx(writeup_fix_rounds=0)
    attacks = {name: f"{SECTIONS[name]}\n\n{text.format(canary=canary)}" for name, text in FILE_READS.items()}
    script_paper(fake_llm, sections=attacks, drafts=attacks)

    result = write_paper(ctx, IDEA, RUNS, figures)

    assert result.pdf_path is not None and not fake_llm.replies
    assert any(str(canary) in message.content for call in fake_llm.history for message in call.messages)
    assert token not in "".join(pdf_text(result.pdf_path)[0].split())
    written = [path for path in (tmp_path / "out").rglob("*") if path.is_file() and not path.is_symlink()]
    assert [path for path in written if token.encode() in path.read_bytes()] == []
    assert token not in json.dumps(ctx.store.llm_calls("run"))


@needs_latex
def test_the_compiler_obeys_the_sandbox_settings(plugin_host, tmp_path, monkeypatch):
    """[sandbox] allow_unisolated_code reaches the compiler, as it reaches every experiment run: where the sandbox
    cannot isolate (mode "none", forced here), the compile is refused before anything runs unless it is set."""
    folder = tmp_path / "paper"
    folder.mkdir()
    (folder / "paper.tex").write_text("\\documentclass{article}\\begin{document}Text.\\end{document}\n")
    strict = configured_plugin(plugin_host, load_settings(), "compiler")
    assert not strict.config.allow_unisolated_code
    monkeypatch.setattr(sandbox_runner, "_FORCE_NO_NAMESPACES", True)
    with pytest.raises(SandboxError):
        strict.compile(folder, "paper.tex")
    assert not (folder / "paper.pdf").exists()
    allowed = load_settings().model_copy(update={"sandbox": SandboxSettings(allow_unisolated_code=True)})
    lenient = configured_plugin(plugin_host, allowed, "compiler")
    assert lenient.config.allow_unisolated_code and lenient.compile(folder, "paper.tex").ok


@needs_latex
def test_example_skeleton_passes_preflight(plugin_host, tmp_path):
    template = plugin_host.create("template", "example")
    compiler = plugin_host.create("compiler", "latexmk")
    assert preflight_latex(template.files_dir() / "latex", compiler, tmp_path / "preflight") == []
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "template.tex").write_text("\\documentclass{article}\\begin{document}x\\end{document}\n")
    problems = preflight_latex(broken, compiler, tmp_path / "preflight2")
    assert any("generated/meta" in p for p in problems)  # reported; the built-in skeleton still compiles
    assert not any("does not compile" in p for p in problems)


# -- the checks, on their own --------------------------------------------------------------------------

RULES = SectionRules(results=result_values(RUNS), cite_keys={ADAM_KEY},
                     labels={"tab:results", "fig:val-accuracy", "sec:intro"},
                     run_names={run.index: run_label(run) for run in RUNS}, allowed_numbers={0.03, 8.0, 0.01},
                     facts={"gpu": "none", "cpu": "Some CPU"})


def kinds(text: str) -> list[str]:
    return [problem.kind for problem in check_section(text, RULES)]


def test_typed_results_are_rejected_and_replaced_by_their_result():
    text = "The larger learning rate reached 0.873 on spirals. The baseline reached 81.2\\% instead.\n"
    problems = check_section(text, RULES)
    assert [p.kind for p in problems] == ["typed_number", "typed_number"]
    assert r"\result{run1.spirals.val_accuracy}" in problems[0].message
    repaired, done = repair_section(text, RULES)
    assert repaired == "The larger learning rate reached \\result{run1.spirals.val_accuracy} on spirals.\n"
    assert check_section(repaired, RULES) == [] and done


def test_numbers_with_decimals_need_a_result_but_settings_may_be_stated():
    assert kinds("We set the learning rate to 0.03 and the width to 8, over 3 seeds.") == []
    assert kinds("The gap was 0.254 in our tests.") == ["typed_number"]
    assert kinds("Accuracy was \\result{run1.spirals.val_accuracy} with width=0.25\\linewidth.") == []
    repaired, _ = repair_section("It is good. The gap was 0.254 in our tests. It is bad.", RULES)
    assert repaired == "It is good. It is bad.\n"


def test_unknown_result_keys_and_citations_are_removed():
    text = ("Adam \\citep{kingma2015adam,made2020up} is used~\\cite{other2019x}. Accuracy reached "
            "\\result{run9.spirals.val_accuracy} there. The end.")
    assert kinds(text) == ["unknown_result", "unknown_citation", "unknown_citation"]
    repaired, _ = repair_section(text, RULES)
    assert repaired == "Adam \\citep{kingma2015adam} is used. The end.\n"


def test_run_numbers_in_prose_are_caught_and_named():
    for text in ("Run 2 is worse.", "In run\\_1 the loss fell.", "run-2 diverged.", "As Run~1 shows, it helps."):
        assert kinds(text) == ["run_label"], text
    assert kinds("In run_1 the loss fell.") == ["run_label", "special_char"]  # a bare _ is a LaTeX error too
    assert kinds("We run 3 seeds per setting and each run 5 times.") == []
    assert kinds("The key \\result{run1.spirals.val_loss} is fine.") == []
    repaired, _ = repair_section("Run 2 is worse than run_0.", RULES)
    assert repaired == "the \\emph{hidden\\_size=8} run is worse than the baseline.\n"


def test_hardware_claims_must_come_from_the_machine():
    assert kinds("We trained on an A100 with 80 GB of memory and 16 CPU cores.") == ["hardware"] * 3
    assert kinds("We trained on \\EnvCores{} cores of a \\EnvCPU{} machine.") == []
    repaired, _ = repair_section("Training is fast. We used an A100. It took a second.", RULES)
    assert repaired == "Training is fast. It took a second.\n"


def test_a_worse_or_unclear_result_called_an_improvement_is_spin():
    worse = "The narrower hidden layer improved the accuracy to \\result{run2.spirals.val_accuracy}."
    unclear = "On circles the larger learning rate gave a better accuracy of \\result{run1.circles.val_accuracy}."
    worse_loss = "The narrower layer reached a better loss, \\result{run2.spirals.val_loss}."
    for text in (worse, unclear, worse_loss):
        assert kinds(text) == ["spin"], text
    problem = check_section(unclear, RULES)[0]
    assert "no clear difference" in problem.message and "learning_rate=0.03" in problem.message
    assert "worse" in check_section(worse, RULES)[0].message
    # the plain truth, a real improvement, a hedged claim and a claim about the baseline pass
    for text in ("The narrower hidden layer lowered the accuracy to \\result{run2.spirals.val_accuracy}.",
                 "The larger learning rate improved the accuracy to \\result{run1.spirals.val_accuracy}.",
                 "The narrower layer did not improve accuracy (\\result{run2.spirals.val_accuracy}).",
                 "The baseline is better, at \\result{run0.spirals.val_accuracy}."):
        assert kinds(text) == [], text
    repaired, done = repair_section(f"We tried two changes. {worse} We report all seeds.", RULES)
    assert repaired == "We tried two changes. We report all seeds.\n" and "improvement" in done[-1]


def test_a_sentence_said_twice_goes_back_and_then_its_copies_go():
    loop = ("The quadratic schedule changes the samples of every dataset. It is slower. "
            "The quadratic schedule changes the samples of every dataset. ")
    assert kinds(loop * 2) == ["repeated"] * 3
    assert kinds("It is slower. It is slower.") == []                      # short sentences may repeat
    repaired, done = repair_section(loop * 2, RULES)
    assert repaired == "The quadratic schedule changes the samples of every dataset. It is slower. It is slower.\n"
    assert "said before" in done[-1]


@pytest.mark.parametrize("metric, direction", [
    ("kl_divergence", "lower"), ("eval_loss", "lower"), ("best_val_loss", "lower"), ("training_time", "lower"),
    ("step_val_acc_99", "lower"), ("val_accuracy", "higher"), ("final_train_acc", "higher"),
    ("avg_inference_tokens_per_second", "higher"), ("widgets", None),
])
def test_which_way_a_metric_improves_comes_from_its_name(metric, direction):
    assert better_direction(metric) == direction


def test_forbidden_commands_and_unbalanced_latex():
    assert "forbidden" in kinds("\\input{/etc/passwd} text")
    assert "forbidden" in kinds("\\immediate\\write18{rm -rf /}")
    assert "forbidden" in kinds("\\renewcommand{\\result}[1]{0.99}")
    assert "forbidden" in kinds("\\newcommand{\\EnvGPU}{H100}")
    assert kinds("\\newcommand{\\ours}{OurNet} \\ours{} works.") == []
    assert kinds("\\begin{figure}\\includegraphics{x.png}\\end{figure}").count("forbidden") == 2
    assert kinds("\\section{Intro} Hello.") == ["section"]
    assert "unbalanced" in kinds("An {unclosed group.")
    assert "unbalanced" in kinds("\\begin{itemize}\\item one")
    assert "unbalanced" in kinds("Math $x + y with no end.")
    assert kinds("learning_rate and a & b and x^2") == ["special_char"] * 3
    assert kinds("It rose by 5% overall.") == ["percent"]
    assert repair_section("It rose by 5% overall.", RULES)[0] == "It rose by 5\\% overall.\n"
    repaired, _ = repair_section("\\section{Method} We \\input{x} use \\def\\foo#1{bar} it. A_b & c.", RULES)
    assert repaired == "We  use  it. A\\_b \\& c.\n"
    assert check_section(repaired, RULES) == []


def test_unrepairable_latex_becomes_plain_text_keeping_results_and_citations():
    text = "Accuracy \\textbf{rose to \\result{run1.spirals.val_accuracy} \\citep{kingma2015adam}, 50% & more."
    repaired, done = repair_section(text, RULES)
    assert "plain text" in done[-1]
    assert "\\result{run1.spirals.val_accuracy}" in repaired and "\\citep{kingma2015adam}" in repaired
    assert "\\textbf" not in repaired and check_section(repaired, RULES) == []
    assert plain_text_section("A $x_1 {broken", RULES).strip() == "A x\\_1 broken"


def test_meta_and_table_hold_every_recorded_value():
    values = result_values(RUNS)
    assert values["run0.spirals.val_accuracy"].plain == "0.812"
    assert values["run0.spirals.val_accuracy.stderr"].plain == "0.011"
    assert values["run2.circles.val_loss"].plain == "0.163"
    meta = meta_tex("A & B", values, {"cpu": "X_CPU", "gpu": "none", "cores": "2"})
    assert "\\newcommand{\\PaperTitle}{A \\& B}" in meta and "\\newcommand{\\EnvCPU}{X\\_CPU}" in meta
    table = results_table_tex(RUNS, values)
    rows = [line for line in table.splitlines() if "\\result{" in line]
    assert len(rows) == 6  # 2 datasets x 3 runs
    assert rows[0].startswith("spirals & baseline & ") and "learning\\_rate=0.03" in rows[1]
    cells = [row.split(" & ", 2)[2] for row in rows]  # after the dataset and the run's name
    assert all(re.search(r"\d\.\d", cell) is None for cell in cells)  # numbers only through \result


def test_formatting_keeps_runs_apart_and_handles_extremes():
    close = [run(0, "b", {}, {"d": {"m": (0.91234, 0.0)}}), run(1, "v", {"x": 1}, {"d": {"m": (0.91251, 0.0)}})]
    values = result_values(close)
    assert values["run0.d.m"].plain != values["run1.d.m"].plain
    tiny = result_values([run(0, "b", {}, {"d": {"m": (0.000012345, 0.0)}})])["run0.d.m"]
    assert tiny.plain == "1.23e-5" and "\\times 10^{-5}" in tiny.latex
    negative = result_values([run(0, "b", {}, {"d": {"m": (-1.5, 0.0)}})])["run0.d.m"]
    assert negative.latex.startswith("\\ensuremath{-}")


def test_machine_facts_describe_this_machine():
    facts = machine_facts()
    assert {"cpu", "cores", "ram", "gpu", "python"} <= set(facts)
    assert int(facts["cores"]) >= 1 and facts["python"].count(".") == 2
    json.dumps(facts)  # recordable as an artifact's meta


NASTY = [
    r"\begin{itemize}\item an unclosed list",
    r"Results: 95% accuracy & more_stuff ^2 #1",
    r"\textbf{bold and $x without an end",
    "Emoji \U0001F600, Chinese \u4e2d\u6587, \u201cquotes\u201d \u2014 caf\u00e9, \u2248 3, \u00b1 x, \u2192 z",
    r"See \cite{unknown} and \ref{nolabel}. Figure~\ref{fig:val-accuracy} stays.",
    r"\section*{Results} text \section{More} more",
    r"\begin{figure}\includegraphics{x.png}\caption{c}\end{figure} after",
    r"\input{foo} \include{bar} \immediate\write18{ls} \openout1=x done",
    r"\def\x{1} \let\y=\x \renewcommand{\result}[1]{9} kept",
    r"Run 3 shows 0.8731 on a V100 with 12 cores. A fine sentence. run\_1 is named.",
    r"}{ weird } text {",
    r"\end{document} \begin{document} \documentclass{article} \usepackage{x}",
    r"\begin{table}\begin{tabular}{cc} a & 0.873 \\ \end{tabular}\end{table} trailing",
    r"\begin{equation} a_1 = b^2 \label{eq:a} \end{equation} Eq.~\ref{eq:a} holds.",
    r"\verb|x_y| and \url{http://a_b.com} and \csname foo\endcsname \catcode`\@=11 end",
    r"Accuracy \textbf{rose to \result{run1.spirals.val_accuracy} \citep{kingma2015adam}, 50% & more.",
]


@needs_latex
def test_repaired_sections_always_compile(plugin_host, tmp_path):
    repaired = [repair_section(text, RULES)[0] for text in NASTY]
    for text in repaired:
        assert [p.kind for p in check_section(text, RULES) if p.kind != "special_char"] == [], text
    folder = tmp_path / "paper"
    folder.mkdir()
    (folder / "meta.tex").write_text(meta_tex("Title", result_values(RUNS), {"gpu": "none"}))
    (folder / "generated").mkdir()
    (folder / "generated" / "abstract.tex").write_text("Abstract.\n")
    (folder / "references.bib").write_text("@article{kingma2015adam, title={Adam}, author={Kingma, D.}, "
                                           "journal={ICLR}, year={2015}}\n")
    (folder / "main.tex").write_text(
        "\\documentclass{article}\\usepackage[numbers]{natbib}\\usepackage{amsmath}\\usepackage{hyperref}\n"
        "\\input{meta}\n\\begin{document}\n" + "\n\n\\bigskip\n\n".join(repaired)
        + "\n\\bibliographystyle{plainnat}\\bibliography{references}\n\\end{document}\n")
    result = plugin_host.create("compiler", "latexmk").compile(folder, "main.tex")
    assert result.ok, result.errors


def test_normalize_undoes_what_json_and_markdown_do_to_latex():
    # a model writing \result in JSON with one backslash sends CR + "esult"; \textbf becomes TAB + "extbf" ...
    sent = (r'{"latex": "```latex\nRose to \result{run1.spirals.val_accuracy} in \ref{fig:a} by $\frac{1}{2}$, '
            r'\textbf{a} \begin{itemize}\\item x\\end{itemize} \\\\cite{k} **b** \u2014 caf\u00e9.\n```"}')
    mangled = json.loads(sent)["latex"]
    assert "\r" in mangled and "\t" in mangled and "\x08" in mangled and "\x0c" in mangled
    assert normalize_text(mangled) == (
        r"Rose to \result{run1.spirals.val_accuracy} in \ref{fig:a} by $\frac{1}{2}$, \textbf{a} "
        r"\begin{itemize}\item x\end{itemize} \cite{k} \textbf{b} --- caf{\'e}." + "\n")
