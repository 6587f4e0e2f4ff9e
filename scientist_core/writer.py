"""Writers: from an idea's recorded runs and figures to a compiled paper (scientist-paper's `latex` writer)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, Field

from scientist_core.component import Component

if TYPE_CHECKING:
    from scientist_core.compiler import Compiler
    from scientist_core.models import Idea


class WriteupResult(BaseModel):
    """What the write-up made: the PDF (None when LaTeX could not produce one), and what went wrong."""

    pdf_path: Path | None = None
    latex_dir: Path
    citations: int = Field(0, description="references in the paper's bibliography")
    fix_rounds_used: int = Field(0, description="compile-and-fix rounds that went back to the model")
    problems: list[str] = Field(default_factory=list, description="what the reader of the paper should know")
    idea_not_implemented: str = Field("", description="why the runs did not implement the change the idea proposed "
                                                      "(the paper then says so and describes only what was run); "
                                                      "empty when they did")


class PaperCheck(BaseModel):
    """What a writer's check of a finished paper found (`scientist check`): each item traced or not."""

    items: int = Field(0, description="numbers, claims, citations, figures and machine statements checked")
    problems: list[str] = Field(default_factory=list, description="one line per item the records do not bear")
    report: dict[str, Any] = Field(default_factory=dict, description="the whole report, as `check --json` gives it")

    @property
    def summary(self) -> str:
        """The run summary's words: "check: clean" or "check: N problems"."""
        return f"check: {len(self.problems)} problems" if self.problems else "check: clean"


class Writer(Component):
    """Base class of writers. `write` gets the run's context (scientist_core.pipeline.context.RunContext: its
    chat, store, template, options and searchers) and must trace every number of the paper to `runs`."""

    kind: ClassVar[str] = "writer"
    chosen_by_default: ClassVar[str | None] = "latex"
    chosen_for: ClassVar[str] = "what writes the paper"

    def preflight(self, skeleton: Path, compiler: "Compiler", work_dir: Path) -> list[str]:
        """Problems of a template's paper `skeleton` with this `compiler`, found before any money is spent
        (empty: it builds). `work_dir` does not exist yet and is the writer's to use."""
        return []

    def skeleton_problems(self, skeleton: Path) -> list[str]:
        """What is wrong with a template's paper skeleton (its prepared `latex/` folder) that shows without
        compiling it, e.g. a citation its bibliography does not hold; template contract tests ask it."""
        return []

    def check_paper(self, ctx: Any, latex_dir: Path) -> PaperCheck | None:
        """Trace every item of the paper written in `latex_dir` to the run's records (`ctx`: its RunContext);
        None for a writer that cannot check its papers."""
        return None

    def write(self, ctx: Any, idea: "Idea", workspace: Path, runs: list, figures: list,
              feedback: str | None = None) -> WriteupResult:
        """Write, check and compile the paper of `idea` from its recorded `runs` and `figures`; with `feedback`
        (a review, as text) revise the paper written before instead."""
        raise NotImplementedError
