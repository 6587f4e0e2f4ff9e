"""Run commands in the sandbox from a process of their own and print each result as a JSON line.

    python isolation_caller.py SPEC.json MARKER

The isolation table's tests run this as root or as another user, so the sandbox's caller is a real process
with its own uid, environment (the tests put a secret there) and command line (MARKER, so a run can look for
it). SPEC.json: {"runs": [{"command": [...], "workdir": "...", "limits": {...}}, ...]}.
A refused run prints {"refused": "<the one-line error>"}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from scientist_core import Limits, SandboxError
from scientist_sandbox.runner import run


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    for item in spec["runs"]:
        try:
            result = run(item["command"], Path(item["workdir"]), Limits(**item["limits"]))
        except SandboxError as exc:
            print(json.dumps({"refused": exc.one_line()}), flush=True)
            continue
        print(result.model_dump_json(), flush=True)


if __name__ == "__main__":
    main()
