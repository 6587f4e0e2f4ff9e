"""Draw the runs of experiment.py side by side.

    python plot.py run_0 run_1 [RUN_DIR ...]

Reads `all_results.npz` and `final_info.json` from every folder given and saves, in the current folder:

    loss_curves.png       cross-entropy against update (log scale): a row for the training minibatches, a row
                          for the validation half; one column per task, one colour per run
    accuracy_curves.png   accuracy against update, laid out the same way, with the 0.99 line of step_val_acc_99

Each run is drawn as the mean over its replicates (seeds), with a band from the lowest to the highest
replicate. Runs are labelled by their folder name (by the path given, where two folders share a name).
Needs numpy and matplotlib only.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # runs headless in the sandbox
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
import numpy as np  # noqa: E402

FIGURES = {  # file: (curve key, y-axis label, log scale)
    "loss_curves.png": ("loss", "cross-entropy", True),
    "accuracy_curves.png": ("acc", "accuracy", False),
}
HALVES = {"train": "training minibatches", "val": "validation half"}


def load_run(run_dir: Path) -> tuple[dict[str, np.ndarray], dict]:
    try:
        with np.load(run_dir / "all_results.npz") as npz:
            arrays = dict(npz)
        final_info = json.loads((run_dir / "final_info.json").read_text())
    except FileNotFoundError as exc:
        raise SystemExit(f"{run_dir}: {Path(exc.filename).name} is missing; did experiment.py finish there?")
    return arrays, final_info


def main() -> None:
    parser = argparse.ArgumentParser(description="Plot loss and accuracy curves of runs.")
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders written by experiment.py")
    args = parser.parse_args()

    names = [run_dir.resolve().name for run_dir in args.run_dirs]
    # a folder name used twice (run_0 of two workspaces) would hide a run: those are labelled by their path
    labels = [name if names.count(name) == 1 else str(run_dir) for name, run_dir in zip(names, args.run_dirs)]
    runs = {label: load_run(run_dir) for label, run_dir in zip(labels, args.run_dirs)}
    datasets = list(dict.fromkeys(name for _, info in runs.values() for name in info))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    for file, (key, ylabel, log_scale) in FIGURES.items():
        fig, axes = plt.subplots(len(HALVES), len(datasets), figsize=(max(6.0, 3.6 * len(datasets) + 1), 6.2),
                                 squeeze=False, sharex="col", sharey="row", layout="constrained")
        for row, (half, half_name) in zip(axes, HALVES.items()):
            for ax, dataset in zip(row, datasets):
                for number, (label, (arrays, _)) in enumerate(runs.items()):
                    if f"{dataset}.{half}_{key}" not in arrays:
                        continue  # this run did not train on this task
                    steps, values = arrays[f"{dataset}.step"], arrays[f"{dataset}.{half}_{key}"]
                    colour = colours[number % len(colours)]
                    ax.plot(steps, values.mean(axis=0), color=colour, linewidth=1.2)
                    if len(values) > 1:
                        ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=colour, alpha=0.2,
                                        linewidth=0)
                if log_scale:
                    ax.set_yscale("log")
                else:
                    ax.axhline(0.99, color="grey", linestyle=":", linewidth=0.8)
                    ax.set_ylim(-0.02, 1.02)
                ax.set_title(f"{dataset}, {half_name}", fontsize=9)
                ax.grid(alpha=0.3)
            row[0].set_ylabel(ylabel)
        for ax in axes[-1]:
            ax.set_xlabel("update")
        # one legend for all panels, below them: a run may have trained on some of the tasks only
        handles = [Line2D([], [], color=colours[number % len(colours)], label=label)
                   for number, label in enumerate(runs)]
        columns = min(len(runs), 4) if max(map(len, runs)) <= 24 else 1  # long labels (paths): one per line
        fig.legend(handles=handles, loc="outside lower center", ncol=columns, fontsize=8)
        fig.suptitle(f"{'Loss' if key == 'loss' else 'Accuracy'}: mean over seeds, band from the lowest to the "
                     "highest seed", fontsize=10)
        fig.savefig(file, dpi=150)
        plt.close(fig)


if __name__ == "__main__":
    main()
