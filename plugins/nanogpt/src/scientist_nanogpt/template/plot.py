"""Draw the runs of experiment.py side by side.

    python plot.py run_0 run_1 [RUN_DIR ...]

Reads `all_results.npz` and `final_info.json` from every folder given and saves, in the current folder, per dataset:

    train_loss_<dataset>.png   training loss against step (moving average of the per-step loss), one line per run:
                               the mean over its seeds, shaded by the standard error where there are several
    val_loss_<dataset>.png     validation loss at each evaluation, one line per run, the same way; the legend
                               gives each run's best validation loss

Runs are labelled by their folder name (by the path given, where two folders share a name).
Needs numpy and matplotlib only.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # runs headless in the sandbox
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# the loss of one batch is noisy; averaging over this fraction of the run makes runs comparable by eye
SMOOTHING_FRACTION = 0.02


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """The average over the last `window` values (fewer at the start), one value per step."""
    window = max(1, min(window, len(values)))
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (sums[1:] - sums[np.maximum(0, np.arange(1, len(values) + 1) - window)]) / counts


def mean_and_stderr(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Over the seeds (rows); the standard error is 0 for a single seed."""
    if len(curves) < 2:
        return curves[0], np.zeros_like(curves[0])
    return curves.mean(axis=0), curves.std(axis=0, ddof=1) / np.sqrt(len(curves))


def load_run(run_dir: Path) -> tuple[dict[str, np.ndarray], dict]:
    try:
        with np.load(run_dir / "all_results.npz") as npz:
            arrays = dict(npz)
        final_info = json.loads((run_dir / "final_info.json").read_text())
    except FileNotFoundError as exc:
        raise SystemExit(f"{run_dir}: {Path(exc.filename).name} is missing; did experiment.py finish there?")
    return arrays, final_info


def draw(dataset: str, runs: dict, kind: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (arrays, info) in runs.items():
        if dataset not in info:
            continue
        if kind == "train":
            curves = arrays[f"{dataset}.step_loss"]
            window = max(1, int(SMOOTHING_FRACTION * curves.shape[1]))
            curves = np.stack([moving_average(curve, window) for curve in curves])
            steps = np.arange(1, curves.shape[1] + 1)
            name = label
        else:
            curves, steps = arrays[f"{dataset}.val_loss"], arrays[f"{dataset}.eval_iters"]
            name = f"{label} (best {info[dataset]['means']['best_val_loss']:.3f})"
        mean, stderr = mean_and_stderr(curves)
        line, = ax.plot(steps, mean, label=name)
        if stderr.any():
            ax.fill_between(steps, mean - stderr, mean + stderr, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (moving average)" if kind == "train" else "validation loss")
    ax.set_title(f"{'Training' if kind == 'train' else 'Validation'} loss on {dataset}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(f"{kind}_loss_{dataset}.png", dpi=150)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description="Plot training and validation loss of runs, per dataset.")
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders written by experiment.py")
    args = parser.parse_args()

    names = [run_dir.resolve().name for run_dir in args.run_dirs]
    # a folder name used twice (run_0 of two workspaces) would hide a run: those are labelled by their path
    labels = [name if names.count(name) == 1 else str(run_dir) for name, run_dir in zip(names, args.run_dirs)]
    runs = {label: load_run(run_dir) for label, run_dir in zip(labels, args.run_dirs)}
    for dataset in dict.fromkeys(name for _, info in runs.values() for name in info):
        draw(dataset, runs, "train")
        draw(dataset, runs, "val")


if __name__ == "__main__":
    main()
