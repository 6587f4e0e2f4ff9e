"""Lines of Python in the core, per folder: how far `scientist_core/` is from its goal of a minimal core.

    python scripts/core_size.py [--limit 3000]

Counts every line of every .py file under scientist_core/, per folder (a top-level module counts under
`scientist_core/`), and the total without the test doubles (`scientist_core/testing/`: what plugin authors' tests
import, which ships with the core but is not the core); then the framework alone, without the stages of
`scientist run` (`pipeline/`), which docs/architecture.md says stay in the core and why. Exits 1 when the framework
is over --limit.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "scientist_core"
TESTING = "testing"
STAGES = "pipeline"


def lines_per_folder(core: Path = CORE) -> tuple[Counter, Counter]:
    """(lines per folder of the core proper, lines per file or folder of the test doubles)."""
    core_lines, testing_lines = Counter(), Counter()
    for path in sorted(core.rglob("*.py")):
        relative = path.relative_to(core)
        count = len(path.read_text(encoding="utf-8").splitlines())
        if relative.parts[0] == TESTING:
            testing_lines[relative.parts[0]] += count
        else:
            core_lines[str(Path(core.name, *relative.parts[:-1]))] += count
    return core_lines, testing_lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=3000)
    args = parser.parse_args()
    core_lines, testing_lines = lines_per_folder()
    width = max(map(len, [*core_lines, *testing_lines])) + 2
    for folder, count in sorted(core_lines.items()):
        print(f"{folder:<{width}}{count:>7,}")
    total = sum(core_lines.values())
    framework = total - core_lines[f"{CORE.name}/{STAGES}"]
    print(f"{'core total':<{width}}{total:>7,}")
    print(f"{'framework (without ' + STAGES + '/)':<{width}}{framework:>7,}  (limit {args.limit:,})")
    for name, count in sorted(testing_lines.items()):
        print(f"{'(test doubles) ' + name:<{width}}{count:>7,}")
    sys.exit(0 if framework <= args.limit else 1)


if __name__ == "__main__":
    main()
