"""The built-in executor: runs each command on this machine inside the sandbox."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from scientist_core import sandbox
from scientist_core.executor import Executor
from scientist_core.hookspecs import hookimpl


class LocalExecutor(Executor):
    name = "local"
    description = "this machine, inside the sandbox (namespaces and resource limits)"

    def execute(self, command: Sequence[str], workdir: Path, limits: sandbox.Limits,
                log_dir: Path | None = None) -> sandbox.ExecutionResult:
        return sandbox.run(command, workdir, limits, log_dir=log_dir)


@hookimpl
def register_executors(register):
    register(LocalExecutor)
