"""`scientist review` and `scientist review-bench`: review one paper; measure a reviewer against humans.

    scientist review paper.pdf                                  # the reviewer model, paper's settings
    scientist review paper.pdf --model openai/gpt-4o --ensemble 1 --reflections 1 --json
    scientist review-bench iclr2022.jsonl --limit 100 --jobs 4  # resumable; prints metrics with 95% CIs

Model calls are recorded in the run store (`<out>/scientist.db`, a run of kind "review" or "review-bench"),
so `scientist logs` shows their tokens and cost. Heavy modules are imported when a command runs.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from scientist_core.reviewer import ReviewResult

ModelOption = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="Reviewer model, provider/name (default: reviewer_model, else model, else the local model).",
    show_default=False)]
EnsembleOption = Annotated[Optional[int], typer.Option(
    "--ensemble", help="Independent reviews per paper, run concurrently (paper: 5).", show_default=False)]
ReflectionsOption = Annotated[Optional[int], typer.Option(
    "--reflections", help="Rounds of writing each review; 1 = no self-reflection (paper: 5).", show_default=False)]
FewshotOption = Annotated[Optional[int], typer.Option(
    "--fewshot", help="Worked examples in the prompt (paper: 1).", show_default=False)]
ThresholdOption = Annotated[Optional[int], typer.Option(
    "--threshold", help="Overall score at or above which the decision is Accept (default 6).", show_default=False)]
ReviewerOption = Annotated[Optional[str], typer.Option(
    "--reviewer", help="Which installed reviewer (default: llm).", show_default=False)]
OutOption = Annotated[Optional[Path], typer.Option(
    "--out", help="Output folder holding the run store (default: ./scientist-runs, or out_dir in settings).",
    show_default=False)]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a readable report.")]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:40] or "paper"


def _overrides(ensemble: int | None, reflections: int | None, fewshot: int | None,
               threshold: int | None) -> dict[str, Any]:
    return {"ensemble": ensemble, "reflections": reflections, "fewshot": fewshot, "threshold": threshold}


def _stderr(line: str) -> None:
    typer.echo(line, err=True)


# -- scientist review ----------------------------------------------------------------------------------------

def review(
    paper: Annotated[Path, typer.Argument(help="The paper: a PDF (or its text as .txt / .md / .tex).",
                                          show_default=False)],
    model: ModelOption = None,
    ensemble: EnsembleOption = None,
    reflections: ReflectionsOption = None,
    fewshot: FewshotOption = None,
    threshold: ThresholdOption = None,
    reviewer: ReviewerOption = None,
    out: OutOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Review a paper on the NeurIPS form: scores, strengths, weaknesses, questions and a decision."""
    from scientist_core.chat import open_chat
    from scientist_core.pdf_text import paper_text
    from scientist_core.pipeline.baseline import new_run_id
    from scientist_core.plugins import get_host
    from scientist_core.reviewer import create_reviewer
    from scientist_core.settings import load_settings
    from scientist_core.store import Store

    settings = load_settings(out_dir=out)
    text = paper_text(paper)  # a bad file fails here, before any model is asked
    host = get_host()
    chosen = create_reviewer(host, settings, reviewer, **_overrides(ensemble, reflections, fewshot, threshold))
    store = Store(settings.store_path)
    try:
        chat = open_chat(settings, stage="review", role="reviewer", model=model, store=store, host=host)
        run_id = new_run_id(f"review-{_slug(paper.stem)}")
        run_dir = Path(settings.out_dir) / run_id
        chat.run_id = run_id
        store.create_run(run_id, "review", "-", run_dir, {
            "paper": str(paper.resolve()), "model": chat.model_id, "reviewer": chosen.name,
            "config": chosen.config.model_dump(mode="json")})
        store.start_stage(run_id, "review")
        try:
            result = chosen.review(text, chat)
        except BaseException as exc:
            store.finish_stage(run_id, "review", "failed", str(exc)[:500])
            store.set_run_status(run_id, "failed")
            raise
        run_dir.mkdir(parents=True, exist_ok=True)
        saved = run_dir / "review.json"
        saved.write_text(json.dumps(_result_json(result, paper, run_id), indent=2, ensure_ascii=False))
        store.add_artifact(run_id, "review", saved, {"paper": str(paper.resolve())})
        store.finish_stage(run_id, "review", "done", f"{result.review.decision}, Overall {result.review.overall}")
        store.set_run_status(run_id, "done")
    finally:
        store.close()

    if as_json:
        typer.echo(json.dumps(_result_json(result, paper, run_id), indent=2, ensure_ascii=False))
    else:
        _print_review(result, paper, getattr(chosen.config, "threshold", None))
    usage = result.usage
    _stderr(f"{result.model}: {result.calls} calls, {usage.tokens_in} tokens in, {usage.tokens_out} out, "
            f"${usage.cost_usd:.4f}, {result.seconds:.1f} s; run {run_id} (scientist logs --run {run_id}); "
            f"saved {saved}")


def _result_json(result: "ReviewResult", paper: Path, run_id: str) -> dict[str, Any]:
    return {"paper": str(paper), "run_id": run_id, **result.model_dump(mode="json", by_alias=True)}


SCORES = (("Overall", 10), ("Confidence", 5), ("Soundness", 4), ("Presentation", 4), ("Contribution", 4),
          ("Originality", 4), ("Quality", 4), ("Clarity", 4), ("Significance", 4))
OVERALL_MEANING = {10: "award quality", 9: "very strong accept", 8: "strong accept", 7: "accept", 6: "weak accept",
                   5: "borderline accept", 4: "borderline reject", 3: "reject", 2: "strong reject",
                   1: "very strong reject"}


def _print_review(result: "ReviewResult", paper: Path, threshold: int | None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    final = result.review
    colour = "green" if final.decision == "Accept" else "red"
    rule = f" (Overall {final.overall} {'≥' if final.decision == 'Accept' else '<'} {threshold})" if threshold else ""
    console.rule(f"Review of {escape(paper.name)}")
    console.print(f"[bold {colour}]{final.decision}[/]{rule}   reviewed by {escape(result.model)}")
    scores = Table.grid(padding=(0, 3))
    for _ in range(3):
        scores.add_column()
    cells = [f"[bold]{name}[/] {getattr(final, name.lower())}/{top}" for name, top in SCORES]
    cells[0] += f" ({OVERALL_MEANING[final.overall]})"
    for row in range(0, len(cells), 3):
        scores.add_row(*cells[row:row + 3])
    console.print(scores)
    if len(result.reviews) > 1:
        each = ", ".join(str(r.overall) for r in result.reviews)
        console.print(f"[dim]Overall of the {len(result.reviews)} reviewers: {each}; the scores above are their "
                      "rounded means, the text is the area chair's.[/]")
    console.print()
    console.print("[bold]Summary[/]")
    console.print(escape(final.summary))
    for title, items in (("Strengths", final.strengths), ("Weaknesses", final.weaknesses),
                         ("Questions", final.questions), ("Limitations", final.limitations)):
        console.print()
        console.print(f"[bold]{title}[/]")
        bullets = Table.grid(padding=(0, 1))
        bullets.add_column(width=2, justify="right")
        bullets.add_column()
        for item in items or ["(none)"]:
            bullets.add_row("•", escape(item))
        console.print(bullets)
    console.print()
    console.print(f"[bold]Ethical concerns:[/] {'yes' if final.ethical_concerns else 'none raised'}")
    for failure in result.failures:
        console.print(f"[yellow]note: {escape(failure)}[/]")


# -- scientist review-bench ---------------------------------------------------------------------------------

def review_bench(
    dataset: Annotated[Path, typer.Argument(help="A .jsonl of papers with human decisions (or a folder of .json "
                                            "records); format in docs/reviewer.md.", show_default=False)],
    model: ModelOption = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N papers.",
                                                 show_default=False)] = None,
    ensemble: EnsembleOption = None,
    reflections: ReflectionsOption = None,
    fewshot: FewshotOption = None,
    threshold: ThresholdOption = None,
    reviewer: ReviewerOption = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Papers reviewed at the same time.")] = 1,
    bootstrap_samples: Annotated[int, typer.Option("--bootstrap", min=0,
                                                   help="Bootstrap resamples for the 95% intervals.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    results_path: Annotated[Optional[Path], typer.Option(
        "--results", help="Results file (default: <out>/review-bench/<dataset name>/results.jsonl).",
        show_default=False)] = None,
    out: OutOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Review a labelled set of papers and compare with the human decisions: accuracy, balanced accuracy, F1,
    ROC AUC, FPR, FNR and score correlation, with bootstrap 95% intervals. Resumes where it stopped."""
    from scientist_core.chat import resolve_model
    from scientist_core.plugins import get_host
    from scientist_core.review_bench import ResultsFile, config_key, load_dataset, run_bench, summarise
    from scientist_core.reviewer import create_reviewer
    from scientist_core.settings import load_settings

    settings = load_settings(out_dir=out)
    papers = load_dataset(dataset)
    if limit:
        papers = papers[:limit]
    host = get_host()
    chosen = create_reviewer(host, settings, reviewer, **_overrides(ensemble, reflections, fewshot, threshold))
    model_id = resolve_model(settings, "reviewer", model, host)
    key = config_key(chosen.name, model_id, chosen.config.model_dump(mode="json"))
    name = dataset.stem if dataset.is_file() else dataset.resolve().name
    results = ResultsFile(results_path or Path(settings.out_dir) / "review-bench" / _slug(name) / "results.jsonl")
    cut = getattr(chosen.config, "threshold", None)

    cached = sum(1 for r in results.records(key).values() if r.ok and r.id in {p.id for p in papers})
    session = _BenchSession(settings, model, host, chosen, dataset, len(papers) - cached)
    if cached:
        _stderr(f"{cached} of {len(papers)} papers already reviewed with these settings ({results.path}); "
                f"{len(papers) - cached} to go")
    try:
        with session.progress() as advance:
            records = run_bench(papers, session.review, results, key, threshold=cut, jobs=jobs, on_done=advance)
        session.finish("done")
    except BaseException as exc:
        session.finish("failed", str(exc))
        raise
    finally:
        session.close()

    summary = summarise(records.values(), threshold=cut, samples=bootstrap_samples, seed=seed)
    summary.update({"dataset": str(dataset), "model": model_id, "reviewer": chosen.name,
                    "config": chosen.config.model_dump(mode="json"), "results": str(results.path),
                    "run_id": session.run_id, "cost_usd_this_run": session.ledger_cost})
    (results.path.parent / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary)


class _BenchSession:
    """The parts of a benchmark that exist only when a paper needs reviewing: the store's run and the chat."""

    def __init__(self, settings: Any, model: str | None, host: Any, reviewer: Any, dataset: Path, pending: int):
        self.settings, self.model, self.host, self.reviewer = settings, model, host, reviewer
        self.dataset, self.pending = dataset, pending
        self.run_id: str | None = None
        self.store: Any = None
        self.chat: Any = None
        self.ledger_cost = 0.0  # USD this invocation's calls cost, from the run store's ledger
        self._lock = threading.Lock()

    def _open(self) -> Any:
        from scientist_core.chat import open_chat
        from scientist_core.pipeline.baseline import new_run_id
        from scientist_core.store import Store

        with self._lock:
            if self.chat is None:
                store = Store(self.settings.store_path)
                try:
                    chat = open_chat(self.settings, stage="review", role="reviewer", model=self.model, store=store,
                                     host=self.host)
                except BaseException:
                    store.close()
                    raise
                run_id = new_run_id(f"review-bench-{_slug(self.dataset.stem)}")
                store.create_run(run_id, "review-bench", "-", Path(self.settings.out_dir) / run_id, {
                    "dataset": str(self.dataset.resolve()), "model": chat.model_id, "reviewer": self.reviewer.name,
                    "config": self.reviewer.config.model_dump(mode="json")})
                store.start_stage(run_id, "review")
                chat.run_id = run_id
                self.store, self.run_id, self.chat = store, run_id, chat
            return self.chat

    def review(self, text: str) -> "ReviewResult":
        return self.reviewer.review(text, self._open())

    def finish(self, status: str, detail: str = "") -> None:
        if self.store is None or self.run_id is None:
            return
        self.ledger_cost = self.store.total_cost(self.run_id)
        self.store.finish_stage(self.run_id, "review", status, detail[:500] or f"ledger cost ${self.ledger_cost:.4f}")
        self.store.set_run_status(self.run_id, status)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def progress(self) -> Any:
        from contextlib import contextmanager

        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        @contextmanager
        def bar():  # type: ignore[no-untyped-def]
            if self.pending == 0:
                yield lambda record: None
                return
            columns = (TextColumn("reviewing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[note]}"))
            with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
                task = progress.add_task("review", total=self.pending, note="")
                spent = [0.0]

                def advance(record: Any) -> None:
                    spent[0] += record.cost_usd
                    state = "failed" if record.error else f"Overall {record.overall}"
                    progress.update(task, advance=1, note=f"{record.id}: {state}; ${spent[0]:.4f}")

                yield advance

        return bar()


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from scientist_core.review_bench import METRIC_LABELS

    console = Console()
    title = (f"{escape(summary['reviewer'])} reviewer, {escape(summary['model'])}: {summary['reviewed']} of "
             f"{summary['papers']} papers reviewed")
    table = Table(title=title, title_justify="left")
    for column, justify in (("metric", "left"), ("value", "right"), ("95% CI", "right"), ("n", "right")):
        table.add_column(column, justify=justify)
    for name, estimate in summary["metrics"].items():
        interval = ("n/a" if estimate["low"] is None
                    else f"[{_fmt(estimate['low'])}, {_fmt(estimate['high'])}]")
        table.add_row(METRIC_LABELS.get(name, name), _fmt(estimate["value"]), interval, str(estimate["n"]))
    console.print(table)
    per_review = summary["cost_usd_per_review"]
    console.print(f"accepted: {summary['accepted_by_humans']} by humans, {summary['accepted_by_reviewer']} by the "
                  f"reviewer (threshold {summary['threshold']}); cost per review "
                  f"{'n/a' if per_review is None else f'${per_review:.4f}'}, "
                  f"{_fmt(summary['calls_per_review'], 1)} calls, {_fmt(summary['seconds_per_review'], 1)} s; "
                  f"this run's ledger: ${summary['cost_usd_this_run']:.4f}")
    for paper_id, error in summary["errors"].items():
        console.print(f"[yellow]{escape(paper_id)}: {escape(str(error))}[/]")
    console.print(f"[dim]results: {escape(summary['results'])}[/]")
