"""How long `scientist --help` takes to start, beside a bare interpreter, measured in one run.

    python benchmarks/cli_startup.py [--runs 15]

Goal (issue 2): under 0.5 s on a 2-core machine. Heavy libraries (torch, litellm, pymupdf) must be imported
inside the commands that need them, never at start-up.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_S = 0.5


def median_wall(command: list[str], runs: int) -> float:
    subprocess.run(command, capture_output=True, check=True)  # warm the page cache once
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    scientist = str(Path(sys.executable).with_name("scientist"))

    bare = median_wall([sys.executable, "-c", "pass"], args.runs)
    help_s = median_wall([scientist, "--help"], args.runs)
    plugins_s = median_wall([scientist, "plugins", "--json"], args.runs)

    print(f"{'command':<28}{'median s':>10}{'x bare python':>15}")
    for label, seconds in [("python -c pass", bare), ("scientist --help", help_s),
                           ("scientist plugins --json", plugins_s)]:
        print(f"{label:<28}{seconds:>10.3f}{seconds / bare:>15.1f}")
    verdict = "meets" if help_s < GOAL_S else "MISSES"
    print(f"scientist --help: {help_s:.3f} s, {help_s / GOAL_S:.2f} of the {GOAL_S} s goal ({verdict} it)")
    sys.exit(0 if help_s < GOAL_S else 1)


if __name__ == "__main__":
    main()
