"""The diffusion template's baseline, full and quick, timed beside the paper's own code (v1) on this machine.

    python benchmarks/diffusion_baseline.py [--mode full|quick|both] [--seeds N] [--sequential] [--keep DIR]

Runs the template's experiment.py in a fresh workspace, as the core does (without the sandbox, whose cost is
negligible here), and prints the wall time and each dataset's KL divergence beside v1's figures measured on a
2-core machine with one thread (FACTS.md): 408 s wall (310 s CPU) for the full baseline; KL circle 0.344, dino 1.080,
line 0.156, moons 0.084. Goal (issue 4): the full baseline at least 1.8x faster, every KL within 10 % of v1's.
`--seeds N` repeats the full baseline with seeds 1..N-1 and judges the KL on the mean (v1 set no seed, so
each of its figures is one draw). `--sequential` also runs the full baseline with num_workers=1 (one dataset
after another in one process), to show what the parallel workers bring. The full baseline takes minutes on an
idle machine, far longer on a busy one (the load average is printed): run it in the background and poll.
Exits 1 when the full run misses the goal.
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

from scientist_diffusion.plugin import DiffusionTemplate

V1_WALL_S = 408.0
V1_CPU_S = 310.0
V1_KL = {"circle": 0.344, "dino": 1.080, "line": 0.156, "moons": 0.084}
GOAL_SPEEDUP = 1.8
GOAL_KL_TOLERANCE = 0.10


def run_experiment(template: DiffusionTemplate, folder: Path, quick: bool, changes: dict | None = None) -> dict:
    """Wall time and final_info of one run of experiment.py in a fresh workspace under `folder`."""
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
    return {"wall_s": wall, "cpu_s": _children_cpu_s() - cpu_before,
            "final_info": json.loads((out_dir / "final_info.json").read_text())}


def _children_cpu_s() -> float:
    """CPU seconds of all finished child processes (the experiment and its workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def report(title: str, run: dict, compare_to_v1: bool) -> bool:
    """Print one run; True when it meets the goal (only judged when compared to v1)."""
    print(f"\n== {title}: {run['wall_s']:.1f} s wall, {run['cpu_s']:.1f} s CPU, "
          f"load average {os.getloadavg()[0]:.2f} at the end")
    print(f"{'dataset':<8}{'KL':>8}{'v1 KL':>8}{'KL/v1':>8}{'eval loss':>11}{'train s':>9}{'sample s':>10}")
    kl_ok = True
    for dataset, result in run["final_info"].items():
        means = result["means"]
        v1 = V1_KL.get(dataset)
        ratio = means["kl_divergence"] / v1 if v1 else float("nan")
        kl_ok &= abs(ratio - 1) <= GOAL_KL_TOLERANCE
        print(f"{dataset:<8}{means['kl_divergence']:>8.3f}{v1:>8.3f}{ratio:>8.2f}{means['eval_loss']:>11.3f}"
              f"{means['training_time']:>9.1f}{means['inference_time']:>10.1f}")
    if not compare_to_v1:
        return True
    speedup = V1_WALL_S / run["wall_s"]
    fast = speedup >= GOAL_SPEEDUP
    print(f"wall {run['wall_s']:.1f} s vs v1 {V1_WALL_S:.0f} s: {speedup:.2f}x faster "
          f"(goal {GOAL_SPEEDUP}x: {'met' if fast else 'MISSED'}); CPU {run['cpu_s']:.0f} s vs v1 {V1_CPU_S:.0f} s: "
          f"{V1_CPU_S / run['cpu_s']:.2f}x less")
    print(f"every KL within {GOAL_KL_TOLERANCE:.0%} of v1's: {'yes' if kl_ok else 'NO'}")
    return fast and kl_ok


def report_seeds(runs: list[dict]) -> bool:
    """KL per seed and its mean beside v1's single draw; True when every mean is within the tolerance."""
    print(f"\n== KL divergence of the full baseline over seeds 0..{len(runs) - 1}")
    print(f"{'dataset':<8}" + "".join(f"{'seed ' + str(seed):>9}" for seed in range(len(runs)))
          + f"{'mean':>8}{'v1 KL':>8}{'mean/v1':>9}")
    kl_ok = True
    for dataset, v1 in V1_KL.items():
        values = [run["final_info"][dataset]["means"]["kl_divergence"] for run in runs]
        mean = sum(values) / len(values)
        kl_ok &= abs(mean / v1 - 1) <= GOAL_KL_TOLERANCE
        print(f"{dataset:<8}" + "".join(f"{value:>9.3f}" for value in values) + f"{mean:>8.3f}{v1:>8.3f}"
              f"{mean / v1:>9.2f}")
    print(f"every mean KL within {GOAL_KL_TOLERANCE:.0%} of v1's: {'yes' if kl_ok else 'NO'} "
          f"(v1 set no seed: its figures are one draw each)")
    return kl_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["full", "quick", "both"], default="both")
    parser.add_argument("--sequential", action="store_true", help="also time the full run with num_workers=1")
    parser.add_argument("--seeds", type=int, default=1,
                        help="full runs with seeds 0..N-1; the KL goal is then judged on the mean over seeds")
    parser.add_argument("--keep", type=Path, help="keep the workspaces in this folder (default: a temporary one)")
    args = parser.parse_args()

    template = DiffusionTemplate()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start")
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        met = True
        if args.mode in ("quick", "both"):
            report("quick mode, parallel workers", run_experiment(template, root / "quick", quick=True), False)
        if args.mode in ("full", "both"):
            full = run_experiment(template, root / "full", quick=False)
            met = report("full baseline, parallel workers", full, True)
            if args.seeds > 1:
                runs = [full]
                for seed in range(1, args.seeds):
                    runs.append(run_experiment(template, root / f"full_seed{seed}", quick=False,
                                               changes={"seed": seed}))
                    report(f"full baseline, seed {seed}", runs[-1], False)
                met = (V1_WALL_S / full["wall_s"] >= GOAL_SPEEDUP) and report_seeds(runs)
        if args.sequential:
            sequential = run_experiment(template, root / "sequential", quick=False, changes={"num_workers": 1})
            report("full baseline, one process (num_workers=1)", sequential, True)
            if args.mode in ("full", "both"):
                print(f"parallel workers: {sequential['wall_s'] / full['wall_s']:.2f}x faster than one process")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
