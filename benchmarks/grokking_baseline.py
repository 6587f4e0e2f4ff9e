"""The grokking template's full baseline, timed (or projected from a measured slice) beside the paper's own code
(v1) on this machine, and whether each task groks.

    python benchmarks/grokking_baseline.py [--mode slice|full|single|quick] [--updates N] [--dataset NAME]
                                           [--keep DIR]

The full baseline is 4 tasks x 3 seeds = 12 models of 7,500 updates each. v1 measured on this kind of
machine (2-core AMD EPYC, one thread; the v1 reference's CPU measurements): about 100 s per 1,000 updates per task and
seed, evaluation included, so 12 x 750 s = 9,000 s (2.5 h) for its full baseline. Goal (issue 8): at least 1.8x
faster on the same schedule.

Modes (each runs the template's experiment.py in a fresh workspace, as the core does, without the sandbox):
  slice   (default) the full baseline's knobs, every task and seed on the parallel workers, but only --updates
          updates (default 300), plus the same with 10 updates for the fixed costs (process start, data, final
          evaluation); projects the full baseline's wall time from the two and compares it with v1's. A few
          minutes; the load average is printed, since other jobs on the machine slow it down.
  full    the whole full baseline (about an hour on two idle cores): wall time beside v1's, and per task
          whether every seed grokked (validation accuracy >= 0.99 at the end) and step_val_acc_99.
  single  one seed of one task (--dataset, default x_plus_y) for --updates updates (default 7,500) in one
          process on one thread: does it grok, and when.
  quick   quick mode (`scientist baseline grokking --quick`), timed.
Exits 1 when a full or slice measurement misses the speed goal.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scientist_grokking.plugin import GrokkingTemplate

V1_S_PER_1000_UPDATES = 100.0  # per task and seed, one thread, evaluation included
FULL_UPDATES = 7500
FULL_MODELS = 12
V1_FULL_WALL_S = FULL_MODELS * FULL_UPDATES / 1000 * V1_S_PER_1000_UPDATES  # 9,000 s
# v1's GPU reference run (example_papers/data_augmentation_grokking/run_0): the update at which validation
# accuracy first passed 0.99, one seed; permutation never did (final validation accuracy 0.036)
V1_GPU_STEP_99 = {"x_div_y": 4200, "x_minus_y": 4720, "x_plus_y": 2363, "permutation": None}
GOAL_SPEEDUP = 1.8
FIXED_COST_UPDATES = 10


def run_experiment(template: GrokkingTemplate, folder: Path, quick: bool, changes: dict | None = None) -> dict:
    """Wall time, CPU time, final_info and curves of one run of experiment.py in a fresh workspace."""
    workspace = template.prepare_workspace(folder)
    out_dir = workspace / "run_0"
    out_dir.mkdir()
    (out_dir / "knobs.json").write_text(template.knobs(quick=quick, changes=changes).model_dump_json())
    command = [sys.executable, *template.experiment_command("run_0")[1:]]
    cpu_before = _children_cpu_s()
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=workspace, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"experiment.py failed in {workspace}:\n{proc.stderr[-2000:]}")
    with np.load(out_dir / "all_results.npz") as arrays:
        curves = dict(arrays)
    return {"wall_s": wall, "cpu_s": _children_cpu_s() - cpu_before,
            "final_info": json.loads((out_dir / "final_info.json").read_text()), "curves": curves}


def _children_cpu_s() -> float:
    """CPU seconds of all finished child processes (the experiment and its workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def speed_line(wall_s: float, label: str) -> bool:
    speedup = V1_FULL_WALL_S / wall_s
    met = speedup >= GOAL_SPEEDUP
    print(f"{label}: {wall_s:,.0f} s ({wall_s / 60:.1f} min) vs v1 {V1_FULL_WALL_S:,.0f} s "
          f"({V1_S_PER_1000_UPDATES:.0f} s per 1,000 updates per task and seed, one thread): {speedup:.2f}x faster "
          f"(goal {GOAL_SPEEDUP}x: {'met' if met else 'MISSED'})")
    return met


def report_grokking(run: dict) -> None:
    """Per task and seed: final validation accuracy and the update at which it first reached 0.99."""
    print("(per seed: train acc of the last minibatches, from the curves; mean: final_train_acc over the whole "
          "training half)")
    print(f"{'task':<12}{'seed':>5}{'train acc':>10}{'val acc':>9}{'val>=0.99 from':>16}{'grokked':>9}"
          f"{'v1 GPU':>8}")
    for task, result in run["final_info"].items():
        steps, val_acc = run["curves"][f"{task}.step"], run["curves"][f"{task}.val_acc"]
        train_acc = run["curves"][f"{task}.train_acc"]
        for seed, (seed_val, seed_train) in enumerate(zip(val_acc, train_acc)):
            reached = np.flatnonzero(seed_val >= 0.99)
            first = f"{steps[reached[0]]:,}" if len(reached) else "never"
            v1 = V1_GPU_STEP_99.get(task)
            v1_text = "" if seed else f"{v1:,}" if v1 else "never"
            print(f"{task:<12}{seed:>5}{seed_train[-1]:>10.3f}{seed_val[-1]:>9.3f}{first:>16}"
                  f"{'yes' if seed_val[-1] >= 0.99 else 'no':>9}{v1_text:>8}")
        means, stderrs = result["means"], result.get("stderrs", {})  # none for a single seed
        spread = f" +- {stderrs['step_val_acc_99']:<4,.0f}" if "step_val_acc_99" in stderrs else ""
        print(f"{task:<12}{'mean':>5}{means['final_train_acc']:>10.3f}{means['final_val_acc']:>9.3f}"
              f"{means['step_val_acc_99']:>10,.0f}{spread}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["slice", "full", "single", "quick"], default="slice")
    parser.add_argument("--updates", type=int, help="updates per model: slice (default 300), single (7,500)")
    parser.add_argument("--dataset", default="x_plus_y", help="the task of --mode single")
    parser.add_argument("--keep", type=Path, help="keep the workspaces in this folder (default: a temporary one)")
    args = parser.parse_args()

    template = GrokkingTemplate()
    print(f"{os.cpu_count()} CPUs, {load()} at the start")
    met = True
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        if args.mode == "slice":
            updates = args.updates or 300
            fixed = run_experiment(template, root / "fixed", quick=False, changes={"steps": FIXED_COST_UPDATES})
            print(f"\n== fixed costs: the full baseline's 12 models for {FIXED_COST_UPDATES} updates: "
                  f"{fixed['wall_s']:.1f} s wall, {fixed['cpu_s']:.1f} s CPU; {load()}")
            sliced = run_experiment(template, root / "slice", quick=False, changes={"steps": updates})
            print(f"== slice: the full baseline's 12 models for {updates} updates: {sliced['wall_s']:.1f} s wall, "
                  f"{sliced['cpu_s']:.1f} s CPU; {load()}")
            per_update_s = (sliced["wall_s"] - fixed["wall_s"]) / (updates - FIXED_COST_UPDATES)
            cpu_per_model_update_ms = 1000 * (sliced["cpu_s"] - fixed["cpu_s"]) / (
                FULL_MODELS * (updates - FIXED_COST_UPDATES))
            projected = fixed["wall_s"] + per_update_s * (FULL_UPDATES - FIXED_COST_UPDATES)
            workers = template.knobs().num_workers
            print(f"per update of all 12 models: {1000 * per_update_s:.0f} ms wall on {workers} workers; "
                  f"{cpu_per_model_update_ms:.0f} ms CPU per update of one model (v1: "
                  f"{V1_S_PER_1000_UPDATES:.0f} ms, evaluation included)")
            met = speed_line(projected, f"projected full baseline ({FULL_UPDATES:,} updates)")
        elif args.mode == "full":
            run = run_experiment(template, root / "full", quick=False)
            print(f"\n== full baseline: {run['wall_s']:.1f} s wall, {run['cpu_s']:.1f} s CPU; {load()}")
            met = speed_line(run["wall_s"], "full baseline")
            report_grokking(run)
        elif args.mode == "single":
            updates = args.updates or FULL_UPDATES
            run = run_experiment(template, root / "single", quick=False, changes={
                "datasets": [args.dataset], "num_seeds": 1, "num_workers": 1, "steps": updates})
            print(f"\n== {args.dataset}, seed 0, {updates:,} updates in one process on one thread: "
                  f"{run['wall_s']:.1f} s wall ({1000 * run['wall_s'] / updates:.0f} ms per update with evaluation, "
                  f"v1 {V1_S_PER_1000_UPDATES:.0f}); {load()}")
            report_grokking(run)
        else:
            run = run_experiment(template, root / "quick", quick=True)
            print(f"\n== quick mode {template.quick_knobs}: {run['wall_s']:.1f} s wall, {run['cpu_s']:.1f} s CPU; "
                  f"{load()}")
            report_grokking(run)
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
