"""Run experiment.py and check every model it trains for a leak of the future, before its numbers are kept.

    python guard.py --out_dir run_0 --knobs run_0/knobs.json

This is the command scientist runs. A language model reads text left to right: the logits at position t may
depend on the tokens 0..t only. The AI Scientist paper reports ideas that broke this (a change to attention or to
the inputs that lets a position see later tokens); such a model "predicts" the next character by reading it, its
loss drops far below anything honest, and a paper is written about it. So this file imports experiment.py, runs
its main() and, for every trained model it hands over, changes the tokens after position t (for several t) and
checks that the logits at positions 0..t do not move: in eval mode, and in training mode with the same dropout
masks. A model that fails makes the run fail: the reason goes to stderr in one line, final_info.json is removed,
and the exit status is 1, so the pipeline marks the run failed and its numbers never reach a paper.

The verdicts are written to <out_dir>/causality.json. experiment.py may be edited by an idea, this file is not:
keep main(argv, on_trained) there, hand every trained model to on_trained(model, inputs, label), and keep
model(inputs) -> logits (batch, time, vocabulary). Standard library and torch only.
"""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import torch

# logits of an unchanged prefix are recomputed by the same kernels on the same shapes, so they agree to rounding;
# a model that reads the future moves them by orders of magnitude more
TOLERANCE = 1e-4
CHECK_SEED = 1234


class CausalityViolation(Exception):
    """A model whose outputs at position t depend on tokens after t."""


def logits_of(model, inputs: torch.Tensor) -> torch.Tensor:
    output = model(inputs)
    if isinstance(output, (tuple, list)):  # a forward that also returns a loss: the logits come first
        output = output[0]
    if not (isinstance(output, torch.Tensor) and output.dim() == 3 and output.shape[:2] == inputs.shape):
        raise CausalityViolation(f"the model's output for inputs of shape {tuple(inputs.shape)} is not logits of "
                                 f"shape (batch, time, vocabulary) but {getattr(output, 'shape', type(output))}; "
                                 "keep GPT.forward(idx) -> logits for guard.py")
    return output.float()


def largest_change(model, inputs: torch.Tensor, cuts: list[int], training: bool) -> tuple[float, int]:
    """The largest change of the logits at positions <= t when the tokens after t change, and that t."""
    saved = {name: buffer.clone() for name, buffer in model.named_buffers()}  # running statistics, if any
    was_training = model.training
    model.train(training)
    worst, worst_cut = 0.0, -1
    try:
        with torch.no_grad(), torch.autocast(inputs.device.type, enabled=False), \
                torch.random.fork_rng(devices=[inputs.device] if inputs.device.type == "cuda" else []):
            torch.manual_seed(CHECK_SEED)
            reference = logits_of(model, inputs)
            vocabulary = reference.shape[-1]
            shift = torch.Generator().manual_seed(CHECK_SEED)
            for cut in cuts:
                changed = inputs.clone()
                # every later token becomes another token of the vocabulary, none stays what it was
                offsets = torch.randint(1, max(vocabulary, 2), changed[:, cut + 1:].shape, generator=shift)
                changed[:, cut + 1:] = (changed[:, cut + 1:] + offsets.to(inputs.device)) % vocabulary
                torch.manual_seed(CHECK_SEED)  # the same dropout masks as the reference pass
                moved = (logits_of(model, changed)[:, :cut + 1] - reference[:, :cut + 1]).abs().max().item()
                if not moved <= worst:  # NaN counts as a change, and as the worst one
                    worst, worst_cut = moved, cut
                    if moved != moved:
                        break
    finally:
        model.train(was_training)
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(saved[name])
    return worst, worst_cut


def check_causal(model, inputs: torch.Tensor, label: str) -> dict:
    """The largest change in both modes; raises CausalityViolation above the tolerance (relative to the logits'
    scale where they exceed 1)."""
    length = inputs.shape[1]
    cuts = sorted({0, 1, length // 4, length // 2, length - 2} & set(range(length - 1)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.autocast(inputs.device.type, enabled=False):
            scale = logits_of(model, inputs).abs().max().item()
    finally:
        model.train(was_training)
    verdict = {"positions_checked": cuts, "tolerance": TOLERANCE * max(1.0, scale)}
    for mode in ("eval", "train"):
        change, cut = largest_change(model, inputs, cuts, training=mode == "train")
        verdict[f"{mode}_max_change"] = change
        if not change <= verdict["tolerance"]:
            raise CausalityViolation(
                f"{label}: in {mode} mode the logits at position {cut} changed by {change:.3g} when only the "
                f"tokens after it changed: the model sees the future, so its losses are not a language model's")
    verdict["ok"] = True
    return verdict


def load_experiment(path: Path):
    spec = importlib.util.spec_from_file_location("experiment", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["experiment"] = module  # pydantic resolves the knobs' annotations through the module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description="Run experiment.py and check that its models are causal.")
    parser.add_argument("--out_dir", default="run_0")
    parser.add_argument("--knobs")
    parser.add_argument("--experiment", default="experiment.py", help="the experiment file (default: the workspace's)")
    args = parser.parse_args()
    out_dir = Path(args.out_dir)
    verdicts: dict[str, dict] = {}
    failures: list[str] = []

    def on_trained(model, inputs, label) -> None:
        try:
            verdicts[label] = check_causal(model, inputs, label)
        except CausalityViolation as exc:
            verdicts[label] = {"ok": False, "reason": str(exc)}
            failures.append(str(exc))
            raise

    def fail(reason: str) -> None:
        (out_dir / "final_info.json").unlink(missing_ok=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "causality.json").write_text(json.dumps({"ok": False, "reason": reason, "models": verdicts},
                                                           indent=2) + "\n")
        raise SystemExit(f"causality check failed: {reason}; the run is invalid")

    experiment = load_experiment(Path(args.experiment))
    argv = ["--out_dir", args.out_dir] + (["--knobs", args.knobs] if args.knobs else [])
    try:
        experiment.main(argv, on_trained=on_trained)
    except CausalityViolation as exc:
        fail(str(exc))
    if failures:  # experiment.py caught the violation and went on: its numbers are still invalid
        fail(failures[0])
    final_info = out_dir / "final_info.json"
    if final_info.is_file():
        checked = {label.split(" seed ")[0] for label in verdicts}
        unchecked = [name for name in json.loads(final_info.read_text()) if name not in checked]
        if unchecked:
            fail(f"experiment.py reported {', '.join(unchecked)} without handing a trained model to the check "
                 "(call on_trained(model, inputs, label) for every model, label starting with the dataset)")
    (out_dir / "causality.json").write_text(json.dumps({"ok": True, "models": verdicts}, indent=2) + "\n")


if __name__ == "__main__":
    main()
