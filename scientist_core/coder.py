"""Coders: apply an experiment change to a run's copy of the template."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from scientist_core.component import Component
from scientist_core.models import CodeChange


class Coder(Component):
    """Base class of coders. "No edit made" is a failed CodeChange, never a silent success."""

    kind: ClassVar[str] = "coder"

    def apply(self, workspace: Path, files: list[str], instruction: str, chat: object) -> CodeChange:
        raise NotImplementedError
