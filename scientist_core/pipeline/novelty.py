"""Stage 3: novelty. The model searches the literature for a bounded number of rounds, then decides.
Queries, results and the decision are stored with the idea."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from scientist_core.chat import StructuredOutputError
from scientist_core.models import Idea, Message, Paper
from scientist_core.pipeline.context import RunContext

STAGE = "novelty"
RESULTS_SHOWN = 8


class NoveltyStep(BaseModel):
    thought: str = Field(description="what the results so far show, briefly")
    action: Literal["search", "novel", "not_novel"] = Field(description="search again, or decide")
    query: str = Field("", description="the search query when action is search")


class NoveltyDecision(BaseModel):
    thought: str = Field(description="the reason for the decision, briefly")
    novel: bool


def _describe(papers: list[Paper]) -> str:
    if not papers:
        return "No papers found."
    lines = []
    for number, paper in enumerate(papers[:RESULTS_SHOWN], 1):
        authors = ", ".join(paper.authors[:3]) + (" et al." if len(paper.authors) > 3 else "")
        abstract = f"\n   {paper.abstract[:400]}" if paper.abstract else ""
        lines.append(f"{number}. {paper.title} ({authors}; {paper.venue} {paper.year or ''}){abstract}")
    return "\n".join(lines)


def check_novelty(ctx: RunContext, idea: Idea) -> bool:
    """Whether `idea` is novel, after at most novelty_rounds searches; the queries, results and decision are
    stored with the idea."""
    from scientist_core.searcher import search_with_fallback

    chat = ctx.chat(STAGE)
    searchers = ctx.searchers()
    messages = [
        Message(role="system", content="You judge whether a research idea is novel. Search the literature with "
                "focused queries, read the results, and decide. An idea is not novel when a paper already does "
                "essentially the same thing."),
        Message(role="user", content=f"The idea:\n{idea.model_dump_json(by_alias=True, indent=1)}"),
    ]
    rounds: list[dict] = []
    found: dict[str, Paper] = {}

    def search(query: str, why: str = "") -> None:
        papers, source, errors = search_with_fallback(searchers, query, 10)
        rounds.append({"query": query, "source": source, "errors": errors, "results": [p.title for p in papers]})
        found.update((paper.title.lower(), paper) for paper in papers)
        messages.append(Message(role="user", content=f"{why}Results for {query!r} ({source}):\n{_describe(papers)}"))

    unsearched = "No decision before a search of the literature: the idea's title was searched. "

    decision: NoveltyDecision | None = None
    try:
        for round_ in range(1, ctx.options.novelty_rounds + 1):
            if round_ == ctx.options.novelty_rounds and rounds:
                break
            step = chat.ask_structured([*messages, Message(role="user", content=(
                f"Round {round_}/{ctx.options.novelty_rounds}: search (give a query) or decide."))], NoveltyStep)
            if step.action != "search" or not step.query.strip():
                if rounds:
                    decision = NoveltyDecision(thought=step.thought, novel=step.action == "novel")
                    break
                messages.append(Message(role="assistant", content=step.model_dump_json()))
                search(idea.title, unsearched)
                continue
            messages.append(Message(role="assistant", content=step.model_dump_json()))
            search(step.query)
        if decision is None:
            if not rounds:  # novelty_rounds == 1: the one round is code's search of the idea's title
                search(idea.title, unsearched)
            decision = chat.ask_structured([*messages, Message(role="user", content="Decide now.")], NoveltyDecision)
    except StructuredOutputError as exc:
        decision = NoveltyDecision(thought=f"no usable decision from the model: {exc.message}", novel=False)
    assert decision is not None
    ctx.store.set_novelty(ctx.run_id, idea.name, decision.novel,
                          {"rounds": rounds, "thought": decision.thought, "decision": decision.novel,
                           "papers": [paper.model_dump(mode="json") for paper in found.values()]})
    ctx.report(f"novelty: {idea.name}: {'novel' if decision.novel else 'not novel'} after {len(rounds)} search(es)")
    return decision.novel
