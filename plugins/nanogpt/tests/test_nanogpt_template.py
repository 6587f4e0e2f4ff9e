"""The nanogpt template end to end: registration, knobs, the model, the causality guard (on models that leak and
on a copied experiment.py whose mask is broken), real quick runs (one through the CLI and the sandbox),
reproducibility, a bad setting scoring worse, plots, prompts and the paper skeleton."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from scientist_core.errors import ExperimentError
from scientist_core.testing import TemplateContract, finish_experiment, read_final_info, run_plot, start_experiment
from scientist_nanogpt.plugin import NanoGPTTemplate
from scientist_nanogpt.testing import seed_shakespeare

METRIC_NAMES = {"final_train_loss", "best_val_loss", "total_train_time", "avg_inference_tokens_per_second"}
# a learning rate 100x too small: training runs normally but the model learns too little in quick mode's steps
BAD_KNOBS = {"learning_rate": 3e-5}
# a few steps of quick mode's model, for tests about the mechanics rather than the numbers
SHORT = {"max_iters": 30, "eval_interval": 10, "eval_iters": 2, "inference_samples": 1, "inference_tokens": 5}


@pytest.fixture(scope="module")
def template() -> NanoGPTTemplate:
    return NanoGPTTemplate()


@pytest.fixture(scope="module")
def guard_module(template):
    spec = importlib.util.spec_from_file_location("nanogpt_guard_under_test", template.files_dir() / "guard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A data folder holding tiny Shakespeare, prepared as after a download."""
    folder = tmp_path_factory.mktemp("data")
    seed_shakespeare(folder)
    return folder


@pytest.fixture(scope="module")
def bad_run(template, tmp_path_factory, data_dir) -> Path:
    workspace = tmp_path_factory.mktemp("bad")
    return finish_experiment(start_experiment(template, workspace, {**BAD_KNOBS, "data_dir": str(data_dir)}),
                             workspace)


def best_val(run_dir: Path) -> float:
    return read_final_info(run_dir).datasets["shakespeare_char"].means["best_val_loss"]


def run_to_failure(template, workspace: Path, changes: dict) -> tuple[int, str]:
    proc = start_experiment(template, workspace, changes)
    _, stderr = proc.communicate(timeout=600)
    return proc.returncode, stderr.strip()


# -- knobs -----------------------------------------------------------------------------------------------------------


def test_defaults_are_the_papers_baseline(template, experiment_module):
    knobs = template.knobs()
    assert knobs.datasets == ["shakespeare_char", "enwik8", "text8"]
    assert (knobs.n_layer, knobs.n_head, knobs.n_embd, knobs.block_size, knobs.dropout, knobs.bias) == \
        (6, 6, 384, 256, 0.2, False)
    assert (knobs.beta1, knobs.beta2, knobs.weight_decay, knobs.grad_clip, knobs.min_lr_fraction) == \
        (0.9, 0.99, 0.1, 1.0, 0.1)
    per_dataset = {name: {key: knobs.for_dataset(name, key) for key in
                          ("max_iters", "batch_size", "learning_rate", "warmup_iters", "eval_interval", "num_seeds")}
                   for name in knobs.datasets}
    assert per_dataset["shakespeare_char"] == {"max_iters": 5000, "batch_size": 64, "learning_rate": 1e-3,
                                               "warmup_iters": 100, "eval_interval": 250, "num_seeds": 3}
    assert per_dataset["enwik8"] == per_dataset["text8"] == {
        "max_iters": 100_000, "batch_size": 32, "learning_rate": 5e-4, "warmup_iters": 200, "eval_interval": 1000,
        "num_seeds": 1}
    assert knobs.eval_iters == 200
    # nanoGPT's count (without the position embedding) for its shakespeare_char model: 10.65M
    assert round(experiment_module.GPT(knobs, 65).count_parameters() / 1e6, 2) == 10.65


def test_a_knob_set_applies_to_every_dataset(template):
    knobs = template.knobs(changes={"learning_rate": 2e-3})
    assert {knobs.for_dataset(name, "learning_rate") for name in knobs.datasets} == {2e-3}


@pytest.mark.parametrize("changes", [
    {"learning_rate": -1.0}, {"datasets": ["ptb"]}, {"datasets": []}, {"max_iters": 0}, {"n_embd": 100},
    {"dropout": 1.0}, {"device": "tpu"}, {"dtype": "int8"}, {"lr_schedule": "linear"}, {"block_size": 4},
])
def test_invalid_knob_values_are_rejected(template, changes):
    with pytest.raises(ExperimentError):
        template.knobs(changes=changes)


def test_every_knob_is_described_and_the_measurement_is_fixed(template):
    fields = template.knobs_model().model_fields
    assert all(field.description for field in fields.values())
    assert template.fixed_knobs <= set(fields)
    assert {"datasets", "num_seeds", "eval_iters", "eval_interval", "seed", "device", "data_dir"} <= template.fixed_knobs
    assert not {"max_iters", "learning_rate", "n_layer", "dropout", "block_size"} & template.fixed_knobs


def test_the_docstrings_give_the_exact_command(template):
    command = " ".join(template.experiment_command("run_0"))
    assert command == "python guard.py --out_dir run_0 --knobs run_0/knobs.json"
    for script in ("experiment.py", "guard.py"):
        assert command in ast.get_docstring(ast.parse((template.files_dir() / script).read_text())), script


def test_the_device_is_chosen_automatically(experiment_module):
    knobs = experiment_module.Knobs
    device, dtype, compiled = experiment_module.pick_device(knobs())
    if torch.cuda.is_available():
        assert device.type == "cuda" and dtype in (torch.bfloat16, torch.float16) and compiled
    else:
        assert (device.type, dtype, compiled) == ("cpu", torch.float32, False)
    assert experiment_module.pick_device(knobs(device="cpu", dtype="bfloat16", compile=True)) == \
        (torch.device("cpu"), torch.bfloat16, True)
    if not torch.cuda.is_available():
        with pytest.raises(experiment_module.RunFailed, match="device 'cuda' is not available"):
            experiment_module.pick_device(knobs(device="cuda"))


def test_the_learning_rate_warms_up_then_decays_to_its_floor(experiment_module):
    knobs = experiment_module.Knobs()
    rates = [experiment_module.learning_rate_at(step, 1e-3, 100, 5000, knobs) for step in range(5001)]
    assert rates[0] < rates[50] < rates[99] < rates[100] == pytest.approx(1e-3)
    assert rates[-1] == pytest.approx(1e-4) and min(rates[100:]) == pytest.approx(1e-4)
    assert all(a >= b for a, b in zip(rates[100:], rates[101:]))


# -- the causality guard ---------------------------------------------------------------------------------------------

def small_model(experiment_module, **changes):
    torch.manual_seed(0)
    knobs = experiment_module.Knobs(n_layer=2, n_head=2, n_embd=32, block_size=32, **changes)
    return experiment_module.GPT(knobs, 65), torch.randint(0, 65, (4, 32))


def test_a_causal_model_passes_with_dropout_too(experiment_module, guard_module):
    model, inputs = small_model(experiment_module, dropout=0.3)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    verdict = guard_module.check_causal(model, inputs, "test")
    assert verdict["ok"] and verdict["eval_max_change"] == 0.0 and verdict["train_max_change"] == 0.0
    assert verdict["positions_checked"] == [0, 1, 8, 16, 30]
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())


def test_attention_that_sees_one_token_ahead_is_caught(experiment_module, guard_module, monkeypatch):
    def peeking(self, x):  # the causal mask shifted by one: position t also sees t + 1
        batch, time_, width = x.shape
        heads = self.qkv(x).view(batch, time_, 3, self.n_head, width // self.n_head).permute(2, 0, 3, 1, 4)
        mask = torch.ones(time_, time_, dtype=torch.bool).tril(diagonal=1)
        mixed = torch.nn.functional.scaled_dot_product_attention(heads[0], heads[1], heads[2], attn_mask=mask)
        return self.out(mixed.transpose(1, 2).reshape(batch, time_, width))

    monkeypatch.setattr(experiment_module.SelfAttention, "forward", peeking)
    model, inputs = small_model(experiment_module)
    with pytest.raises(guard_module.CausalityViolation, match="test: in eval mode the logits at position \\d+ "
                                                             "changed by .* the model sees the future"):
        guard_module.check_causal(model, inputs, "test")


def test_a_leak_only_in_training_mode_is_caught(guard_module):
    class TimeBatchNorm(torch.nn.Module):
        """Normalises over batch and time while training: the statistics include later tokens."""

        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(65, 16)
            self.norm = torch.nn.BatchNorm1d(16)
            self.head = torch.nn.Linear(16, 65)

        def forward(self, idx):
            x = self.embed(idx)
            return self.head(self.norm(x.transpose(1, 2)).transpose(1, 2))

    torch.manual_seed(0)
    model = TimeBatchNorm()
    model.eval()
    statistics = model.norm.running_mean.clone()
    with pytest.raises(guard_module.CausalityViolation, match="in train mode"):
        guard_module.check_causal(model, torch.randint(0, 65, (4, 32)), "test")
    assert torch.equal(model.norm.running_mean, statistics) and not model.training  # left as it was


def test_a_forward_that_returns_no_logits_is_refused(guard_module):
    class Scalar(torch.nn.Module):
        def forward(self, idx):
            return idx.float().mean()

    with pytest.raises(guard_module.CausalityViolation, match="not logits of shape"):
        guard_module.check_causal(Scalar(), torch.randint(0, 65, (2, 16)), "test")


def test_a_copied_experiment_with_a_broken_mask_fails_its_run(template, data_dir, tmp_path):
    """The paper's leak, as an idea's code change would make it: the run fails in one line, and no numbers."""
    workspace = template.prepare_workspace(tmp_path / "leaky")
    experiment = workspace / "experiment.py"
    source = experiment.read_text()
    assert source.count("is_causal=True") == 1
    experiment.write_text(source.replace("is_causal=True", "is_causal=False"))
    code, stderr = run_to_failure(template, workspace, {**SHORT, "data_dir": str(data_dir)})
    assert code == 1
    assert stderr.splitlines() == [stderr] and stderr.startswith("causality check failed: shakespeare_char seed 0: ")
    assert stderr.endswith("the run is invalid")
    assert not (workspace / "run_0" / "final_info.json").exists()
    verdict = json.loads((workspace / "run_0" / "causality.json").read_text())
    assert verdict["ok"] is False and verdict["models"]["shakespeare_char seed 0"]["ok"] is False


def test_an_experiment_that_skips_the_check_fails_its_run(template, data_dir, tmp_path):
    workspace = template.prepare_workspace(tmp_path / "unchecked")
    experiment = workspace / "experiment.py"
    experiment.write_text(experiment.read_text().replace("if on_trained is not None:", "if False:"))
    code, stderr = run_to_failure(template, workspace, {**SHORT, "data_dir": str(data_dir)})
    assert code == 1 and stderr.splitlines() == [stderr]
    assert "reported shakespeare_char without handing a trained model to the check" in stderr
    assert not (workspace / "run_0" / "final_info.json").exists()


# -- the template contract, and real runs compared with its quick baseline through the CLI and sandbox ----------

class TestNanoGPTTemplate(TemplateContract):
    """The contract every template keeps (scientist_core.testing), and runs compared with its `cli_baseline`."""

    template_class = NanoGPTTemplate
    allowed_imports = {"numpy", "torch", "pydantic", "matplotlib"}

    @pytest.fixture(scope="class")
    @classmethod
    def template_data_dir(cls, data_dir) -> Path:
        """The data folder lies under /tmp, which the sandbox hides: runs see it because the core exposes it."""
        return data_dir

    def test_a_quick_baseline_through_the_cli_writes_the_results_contract(self, cli_baseline, template):
        info = read_final_info(cli_baseline)
        assert list(info.datasets) == ["shakespeare_char"]
        result = info.datasets["shakespeare_char"]
        assert set(result.means) == METRIC_NAMES and result.n == 1 and result.stderrs == {}  # one seed: no stderr
        assert all(np.isfinite(value) for value in result.means.values())
        assert result.means["total_train_time"] > 0 and result.means["avg_inference_tokens_per_second"] > 0
        quick = template.knobs(quick=True)
        with np.load(cli_baseline / "all_results.npz") as arrays:
            evaluated = list(arrays["shakespeare_char.eval_iters"])
            assert evaluated == list(range(0, quick.max_iters + 1, quick.eval_interval))
            assert arrays["shakespeare_char.val_loss"].shape == (1, len(arrays["shakespeare_char.eval_iters"]))
            assert arrays["shakespeare_char.step_loss"].shape == (1, quick.max_iters)
            assert arrays["shakespeare_char.best_val_loss"][0] == result.means["best_val_loss"]
        # quick mode must learn more than which character follows which (about 2.5), or ideas could not be compared
        assert result.means["best_val_loss"] < 2.2, result.means
        assert json.loads((cli_baseline / "causality.json").read_text())["ok"] is True
        assert (cli_baseline / "samples.txt").read_text().count("=== shakespeare_char seed 0 sample") == 2

    def test_a_bad_learning_rate_scores_clearly_worse(self, cli_baseline, bad_run):
        good, bad = best_val(cli_baseline), best_val(bad_run)
        assert bad > good + 0.5, (bad, good)

    def test_plot_draws_every_run(self, cli_baseline, bad_run, template, tmp_path):
        workspace = tmp_path / "plots"
        proc = run_plot(template, workspace, [cli_baseline, bad_run])
        assert proc.returncode == 0, proc.stderr
        assert {path.name for path in workspace.glob("*.png")} == {"train_loss_shakespeare_char.png",
                                                                    "val_loss_shakespeare_char.png"}
        for path in workspace.glob("*.png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert path.stat().st_size > 20_000  # drawn, not blank


def test_the_same_seed_gives_the_same_numbers_and_another_seed_does_not(template, data_dir, tmp_path):
    runs = {}
    for name, changes in (("first", {}), ("again", {}), ("other", {"seed": 1})):
        proc = start_experiment(template, tmp_path / name, {**SHORT, **changes, "data_dir": str(data_dir)})
        runs[name] = finish_experiment(proc, tmp_path / name)
    infos = {name: read_final_info(run).datasets["shakespeare_char"].means for name, run in runs.items()}
    for key in ("final_train_loss", "best_val_loss"):
        assert infos["first"][key] == infos["again"][key] != infos["other"][key]
    with np.load(runs["first"] / "all_results.npz") as first, np.load(runs["again"] / "all_results.npz") as again:
        np.testing.assert_array_equal(first["shakespeare_char.step_loss"], again["shakespeare_char.step_loss"])
    assert (runs["first"] / "samples.txt").read_text() == (runs["again"] / "samples.txt").read_text()


def test_a_diverging_run_fails_with_one_line(template, data_dir, tmp_path):
    code, stderr = run_to_failure(template, tmp_path / "diverge",
                                  {**SHORT, "learning_rate": 1e30, "data_dir": str(data_dir)})
    assert code == 1
    assert stderr.splitlines() == [stderr] and "diverged" in stderr
    assert not (tmp_path / "diverge" / "run_0" / "final_info.json").exists()


def test_missing_data_fails_with_one_line(template, tmp_path):
    code, stderr = run_to_failure(template, tmp_path / "nodata", {**SHORT, "data_dir": str(tmp_path / "empty")})
    assert code == 1 and stderr.splitlines() == [stderr]
    assert "shakespeare_char: the prepared data in" in stderr and "python -m scientist_nanogpt.data" in stderr
