"""Stage 2: ideas. The model proposes ideas as schema-validated JSON, refines each over reflection rounds,
and the archive of past ideas (with their review scores) grows per template across runs."""

from __future__ import annotations

import json

from pydantic import BaseModel, Field, create_model

from scientist_core.chat import StructuredOutputError
from scientist_core.models import Idea, Message
from scientist_core.pipeline.archive import load_archive, save_to_archive
from scientist_core.pipeline.context import RunContext
from scientist_core.pipeline.plans import baseline_values, changeable_knobs, idea_model

STAGE = "ideas"
MAX_CODE_CHARS = 12000
NAME_TRIES = 3


def idea_schemas(ctx: RunContext) -> tuple[type[Idea], type[BaseModel]]:
    """(Idea, IdeaReflection) for this run's template: ideas name the knobs they change; without code changes an
    idea that needs code is refused (see plans.idea_model)."""
    idea = idea_model(ctx.template, ctx.options.code_changes, ctx.options.max_knob_changes)
    reflection = create_model(
        "IdeaReflection", __doc__="A refinement round: the idea as it stands now, and whether it needs no more work.",
        idea=(idea, ...), done=(bool, Field(description="true when the idea needs no further changes")))
    return idea, reflection


# -- prompts ----------------------------------------------------------------------------------------------

def _known_ideas_text(ctx: RunContext, ideas: list[Idea]) -> str:
    lines = []
    for entry in load_archive(ctx):
        score = entry.get("review_overall")
        scored = f" (review overall {score}/10)" if score is not None else ""
        failed = f" (tried; {entry['failure']})" if entry.get("failure") else ""
        lines.append(f"- {entry['idea']['Name']}: {entry['idea']['Title']}{scored}{failed}")
    lines += [f"- {idea.name}: {idea.title}" for idea in ideas]
    return "\n".join(lines) or "(none yet)"


def _messages(ctx: RunContext, ideas: list[Idea]) -> list[Message]:
    prompt = ctx.template.prompt()
    fields = ctx.template.knobs_model().model_fields
    baseline = baseline_values(ctx.template, ctx.options.quick)
    knobs = "\n".join(f"- {name} = {json.dumps(baseline.get(name))}: {fields[name].description or ''}"
                      for name in changeable_knobs(ctx.template))
    most = ctx.options.max_knob_changes
    if ctx.options.code_changes:
        code = (ctx.template.files_dir() / ctx.template.experiment_file).read_text()[:MAX_CODE_CHARS]
        shown = f"The experiment code:\n```python\n{code}\n```\n\n"
        scope = (f"Name in Knobs the knobs the idea changes (at most {most}); describe in Code_change a change the "
                 "knobs cannot express, or leave it empty.")
    else:  # the code is not shown: what a run can change is the knobs, and a small model copies what it reads
        shown = ""
        scope = (f"This run cannot edit code: the idea must be tested by changing at most {most} of these knobs, "
                 "named in Knobs.")
    return [
        Message(role="system", content=prompt["system"]),
        Message(role="user", content=(
            f"{prompt['task_description']}\n\n{shown}"
            f"Knobs an idea can change without editing code, with their baseline values:\n{knobs}\n{scope}\n\n"
            f"Ideas already explored (do not repeat them):\n{_known_ideas_text(ctx, ideas)}\n\n"
            "Propose one new research idea that this code can test within a few runs. Name is lowercase with "
            "underscores. Rate Interestingness, Feasibility and Novelty from 1 to 10, honestly.")),
    ]


def _reflect(chat, messages: list[Message], idea: Idea, rounds: int, schema: type[BaseModel]) -> Idea:
    for round_ in range(2, rounds + 1):
        reflection = chat.ask_structured(
            [*messages, Message(role="assistant", content=idea.model_dump_json(by_alias=True)),
             Message(role="user", content=(
                 f"Round {round_}/{rounds}. Criticise this idea: is it clear, feasible with this code, and new? "
                 "Return the improved idea, and done=true if it needs no further change."))],
            schema)
        idea = reflection.idea
        if reflection.done:
            break
    return idea


def generate_ideas(ctx: RunContext, total: int | None = None, known: list[Idea] = (),
                   label: str = STAGE) -> list[Idea]:
    """The run's ideas so far (`known`) and new ones up to `total` (default: num_ideas), each new idea a
    checkpoint `<label>:<number>` so that a resumed run keeps those it had."""
    ideas = list(known)
    chat = ctx.chat(STAGE)
    schema, reflection_schema = idea_schemas(ctx)
    while len(ideas) < (total or ctx.options.num_ideas):
        idea = ctx.checkpoint(f"{label}:{len(ideas) + 1}", Idea | None,
                              lambda: _new_idea(ctx, chat, schema, reflection_schema, ideas))
        if idea is None:
            ctx.report(f"ideas: gave up after {NAME_TRIES} tries; continuing with {len(ideas)} idea(s)")
            break
        ideas.append(idea)
    return ideas


def _new_idea(ctx: RunContext, chat, schema: type[Idea], reflection_schema: type[BaseModel],
              ideas: list[Idea]) -> Idea | None:
    """One idea unlike `ideas` and the archive's, stored with the run and in the archive; None when the model
    gave none in NAME_TRIES tries and no seed idea is left."""
    taken = {entry["idea"]["Name"] for entry in load_archive(ctx)} | {idea.name for idea in ideas}
    messages = _messages(ctx, ideas)
    idea = None
    for _ in range(NAME_TRIES):
        try:
            candidate = _reflect(chat, messages, chat.ask_structured(messages, schema), ctx.options.reflections,
                                 reflection_schema)
            candidate = Idea.model_validate(candidate.model_dump(by_alias=True))
        except StructuredOutputError as exc:
            ctx.report(f"ideas: an unusable answer was dropped ({exc.message})")
            continue
        if candidate.name not in taken:
            idea = candidate
            break
        messages = [*messages, Message(role="assistant", content=candidate.model_dump_json(by_alias=True)),
                    Message(role="user", content=f"The name {candidate.name!r} is taken; propose a different idea.")]
    if idea is None:
        idea = _seed_idea(ctx, schema, taken)
    if idea is not None:
        ctx.store.add_idea(ctx.run_id, idea.name, idea.model_dump(by_alias=True))
        save_to_archive(ctx, idea)
        ctx.report(f"ideas: {idea.name}: {idea.title}")
    return idea


def _seed_idea(ctx: RunContext, schema: type[Idea], taken: set[str]) -> Idea | None:
    """The template's first seed idea that this run can test and no earlier run took: what a run falls back on
    when the model gives no usable idea (a small model may keep proposing code changes it cannot make)."""
    from pydantic import ValidationError

    for seed in ctx.template.seed_ideas():
        if seed.name in taken:
            continue
        try:
            schema.model_validate(seed.model_dump(by_alias=True))
        except ValidationError:
            continue
        ctx.report(f"ideas: the model gave no usable idea in {NAME_TRIES} tries: the template's seed idea "
                   f"{seed.name} stands in")
        return seed
    return None
