"""Stage 5: plots. The template's plot step over all successful runs, in the sandbox; a caption per figure."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from scientist_core.chat import StructuredOutputError
from scientist_core.errors import ExperimentError
from scientist_core.models import Idea, Message
from scientist_core.pipeline.context import LOGS_DIR, Figure, RunContext, RunRecord
from scientist_core.pipeline.execution import effective_limits
from scientist_core.untrusted import UntrustedOutput, copy_out, write_into

STAGE = "plots"
FIGURES_DIR = "figures"  # in an idea's folder: the figures taken back from the plot step


class FigureNote(BaseModel):
    file: str
    caption: str = Field(description="one or two sentences: what the figure shows, for the paper")


class FigureNotes(BaseModel):
    figures: list[FigureNote]


FIGURE_MAX_BYTES = 32 * 2**20


def _pngs(sandbox: Path) -> dict[str, tuple[float, int]]:
    """The plain .png files at the top of the sandbox folder, with what tells a redrawn one (links are not)."""
    found = {}
    with os.scandir(sandbox) as entries:
        for entry in entries:
            if entry.name.endswith(".png") and entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                found[entry.name] = (info.st_mtime, info.st_size)
    return found


def make_plots(ctx: RunContext, idea: Idea, records: list[RunRecord]) -> list[Figure]:
    """Run the plot step in the idea's sandbox folder, take back what it drew to the idea's figures/ folder,
    and caption it."""
    folder, sandbox = ctx.idea_dir(idea), ctx.sandbox_dir(idea)
    plot_code = (folder / ctx.template.plot_file).read_text()  # the host's copy: the last successful run's
    write_into(sandbox, ctx.template.plot_file, plot_code)
    before = _pngs(sandbox)
    executor = ctx.plugin("executor")
    limits = effective_limits(ctx.template, ctx.options.quick, ctx.settings.sandbox)
    command = ctx.template.plot_command([record.name for record in records])
    result = executor.execute(command, sandbox, limits, log_dir=folder / LOGS_DIR / "plot")
    drawn = sorted(name for name, seen in _pngs(sandbox).items() if before.get(name) != seen)
    if not result.ok or not drawn:
        reason = f"hit its {result.limit_hit} limit" if result.limit_hit else f"exited with {result.exit_code}"
        raise ExperimentError(f"the plot step of {idea.name} {reason if not result.ok else 'drew no PNG'}",
                              f"log: {result.stderr_path}")
    taken: list[str] = []
    for name in drawn:
        try:
            copy_out(sandbox, name, folder / FIGURES_DIR / name, FIGURE_MAX_BYTES)
            taken.append(name)
        except (UntrustedOutput, FileNotFoundError) as exc:
            ctx.report(f"plots: {idea.name}: {name} left out ({exc})")
    if not taken:
        raise ExperimentError(f"the plot step of {idea.name} drew no figure the host could take back",
                              f"log: {result.stderr_path}")
    captions = {name: f"{Path(name).stem.replace('_', ' ')} for every run." for name in taken}
    runs = "\n".join(f"- {record.name}: {record.description}" for record in records)
    try:
        notes = ctx.chat(STAGE).ask_structured([
            Message(role="user", content=(
                f"The plot step of the experiment drew these figures: {', '.join(taken)}.\nThe runs:\n{runs}\n"
                f"The plot code:\n```python\n{plot_code[:8000]}\n```\n"
                "Write a caption for each figure: what it shows, which runs appear, how to read it. Name runs by "
                "what they changed, not by their folder names."))], FigureNotes)
        captions.update({note.file: note.caption for note in notes.figures if note.file in captions})
    except StructuredOutputError as exc:
        ctx.report(f"plots: {idea.name}: captions from file names ({exc.message})")
    figures = [Figure(path=folder / FIGURES_DIR / name, caption=captions[name]) for name in taken]
    for figure in figures:
        ctx.store.add_artifact(ctx.run_id, "figure", figure.path, {"idea": idea.name, "caption": figure.caption})
    ctx.report(f"plots: {idea.name}: {len(figures)} figure(s)")
    return figures
