"""The example template end to end: registration, knobs, real runs of experiment.py and plot.py, prompts, ideas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scientist_core.errors import ExperimentError
from scientist_core.testing import TemplateContract, read_final_info, run_experiment, run_plot
from scientist_example.plugin import ExampleTemplate

DATASETS = {"spirals", "xor", "circles"}
METRICS = {"train_loss", "val_loss", "val_accuracy", "train_time_s"}


@pytest.fixture(scope="module")
def template() -> ExampleTemplate:
    return ExampleTemplate()


def val_accuracies(run_dir: Path) -> dict[str, float]:
    return {name: result.means["val_accuracy"] for name, result in read_final_info(run_dir).datasets.items()}


def deterministic_numbers(run_dir: Path) -> dict:
    """Everything a run reports except wall-clock time."""
    info = read_final_info(run_dir)
    numbers = {name: {key: value for key, value in result.means.items() if key != "train_time_s"}
               for name, result in info.datasets.items()}
    with np.load(run_dir / "all_results.npz") as arrays:
        numbers["arrays"] = {key: arrays[key].tolist() for key in arrays.files}
    return numbers


@pytest.fixture(scope="module")
def baseline(template: ExampleTemplate, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_experiment(template, tmp_path_factory.mktemp("baseline"))


# -- the template contract ---------------------------------------------------------------------------------------

class TestExampleTemplate(TemplateContract):
    """The contract every template keeps (scientist_core.testing): registration, knobs, quick mode, a quick
    baseline through the CLI and sandbox, the plot step's errors, the paper skeleton, imports, prompts, ideas."""

    template_class = ExampleTemplate
    allowed_imports = {"numpy", "pydantic", "matplotlib"}


# -- knobs -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes", [{"learning_rate": -1.0}, {"datasets": ["mnist"]}, {"datasets": []},
                                     {"steps": "many"}])
def test_invalid_knob_values_are_rejected(template, changes):
    with pytest.raises(ExperimentError):
        template.knobs(changes=changes)


def test_every_knob_is_described(template):
    fields = template.knobs_model().model_fields
    assert {"steps", "hidden_size", "learning_rate", "batch_size", "seed", "datasets", "noise"} <= set(fields)
    assert all(field.description for field in fields.values())


def test_prepare_workspace_copies_the_template_and_refuses_a_used_folder(template, tmp_path):
    workspace = template.prepare_workspace(tmp_path / "ws")
    for name in ("experiment.py", "plot.py", "prompt.json", "seed_ideas.json", "latex/template.tex"):
        assert (workspace / name).is_file(), name
    assert not list(workspace.rglob("__pycache__"))
    with pytest.raises(ExperimentError, match="not empty"):
        template.prepare_workspace(workspace)


# -- real runs ---------------------------------------------------------------------------------------------------

def test_a_quick_run_writes_the_results_contract(baseline, template):
    info = read_final_info(baseline)
    assert set(info.datasets) == DATASETS
    for result in info.datasets.values():
        assert set(result.means) == set(result.stderrs) == METRICS and result.n == template.quick_knobs["num_seeds"]
        assert 0.0 <= result.means["val_accuracy"] <= 1.0
    with np.load(baseline / "all_results.npz") as arrays:
        steps = template.quick_knobs["steps"]
        assert arrays["spirals.train_loss"].shape == (template.quick_knobs["num_seeds"], steps)
        assert arrays["eval_steps"][-1] == steps
    # quick mode must still learn, or a good idea could not be told from a bad one
    assert np.mean(list(val_accuracies(baseline).values())) > 0.85


def test_the_same_seed_gives_the_same_numbers_and_another_seed_does_not(baseline, template, tmp_path):
    again = run_experiment(template, tmp_path / "again")
    assert deterministic_numbers(again) == deterministic_numbers(baseline)
    other = run_experiment(template, tmp_path / "other", {"seed": 1})
    assert deterministic_numbers(other) != deterministic_numbers(baseline)


def test_a_bad_learning_rate_scores_clearly_worse(baseline, template, tmp_path):
    bad = val_accuracies(run_experiment(template, tmp_path / "bad", {"learning_rate": 1e-5}))
    good = val_accuracies(baseline)
    assert all(bad[name] < good[name] for name in DATASETS), (bad, good)
    assert np.mean(list(bad.values())) < np.mean(list(good.values())) - 0.25, (bad, good)


# -- plot step ---------------------------------------------------------------------------------------------------

def test_plot_draws_every_run(baseline, template, tmp_path):
    second = run_experiment(template, tmp_path / "second", {"datasets": ["xor"], "hidden_size": 8})
    workspace = tmp_path / "plots"
    proc = run_plot(template, workspace, [baseline, second])
    assert proc.returncode == 0, proc.stderr
    expected = {f"train_loss_{name}.png" for name in DATASETS} | {"val_accuracy.png"}
    assert {path.name for path in workspace.glob("*.png")} == expected
    for name in expected:
        assert (workspace / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- prompts, ideas, paper ---------------------------------------------------------------------------------------

def test_latex_skeleton_is_a_natbib_article(template):
    tex = (template.files_dir() / "latex" / "template.tex").read_text()
    assert tex.startswith("\\documentclass{article}")
    assert "{natbib}" in tex and "\\begin{document}" in tex and tex.rstrip().endswith("\\end{document}")
