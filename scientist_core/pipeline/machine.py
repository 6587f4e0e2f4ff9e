"""The machine the runs used, read from the machine and never guessed: gathered when experiments run, kept with
each run's record (RunRecord.machine, so a resumed run keeps the machine each of its runs used) and as the run's
`machine_facts` artifact, part of the baseline cache's key, and written into the paper by code (scientist-paper's
\\Env macros)."""

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
    from scientist_core.executor import ExecutionResult
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


def _gpus() -> list[tuple[str, str, str]]:
    """NVIDIA GPUs as (index, UUID, name), from nvidia-smi when present (no CUDA library is imported)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid,name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    rows = [[part.strip() for part in line.split(",", 2)] for line in out.stdout.splitlines() if line.strip()]
    return [(row[0], row[1], row[2]) for row in rows if len(row) == 3 and row[2]]


def _visible(gpus: list[tuple[str, str, str]], visible: str | None) -> list[str]:
    """The names of the GPUs a run could use, given CUDA_VISIBLE_DEVICES as it had it (None: not set, all of them;
    CUDA stops at the first entry it does not know, "-1" included)."""
    if visible is None:
        return [name for _, _, name in gpus]
    names = []
    for entry in (part.strip() for part in visible.split(",")):
        found = [name for index, uuid, name in gpus if entry and (entry == index or uuid.startswith(entry))]
        if not found:
            break
        names.append(found[0])
    return names


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def machine_facts(gpus_visible: str | None = None) -> dict[str, str]:
    """What this machine is, for the paper's experimental setup: read from the machine, never guessed.

    Keys: cpu, cores, ram (GiB), gpu ("none" without an NVIDIA GPU; "2 x NAME" for several), os, python,
    and numpy / torch versions where installed (no heavy module is imported). `gpus_visible` is
    CUDA_VISIBLE_DEVICES as a run had it (ExecutionResult.gpus_visible): the gpu fact names only the GPUs it
    could use, "none" where it could use none; None names every GPU of the machine."""
    gpus = _visible(_gpus(), gpus_visible)
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


def run_machine(execution: ExecutionResult) -> dict[str, str]:
    """The machine facts of one executed run (RunRecord.machine): this machine, with the GPUs the executor let
    the run use."""
    return machine_facts(execution.gpus_visible)


def record_machine_facts(ctx: RunContext) -> dict[str, str]:
    """Gather machine_facts() and record them as the run's `machine_facts` artifact (call it when experiments
    run; the write-up uses the recorded facts, or records them itself when there are none)."""
    facts = machine_facts()
    path = ctx.run_dir / "machine.json"
    write_atomic(path, json.dumps(facts, indent=2))
    ctx.store.add_artifact(ctx.run_id, "machine_facts", path, facts)
    return facts


def facts_for_run(ctx: RunContext) -> dict[str, str]:
    """The machine facts recorded for this run (the latest), else gathered and recorded now: what a write-up
    says of a run record that carries no machine of its own (RunRecord.machine, empty in records made before
    it existed)."""
    recorded = [row for row in ctx.store.artifacts(ctx.run_id) if row["kind"] == "machine_facts"]
    if recorded and isinstance(recorded[-1]["meta"], dict) and recorded[-1]["meta"]:
        return {str(k): str(v) for k, v in recorded[-1]["meta"].items()}
    return record_machine_facts(ctx)
