"""`scientist review-bench`: review a labelled set of papers and compare with the human decisions.

    scientist review-bench iclr2022.jsonl --limit 100 --jobs 4  # resumable; prints metrics with 95% CIs

The options it shares with `scientist review` come from that command, so the two cannot drift apart. Model
calls are recorded in the run store (`<out>/scientist.db`, a run of kind "review-bench"), so `scientist logs`
shows their tokens and cost. Heavy modules are imported when the command runs.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from scientist_reviewer.command import (
    EnsembleOption, FewshotOption, JsonFlag, ModelOption, OutOption, ReflectionsOption, ReviewerOption,
    ThresholdOption, slug,
)

if TYPE_CHECKING:
    from scientist_core import ReviewResult


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
    from scientist_core import get_host, load_settings, resolve_model, writable_file, writable_outputs
    from scientist_review_bench.dataset import load_dataset
    from scientist_review_bench.metrics import summarise
    from scientist_review_bench.results import ResultsFile, config_key, run_bench

    settings = load_settings(out_dir=out)
    papers = load_dataset(dataset)
    if limit:
        papers = papers[:limit]
    host = get_host()
    chosen = host.create("reviewer", reviewer or settings.reviewer, settings.reviewers,
                         flags={"ensemble": ensemble, "reflections": reflections, "fewshot": fewshot,
                                "threshold": threshold})
    model_id = resolve_model(settings, "reviewer", model, host)
    key = config_key(chosen.name, model_id, chosen.config.model_dump(mode="json"))
    name = dataset.stem if dataset.is_file() else dataset.resolve().name
    results = ResultsFile(results_path or Path(settings.out_dir) / "review-bench" / slug(name) / "results.jsonl")
    writable_outputs(settings, data_folder=False)  # before any paper is reviewed, the folders its results go to
    writable_file(results.path, "the results file (--results)")
    cut = getattr(chosen.config, "threshold", None)

    cached = sum(1 for r in results.records(key).values() if r.ok and r.id in {p.id for p in papers})
    session = _BenchSession(settings, model, host, chosen, dataset, len(papers) - cached)
    if cached:
        typer.echo(f"{cached} of {len(papers)} papers already reviewed with these settings ({results.path}); "
                   f"{len(papers) - cached} to go", err=True)
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
        from scientist_core import Store, new_run_id, open_chat

        with self._lock:
            if self.chat is None:
                store = Store(self.settings.store_path)
                try:
                    chat = open_chat(self.settings, stage="review", role="reviewer", model=self.model, store=store,
                                     host=self.host)
                except BaseException:
                    store.close()
                    raise
                run_id = new_run_id(f"review-bench-{slug(self.dataset.stem)}")
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

        from scientist_core import console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        @contextmanager
        def bar():  # type: ignore[no-untyped-def]
            if self.pending == 0:
                yield lambda record: None
                return
            columns = (TextColumn("reviewing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[note]}"))
            with Progress(*columns, console=console(stderr=True), transient=False) as progress:
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
    from scientist_core import console as terminal, shown
    from rich.table import Table

    from scientist_review_bench.metrics import METRIC_LABELS

    console = terminal()
    title = (f"{shown(summary['reviewer'])} reviewer, {shown(summary['model'])}: {summary['reviewed']} of "
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
        console.print(f"[yellow]{shown(paper_id)}: {shown(str(error))}[/]")
    console.print(f"[dim]results: {shown(summary['results'])}[/]")
