"""The executor "local" (this machine, inside the sandbox) and the `scientist sandbox` commands."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from scientist_core import ExecutionResult, Executor, Limits, hookimpl


class LocalExecutor(Executor):
    name = "local"
    description = "this machine, inside the sandbox (namespaces and resource limits)"

    def execute(self, command: Sequence[str], workdir: Path, limits: Limits,
                log_dir: Path | None = None) -> ExecutionResult:
        from scientist_sandbox.runner import run

        return run(command, workdir, limits, log_dir=log_dir)


@hookimpl
def register_executors(register):
    register(LocalExecutor)


@hookimpl
def register_commands(cli):
    from scientist_sandbox.command import app

    cli.add_typer(app, name="sandbox")
