"""The machine the runs used, read from the machine and never guessed: gathered when experiments run, kept as
the run's `machine_facts` artifact, and written into the paper by code (scientist-paper's \\Env macros)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from scientist_core.untrusted import write_atomic

if TYPE_CHECKING:
    from scientist_core.pipeline.context import RunContext


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("model name", "Hardware", "Processor", "cpu model") and value.strip():
                return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gpus() -> list[str]:
    """NVIDIA GPUs by name, from nvidia-smi when present (no CUDA library is imported)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def machine_facts() -> dict[str, str]:
    """What this machine is, for the paper's experimental setup: read from the machine, never guessed.

    Keys: cpu, cores, ram (GiB), gpu ("none" without an NVIDIA GPU; "2 x NAME" for several), os, python,
    and numpy / torch versions where installed (no heavy module is imported)."""
    gpus = _gpus()
    if not gpus:
        gpu = "none"
    elif len(set(gpus)) == 1:
        gpu = gpus[0] if len(gpus) == 1 else f"{len(gpus)} x {gpus[0]}"
    else:
        gpu = ", ".join(gpus)
    ram = _ram_gib()
    facts = {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count() or 1),
        "ram": f"{ram:.0f} GiB" if ram is not None else "unknown",
        "gpu": gpu,
        "os": f"{platform.system()} {platform.release()}".strip(),
        "python": platform.python_version(),
    }
    for name in ("numpy", "torch"):
        version = _version(name)
        if version:
            facts[name] = version
    return facts


def record_machine_facts(ctx: RunContext) -> dict[str, str]:
    """Gather machine_facts() and record them as the run's `machine_facts` artifact (call it when experiments
    run; the write-up uses the recorded facts, or records them itself when there are none)."""
    facts = machine_facts()
    path = ctx.run_dir / "machine.json"
    write_atomic(path, json.dumps(facts, indent=2))
    ctx.store.add_artifact(ctx.run_id, "machine_facts", path, facts)
    return facts


def facts_for_run(ctx: RunContext) -> dict[str, str]:
    """The machine facts recorded for this run (the latest), else gathered and recorded now."""
    recorded = [row for row in ctx.store.artifacts(ctx.run_id) if row["kind"] == "machine_facts"]
    if recorded and isinstance(recorded[-1]["meta"], dict) and recorded[-1]["meta"]:
        return {str(k): str(v) for k, v in recorded[-1]["meta"].items()}
    return record_machine_facts(ctx)
