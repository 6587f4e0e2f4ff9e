"""The nanogpt template's quick mode on this machine: wall time, CPU time, losses, inference speed.

    python benchmarks/nanogpt_quick.py [--data-dir DIR] [--from-file input.txt] [--seeds N] [--bad] [--cli]
                                       [--keep DIR]

Prepares tiny Shakespeare in the data folder (scientist's, or --data-dir; --from-file installs a copy you have
instead of downloading it), then runs the template's command (guard.py, which runs experiment.py and checks the
trained model for a leak of the future) in a fresh workspace with quick mode's knobs, as the core does but without
the sandbox, whose cost is negligible here. `--seeds N` repeats it with seeds 1..N-1 to show the spread; `--bad`
also runs a learning rate 100x too small, which must score clearly worse; `--cli` also times
`scientist baseline nanogpt --quick`, the console script through the real sandbox. Prints the device, the load average
(other jobs slow a shared machine down: CPU time is the steadier figure), and nanoGPT's own figure for the full
model on a GPU: a best validation loss of about 1.47 on shakespeare_char. Exits 1 if quick mode does not reach a
best validation loss below 2.2 (a model that learnt only which character follows which gets about 2.5).
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

import torch

from scientist_nanogpt import data
from scientist_nanogpt.plugin import NanoGPTTemplate

NANOGPT_GPU_BEST_VAL = 1.47  # karpathy/nanoGPT's shakespeare_char run of the full model on a GPU
GOAL_BEST_VAL = 2.2


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_quick(template: NanoGPTTemplate, folder: Path, data_dir: Path, changes: dict | None = None) -> dict:
    """Wall time, CPU time and the shakespeare_char metrics of one quick run in a fresh workspace."""
    workspace = template.prepare_workspace(folder)
    out_dir = workspace / "run_0"
    out_dir.mkdir()
    knobs = template.knobs(quick=True, changes={**(changes or {}), "data_dir": str(data_dir)})
    (out_dir / "knobs.json").write_text(knobs.model_dump_json())
    command = [sys.executable, *template.experiment_command("run_0")[1:]]
    cpu_before, start = children_cpu_s(), time.perf_counter()
    proc = subprocess.run(command, cwd=workspace, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"the quick run failed in {workspace}: {proc.stderr.strip()[-2000:]}")
    means = json.loads((out_dir / "final_info.json").read_text())["shakespeare_char"]["means"]
    return {"wall_s": wall, "cpu_s": children_cpu_s() - cpu_before, "load": os.getloadavg()[0], **means,
            "device": proc.stdout.splitlines()[0]}


def run_cli(folder: Path, data_dir: Path) -> dict:
    """`scientist baseline nanogpt --quick` through the console script and the sandbox: wall time and metrics."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCIENTIST_")}
    env["SCIENTIST_DATA_DIR"] = str(data_dir)
    folder.mkdir(parents=True)
    cpu_before, start = children_cpu_s(), time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).with_name("scientist")), "baseline", "nanogpt", "--quick",
                           "--out", str(folder)], cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"scientist baseline nanogpt --quick failed: {proc.stderr.strip()[-2000:]}")
    final_info = Path(proc.stdout.strip().splitlines()[0])
    means = json.loads(final_info.read_text())["shakespeare_char"]["means"]
    return {"wall_s": wall, "cpu_s": children_cpu_s() - cpu_before, "load": os.getloadavg()[0], **means}


def report(title: str, run: dict) -> None:
    print(f"{title:<40}{run['wall_s']:>8.1f}{run['cpu_s']:>8.1f}{run['load']:>7.2f}{run['best_val_loss']:>10.3f}"
          f"{run['final_train_loss']:>12.3f}{run['total_train_time']:>9.1f}{run['avg_inference_tokens_per_second']:>9.0f}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="default: scientist's data folder (SCIENTIST_DATA_DIR)")
    parser.add_argument("--from-file", type=Path, help="a copy of tiny Shakespeare's input.txt to use")
    parser.add_argument("--seeds", type=int, default=1, help="quick runs with seeds 0..N-1")
    parser.add_argument("--bad", action="store_true", help="also run a learning rate 100x too small")
    parser.add_argument("--cli", action="store_true", help="also time `scientist baseline nanogpt --quick`")
    parser.add_argument("--keep", type=Path, help="keep the workspaces in this folder (default: a temporary one)")
    args = parser.parse_args()

    data_dir = args.data_dir or data.default_data_dir()
    if args.from_file:
        data.install_copy("shakespeare_char", args.from_file, data_dir)
    data.prepare("shakespeare_char", data_dir)
    template = NanoGPTTemplate()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"{os.cpu_count()} CPUs, GPU: {gpu}, torch {torch.__version__}, load average {os.getloadavg()[0]:.2f} "
          f"at the start")
    print(f"quick knobs: {json.dumps(template.quick_knobs)}")
    print(f"\n{'run':<40}{'wall s':>8}{'CPU s':>8}{'load':>7}{'best val':>10}{'final train':>12}"
          f"{'train s':>9}{'tok/s':>9}")
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        runs = []
        for seed in range(args.seeds):
            runs.append(run_quick(template, root / f"quick_seed{seed}", data_dir, {"seed": seed} if seed else None))
            report(f"quick mode, seed {seed}", runs[-1])
        if args.bad:
            report("quick, learning rate 3e-5 (100x less)", run_quick(template, root / "bad", data_dir,
                                                                       {"learning_rate": 3e-5}))
        if args.cli:
            report("scientist baseline nanogpt --quick", run_cli(root / "cli", data_dir))
    print(f"\n{runs[0]['device']}")
    best = [run["best_val_loss"] for run in runs]
    print(f"best validation loss: {min(best):.3f} to {max(best):.3f} over {len(best)} seed(s); nanoGPT's full model "
          f"on a GPU: about {NANOGPT_GPU_BEST_VAL}" + ("" if torch.cuda.is_available() else
                                                       " (no GPU here: the full baseline is not run on this machine)"))
    met = max(best) < GOAL_BEST_VAL
    print(f"quick mode below {GOAL_BEST_VAL}: {'yes' if met else 'NO'}")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
