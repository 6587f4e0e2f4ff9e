"""The grokking template end to end: registration, knobs, the four tasks' equation tables and their seeded split,
the model, real quick runs (one through the CLI and the sandbox), reproducibility, bad settings scoring worse,
divergence, plots, prompts and the paper skeleton compiled with real LaTeX."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from scientist_core.errors import ExperimentError
from scientist_core.testing import TemplateContract, finish_experiment, read_final_info, run_plot, start_experiment
from scientist_grokking.plugin import GrokkingTemplate

DATASETS = ["x_div_y", "x_minus_y", "x_plus_y", "permutation"]
MODULAR = ["x_div_y", "x_minus_y", "x_plus_y"]
METRIC_NAMES = {"final_train_loss", "final_val_loss", "final_train_acc", "final_val_acc", "step_val_acc_99"}
# quick mode's settings gone wrong, one seed each: a learning rate 100x too small never memorises the training
# half; without weight decay the model memorises it but generalises more slowly
TOO_SMALL_LR = {"learning_rate": 1e-5, "num_seeds": 1, "num_workers": 1}
NO_WEIGHT_DECAY = {"weight_decay": 0.0, "num_seeds": 1, "num_workers": 1}
# a few updates of two tasks, two seeds each: enough to tell seeds apart and to compare worker counts
SHORT = {"datasets": ["x_plus_y", "permutation"], "steps": 30, "num_seeds": 2}


@pytest.fixture(scope="module")
def template() -> GrokkingTemplate:
    return GrokkingTemplate()


def means(run_dir: Path, dataset: str = "x_plus_y") -> dict[str, float]:
    return read_final_info(run_dir).datasets[dataset].means


@pytest.fixture(scope="module")
def bad_runs(template, tmp_path_factory) -> dict[str, Path]:
    """The two bad settings side by side, one process (and one core) each."""
    started = {}
    for name, changes in (("small_lr", TOO_SMALL_LR), ("no_weight_decay", NO_WEIGHT_DECAY)):
        workspace = tmp_path_factory.mktemp(name)
        started[name] = (start_experiment(template, workspace, changes), workspace)
    return {name: finish_experiment(proc, workspace) for name, (proc, workspace) in started.items()}


@pytest.fixture(scope="module")
def short_run(template, tmp_path_factory) -> Path:
    workspace = tmp_path_factory.mktemp("short")
    return finish_experiment(start_experiment(template, workspace, SHORT), workspace)


# -- knobs -----------------------------------------------------------------------------------------------------------

def test_defaults_are_the_papers_baseline(template):
    knobs = template.knobs()
    assert knobs.datasets == DATASETS
    assert (knobs.prime, knobs.permutation_size, knobs.train_fraction) == (97, 5, 0.5)
    assert (knobs.steps, knobs.batch_size, knobs.learning_rate, knobs.weight_decay) == (7500, 512, 1e-3, 0.5)
    assert (knobs.warmup_steps, knobs.lr_schedule, knobs.adam_beta1, knobs.adam_beta2) == (50, "constant", 0.9, 0.98)
    assert (knobs.num_layers, knobs.d_model, knobs.num_heads, knobs.ffn_multiplier) == (2, 128, 4, 4)
    assert (knobs.dropout, knobs.grad_clip, knobs.eval_every, knobs.num_seeds) == (0.0, 0.0, 10, 3)
    assert (knobs.seed, knobs.num_workers) == (0, 2)


@pytest.mark.parametrize("changes", [
    {"learning_rate": -1.0}, {"learning_rate": 100.0}, {"datasets": ["mnist"]}, {"datasets": []},
    {"steps": "many"}, {"steps": 0}, {"prime": 91}, {"prime": 2}, {"num_heads": 3}, {"dropout": 1.0},
    {"train_fraction": 1.0}, {"adam_beta2": 1.0}, {"lr_schedule": "linear"}, {"permutation_size": 7},
    {"num_seeds": 0},
])
def test_invalid_knob_values_are_rejected(template, changes):
    with pytest.raises(ExperimentError):
        template.knobs(changes=changes)


def test_every_knob_is_described_and_bounded(template):
    fields = template.knobs_model().model_fields
    assert template.fixed_knobs <= set(fields)
    assert {"steps", "learning_rate", "weight_decay", "warmup_steps", "batch_size", "d_model", "num_layers",
            "dropout"}.isdisjoint(template.fixed_knobs)
    for name, field in fields.items():
        assert field.description, name
        if field.annotation in (int, float):
            bounds = {type(item).__name__ for item in field.metadata}
            assert bounds & {"Ge", "Gt"} and bounds & {"Le", "Lt"}, name


# -- data ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", DATASETS)
def test_every_equation_appears_exactly_once(experiment_module, name):
    tokens, answers, n = experiment_module.make_dataset(name, 97, 5)
    second = range(1, 97) if name == "x_div_y" else range(n)
    assert n == (120 if name == "permutation" else 97)
    assert tokens.shape == (n * len(second), 4) and answers.shape == (len(tokens),)
    assert tokens.dtype == answers.dtype == np.int64
    assert (tokens[:, 1] == n).all() and (tokens[:, 3] == n + 1).all()  # the "o" and "=" tokens
    pairs = {(int(x), int(y)) for x, y in tokens[:, [0, 2]]}
    assert pairs == set(itertools.product(range(n), second))
    assert answers.min() >= 0 and answers.max() < n


def test_modular_answers(experiment_module):
    p = 97
    for name, expected in (("x_plus_y", lambda x, y: (x + y) % p), ("x_minus_y", lambda x, y: (x - y) % p),
                           ("x_div_y", lambda x, y: x * pow(int(y), -1, p) % p)):
        tokens, answers, _ = experiment_module.make_dataset(name, p, 5)
        x, y = tokens[:, 0], tokens[:, 2]
        assert all(z == expected(int(a), int(b)) for a, b, z in zip(x, y, answers)), name
    tokens, answers, _ = experiment_module.make_dataset("x_div_y", p, 5)
    assert ((answers * tokens[:, 2]) % p == tokens[:, 0]).all()  # z * y = x: division undoes multiplication


def test_permutation_answers_are_the_composition_table_of_s5(experiment_module):
    tokens, answers, n = experiment_module.make_dataset("permutation", 97, 5)
    perms = list(itertools.permutations(range(5)))
    for (x, _, y, _), z in zip(tokens, answers):
        a, b = perms[x], perms[y]
        assert perms[z] == tuple(a[b[i]] for i in range(5))  # z(i) = x(y(i)), v1's composition
    table = answers.reshape(n, n)
    # a group's table is a Latin square, element 0 (the identity, first in lexicographic order) is neutral,
    # and S5 is not commutative
    assert all(sorted(row) == list(range(n)) for row in table) and all(sorted(col) == list(range(n)) for col in table.T)
    assert (table[0] == np.arange(n)).all() and (table[:, 0] == np.arange(n)).all()
    assert not (table == table.T).all()
    rng = np.random.default_rng(0)
    for a, b, c in rng.integers(0, n, (200, 3)):
        assert table[table[a, b], c] == table[a, table[b, c]]


def test_a_smaller_prime_and_symmetric_group_work(experiment_module):
    tokens, answers, n = experiment_module.make_dataset("x_div_y", 7, 5)
    assert (n, len(tokens)) == (7, 42) and ((answers * tokens[:, 2]) % 7 == tokens[:, 0]).all()
    tokens, answers, n = experiment_module.make_dataset("permutation", 97, 3)
    assert (n, len(tokens)) == (6, 36)


def test_the_split_is_seeded_disjoint_and_cut_as_in_v1(experiment_module, template):
    knobs = template.knobs()
    for name, size in (("x_plus_y", 9409), ("x_div_y", 9312), ("permutation", 14400)):
        split_seed, _ = experiment_module.job_seeds(knobs, name, 0)
        train, val = experiment_module.split(size, 0.5, np.random.default_rng(split_seed))
        assert len(train) == size // 2 and len(val) == size - size // 2
        assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(size))
        again, _ = experiment_module.split(size, 0.5, np.random.default_rng(split_seed))
        assert np.array_equal(train, again)
    seeds = {experiment_module.job_seeds(template.knobs(changes=changes), name, replicate)
             for changes in ({}, {"seed": 1}) for name in DATASETS for replicate in range(3)}
    assert len(seeds) == 2 * 4 * 3  # every (seed, task, replicate) has its own split and initialisation


def test_the_model_has_v1s_size_and_its_shortcut_changes_nothing(experiment_module, template):
    import torch

    knobs = template.knobs()
    torch.manual_seed(0)
    model = experiment_module.Transformer(knobs, vocab_size=99, num_classes=97)
    assert sum(p.numel() for p in model.parameters()) == 422_497  # v1: 422,625 with a fifth, unused position
    tokens = torch.from_numpy(experiment_module.make_dataset("x_plus_y", 97, 5)[0][:64])
    # the last block computes only the last position; computing all positions gives the same logits there
    x = model.token_embedding(tokens) + model.position_embedding
    for block in model.blocks:
        x = block(x)
    with torch.no_grad():
        full = model.head(model.norm(x[:, -1]))
        torch.testing.assert_close(model(tokens), full, rtol=1e-5, atol=1e-5)


def test_step_val_acc_99_is_the_first_measurement_reaching_it(experiment_module, template, monkeypatch):
    accuracies = iter([0.5, 0.9, 0.991, 0.8, 1.0] + [0.0] * 10)  # the 3rd measurement, at update 30, counts
    real_evaluate = experiment_module.evaluate

    def scripted(model, tokens, answers):
        loss, _ = real_evaluate(model, tokens[:8], answers[:8])
        return loss, next(accuracies)

    monkeypatch.setattr(experiment_module, "evaluate", scripted)
    small = {"datasets": ["x_plus_y"], "d_model": 16, "num_heads": 2, "batch_size": 8, "num_seeds": 1}
    result = experiment_module.train_one(template.knobs(changes={**small, "steps": 50}), "x_plus_y", 0)
    assert result["metrics"]["step_val_acc_99"] == 30.0
    assert list(result["curves"]["step"]) == [10, 20, 30, 40, 50]
    accuracies = iter([0.5] * 10)  # never reached: v1's sentinel, the number of updates
    result = experiment_module.train_one(template.knobs(changes={**small, "steps": 25}), "x_plus_y", 0)
    assert result["metrics"]["step_val_acc_99"] == 25.0
    assert list(result["curves"]["step"]) == [10, 20, 25]  # the last update is always measured


def test_the_learning_rate_warms_up_then_holds_or_decays(experiment_module, template):
    knobs = template.knobs()
    assert [experiment_module.learning_rate(knobs, step) for step in (1, 25, 50, 51, 7500)] == \
        pytest.approx([2e-5, 5e-4, 1e-3, 1e-3, 1e-3])
    cosine = template.knobs(changes={"lr_schedule": "cosine"})
    assert experiment_module.learning_rate(cosine, 7500) == pytest.approx(0.0, abs=1e-12)
    assert experiment_module.learning_rate(cosine, 3775) == pytest.approx(5e-4, rel=1e-3)


# -- the template contract, and real runs compared with its quick baseline through the CLI and sandbox ----------

class TestGrokkingTemplate(TemplateContract):
    """The contract every template keeps (scientist_core.testing), and runs compared with its `cli_baseline`."""

    template_class = GrokkingTemplate
    allowed_imports = {"numpy", "torch", "pydantic", "matplotlib"}

    def test_a_quick_baseline_through_the_cli_writes_the_results_contract(self, cli_baseline, template):
        info = read_final_info(cli_baseline)
        assert list(info.datasets) == ["x_plus_y"]
        result = info.datasets["x_plus_y"]
        assert set(result.means) == set(result.stderrs) == METRIC_NAMES and result.n == 2
        assert all(np.isfinite(value) for value in [*result.means.values(), *result.stderrs.values()])
        steps = template.quick_knobs["steps"]
        with np.load(cli_baseline / "all_results.npz") as arrays:
            assert list(arrays["x_plus_y.step"]) == list(range(10, steps + 1, 10))
            for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
                assert arrays[f"x_plus_y.{key}"].shape == (2, steps // 10)
            # the two seeds differ: different splits, initialisations and batches
            assert not np.array_equal(arrays["x_plus_y.val_loss"][0], arrays["x_plus_y.val_loss"][1])
        # quick mode must memorise the training half and start to generalise, or good and bad ideas look alike
        assert result.means["final_train_acc"] > 0.99 and result.means["final_val_acc"] > 0.1, result.means
        assert result.stderrs["final_val_acc"] > 0

    def test_bad_settings_score_clearly_worse(self, cli_baseline, bad_runs):
        good = means(cli_baseline)
        small_lr, no_decay = means(bad_runs["small_lr"]), means(bad_runs["no_weight_decay"])
        # too small a learning rate: the training half is not even memorised
        assert small_lr["final_train_acc"] < 0.2 < 0.99 < good["final_train_acc"], (small_lr, good)
        # no weight decay: memorised as well, but not generalising: the validation loss grows instead of falling.
        # (Validation accuracy after 800 updates varies too much from seed to seed to tell them apart: 0.21 and
        # 0.08 for the baseline's two seeds, 0.10 without weight decay.)
        assert no_decay["final_train_acc"] > 0.99
        assert no_decay["final_val_loss"] > good["final_val_loss"] + 1.0, (no_decay, good)

    def test_plot_draws_every_run(self, cli_baseline, bad_runs, short_run, template, tmp_path):
        workspace = tmp_path / "plots"
        proc = run_plot(template, workspace, [cli_baseline, *bad_runs.values(), short_run])
        assert proc.returncode == 0, proc.stderr
        assert {path.name for path in workspace.glob("*.png")} == {"loss_curves.png", "accuracy_curves.png"}
        for path in workspace.glob("*.png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert path.stat().st_size > 40_000  # drawn, not blank


def test_the_same_seed_gives_the_same_numbers_whatever_the_workers(template, short_run, tmp_path):
    one_process = start_experiment(template, tmp_path / "one", {**SHORT, "num_workers": 1})
    other_seed = start_experiment(template, tmp_path / "other", {**SHORT, "seed": 1})
    one_process = finish_experiment(one_process, tmp_path / "one")
    other_seed = finish_experiment(other_seed, tmp_path / "other")
    assert read_final_info(one_process) == read_final_info(short_run)
    assert read_final_info(other_seed) != read_final_info(short_run)
    with np.load(short_run / "all_results.npz") as first, np.load(one_process / "all_results.npz") as second:
        assert set(first) == set(second)
        for key in first:
            np.testing.assert_array_equal(first[key], second[key])


def test_a_diverging_run_fails_with_one_line(template, tmp_path):
    proc = start_experiment(template, tmp_path / "diverge", {"learning_rate": 10.0, "weight_decay": 1.0,
                                                             "num_seeds": 1, "num_workers": 1, "steps": 500})
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert stderr.strip().splitlines() == [stderr.strip()] and "diverged" in stderr
    assert not (tmp_path / "diverge" / "run_0" / "final_info.json").exists()


# -- prompts, ideas, paper ---------------------------------------------------------------------------------------

def test_the_bibliography_holds_the_works_the_template_builds_on(template):
    bib = (template.files_dir() / "latex" / "references.bib").read_text()
    for key in ("power2022grokking", "vaswani2017attention", "loshchilov2019decoupled", "lu2024aiscientist"):
        assert f"{{{key}," in bib, key


def test_the_prompt_names_the_step_metric(template):
    assert "step_val_acc_99" in template.prompt()["task_description"]
