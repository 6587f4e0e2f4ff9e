"""Coders: apply an experiment change to a run's copy of the template.

A coder gets a CodeRequest: the change to make, the files it may edit (the experiment file first, then the
plot file), files it may only read (the run's notes), and the context the paper's loop gives its coder: the
idea, which run this is out of how many, the results so far and, on a retry, why the last attempt failed with
the tail of its stderr. It answers with a CodeChange; "no edit made" is a failed CodeChange, never a success.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from scientist_core.component import Component
from scientist_core.errors import PluginError
from scientist_core.models import CodeChange, Idea


class CodeRequest(BaseModel):
    """What a coder is asked to do, and the context of the run it is done for."""

    instruction: str = Field(description="the change to make, in words")
    files: list[str] = Field(description="files it may edit, relative to the workspace; the experiment file first")
    read_only: list[str] = Field(default_factory=list, description="files shown for context only (notes.txt)")
    idea: Idea | None = None
    run: str = Field("", description="the run folder the change is for, e.g. run_2")
    budget: str = Field("", description="where this run stands: which run of how many, which attempt")
    command: str = Field("", description="how the core executes the run after the edit")
    knob_changes: dict[str, Any] = Field(default_factory=dict, description="knob changes the core applies itself")
    previous_results: str = Field("", description="results of the runs so far, baseline first")
    failure: str = Field("", description="why the previous attempt failed, with the tail of its stderr")

    def context(self) -> str:
        """The request's context as prompt text (without the files), shared by coders."""
        parts = []
        if self.idea is not None:
            parts.append(f"Idea: {self.idea.title}\nWhat the experiments test: {self.idea.experiment}")
        if self.run or self.budget:
            parts.append(f"This change is for {self.run or 'the next run'}" + (f" ({self.budget})." if self.budget
                                                                               else "."))
        if self.command:
            parts.append(f"After the edit the run is executed as `{self.command}`: do not run anything yourself, "
                         "add no command-line arguments, and keep writing final_info.json in the same format.")
        if self.knob_changes:
            parts.append("Knob changes the core applies through knobs.json (do not hard-code them): "
                         + json.dumps(self.knob_changes))
        if self.previous_results:
            parts.append(f"Results so far:\n{self.previous_results}")
        if self.failure:
            parts.append(f"The previous attempt failed:\n{self.failure}")
        return "\n\n".join(parts)


class Coder(Component):
    """Base class of coders. "No edit made" is a failed CodeChange, never a silent success."""

    kind: ClassVar[str] = "coder"
    chosen_by_default: ClassVar[str | None] = "search_replace"
    chosen_for: ClassVar[str] = "what applies code changes to a run's copy of the template"

    def apply(self, workspace: Path, request: CodeRequest, chat: Any) -> CodeChange:
        """Make `request` in `workspace`; `chat` is the run's Chat (its model, ledger and budget)."""
        raise NotImplementedError

    def install(self, say: Callable[[str], None] = print, force: bool = False) -> None:
        """Install what the coder needs (`scientist coder install NAME`); idempotent."""
        raise PluginError(f"the coder {self.name!r} needs no installation", "use it as it is")
