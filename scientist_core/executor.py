"""Executors: where experiment runs execute (the local sandbox now, a cluster engine later)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from scientist_core.component import Component
from scientist_core.sandbox import ExecutionResult, Limits


class Executor(Component):
    """Base class of executors. `execute` runs one command in `workdir` under `limits` and never raises for
    what the command does: failures and hit limits are reported in the ExecutionResult."""

    kind: ClassVar[str] = "executor"

    def execute(self, command: Sequence[str], workdir: Path, limits: Limits,
                log_dir: Path | None = None) -> ExecutionResult:
        """Run `command` in `workdir`; stdout and stderr go to `log_dir` (default: a folder in `workdir`)."""
        raise NotImplementedError
