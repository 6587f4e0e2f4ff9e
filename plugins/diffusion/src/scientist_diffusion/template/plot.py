"""Draw the runs of experiment.py side by side.

    python plot.py run_0 run_1 [RUN_DIR ...]

Reads `all_results.npz` and `final_info.json` from every folder given and saves, in the current folder:

    train_loss.png          training loss against step (smoothed), one panel per dataset, one line per run
    generated_images.png    the generated samples: one row per run, one column per dataset, each panel titled
                            with its KL divergence

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

# the loss of one minibatch jumps with its random time steps; a moving average makes runs comparable by eye
SMOOTHING_STEPS = 100
# every dataset lies within this square, so panels of different runs share their axes
LIMITS = (-6.0, 6.0)


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
    parser = argparse.ArgumentParser(description="Plot training loss and generated samples of runs.")
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders written by experiment.py")
    args = parser.parse_args()

    names = [run_dir.resolve().name for run_dir in args.run_dirs]
    # a folder name used twice (run_0 of two workspaces) would hide a run: those are labelled by their path
    labels = [name if names.count(name) == 1 else str(run_dir) for name, run_dir in zip(names, args.run_dirs)]
    runs = {label: load_run(run_dir) for label, run_dir in zip(labels, args.run_dirs)}
    datasets = list(dict.fromkeys(name for _, info in runs.values() for name in info))

    fig, axes = plt.subplots(1, len(datasets), figsize=(4 * len(datasets), 3.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for label, (arrays, _) in runs.items():
            if f"{dataset}.train_loss" in arrays:
                steps, loss = moving_average(arrays[f"{dataset}.train_loss"], SMOOTHING_STEPS)
                ax.plot(steps, loss, label=label)
        ax.set_title(dataset)
        ax.set_xlabel("step")
        ax.set_ylabel(f"training loss ({SMOOTHING_STEPS}-step average)")
    axes[0][0].legend()
    fig.suptitle("Training loss")
    fig.tight_layout()
    fig.savefig("train_loss.png", dpi=150)
    plt.close(fig)

    fig, axes = plt.subplots(len(runs), len(datasets), figsize=(3 * len(datasets), 3 * len(runs)), squeeze=False)
    for row, (label, (arrays, info)) in zip(axes, runs.items()):
        for ax, dataset in zip(row, datasets):
            ax.set_xlim(*LIMITS)
            ax.set_ylim(*LIMITS)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if f"{dataset}.samples" in arrays:
                samples = arrays[f"{dataset}.samples"]
                ax.scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.3, linewidths=0)
                kl = info[dataset]["means"]["kl_divergence"]
                ax.set_title(f"{dataset}, KL {kl:.3f}", fontsize=9)
            else:
                ax.set_title(f"{dataset}: not run", fontsize=9)
        row[0].set_ylabel(label)
    fig.suptitle("Generated samples")
    fig.tight_layout()
    fig.savefig("generated_images.png", dpi=150)
    plt.close(fig)


if __name__ == "__main__":
    main()
