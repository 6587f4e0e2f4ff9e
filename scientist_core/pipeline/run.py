"""`scientist run` and `scientist resume`: the stages in order, each recorded before the next starts.

Per run: pre-flight, then ideas. Per idea (several at once with --workers): novelty, experiments, plots,
write-up, review. A stage that finished is never redone on resume; a stage that failed for one idea ends
that idea, not the run. BudgetExceeded stops the run cleanly, resumable once the budget is raised.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from scientist_core.errors import PathError, ScientistError, StoreError
from scientist_core.executor import ACCEPT_UNISOLATED
from scientist_core.models import Idea
from scientist_core.pipeline.context import (LOGS_DIR, NOTES_FILE, RunContext, RunOptions, configured_plugin,
                                            new_run_id)
from scientist_core.pipeline.execution import UNISOLATED_ALLOWED, contained, probe_isolation, run_limits, uncontained
from scientist_core.plugins import PluginHost
from scientist_core.settings import Settings
from scientist_core.store import Store

NO_RUN_SUCCEEDED = "no experiment run succeeded"


class IdeaSummary(BaseModel):
    name: str
    title: str
    novel: bool | None = None
    runs_done: int = 0
    paper: str | None = None
    overall: int | None = None
    decision: str | None = None
    cost_usd: float = 0.0
    check: str = ""  # the paper's check against the records: "check: clean" or "check: N problems"
    problem: str = ""

    @property
    def runs_failed(self) -> bool:
        """Every planned run failed: a fresh idea may do better (a failed baseline would fail it too)."""
        return self.problem.startswith(NO_RUN_SUCCEEDED)


class RunSummary(BaseModel):
    run_id: str
    run_dir: Path
    ideas: list[IdeaSummary]
    cost_usd: float
    seconds: float
    isolation: str = ""  # what the sandbox contained over every recorded run, one line (_isolation)

    @property
    def reviewed_papers(self) -> int:
        return sum(1 for idea in self.ideas if idea.paper and idea.overall is not None)


def preflight(settings: Settings, host: PluginHost, options: RunOptions,
              report: Callable[[str], None] = print) -> None:
    """Everything a run needs, checked before any model call: a missing piece is one line and nothing is spent."""
    import tempfile

    from scientist_core.chat import LLMNotReady, refuse_unpriced, split_model_id
    from scientist_core.model_choice import resolve_model

    template = host.create("template", options.template, settings.templates)
    template.knobs(quick=options.quick)
    template.prepare_data(Path(settings.data_dir).expanduser().resolve(), options.quick)  # downloads, if any
    for role, override in (("scientist", options.model), ("reviewer", options.reviewer_model)):
        model_id = resolve_model(settings, role, override, host)
        provider_name, name = split_model_id(model_id)
        provider = host.create("llm", provider_name, settings.llms)
        readiness = provider.readiness(name)
        if not readiness.ready:
            raise LLMNotReady(f"the {role}'s model {model_id} cannot answer: {readiness.detail}",
                              "fix that, or choose another model (--model, --reviewer-model; `scientist models`)")
        refuse_unpriced(provider, name, settings.max_cost)
    compiler = configured_plugin(host, settings, "compiler")
    readiness = compiler.readiness()
    if not readiness.ready:
        raise ScientistError(f"the LaTeX compiler {settings.compiler!r} is not ready: {readiness.detail}",
                             "install it before spending anything on a paper that cannot be built")
    writer = configured_plugin(host, settings, "writer")
    with tempfile.TemporaryDirectory() as scratch:
        problems = writer.preflight(template.write_latex(Path(scratch) / "skeleton"), compiler, Path(scratch) / "latex")
    broken = [p for p in problems if "does not compile" in p or "not ready" in p]
    if broken:
        raise ScientistError(f"the paper of template {options.template!r} cannot be built: {broken[0]}",
                             "fix the LaTeX installation or the template's latex/ folder before spending anything")
    for problem in problems:
        report(f"pre-flight: {problem} (the built-in skeleton will be used)")
    configured_plugin(host, settings, "reviewer")
    coder = configured_plugin(host, settings, "coder")
    if options.code_changes:  # plans may ask for code edits: the coder must be able to make them with this model
        readiness = coder.readiness(resolve_model(settings, "scientist", options.model, host))
        if not readiness.ready:
            raise ScientistError(f"the coder {settings.coder!r} is not ready: {readiness.detail}",
                                 "or choose another coder with --coder (the built-in: search_replace), or "
                                 "set run.code_changes = false")
    executor = configured_plugin(host, settings, "executor")
    limits = run_limits(template, options.quick, settings)
    reachable = uncontained([probe_isolation(executor, limits)], limits.network)  # refused here unless allowed
    if reachable and not settings.sandbox.allow_unisolated_code:  # an executor that did not refuse by itself
        raise ScientistError(f"the executor {settings.executor!r} cannot isolate generated code on this machine: "
                             f"it would reach {', '.join(reachable)}", f"fix the machine (docs/sandbox.md), or "
                             f"accept the risk: {ACCEPT_UNISOLATED}")
    report(f"sandbox: generated code will reach {', '.join(reachable)} ({UNISOLATED_ALLOWED}; docs/sandbox.md)"
           if reachable else f"sandbox: each run isolated ({contained(limits.network)})")
    installed = set(host.names("searcher"))
    chain = [name for name in settings.searchers_order if name in installed]
    if not chain:
        raise ScientistError(f"none of the searchers {settings.searchers_order} is installed "
                             f"(installed: {', '.join(sorted(installed)) or 'none'})",
                             "set searchers_order in scientist.toml to installed searchers")


def start_run(settings: Settings, host: PluginHost, options: RunOptions,
              report: Callable[[str], None] = print, status: Callable[[str], None] | None = None) -> RunSummary:
    """A new run of `options.template`: every stage, each idea in turn (or `options.workers` at once). Lines
    that stay go to `report`; the live status of a running experiment (its latest output line) to `status`."""
    preflight(settings, host, options, report)
    run_id = new_run_id(options.template)
    run_dir = (Path(settings.out_dir) / run_id).resolve()  # absolute: stages hand paths to each other
    run_dir.mkdir(parents=True)
    store = Store(settings.store_path)
    store.create_run(run_id, "run", options.template, run_dir, options.model_dump(mode="json"))
    report(f"run {run_id}: {run_dir}")
    return _run_stages(settings, host, store, run_id, run_dir, options, report, status)


def resume_run(settings: Settings, host: PluginHost, run_id: str, report: Callable[[str], None] = print,
               status: Callable[[str], None] | None = None, **changes: Any) -> RunSummary:
    """Continue `run_id` where it stopped, with its stored options (`changes`, e.g. a raised max_cost, apply)."""
    store = Store.open_existing(settings.store_path)
    record = store.run(run_id)
    if record["kind"] != "run":
        raise ScientistError(f"{run_id} is a {record['kind']}, not a run", "resume runs started by `scientist run`")
    options = RunOptions.model_validate({**record["settings"], **{k: v for k, v in changes.items() if v is not None}})
    preflight(settings, host, options, report)
    store.set_run_status(run_id, "running")
    report(f"resuming {run_id}")
    return _run_stages(settings, host, store, run_id, Path(record["workdir"]), options, report, status)


def _run_stages(settings, host, store, run_id, run_dir, options, report, status) -> RunSummary:
    from scientist_core.chat import BudgetExceeded
    from scientist_core.pipeline.ideas import generate_ideas

    started = time.monotonic()
    template = host.create("template", options.template, settings.templates)
    ctx = RunContext(run_id=run_id, run_dir=run_dir, options=options, settings=settings, host=host, store=store,
                     template=template, report=report, status=status or (lambda message: None))
    try:
        ideas = ctx.checkpoint("ideas", list[Idea], lambda: generate_ideas(ctx), stage=True)
        with ThreadPoolExecutor(max_workers=options.workers) as pool:
            summaries = list(pool.map(lambda idea: _process_idea(ctx, idea), ideas))
            summaries += _fresh_ideas(ctx, pool, ideas, [s for s in summaries if s.runs_failed])
    except BudgetExceeded:
        store.set_run_status(run_id, "stopped")
        raise
    except BaseException:
        try:
            store.set_run_status(run_id, "failed")
        except Exception:  # the store itself may be what failed (a full disk): its error is the one to show
            pass
        raise
    store.set_run_status(run_id, "done")
    return RunSummary(run_id=run_id, run_dir=run_dir, ideas=summaries, cost_usd=store.total_cost(run_id),
                      seconds=time.monotonic() - started, isolation=_isolation(ctx))


def _isolation(ctx: RunContext) -> str:
    """What the sandbox contained over every recorded experiment of the run, as one line for its summary."""
    isolations = [row["execution"]["isolation"] for row in ctx.store.experiments(ctx.run_id)
                  if isinstance(row.get("execution"), dict) and isinstance(row["execution"].get("isolation"), dict)]
    if not isolations:
        return ""
    network = run_limits(ctx.template, ctx.options.quick, ctx.settings).network
    reachable = uncontained(isolations, network)
    if not reachable:
        return f"sandbox: every run was isolated ({contained(network)})"
    consent = f" ({UNISOLATED_ALLOWED})" if ctx.settings.sandbox.allow_unisolated_code else ""
    return f"sandbox: NOT every run was contained: generated code could reach {', '.join(reachable)}{consent}"


def _fresh_ideas(ctx: RunContext, pool: ThreadPoolExecutor, ideas: list[Idea],
                 failed: list[IdeaSummary]) -> list[IdeaSummary]:
    """New ideas in place of the `failed` ones (none of their runs succeeded), at most `fresh_ideas` in all;
    each generation is a stage of its own, so a resumed run keeps the fresh ideas it had."""
    from scientist_core.pipeline.ideas import generate_ideas

    summaries: list[IdeaSummary] = []
    fresh = 0
    while failed and fresh < ctx.options.fresh_ideas:
        replaced = failed[:ctx.options.fresh_ideas - fresh]
        fresh += len(replaced)
        known = len(ideas)
        ctx.report(f"ideas: {len(replaced)} fresh idea(s) in place of {', '.join(s.name for s in replaced)} "
                   f"({fresh} of at most {ctx.options.fresh_ideas})")
        stage = f"ideas:fresh-{fresh}"
        new = ctx.checkpoint(stage, list[Idea], stage=True,
                             work=lambda: generate_ideas(ctx, known + len(replaced), ideas, stage)[known:])
        for summary, idea in itertools.zip_longest(replaced, new):
            summary.problem += f"; replaced by the fresh idea {idea.name}" if idea else "; no fresh idea came"
        ideas += new
        added = list(pool.map(lambda idea: _process_idea(ctx, idea), new))
        summaries += added
        failed = [s for s in added if s.runs_failed]
    return summaries


def _process_idea(ctx: RunContext, idea: Idea) -> IdeaSummary:
    """One idea from novelty to review; a ScientistError ends the idea (recorded), not the run."""
    from scientist_core.chat import BudgetExceeded
    from scientist_core.pipeline.archive import save_to_archive
    from scientist_core.pipeline.context import Figure, RunRecord
    from scientist_core.pipeline.experiments import run_experiments
    from scientist_core.pipeline.novelty import check_novelty
    from scientist_core.pipeline.plots import make_plots
    from scientist_core.pipeline.review import review_paper
    from scientist_core.pipeline.writeup import check_paper, write_paper
    from scientist_core.reviewer import ReviewResult
    from scientist_core.writer import PaperCheck, WriteupResult

    ctx = ctx.for_idea(idea)
    summary = IdeaSummary(name=idea.name, title=idea.title)
    key = idea.name
    try:
        if ctx.options.skip_novelty:
            summary.novel = None
        else:
            summary.novel = ctx.checkpoint(f"novelty:{key}", bool, lambda: check_novelty(ctx, idea), stage=True)
            if not summary.novel and ctx.options.novelty_gate:
                summary.problem = "not novel"
                return summary
        records = ctx.checkpoint(f"experiments:{key}", list[RunRecord], lambda: run_experiments(ctx, idea),
                                 stage=True)
        summary.runs_done = len(records) - 1
        if summary.runs_done == 0:
            summary.problem = _no_run_problem(ctx, idea)
            save_to_archive(ctx, idea, failure="none of its runs succeeded")
            return summary
        figures = ctx.checkpoint(f"plots:{key}", list[Figure], lambda: make_plots(ctx, idea, records), stage=True)
        paper = ctx.checkpoint(f"writeup:{key}", WriteupResult, lambda: write_paper(ctx, idea, records, figures),
                               stage=True)
        summary.paper = str(paper.pdf_path) if paper.pdf_path else None
        if paper.pdf_path is None:
            summary.problem = "the paper did not compile: " + "; ".join(paper.problems)[:300]
            return summary
        check = ctx.checkpoint(f"check:{key}", PaperCheck | None, lambda: check_paper(ctx, idea, paper))
        summary.check = check.summary if check else ""
        review = ctx.checkpoint(f"review:{key}", ReviewResult, lambda: review_paper(
            ctx, idea, paper.pdf_path, problems=check.problems if check else []), stage=True)
        if ctx.options.improve:
            feedback = json.dumps(review.review.model_dump(mode="json", by_alias=True))
            improved = ctx.checkpoint(f"improve:{key}", WriteupResult, stage=True,
                                      work=lambda: write_paper(ctx, idea, records, figures, feedback=feedback))
            if improved.pdf_path is not None:
                summary.paper = str(improved.pdf_path)
                check = ctx.checkpoint(f"check-improved:{key}", PaperCheck | None,
                                       lambda: check_paper(ctx, idea, improved, name="check_improved"))
                summary.check = check.summary if check else ""
                review = ctx.checkpoint(f"review-improved:{key}", ReviewResult, lambda: review_paper(
                    ctx, idea, improved.pdf_path, name="review_improved", problems=check.problems if check else []),
                    stage=True)
        summary.overall = review.review.overall
        summary.decision = review.review.decision
    except (BudgetExceeded, PathError, StoreError):  # the run's own limits and records: every idea would stop
        raise
    except ScientistError as exc:
        summary.problem = exc.one_line()
        ctx.report(f"{idea.name}: stopped: {summary.problem}")
    finally:
        summary.cost_usd = sum(row["cost_usd"] for row in ctx.store.llm_calls(ctx.run_id)
                               if row["stage"].endswith(f":{key}"))
    return summary


def _no_run_problem(ctx: RunContext, idea: Idea) -> str:
    """What happened to an idea none of whose runs succeeded, and what to do, in one line."""
    attempts = [row for row in ctx.store.experiments(ctx.run_id)
                if row["idea"] == idea.name and row["run_index"] > 0 and row["status"] == "failed"]
    last = attempts[-1]["notes"].splitlines()[0] if attempts and attempts[-1]["notes"] else ""
    tried = f"{len(attempts)} failed attempt(s)" + (f", the last: {last[:160]}" if last else "")
    if not attempts:
        tried = "the model gave no usable plan"
    folder = ctx.idea_dir(idea)
    return (f"{NO_RUN_SUCCEEDED} ({tried}); see {folder / NOTES_FILE} and the logs in "
            f"{folder / LOGS_DIR}; a stronger model (--model) or more tries (--max-tries) may help")
