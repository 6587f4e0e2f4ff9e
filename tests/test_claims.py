"""`scientist check`: the claim checker over whole papers, on real run folders.

One module-scoped pair of scripted runs on the example template (a free-style and a structured paper, each run
changing a setting of the model and the number of steps); every seeded-fault paper is a copy of one of them with
one fault edited into its generated .tex, title or captions, and the real `check` command must find it there,
and nothing in the unmodified papers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scientist_core.cli import app
from scientist_core.pipeline.context import RunOptions
from scientist_core.pipeline.run import start_run
from scientist_core.plugins import get_host, reset_host
from scientist_core.settings import load_settings
from scientist_core.testing import Script, register_fake_llm
from scientist_paper.claims import DISCLOSURE_FILE, DISCLOSURE_WORDS
from scientist_paper.results import compare_with_baseline, result_values
from tests.conftest import PIPELINE_SETTINGS
from tests.helpers import run_cli
from tests.pipeline_script import recorded_runs, script_full_run

pytestmark = pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (make test installs it)")

# a setting of the model, the amount of work, and a change too small to show at the precision printed
PLAN = (("double the hidden size", {"hidden_size": 64}), ("fewer optimizer steps", {"steps": 500}),
        ("a negligible weight decay", {"weight_decay": 1e-12}))


@dataclass(frozen=True)
class RealPaper:
    out: Path      # the output folder holding the run store
    run_id: str
    idea: str

    @property
    def run_dir(self) -> Path:
        return self.out / self.run_id


def script_pieces(script: Script) -> None:
    """The structured style's pieces, as a careful model writes them."""
    script.answer("Motivation", {"latex": "Small networks on toy data are a cheap place to study how the width of a "
                                          "network and the length of its training interact."})
    script.answer("Interpretation", {"latex": "These comparisons come from one experiment on toy data, so they "
                                              "describe this setting only."})
    script.answer("NextSteps", {"latex": "Other widths and other datasets would show whether the same pattern "
                                         "holds elsewhere."})
    script.answer("RelatedWork", {"sentences": []})


@pytest.fixture(scope="module")
def real_papers(tmp_path_factory) -> list[RealPaper]:
    """A free-style and a structured paper from two scripted runs (module scope: the runs cost seconds each)."""
    work = tmp_path_factory.mktemp("claims")
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("SCIENTIST_")]:
            patch.delenv(name)
        patch.setenv("HOME", str(work / "home"))
        patch.setenv("SCIENTIST_DATA_DIR", str(work / "data"))
        patch.chdir(work)
        (work / "scientist.toml").write_text(PIPELINE_SETTINGS)
        reset_host()
        script = Script()
        register_fake_llm(get_host(), script)
        papers = []
        for style, idea in (("free", "wider_hidden_layers"), ("structured", "shorter_training")):
            script_full_run(script, ideas=(idea,), plan=PLAN)
            if style == "structured":
                script_pieces(script)
            options = RunOptions(template="example", num_ideas=1, reflections=1, novelty_rounds=2, max_runs=3,
                                 max_tries=1, citation_rounds=1, quick=True, writeup=style)
            summary = start_run(load_settings(), get_host(), options, report=lambda line: None)
            assert summary.ideas[0].paper, summary.ideas[0].problem
            papers.append(RealPaper(Path(load_settings().out_dir).resolve(), summary.run_id, idea))
        reset_host()
        yield papers


@pytest.fixture
def cli(real_papers, monkeypatch):
    """The real `scientist check`, as the installed plugins register it, run in the folder of the scripted runs."""
    monkeypatch.chdir(real_papers[0].out.parent)
    reset_host()
    get_host().call_commands(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["check", *map(str, args)])


def copy_paper(paper: RealPaper, to: Path) -> Path:
    """A copy of the host's records and the paper of `paper` (no sandbox, logs or code) in its own output folder,
    with the disclosure the core writes (generated/disclosure.tex, input at the end of body.tex); the paper folder."""
    with sqlite3.connect(paper.out / "scientist.db") as source, sqlite3.connect(to / "scientist.db") as copy:
        source.backup(copy)  # the store runs in WAL mode: a file copy may miss what the log holds
    run_dir = to / paper.run_id
    shutil.copytree(paper.run_dir / ".stages", run_dir / ".stages")
    shutil.copy(paper.run_dir / "machine.json", run_dir / "machine.json")
    latex = run_dir / paper.idea / "latex"
    shutil.copytree(paper.run_dir / paper.idea / "latex", latex)
    if not (latex / DISCLOSURE_FILE).is_file():  # until the core writes it (issue 17's provenance part)
        (latex / DISCLOSURE_FILE).write_text(f"This paper was {DISCLOSURE_WORDS}.\n")
        with open(latex / "generated" / "body.tex", "a") as body:
            body.write("\\input{generated/disclosure}\n")
    return latex


def values(paper: RealPaper):
    runs = recorded_runs(paper.run_dir, paper.idea)
    results = result_values(runs)
    return [(value, comparison) for value in results.values() if value.run != 0 and not value.stderr
            and "time" not in value.metric and (comparison := compare_with_baseline(value, results)) is not None]


def key_where(paper: RealPaper, test) -> str:
    found = [value.key for value, comparison in values(paper) if test(comparison)]
    assert found, "the scripted run recorded no result of that kind"
    return found[0]


def append(file: str, text: str):
    def edit(latex: Path, paper: RealPaper) -> None:
        path = latex / file
        path.write_text(path.read_text().rstrip("\n") + "\n" + text(paper) + "\n")
    return edit


def replace(file: str, pattern: str, replacement):
    def edit(latex: Path, paper: RealPaper) -> None:
        path = latex / file
        changed, count = re.subn(pattern, lambda m: replacement(paper) if callable(replacement) else replacement,
                                 path.read_text(), count=1)
        assert count, f"nothing to edit in {file}"
        path.write_text(changed)
    return edit


def remove_figure(latex: Path, paper: RealPaper) -> None:
    next((latex / "figures").glob("*.png")).unlink()


INTRO, METHOD, SETUP, RESULTS, CONCLUSION = (f"generated/sec-{name}.tex" for name in (
    "introduction", "method", "experimental-setup", "results", "conclusion"))

# (name, edit, the file the problem is in, its kind)
FAULTS = [
    ("typed number", append(INTRO, lambda p: "The baseline reaches an accuracy of 0.87 on the spirals data."),
     INTRO, "typed_number"),
    ("made-up percentage", append(RESULTS, lambda p: "The wider network reduces the loss by 35\\%."),
     RESULTS, "percentage"),
    ("made-up seeds", append(SETUP, lambda p: "All results are averaged over 10 random seeds."), SETUP,
     "typed_number"),
    ("made-up seeds in words", append(SETUP, lambda p: "All results are averaged over ten random seeds."), SETUP,
     "typed_number"),
    ("miscounted datasets in words", append(INTRO, lambda p: "We evaluate on four datasets of points."), INTRO,
     "typed_number"),
    ("claim without a result", append(INTRO, lambda p: "The wider network clearly outperforms the baseline on "
                                      "every dataset."), INTRO, "untraced_claim"),
    ("wrong direction", append(RESULTS, lambda p: "The wider network lowered it to \\result{%s}." % key_where(
        p, lambda c: c.direction == "higher")), RESULTS, "wrong_direction"),
    ("hedged spin", append(CONCLUSION, lambda p: "Unlike the baseline, which does not adapt, the wider network "
                           "might improve \\result{%s}." % key_where(p, lambda c: c.worse)), CONCLUSION,
     "wrong_direction"),
    ("single-seed significance", append(RESULTS, lambda p: "The wider network is significantly different here "
                                        "(\\result{%s})." % key_where(p, lambda c: c.clear is not True)),
     RESULTS, "single_seed"),
    ("untraced citation", append(INTRO, lambda p: "Width matters in small networks \\citep{smith2021width}."),
     INTRO, "untraced_citation"),
    ("author-year citation", append(INTRO, lambda p: "Smith et al. (2021) studied the width of networks."),
     INTRO, "untraced_citation"),
    ("a URL", append(CONCLUSION, lambda p: "The code is at https://example.org/code for everyone."), CONCLUSION,
     "untraced_citation"),
    ("hardware in prose", append(SETUP, lambda p: "Every run trained on an NVIDIA A100 GPU."), SETUP, "hardware"),
    ("hardware in the machine macros", replace("generated/meta.tex", r"\\newcommand\{\\EnvGPU\}\{[^\n]*\}",
                                               "\\newcommand{\\EnvGPU}{8 x NVIDIA H100}"),
     "generated/meta.tex", "hardware"),
    ("run label in prose", append(RESULTS, lambda p: "Run 2 was trained on the same data."), RESULTS, "run_label"),
    ("run label in the table", replace("generated/results-table.tex", r"hidden\\_size=64", "Run 1"),
     "generated/results-table.tex", "run_label"),
    ("caption claim", replace("generated/body.tex", r"\\caption\{[^{}\n]*\}",
                              "\\caption{The wider network clearly improves the accuracy.}"),
     "generated/body.tex", "caption_claim"),
    ("title claim", replace("generated/title.txt", r"^[^\n]+", "Wider Networks Outperform the Baseline"),
     "generated/title.txt", "title_claim"),
    ("missing disclosure", replace("generated/body.tex", r"\\input\{generated/disclosure\}", ""),
     "generated/body.tex", "missing_disclosure"),
    ("method never implemented", append(METHOD, lambda p: "We add noise with random directions to the hidden "
                                        "activations of the network."), METHOD, "unimplemented_method"),
    ("knob moved the wrong way", append(METHOD, lambda p: "We decreased the hidden size of the network."), METHOD,
     "knob_direction"),
    ("timing credited to the method", append(RESULTS, lambda p: "The shorter run trains faster than the baseline "
                                             "(\\result{run2.spirals.train_time_s})."), RESULTS, "measurement_knob"),
    ("leaked prompt text", append(CONCLUSION, lambda p: "If a change made things worse or made no clear difference, "
                                  "say so plainly."), CONCLUSION, "prompt_text"),
    ("paragraph repeated across sections", lambda latex, p: (latex / CONCLUSION).write_text(
        (latex / CONCLUSION).read_text() + "\n\n" + (latex / METHOD).read_text().split("\n")[0] + "\n"),
     CONCLUSION, "repeated_paragraph"),
    ("missing figure file", remove_figure, "generated/body.tex", "missing_figure"),
    ("relative change not code's", replace("generated/meta.tex", r"\\@namedef\{scientist@change@run1\.spirals\."
                                          r"val_loss\}\{[^\n]*\}", "\\@namedef{scientist@change@run1.spirals."
                                          "val_loss}{-35.0\\%}"),
     "generated/meta.tex", "typed_number"),
    ("unknown result", append(RESULTS, lambda p: "It reached \\result{run7.spirals.val_accuracy} there."), RESULTS,
     "typed_number"),
]


def test_the_unmodified_papers_are_clean(cli, real_papers, tmp_path):
    for number, paper in enumerate(real_papers):
        folder = tmp_path / str(number)
        folder.mkdir()
        latex = copy_paper(paper, folder)
        result = cli(latex.parent.parent)  # the run folder
        assert result.exit_code == 0, result.output
        assert "no problem(s)" in result.output and "PROBLEM" not in result.output
        assert "ok: the recorded mean of" in result.output and "ok: the recorded machine" in result.output


@pytest.mark.parametrize("which", [0, 1], ids=["free", "structured"])
def test_every_seeded_fault_is_found_where_it_was_put(cli, real_papers, tmp_path, which):
    paper = real_papers[which]
    missed = []
    for number, (name, edit, file, fault) in enumerate(FAULTS):
        folder = tmp_path / str(number)
        folder.mkdir()
        latex = copy_paper(paper, folder)
        edit(latex, paper)
        result = cli(latex, "--json")
        report = json.loads(result.stdout)
        found = [(item["file"], item["fault"]) for item in report["papers"][0]["items"] if item["problem"]]
        if result.exit_code != 1 or (file, fault) not in found:
            missed.append(f"{name}: exit {result.exit_code}, found {found}")
    assert len(FAULTS) >= 20
    assert not missed, "\n".join(missed)


def test_the_idea_whose_runs_did_not_implement_it_is_reported(cli, real_papers, tmp_path):
    paper = real_papers[0]
    latex = copy_paper(paper, tmp_path)
    ideas = latex.parent.parent / ".stages" / "ideas.json"
    saved = json.loads(ideas.read_text())
    saved[0]["Experiment"] = "Add noise with random directions to the gradients."
    ideas.write_text(json.dumps(saved))
    result = cli(latex.parent, "--json")
    assert result.exit_code == 1
    faults = [(item["file"], item["fault"]) for item in json.loads(result.stdout)["papers"][0]["items"]
              if item["problem"]]
    assert faults == [("idea", "unimplemented_method")]


def test_json_shape_exit_codes_and_bad_input(real_papers, tmp_path):
    latex = copy_paper(real_papers[1], tmp_path)
    clean = run_cli("check", str(latex.parent.parent), "--json", cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    report = json.loads(clean.stdout)
    assert report["problems"] == 0 and len(report["papers"]) == 1
    items = report["papers"][0]["items"]
    assert {"number", "claim", "citation", "figure", "machine", "title", "caption", "label", "disclosure"} <= \
        {item["kind"] for item in items}
    assert all(set(item) == {"kind", "file", "line", "text", "trace", "problem", "fault"} for item in items)
    assert all(bool(item["trace"]) != bool(item["problem"]) for item in items)
    (latex / "generated" / "title.txt").write_text("A Clearly Better Network\n")
    faulty = run_cli("check", str(latex), cwd=tmp_path)
    assert faulty.returncode == 1 and "PROBLEM [title_claim]" in faulty.stdout
    bad = run_cli("check", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("Error: ") and "not a run folder" in bad.stderr
