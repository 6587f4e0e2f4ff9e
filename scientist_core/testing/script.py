"""A scripted model: the replies a fake LLM gives, in order, queued per reply kind, and a file format for them.

A template author scripts a whole `scientist run` with named helpers, one per stage, and never learns the
pipeline's reply schemas:

    script = Script().idea("wider_layers", knobs=["hidden_size"]).novel().plan({"hidden_size": 64})
    script.figure_notes().paper("spirals.val_accuracy").review(overall=6)

or all of it at once with `Script().full_run(ideas=[...], metric=..., plan=[...])`. In-process the `fake_llm`
fixture (or `run_pipeline`) answers from it; `script.save("replies.jsonl")` writes the same replies for the
`script` provider (scientist-llm-script), so the real command answers from them out of process:
`scientist run NAME --model script/replies.jsonl`.

The reply file is JSON lines, one reply each, taken in order per kind:

    {"for": "idea", "reply": {"Name": "wider_layers", "Title": "...", ...}}
    {"for": "experiment_plan", "reply": {"runs": [{"description": "...", "knob_changes": {...}}]}}
    {"reply": "plain text, for a request that asks for no schema"}

`for` names the reply kind in snake_case (`idea`, `idea_reflection`, `novelty_step`, `novelty_decision`,
`experiment_plan`, `figure_notes`, `title_abstract`, `title_abstract_revision`, `section_text`,
`section_revision`, `citation_query`, `citation_choice`, `review`, `meta_review_text`, `review_revision`) or
as the schema's class name; a line without it answers any request whose kind has no reply of its own.
This module imports neither pytest nor the pipeline, so a provider can load it in the `scientist` process.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable

from pydantic import BaseModel

from scientist_core.hookspecs import hookimpl
from scientist_core.llm import LLM
from scientist_core.models import Completion, Message, ModelInfo, Usage
from scientist_core.plugins import PluginHost, PluginInfo

FAKE_PROVIDER = "fake"
FAKE_MODEL = "scripted"

REVIEW_TEXT = {
    "Summary": "The paper changes one setting of a small experiment and measures the effect.",
    "Strengths": ["A clear, reproducible setup."], "Weaknesses": ["A small study."],
    "Questions": ["Does it hold with more seeds?"], "Limitations": ["One small setup only."],
}


class ScriptExhausted(AssertionError):
    """The model was asked for a reply of `kind` more often than the script holds."""

    def __init__(self, kind: str | None) -> None:
        self.kind, self.friendly = kind, friendly_name(kind) if kind else ""
        asked = f" for {kind} ({self.friendly!r})" if kind else ""
        super().__init__(f"the scripted model was asked{asked} more often than replies were enqueued")


def friendly_name(schema_name: str) -> str:
    """ExperimentPlan -> experiment_plan: how the reply file and the error lines name a reply kind."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in schema_name).lstrip("_")


def schema_name(name: str) -> str:
    """experiment_plan (or ExperimentPlan) -> ExperimentPlan: the class name requests carry."""
    return name if name[:1].isupper() else "".join(part.capitalize() for part in name.split("_"))


@dataclass
class Call:
    """One request the fake LLM received."""

    model: str
    messages: list[Message]
    schema: type[BaseModel] | None
    max_tokens: int | None = None


@dataclass
class Script:
    """Replies the fake LLM gives, in order, and the calls it received.

    `enqueue` queues replies for any request; `answer(kind, ...)` queues replies for requests asking for that
    kind only (snake_case or the schema's class name), which keeps long pipelines scriptable: a request for a
    kind with its own queue takes from it, anything else from the general queue. A reply may be a callable
    taking the Call. The named helpers below queue each stage's replies.
    """

    replies: deque = field(default_factory=deque)
    by_schema: dict[str, deque] = field(default_factory=dict)
    history: list[Call] = field(default_factory=list)

    def enqueue(self, *replies: str | dict | BaseModel | Exception) -> "Script":
        """Queue replies: text as is, dicts and models as JSON, exceptions raised when their turn comes."""
        self.replies.extend(replies)
        return self

    def answer(self, kind: str, *replies: Any) -> "Script":
        """Queue replies for requests asking for `kind` (e.g. "experiment_plan" or "ExperimentPlan")."""
        self.by_schema.setdefault(schema_name(kind), deque()).extend(replies)
        return self

    def next_reply(self, call: Call | None = None) -> str:
        kind = call.schema.__name__ if call is not None and call.schema is not None else None
        queue = self.by_schema[kind] if kind in self.by_schema else self.replies
        if not queue:
            raise ScriptExhausted(kind)
        reply = queue.popleft()
        if callable(reply) and not isinstance(reply, type):
            reply = reply(call)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, BaseModel):
            return reply.model_dump_json(by_alias=True)
        if isinstance(reply, dict | list):
            return json.dumps(reply)
        return reply

    # -- one helper per stage's reply ------------------------------------------------------------------------

    def idea(self, name: str, title: str = "", experiment: str = "", knobs: Iterable[str] = (),
             interestingness: int = 6, feasibility: int = 9, novelty: int = 5) -> "Script":
        """A generated idea, and its refinement, which keeps it and says it is done."""
        idea = {"Name": name, "Title": title or f"Study of {name.replace('_', ' ')}",
                "Experiment": experiment or "Change the knobs named and compare the metrics with the baseline.",
                "Interestingness": interestingness, "Feasibility": feasibility, "Novelty": novelty,
                "Knobs": list(knobs)}
        return self.answer("Idea", idea).answer("IdeaReflection", {"idea": idea, "done": True})

    def novel(self, query: str = "the idea's closest prior work") -> "Script":
        """The novelty check of one idea: one literature search, then `novel`."""
        return self.answer("NoveltyStep", {"thought": "look it up", "action": "search", "query": query},
                           {"thought": "nothing does this", "action": "novel", "query": ""}
                           ).answer("NoveltyDecision", {"thought": "nothing does this", "novel": True})

    def plan(self, *runs: dict[str, Any] | tuple[str, dict[str, Any]]) -> "Script":
        """The experiment plan of one idea: each run its knob changes, or (description, knob changes)."""
        planned = [run if isinstance(run, tuple) else (_describe(run), run) for run in runs]
        return self.answer("ExperimentPlan", {"runs": [
            {"description": description, "knob_changes": changes, "code_change": ""}
            for description, changes in planned]})

    def figure_notes(self, **captions: str) -> "Script":
        """Captions of one idea's figures, by file name (none: the paper shows the figures uncaptioned)."""
        return self.answer("FigureNotes", {"figures": [{"file": file, "caption": caption}
                                                       for file, caption in captions.items()]})

    def paper(self, metric: str, title: str = "A small study", sections: int = 40,
              citation: str = "Adam: A Method for Stochastic Optimization") -> "Script":
        """One paper's write-up, enough for a revision from its review too: titles and abstracts, `sections`
        section texts and revisions citing `metric` of runs 0 and 1 through \\result (never typed numbers), and
        citation rounds looking up `citation`."""
        text = {"latex": f"We compare the baseline with the changed runs. The baseline reaches "
                         f"\\result{{run0.{metric}}}, and the first changed run reaches \\result{{run1.{metric}}}."}
        abstract = f"We change one setting and measure it; see \\result{{run1.{metric}}}."
        return (self.answer("TitleAbstract", *[{"title": title, "abstract": abstract}] * 4)
                .answer("TitleAbstractRevision", *[{"critique": "ok", "title": title, "abstract": abstract}] * 4)
                .answer("SectionText", *[text] * sections)
                .answer("SectionRevision", *[{"critique": "Fine.", **text}] * sections)
                .answer("CitationQuery", *itertools.chain.from_iterable(
                    [{"done": False, "query": citation}, {"done": True, "query": ""}] for _ in range(4)))
                .answer("CitationChoice", *[{"indices": [1]}] * 8))

    def review(self, overall: int = 5, decision: str = "Reject", reviews: int = 20, **scores: int) -> "Script":
        """One paper's review: `reviews` reviewer replies (an ensemble and its reflections), the meta-review and
        its revisions; `scores` set other fields of the form (Soundness=3, Confidence=4, ...)."""
        form = {**REVIEW_TEXT, "Originality": 2, "Quality": 3, "Clarity": 3, "Significance": 2,
                "Ethical Concerns": False, "Soundness": 3, "Presentation": 3, "Contribution": 2, "Overall": overall,
                "Confidence": 4, "Decision": decision, **scores}
        return (self.answer("Review", *[form] * reviews)
                .answer("MetaReviewText", *[REVIEW_TEXT] * 4)
                .answer("ReviewRevision", *[{"Critique": "none", "Review": form, "Done": True}] * 8))

    def full_run(self, ideas: Iterable[str] = ("first_idea",), metric: str = "", plan: Iterable = (),
                 knobs: Iterable[str] = ()) -> "Script":
        """Every reply of a run whose ideas are `ideas`: each novel, planned as `plan` (see `plan`), written up
        citing `metric` ("dataset.metric") and reviewed."""
        ideas, plan = list(ideas), list(plan)
        for name in ideas:
            self.idea(name, knobs=knobs).novel().plan(*plan).figure_notes().paper(metric).review()
        return self

    # -- the reply file ----------------------------------------------------------------------------------------

    def save(self, path: Path | str) -> Path:
        """Write the queued replies as the reply file the `script` provider reads (see the module's docstring)."""
        lines = [{"reply": reply} for reply in self.replies]
        lines += [{"for": friendly_name(kind), "reply": reply} for kind, queue in self.by_schema.items()
                  for reply in queue]
        if any(callable(line["reply"]) or isinstance(line["reply"], Exception) for line in lines):
            raise ValueError("a reply computed by a function or raised cannot be written to a file")
        path = Path(path)
        path.write_text("".join(json.dumps({**line, "reply": _plain(line["reply"])}) + "\n" for line in lines))
        return path

    @classmethod
    def load(cls, path: Path | str) -> "Script":
        """The script a reply file holds; ValueError naming the line that is not a reply."""
        script = cls()
        for number, line in enumerate(Path(path).read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                reply = item["reply"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"{path}:{number} is not a JSON object with a \"reply\"") from None
            if item.get("for"):
                script.answer(str(item["for"]), reply)
            else:
                script.enqueue(reply)
        return script


class FakeLLM(LLM):
    """An LLM that answers from a Script; usage counts words so ledgers have something to add up. `prices`
    (a Price, per token) makes it a priced model, which a run with `max_cost` needs; unset, it has none."""

    name = FAKE_PROVIDER
    description = "scripted replies for tests"
    script: Script = Script()
    prices: ClassVar[Any] = None

    def price(self, model: str) -> Any:
        return self.prices

    def script_for(self, model: str) -> Script:
        """The script that answers requests to `model`: the one bound to the class."""
        return self.script

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(provider=self.name, name=FAKE_MODEL, description=self.description)]

    def complete(self, model, messages, *, schema=None, temperature=0.7, max_tokens=4096) -> Completion:
        call = Call(model, list(messages), schema, max_tokens)
        script = self.script_for(model)
        script.history.append(call)
        text = script.next_reply(call)
        usage = Usage(tokens_in=sum(len(m.content.split()) for m in messages), tokens_out=len(text.split()))
        return Completion(text=text, model=f"{self.name}/{model}", usage=usage)


def register_fake_llm(host: PluginHost, script: Script, cls: type[FakeLLM] = FakeLLM,
                      plugin: str = "scientist-testing", **attributes: Any) -> type[FakeLLM]:
    """Add a fake LLM answering from `script` to `host` as plugin `plugin`: `cls` (a FakeLLM subclass) bound to
    the script and to `attributes` (e.g. prices=Price(1e-6, 2e-6)). Returns the bound class."""
    bound = type(cls.__name__, (cls,), {"script": script, **attributes})

    class FakePlugin:
        @hookimpl
        def register_llms(self, register):
            register(bound)

    host.add(FakePlugin(), PluginInfo(plugin, "scientist-core", "test"))
    return bound


def _plain(reply: Any) -> Any:
    return reply.model_dump(by_alias=True) if isinstance(reply, BaseModel) else reply


def _describe(changes: dict[str, Any]) -> str:
    return ", ".join(f"{key} = {value}" for key, value in changes.items()) or "the baseline's knobs"
