"""The main job (`scientist run diffusion` with configs/offline-cpu.toml), once per seed, each on a fresh data folder.

    python benchmarks/main_job.py --seeds 5 [--first 0] [--keep DIR] [--config configs/offline-cpu.toml]

Each seed is the local model's sampling seed (`[llms.local] seed`); the template's seed stays the template's. A seed
runs `scientist run diffusion` as a user would, in its own folder, with an empty data folder (the idea archive,
baseline cache and datasets start empty), sharing only the model weights and the offline literature index, which
no run writes. Printed per seed: wall time per stage, tokens in/out, runs attempted and succeeded, whether a
reviewed PDF came out, how many sections fell back to plain text, the review's Overall and the exit code; then
how many seeds delivered and the median wall time. Run it in the background on a quiet machine: about 20 minutes
a seed on 2 cores. Exits 1 unless every seed delivered a reviewed PDF with a successful non-baseline run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE_GROUPS = ("ideas", "novelty", "experiments", "plots", "writeup", "review")


def shared_data_dir() -> Path:
    """Where the weights and the offline index already are: the user's data folder (`make run` installs there)."""
    from scientist_core.settings import load_settings

    return Path(load_settings().data_dir).expanduser()


def run_seed(seed: int, folder: Path, config: Path, shared: Path) -> dict:
    data = folder / "data"
    data.mkdir(parents=True)
    for name in ("models", "literature"):  # read-only caches no run writes: the weights and the offline index
        if (shared / name).exists():
            (data / name).symlink_to(shared / name)
    env = {**os.environ, "SCIENTIST_CONFIG": str(config), "SCIENTIST_DATA_DIR": str(data),
           "SCIENTIST_LLMS__LOCAL__SEED": str(seed), "SCIENTIST_LLMS__LOCAL__DATA_DIR": str(shared)}
    started = time.monotonic()
    with (folder / "console.log").open("w") as log:
        proc = subprocess.run([sys.executable, "-m", "scientist_core.cli", "run", "diffusion", "--out",
                               str(folder / "out")], env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    return {"seed": seed, "exit": proc.returncode, "wall_s": time.monotonic() - started,
            **measure(folder / "out" / "scientist.db")}


def measure(store_path: Path) -> dict:
    from scientist_core.store import Store

    if not store_path.is_file():
        return {}
    store = Store.open_existing(store_path)
    run = store.latest_run()
    stages: dict[str, float] = {}
    for stage in store.stages(run["id"]):
        group = stage["name"].split(":")[0]
        if stage["finished_at"]:
            stages[group] = stages.get(group, 0.0) + stage["finished_at"] - stage["started_at"]
    usage = store.usage_by_stage(run["id"])
    runs = [row for row in store.experiments(run["id"]) if row["run_index"] > 0]
    done = {(row["idea"], row["run_index"]) for row in runs if row["status"] == "done"}
    writeups = [json.loads(p.read_text()) for p in (Path(run["workdir"]) / ".stages").glob("writeup--*.json")]
    reviews = [json.loads(p.read_text()) for p in Path(run["workdir"]).glob("*/review.json")]
    return {
        "stages": stages,
        "tokens_in": sum(row["tokens_in"] or 0 for row in usage),
        "tokens_out": sum(row["tokens_out"] or 0 for row in usage),
        "attempts": len(runs), "succeeded": len(done),
        "pdf": any(w.get("pdf_path") for w in writeups) and bool(reviews),
        "plain_sections": sum(1 for w in writeups for p in w.get("problems", []) if "plain text" in p),
        "overall": [r["review"]["Overall"] for r in reviews],
        "ideas": len(store.ideas(run["id"])),
    }


def print_table(rows: list[dict]) -> None:
    header = ["seed", "exit", "wall", *STAGE_GROUPS, "tok in/out", "runs ok/tried", "ideas", "PDF", "plain", "overall"]
    print(" | ".join(header))
    for row in rows:
        stages = row.get("stages", {})
        cells = [row["seed"], row["exit"], f"{row['wall_s'] / 60:.1f} min",
                 *(f"{stages[g] / 60:.1f}" if g in stages else "-" for g in STAGE_GROUPS),
                 f"{row.get('tokens_in', 0):,}/{row.get('tokens_out', 0):,}",
                 f"{row.get('succeeded', 0)}/{row.get('attempts', 0)}", row.get("ideas", 0),
                 "yes" if row.get("pdf") else "no", row.get("plain_sections", "-"),
                 ",".join(map(str, row.get("overall", []))) or "-"]
        print(" | ".join(map(str, cells)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first", type=int, default=0, help="the first seed")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "offline-cpu.toml")
    parser.add_argument("--keep", type=Path, help="keep each seed's folder here (default: a temporary folder)")
    args = parser.parse_args()
    shared = shared_data_dir()
    base = args.keep or Path(tempfile.mkdtemp(prefix="scientist-main-job-"))
    print(f"load average {os.getloadavg()[0]:.1f}; folders under {base}; weights and index from {shared}", flush=True)
    rows = []
    for seed in range(args.first, args.first + args.seeds):
        rows.append(run_seed(seed, base / f"seed-{seed}", args.config.resolve(), shared))
        print_table(rows[-1:] if len(rows) > 1 else rows)
    print()
    print_table(rows)
    delivered = [r for r in rows if r.get("pdf") and r.get("succeeded", 0) > 0]
    print(f"\n{len(delivered)} of {len(rows)} seeds delivered a reviewed PDF with a successful non-baseline run; "
          f"median wall {statistics.median(r['wall_s'] for r in rows) / 60:.1f} min")
    sys.exit(0 if len(delivered) == len(rows) else 1)


if __name__ == "__main__":
    main()
