"""Executors: where experiment runs execute (the local sandbox of scientist-sandbox, a cluster engine later), and
the limits and the result of one execution, which every executor shares."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from scientist_core.component import Component

LimitName = Literal["timeout", "memory", "cpu_time", "procs", "disk", "stdout"]
# the folder of a run's stdout.log and stderr.log inside its work folder, unless the caller gives another
LOG_DIR_NAME = ".sandbox"
# the user's two ways of accepting that generated code runs where an executor cannot isolate it
ACCEPT_UNISOLATED = "allow_unisolated_code = true under [sandbox] in scientist.toml, or --allow-unisolated-code"


class Limits(BaseModel):
    """What one sandboxed run may use. Set by the caller; nothing the run writes can change them."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(
        3600,
        gt=0,
        description="Wall-clock limit in seconds, enforced by the calling process; on expiry every process of the run is killed.",
    )
    memory_mb: int | None = Field(
        8192,
        ge=16,
        description="Memory cap in MiB for the whole run (memory cgroup where available, RLIMIT_DATA per process, and a monitor of the summed PSS); None for no cap.",
    )
    cpu_time_s: float | None = Field(
        None,
        gt=0,
        description="CPU-time cap in seconds summed over the run's processes (RLIMIT_CPU per process plus a monitor); None for no cap.",
    )
    procs: int | None = Field(
        256,
        ge=1,
        description="Cap on the number of processes and threads alive at once (pids cgroup and/or RLIMIT_NPROC); None for no cap.",
    )
    disk_mb: int | None = Field(
        2048,
        ge=1,
        description="Quota in MiB on what the run adds to its work folder and private tmp folders (monitor plus RLIMIT_FSIZE per file); None for no quota.",
    )
    stdout_mb: float = Field(
        10,
        gt=0,
        description="Cap in MiB on each captured stream (stdout, stderr); writing past it stops the run with limit_hit='stdout'.",
    )
    network: bool = Field(
        False,
        description="False: the run gets its own network namespace with only a loopback interface (no network). True: the host network.",
    )
    allow_unisolated_code: bool = Field(
        False,
        description="Run even where the sandbox cannot isolate the run (mode none: no namespaces), so that it shares the caller's processes, files, network or root. False: SandboxError naming what is missing, before the command starts.",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment variables the caller allows through; everything else is scrubbed (no API keys by default).",
    )
    read_only: list[str] = Field(
        default_factory=list,
        description="Folders (or files) the run may read even where they lie in a hidden one (the caller's home, /tmp): bound at their own paths, read-only.",
    )

    @field_validator("env")
    @classmethod
    def _valid_env(cls, env: dict[str, str]) -> dict[str, str]:
        for key, value in env.items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise ValueError(f"invalid environment variable {key!r}")
        return env


class ExecutionResult(BaseModel):
    """What happened to one sandboxed run. `ok` means exit code 0 and no limit hit."""

    model_config = ConfigDict(extra="forbid")

    sandbox_id: str = Field(description="Identifier of this run; also in the run's environment as SCIENTIST_SANDBOX_ID.")
    command: list[str] = Field(description="The command as given by the caller.")
    workdir: str = Field(description="Absolute path of the run folder.")
    exit_code: int | None = Field(description="Exit code of the command; None when it was killed by a signal.")
    signal: int | None = Field(description="Number of the signal that killed the command, if any.")
    signal_name: str | None = Field(None, description="Name of that signal, e.g. SIGKILL.")
    limit_hit: LimitName | None = Field(description="The limit that stopped or broke the run, if any.")
    ok: bool = Field(description="True when the command exited with code 0 and no limit was hit.")
    wall_s: float = Field(description="Wall-clock seconds from start until every process of the run was gone.")
    cpu_s: float = Field(description="CPU seconds (user + system) used by all processes of the run.")
    peak_memory_mb: float = Field(
        description="Peak memory of the run in MiB: the summed proportional set size of its processes (sampled) or the largest single process's peak RSS, whichever is larger."
    )
    disk_used_mb: float = Field(description="Peak growth of the work folder and private tmp folders, in MiB.")
    stdout_path: str = Field(description="File holding the captured stdout (at most stdout_mb).")
    stderr_path: str = Field(description="File holding the captured stderr (at most stdout_mb).")
    stdout_tail: str = Field(description="Last characters of stdout.")
    stderr_tail: str = Field(description="Last characters of stderr.")
    isolation: dict[str, bool] = Field(description="Which isolations were in force for this run.")
    gpus_visible: str | None = Field(
        None,
        description="CUDA_VISIBLE_DEVICES as the run's environment had it: '' or '-1' when the run could use no GPU, "
                    "the GPUs' indices or UUIDs when it could use those; None when it was not set, so the run could "
                    "use every GPU of the machine (the paper names a run's GPUs from it).",
    )
    notes: list[str] = Field(default_factory=list, description="What degraded, and other remarks of the sandbox.")


class Executor(Component):
    """Base class of executors. `execute` runs one command in `workdir` under `limits` and never raises for
    what the command does: failures and hit limits are reported in the ExecutionResult."""

    kind: ClassVar[str] = "executor"
    chosen_by_default: ClassVar[str | None] = "local"
    chosen_for: ClassVar[str] = "where runs execute"

    def execute(self, command: Sequence[str], workdir: Path, limits: Limits,
                log_dir: Path | None = None) -> ExecutionResult:
        """Run `command` in `workdir`; stdout and stderr go to `log_dir` (default: a folder in `workdir`)."""
        raise NotImplementedError
