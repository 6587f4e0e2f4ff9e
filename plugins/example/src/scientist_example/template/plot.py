"""Draw the runs of experiment.py side by side.

    python plot.py run_0 run_1 [RUN_DIR ...]

Reads `all_results.npz` and `final_info.json` from every folder given and saves, in the current folder:

    train_loss_<dataset>.png   training loss against step, mean over seeds and smoothed, one line per run
    val_accuracy.png           final validation accuracy per dataset (± stderr), one bar per run

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

# minibatch losses jump from step to step; a moving average over this many steps makes runs comparable by eye
SMOOTHING_STEPS = 50


def moving_average(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps (1-based, at the window's end) and the averaged values."""
    window = max(1, min(window, len(values)))
    averaged = np.convolve(values, np.ones(window) / window, mode="valid")
    return np.arange(window, len(values) + 1), averaged


def load_run(run_dir: Path) -> tuple[dict[str, np.ndarray], dict]:
    try:
        with np.load(run_dir / "all_results.npz") as npz:
            arrays = dict(npz)
        final_info = json.loads((run_dir / "final_info.json").read_text())
    except FileNotFoundError as exc:
        raise SystemExit(f"{run_dir}: {Path(exc.filename).name} is missing; did experiment.py finish there?")
    return arrays, final_info


def main() -> None:
    parser = argparse.ArgumentParser(description="Plot training-loss curves and validation accuracy of runs.")
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders written by experiment.py")
    args = parser.parse_args()

    names = [run_dir.resolve().name for run_dir in args.run_dirs]
    # a folder name used twice (run_0 of two workspaces) would hide a run: those are labelled by their path
    labels = [name if names.count(name) == 1 else str(run_dir) for name, run_dir in zip(names, args.run_dirs)]
    runs = {label: load_run(run_dir) for label, run_dir in zip(labels, args.run_dirs)}
    datasets = list(dict.fromkeys(name for _, info in runs.values() for name in info))

    for dataset in datasets:
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, (arrays, _) in runs.items():
            if f"{dataset}.train_loss" in arrays:
                steps, loss = moving_average(arrays[f"{dataset}.train_loss"].mean(axis=0), SMOOTHING_STEPS)
                ax.plot(steps, loss, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(f"training loss ({SMOOTHING_STEPS}-step average)")
        ax.set_title(f"Training loss on {dataset}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(f"train_loss_{dataset}.png", dpi=150)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / len(runs)
    for i, (label, (_, info)) in enumerate(runs.items()):
        heights = [info.get(d, {}).get("means", {}).get("val_accuracy", np.nan) for d in datasets]
        errors = [info.get(d, {}).get("stderrs", {}).get("val_accuracy", 0.0) for d in datasets]
        ax.bar(np.arange(len(datasets)) + i * width, heights, width, yerr=errors, capsize=3, label=label)
    ax.set_xticks(np.arange(len(datasets)) + 0.4 - width / 2, datasets)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("validation accuracy")
    ax.set_title("Final validation accuracy")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(len(runs), 4), frameon=False)
    fig.tight_layout()
    fig.savefig("val_accuracy.png", dpi=150)
    plt.close(fig)


if __name__ == "__main__":
    main()
