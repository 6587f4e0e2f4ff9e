"""Stage 2: ideas. The model proposes ideas as schema-validated JSON, refines each over reflection rounds,
and the archive of past ideas (with their review scores) grows per template across runs."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field

from scientist_core.chat import StructuredOutputError
from scientist_core.models import Idea, Message
from scientist_core.pipeline.context import RunContext

STAGE = "ideas"
MAX_CODE_CHARS = 12000
NAME_TRIES = 3


class IdeaReflection(BaseModel):
    """A refinement round: the idea as it stands now, and whether it needs no more work."""

    idea: Idea
    done: bool = Field(description="true when the idea needs no further changes")


# -- the archive ------------------------------------------------------------------------------------------

def archive_path(ctx: RunContext) -> Path:
    return Path(ctx.settings.data_dir) / "archive" / f"{ctx.template.name}.json"


def load_archive(ctx: RunContext) -> list[dict]:
    path = archive_path(ctx)
    return json.loads(path.read_text()) if path.is_file() else []


def save_to_archive(ctx: RunContext, idea: Idea, **extra) -> None:
    """Add or update the archive entry of `idea` (e.g. with its review score once known)."""
    path = archive_path(ctx)
    entries = load_archive(ctx)
    entry = next((e for e in entries if e["idea"]["Name"] == idea.name), None)
    if entry is None:
        entry = {"idea": idea.model_dump(by_alias=True), "run_id": ctx.run_id}
        entries.append(entry)
    entry.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=2))
    tmp.replace(path)


# -- prompts ----------------------------------------------------------------------------------------------

def _known_ideas_text(ctx: RunContext, ideas: list[Idea]) -> str:
    lines = []
    for entry in load_archive(ctx):
        score = entry.get("review_overall")
        scored = f" (review overall {score}/10)" if score is not None else ""
        lines.append(f"- {entry['idea']['Name']}: {entry['idea']['Title']}{scored}")
    lines += [f"- {idea.name}: {idea.title}" for idea in ideas]
    return "\n".join(lines) or "(none yet)"


def _messages(ctx: RunContext, ideas: list[Idea]) -> list[Message]:
    prompt = ctx.template.prompt()
    code = (ctx.template.files_dir() / ctx.template.experiment_file).read_text()[:MAX_CODE_CHARS]
    knobs = ", ".join(ctx.template.knobs_model().model_fields)
    return [
        Message(role="system", content=prompt["system"]),
        Message(role="user", content=(
            f"{prompt['task_description']}\n\nThe experiment code:\n```python\n{code}\n```\n\n"
            f"Knobs an idea can change without editing code: {knobs}.\n\n"
            f"Ideas already explored (do not repeat them):\n{_known_ideas_text(ctx, ideas)}\n\n"
            "Propose one new research idea that this code can test within a few runs. Name is lowercase with "
            "underscores. Rate Interestingness, Feasibility and Novelty from 1 to 10, honestly.")),
    ]


def _reflect(chat, messages: list[Message], idea: Idea, rounds: int) -> Idea:
    for round_ in range(2, rounds + 1):
        reflection = chat.ask_structured(
            [*messages, Message(role="assistant", content=idea.model_dump_json(by_alias=True)),
             Message(role="user", content=(
                 f"Round {round_}/{rounds}. Criticise this idea: is it clear, feasible with this code, and new? "
                 "Return the improved idea, and done=true if it needs no further change."))],
            IdeaReflection)
        idea = reflection.idea
        if reflection.done:
            break
    return idea


def generate_ideas(ctx: RunContext) -> list[Idea]:
    """Ideas of this run, generating the missing ones; those already in the store (a resumed run) are kept."""
    ideas = [Idea.model_validate(row["data"]) for row in ctx.store.ideas(ctx.run_id)]
    chat = ctx.chat(STAGE)
    while len(ideas) < ctx.options.num_ideas:
        taken = {entry["idea"]["Name"] for entry in load_archive(ctx)} | {idea.name for idea in ideas}
        messages = _messages(ctx, ideas)
        idea = None
        for _ in range(NAME_TRIES):
            try:
                candidate = _reflect(chat, messages, chat.ask_structured(messages, Idea), ctx.options.reflections)
            except StructuredOutputError as exc:
                ctx.report(f"ideas: an unusable answer was dropped ({exc.message})")
                continue
            if candidate.name not in taken:
                idea = candidate
                break
            messages = [*messages, Message(role="assistant", content=candidate.model_dump_json(by_alias=True)),
                        Message(role="user", content=f"The name {candidate.name!r} is taken; propose a different idea.")]
        if idea is None:
            ctx.report(f"ideas: gave up after {NAME_TRIES} tries; continuing with {len(ideas)} idea(s)")
            break
        ctx.store.add_idea(ctx.run_id, idea.name, idea.model_dump(by_alias=True))
        save_to_archive(ctx, idea)
        ideas.append(idea)
        ctx.report(f"ideas: {idea.name}: {idea.title}")
    return ideas
