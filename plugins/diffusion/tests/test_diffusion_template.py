"""The diffusion template end to end: registration, knobs, data, real quick runs (through the CLI and sandbox too),
reproducibility, a bad setting scoring worse, plots, prompts and the paper skeleton compiled with real LaTeX."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from scientist_core.errors import ExperimentError
from scientist_core.testing import TemplateContract, finish_experiment, read_final_info, run_plot, start_experiment
from scientist_diffusion.plugin import DiffusionTemplate

DATASETS = ["circle", "dino", "line", "moons"]
METRIC_NAMES = {"training_time", "eval_loss", "inference_time", "kl_divergence"}
# a learning rate 100x too small: training runs normally but the model learns too little in quick mode's steps
BAD_KNOBS = {"learning_rate": 3e-6}


@pytest.fixture(scope="module")
def template() -> DiffusionTemplate:
    return DiffusionTemplate()


def kl(run_dir: Path) -> dict[str, float]:
    return {name: result.means["kl_divergence"] for name, result in read_final_info(run_dir).datasets.items()}


@pytest.fixture(scope="module")
def bad_run(template, tmp_path_factory) -> Path:
    workspace = tmp_path_factory.mktemp("bad")
    return finish_experiment(start_experiment(template, workspace, {**BAD_KNOBS, "datasets": ["circle", "moons"]}), workspace)


# -- knobs -----------------------------------------------------------------------------------------------------------

def test_defaults_are_the_papers_baseline(template):
    knobs = template.knobs()
    assert knobs.datasets == DATASETS
    assert (knobs.steps, knobs.batch_size, knobs.learning_rate, knobs.lr_schedule) == (10_000, 256, 3e-4, "cosine")
    assert (knobs.hidden_size, knobs.hidden_layers, knobs.embedding_dim, knobs.input_scale) == (256, 3, 128, 25.0)
    assert (knobs.num_timesteps, knobs.beta_schedule, knobs.beta_start, knobs.beta_end) == (100, "linear", 1e-4, 0.02)
    assert (knobs.ema_beta, knobs.ema_every, knobs.grad_clip) == (0.995, 10, 0.5)
    assert (knobs.dataset_size, knobs.num_samples, knobs.kl_neighbours) == (100_000, 10_000, 5)


@pytest.mark.parametrize("changes", [
    {"learning_rate": -1.0}, {"datasets": ["mnist"]}, {"datasets": []}, {"steps": "many"},
    {"embedding_dim": 127}, {"beta_schedule": "cosine"}, {"ema_beta": 1.0}, {"num_timesteps": 1},
    {"num_samples": 10, "kl_neighbours": 10},
])
def test_invalid_knob_values_are_rejected(template, changes):
    with pytest.raises(ExperimentError):
        template.knobs(changes=changes)


def test_every_knob_is_described(template):
    fields = template.knobs_model().model_fields
    assert {"steps", "batch_size", "learning_rate", "hidden_size", "hidden_layers", "embedding_dim",
            "num_timesteps", "beta_schedule", "ema_beta", "datasets", "seed", "num_samples", "eval_batch_size",
            "num_workers"} <= set(fields)
    assert all(field.description for field in fields.values())


# -- data ----------------------------------------------------------------------------------------------------------

def test_dino_is_the_datasaurus_sampled_and_scaled_as_in_v1(experiment_module):
    raw = experiment_module.dino_points()
    assert raw.shape == (142, 2)
    assert "data_morph" not in sys.modules  # read from the installed package's folder, not imported
    points = experiment_module.make_dataset("dino", 8000)
    assert points.shape == (8000, 2) and points.dtype == np.float32
    # v1: rng(42) picks 8000 rows, adds 0.15 N(0, 1) to x (all first) then to y, then scales
    rng = np.random.default_rng(42)
    rows = rng.integers(0, 142, 8000)
    x = (raw[rows, 0] + 0.15 * rng.normal(size=8000)) / 54 * 4 - 4
    y = (raw[rows, 1] + 0.15 * rng.normal(size=8000)) / 48 * 4 - 4
    np.testing.assert_allclose(points, np.stack([x, y], axis=1), rtol=1e-5, atol=1e-5)
    assert -4.5 < points.min() and points.max() < 4.8


@pytest.mark.parametrize("name", DATASETS)
def test_datasets_are_fixed_and_bounded(experiment_module, name):
    points = experiment_module.make_dataset(name, 5000)
    assert points.shape == (5000, 2) and np.isfinite(points).all()
    assert np.abs(points).max() < 5
    np.testing.assert_array_equal(points, experiment_module.make_dataset(name, 5000))


def test_kl_estimator_is_small_for_the_same_distribution_and_large_for_another(experiment_module):
    rng = np.random.default_rng(0)
    real = rng.normal(size=(20_000, 2))
    same = experiment_module.kl_divergence(real, rng.normal(size=(5_000, 2)), 5)
    shifted = experiment_module.kl_divergence(real, rng.normal(size=(5_000, 2)) + [1.0, 0.0], 5)
    assert abs(same) < 0.05
    # KL(N(0, I) || N((1, 0), I)) = 1/2 nat = 0.721 bits
    assert shifted == pytest.approx(0.5 / np.log(2), rel=0.1)


# -- the template contract, and real runs compared with its quick baseline through the CLI and sandbox ----------

class TestDiffusionTemplate(TemplateContract):
    """The contract every template keeps (scientist_core.testing), and runs compared with its `cli_baseline`."""

    template_class = DiffusionTemplate
    allowed_imports = {"numpy", "scipy", "torch", "pydantic", "matplotlib"}

    def test_a_quick_baseline_through_the_cli_writes_the_results_contract(self, cli_baseline, template):
        info = read_final_info(cli_baseline)
        assert list(info.datasets) == DATASETS
        for result in info.datasets.values():
            assert set(result.means) == set(result.stderrs) == METRIC_NAMES
            assert result.n == template.quick_knobs["num_seeds"] == 2
            assert all(np.isfinite(value) for value in result.means.values())
            assert result.means["training_time"] > 0 and result.means["inference_time"] > 0
        with np.load(cli_baseline / "all_results.npz") as arrays:
            for name in DATASETS:
                assert arrays[f"{name}.train_loss"].shape == (template.quick_knobs["steps"],)
                assert arrays[f"{name}.samples"].shape == (template.quick_knobs["num_samples"], 2)
        # quick mode must learn the coarse shapes, or a good idea could not be told from a bad one
        kls = kl(cli_baseline)
        assert kls["circle"] < 1.0 and kls["line"] < 0.5 and kls["moons"] < 0.8 and kls["dino"] < 7.0, kls

    def test_the_same_seed_gives_the_same_numbers_and_another_seed_does_not(self, cli_baseline, template,
                                                                             tmp_path):
        # one dataset, in this process (num_workers=1): the parallel run of all four must give the same numbers
        again = start_experiment(template, tmp_path / "again", {"datasets": ["moons"], "num_workers": 1})
        # the first step's loss depends only on the seed (initialisation, batch, noise): a few steps tell seeds apart
        other = start_experiment(template, tmp_path / "other", {"datasets": ["moons"], "seed": 1, "steps": 20,
                                                                "num_samples": 100})
        again, other = finish_experiment(again, tmp_path / "again"), finish_experiment(other, tmp_path / "other")
        baseline = read_final_info(cli_baseline).datasets["moons"].means
        repeated = read_final_info(again).datasets["moons"].means
        for key in ("eval_loss", "kl_divergence"):
            assert repeated[key] == baseline[key]
        with np.load(cli_baseline / "all_results.npz") as first, np.load(again / "all_results.npz") as second, \
                np.load(other / "all_results.npz") as third:
            np.testing.assert_array_equal(first["moons.samples"], second["moons.samples"])
            np.testing.assert_array_equal(first["moons.train_loss"], second["moons.train_loss"])
            assert third["moons.train_loss"][0] != first["moons.train_loss"][0]

    def test_a_bad_learning_rate_scores_clearly_worse(self, cli_baseline, bad_run):
        good, bad = kl(cli_baseline), kl(bad_run)
        for name in bad:
            assert bad[name] > 2 * good[name] and bad[name] - good[name] > 0.5, (name, bad, good)

    def test_plot_draws_every_run(self, cli_baseline, bad_run, template, tmp_path):
        workspace = tmp_path / "plots"
        proc = run_plot(template, workspace, [cli_baseline, bad_run])
        assert proc.returncode == 0, proc.stderr
        assert {path.name for path in workspace.glob("*.png")} == {"train_loss.png", "generated_images.png"}
        for path in workspace.glob("*.png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert path.stat().st_size > 20_000  # drawn, not blank


def test_a_diverging_run_fails_with_one_line(template, tmp_path):
    proc = start_experiment(template, tmp_path / "diverge", {"datasets": ["line"], "learning_rate": 1e9,
                                                             "num_workers": 1})
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert stderr.strip().splitlines() == [stderr.strip()] and "diverged" in stderr
    assert not (tmp_path / "diverge" / "run_0" / "final_info.json").exists()
