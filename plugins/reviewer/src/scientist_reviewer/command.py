"""`scientist review`: review one paper on the NeurIPS form.

    scientist review paper.pdf                                  # the reviewer model, paper's settings
    scientist review paper.pdf --model openai/gpt-4o --ensemble 1 --reflections 1 --json

Model calls are recorded in the run store (`<out>/scientist.db`, a run of kind "review"), so `scientist logs`
shows their tokens and cost. Heavy modules are imported when the command runs. The options are module-level
so that `scientist review-bench` (the scientist-review-bench plugin) offers the same flags. The flags --ensemble,
--reflections, --fewshot and --threshold are the `llm` reviewer's settings; another reviewer refuses them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from scientist_core import ReviewResult

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


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:40] or "paper"


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
    from scientist_core import Store, get_host, load_settings, new_run_id, open_chat, writable_outputs
    from scientist_reviewer.pdf_text import paper_text

    settings = load_settings(out_dir=out)
    text = paper_text(paper)  # a bad file fails here, before any model is asked
    writable_outputs(settings, data_folder=False)  # as does an output folder it could not write the review to
    host = get_host()
    chosen = host.create("reviewer", reviewer or settings.reviewer, settings.reviewers,
                         flags={"ensemble": ensemble, "reflections": reflections, "fewshot": fewshot,
                                "threshold": threshold})
    store = Store(settings.store_path)
    try:
        chat = open_chat(settings, stage="review", role="reviewer", model=model, store=store, host=host)
        run_id = new_run_id(f"review-{slug(paper.stem)}")
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
    typer.echo(f"{result.model}: {result.calls} calls, {usage.tokens_in} tokens in, {usage.tokens_out} out, "
               f"${usage.cost_usd:.4f}, {result.seconds:.1f} s; run {run_id} (scientist logs --run {run_id}); "
               f"saved {saved}", err=True)


def _result_json(result: "ReviewResult", paper: Path, run_id: str) -> dict[str, Any]:
    return {"paper": str(paper), "run_id": run_id, **result.model_dump(mode="json", by_alias=True)}


SCORES = (("Overall", 10), ("Confidence", 5), ("Soundness", 4), ("Presentation", 4), ("Contribution", 4),
          ("Originality", 4), ("Quality", 4), ("Clarity", 4), ("Significance", 4))
OVERALL_MEANING = {10: "award quality", 9: "very strong accept", 8: "strong accept", 7: "accept", 6: "weak accept",
                   5: "borderline accept", 4: "borderline reject", 3: "reject", 2: "strong reject",
                   1: "very strong reject"}


def _print_review(result: "ReviewResult", paper: Path, threshold: int | None) -> None:
    from scientist_core import console as terminal, shown
    from rich.table import Table

    console = terminal()
    final = result.review
    colour = "green" if final.decision == "Accept" else "red"
    rule = f" (Overall {final.overall} {'≥' if final.decision == 'Accept' else '<'} {threshold})" if threshold else ""
    console.rule(f"Review of {shown(paper.name)}")
    console.print(f"[bold {colour}]{final.decision}[/]{rule}   reviewed by {shown(result.model)}")
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
    console.print(shown(final.summary))
    for title, items in (("Strengths", final.strengths), ("Weaknesses", final.weaknesses),
                         ("Questions", final.questions), ("Limitations", final.limitations)):
        console.print()
        console.print(f"[bold]{title}[/]")
        bullets = Table.grid(padding=(0, 1))
        bullets.add_column(width=2, justify="right")
        bullets.add_column()
        for item in items or ["(none)"]:
            bullets.add_row("•", shown(item))
        console.print(bullets)
    console.print()
    console.print(f"[bold]Ethical concerns:[/] {'yes' if final.ethical_concerns else 'none raised'}")
    for failure in result.failures:
        console.print(f"[yellow]note: {shown(failure)}[/]")
