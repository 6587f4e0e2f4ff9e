"""Stage 5: plots. The template's plot step over all successful runs, in the sandbox; a caption per figure."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field

from scientist_core.chat import StructuredOutputError
from scientist_core.errors import ExperimentError
from scientist_core.models import Idea, Message
from scientist_core.pipeline.context import Figure, RunContext, RunRecord
from scientist_core.pipeline.execution import effective_limits

STAGE = "plots"
FIGURES_FILE = "figures.json"


class FigureNote(BaseModel):
    file: str
    caption: str = Field(description="one or two sentences: what the figure shows, for the paper")


class FigureNotes(BaseModel):
    figures: list[FigureNote]


def _pngs(folder: Path) -> dict[str, float]:
    return {path.name: path.stat().st_mtime for path in folder.glob("*.png")}


def make_plots(ctx: RunContext, idea: Idea, workspace: Path, records: list[RunRecord]) -> list[Figure]:
    """Run the plot step and caption what it drew; a finished plot step (a resumed run) is not redone."""
    done = workspace / FIGURES_FILE
    if done.is_file():
        return [Figure.model_validate(item) for item in json.loads(done.read_text())]
    before = _pngs(workspace)
    executor = ctx.plugin("executor")
    limits = effective_limits(ctx.template, ctx.options.quick, ctx.settings.sandbox)
    command = ctx.template.plot_command([record.name for record in records])
    result = executor.execute(command, workspace, limits, log_dir=workspace / ".sandbox" / "plot")
    drawn = sorted(name for name, mtime in _pngs(workspace).items() if before.get(name) != mtime)
    if not result.ok or not drawn:
        reason = f"hit its {result.limit_hit} limit" if result.limit_hit else f"exited with {result.exit_code}"
        raise ExperimentError(f"the plot step of {idea.name} {reason if not result.ok else 'drew no PNG'}",
                              f"log: {result.stderr_path}")
    captions = {name: f"{Path(name).stem.replace('_', ' ')} for every run." for name in drawn}
    runs = "\n".join(f"- {record.name}: {record.description}" for record in records)
    try:
        notes = ctx.chat(STAGE).ask_structured([
            Message(role="user", content=(
                f"The plot step of the experiment drew these figures: {', '.join(drawn)}.\nThe runs:\n{runs}\n"
                f"The plot code:\n```python\n{(workspace / ctx.template.plot_file).read_text()[:8000]}\n```\n"
                "Write a caption for each figure: what it shows, which runs appear, how to read it. Name runs by "
                "what they changed, not by their folder names."))], FigureNotes)
        captions.update({note.file: note.caption for note in notes.figures if note.file in captions})
    except StructuredOutputError as exc:
        ctx.report(f"plots: {idea.name}: captions from file names ({exc.message})")
    figures = [Figure(path=workspace / name, caption=captions[name]) for name in drawn]
    for figure in figures:
        ctx.store.add_artifact(ctx.run_id, "figure", figure.path, {"idea": idea.name, "caption": figure.caption})
    done.write_text(json.dumps([figure.model_dump(mode="json") for figure in figures], indent=2))
    ctx.report(f"plots: {idea.name}: {len(figures)} figure(s)")
    return figures
