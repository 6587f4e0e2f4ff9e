"""The `scientist` command. Heavy libraries are imported inside commands so `scientist --help` stays fast."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from scientist_core.errors import ScientistError
from scientist_core.terminal import console, shown, visible

app = typer.Typer(
    help="Automated ML research: ideas, experiments in a sandbox, a LaTeX paper, and its review.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")

JsonFlag = typer.Option(False, "--json", help="Print JSON instead of a table.")
OutOption = typer.Option(None, "--out", help="Output folder (default: ./scientist-runs, or out_dir in settings).")
UnisolatedOption = typer.Option(False, "--allow-unisolated-code", help="Run generated code even where the sandbox "
                                "cannot isolate it: it then reaches your files, network and processes (default: "
                                "refuse; also [sandbox] allow_unisolated_code).")


def _settings(allow_unisolated_code: bool, **flags: Any):
    """The effective settings with the command's flags; --allow-unisolated-code can only add the user's consent."""
    from scientist_core.settings import load_settings

    settings = load_settings(**flags)
    if not allow_unisolated_code:
        return settings
    return settings.model_copy(update={"sandbox": settings.sandbox.model_copy(update={"allow_unisolated_code": True})})


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table

    table = Table(title=shown(title), title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:  # cells hold model and plugin text: shown as written (terminal.py)
        table.add_row(*("" if cell is None else shown(cell) for cell in row))
    console().print(table)


def _host():
    from scientist_core.plugins import get_host

    return get_host()


@app.command()
def plugins(as_json: bool = JsonFlag) -> None:
    """List loaded plugins: distribution, version, and the kinds and names each registers."""
    from scientist_core.kinds import KIND_HOOKS

    host = _host()
    registers: dict[str, dict[str, list[str]]] = {name: {} for name in host.plugins}
    for kind in KIND_HOOKS:
        for reg in host.registrations(kind):
            registers[reg.plugin.name].setdefault(kind, []).append(reg.name)
    listed = [
        {"name": info.name, "distribution": info.distribution, "version": info.version, "builtin": info.builtin,
         "registers": registers[info.name]}
        for info in host.plugins.values()
    ]
    failed = [vars(failure) for failure in host.failures]
    if as_json:
        _print_json({"plugins": listed, "failed": failed})
        return
    _table("Plugins", ["plugin", "distribution", "version", "registers"],
           [[p["name"], p["distribution"], p["version"],
             "; ".join(f"{kind}: {', '.join(names)}" for kind, names in p["registers"].items())] for p in listed])
    for failure in failed:
        typer.echo(f"failed: {failure['name']} ({failure['distribution']} {failure['version']}): {failure['error']}",
                   err=True)


@app.command()
def templates(as_json: bool = JsonFlag) -> None:
    """List installed research templates and their knobs."""
    host = _host()
    rows = []
    for reg in host.registrations("template"):
        entry: dict[str, Any] = {"name": reg.name, "description": reg.cls.description,
                                 "distribution": reg.plugin.distribution, "version": reg.plugin.version}
        if as_json:
            entry["metrics"] = {name: metric.model_dump() for name, metric in reg.cls.metrics.items()}
            entry["deterministic"] = reg.cls.deterministic
            try:
                template = reg.cls()
                entry["knobs"] = template.knobs_model().model_json_schema().get("properties", {})
                entry["quick_knobs"] = template.quick_knobs
            except Exception as exc:  # a template whose knobs fail to import is still listed
                entry["knobs_error"] = f"{type(exc).__name__}: {exc}"
        rows.append(entry)
    if as_json:
        _print_json(rows)
        return
    _table("Templates", ["name", "distribution", "description"],
           [[r["name"], f"{r['distribution']} {r['version']}", r["description"]] for r in rows])


@app.command()
def models(as_json: bool = JsonFlag) -> None:
    """List the models installed LLM plugins offer, and whether each is ready to answer."""
    from scientist_core.settings import load_settings

    settings = load_settings()
    host = _host()
    rows = []
    for reg in host.registrations("llm"):
        provider = host.create("llm", reg.name, settings.llms)
        for info in provider.models():
            readiness = provider.readiness(info.name)
            rows.append({"id": info.id, "description": info.description, "distribution": reg.plugin.distribution,
                         "ready": readiness.ready, "detail": readiness.detail,
                         "scientist": info.id == settings.model, "reviewer": info.id == settings.reviewer_model})
    if as_json:
        _print_json(rows)
        return
    _table("Models", ["model", "ready", "distribution", "detail"],
           [[r["id"], "yes" if r["ready"] else "no", r["distribution"], r["detail"] or r["description"]]
            for r in rows])
    if not rows:
        typer.echo("No LLM plugin is installed: install one from plugins/llm_backends/.", err=True)


@config_app.command("show")
def config_show(as_json: bool = JsonFlag) -> None:
    """Print the effective settings and where each comes from."""
    from scientist_core.settings import flatten, load_settings, origin_of

    values = flatten(load_settings().model_dump(mode="json"))
    shown = {key: {"value": value, "source": origin_of(key)} for key, value in values.items()}
    if as_json:
        _print_json(shown)
        return
    for key, item in shown.items():
        typer.echo(f"{key} = {json.dumps(item['value'])}  # {item['source']}")


@app.command()
def logs(run: Optional[str] = typer.Option(None, "--run", help="Run id (default: the latest run)."),
         out: Optional[Path] = OutOption, as_json: bool = JsonFlag) -> None:
    """Show a run's LLM ledger with tokens and cost per stage and in total."""
    from scientist_core.settings import load_settings
    from scientist_core.store import Store

    store = Store.open_existing(load_settings(out_dir=out).store_path)
    record = store.run(run) if run else store.latest_run()
    calls = store.llm_calls(record["id"])
    by_stage = store.usage_by_stage(record["id"])
    total = {key: sum(row[key] or 0 for row in by_stage)
             for key in ("calls", "tokens_in", "tokens_out", "cost_usd", "latency_s", "errors")}
    if as_json:
        _print_json({"run": record, "stages": store.stages(record["id"]), "usage_by_stage": by_stage,
                     "total": total, "calls": calls})
        return
    typer.echo(f"run {record['id']} ({record['kind']}, template {record['template']}, {record['status']})")
    if not calls:
        typer.echo("No LLM calls recorded for this run.")
        return
    _table("LLM calls", ["#", "stage", "model", "in", "out", "cost $", "latency s", "error"],
           [[c["id"], c["stage"], c["model"], c["tokens_in"], c["tokens_out"], f"{c['cost_usd']:.4f}",
             f"{c['latency_s']:.1f}", c["error"] or ""] for c in calls])
    _table("Per stage", ["stage", "calls", "in", "out", "cost $"],
           [[s["stage"], s["calls"], s["tokens_in"], s["tokens_out"], f"{s['cost_usd']:.4f}"] for s in by_stage]
           + [["total", total["calls"], total["tokens_in"], total["tokens_out"], f"{total['cost_usd']:.4f}"]])


@app.command()
def baseline(template: str = typer.Argument(..., help="Template name, see `scientist templates`."),
             quick: bool = typer.Option(False, "--quick", help="Quick mode: a short run on a CPU (the template sets how short)."),
             out: Optional[Path] = OutOption, allow_unisolated_code: bool = UnisolatedOption) -> None:
    """Run a template's unchanged experiment and print where its final_info.json went."""
    from scientist_core.paths import writable_outputs
    from scientist_core.pipeline.baseline import run_baseline

    settings = _settings(allow_unisolated_code, out_dir=out)
    writable_outputs(settings)
    outcome = run_baseline(_host(), settings, template, quick)
    assert outcome.results is not None
    for dataset, result in outcome.results.datasets.items():
        metrics = ", ".join(f"{name}={value:.4g}" for name, value in result.means.items())
        typer.echo(f"{dataset}: {metrics}", err=True)
    typer.echo(str((outcome.run_dir / "final_info.json").resolve()))


class _ConsoleProgress:
    """Progress on stderr, so stdout stays for results: lines that stay, each with the time since the start,
    and below them one live status line (a running experiment's latest output) on a terminal."""

    def __init__(self) -> None:
        import time

        self.console, self.start, self.clock = console(stderr=True), time.monotonic(), time.monotonic
        self._live = None

    def _stamp(self) -> str:
        elapsed = int(self.clock() - self.start)
        return f"[dim]{elapsed // 60:>3}:{elapsed % 60:02d}[/dim]"

    def report(self, message: str) -> None:
        self.console.print(f"{self._stamp()} {shown(message)}", soft_wrap=True)  # one line each, for logs too

    def status(self, message: str) -> None:
        """Show `message` as the live line; an empty message removes it."""
        if not message:
            self.close()
        elif self._live is None:
            self._live = self.console.status(f"{self._stamp()} {shown(message)}")
            self._live.start()
        else:
            self._live.update(f"{self._stamp()} {shown(message)}")

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


NO_PAPER_EXIT = 3  # `scientist run` and `resume` finished, but no idea ended with a reviewed paper


def _print_summary(summary) -> None:
    """The run's ideas as a table on a terminal; as `key: value` lines elsewhere (logs, CI), where a table
    would wrap each problem into a column a few characters wide. Exits with NO_PAPER_EXIT without a paper."""
    title = f"Run {summary.run_id} ({summary.seconds / 60:.1f} min, ${summary.cost_usd:.4f})"
    columns = ["idea", "novel", "runs", "paper", "check", "overall", "decision", "cost $", "problem"]
    rows = [[i.name, {True: "yes", False: "no", None: "-"}[i.novel], i.runs_done, i.paper or "",
             i.check.removeprefix("check: "), i.overall or "", i.decision or "", f"{i.cost_usd:.4f}", i.problem]
            for i in summary.ideas]
    if sys.stdout.isatty():
        _table(title, columns, rows)
    else:
        typer.echo(title)
        for row in rows:
            typer.echo("  ".join(f"{column}: {visible(cell)}" for column, cell in zip(columns, row)
                                 if cell not in ("", None)))
    typer.echo(str(summary.run_dir.resolve()))
    if summary.isolation:
        typer.echo(summary.isolation)
    if not summary.reviewed_papers:
        typer.echo(f"No idea ended with a reviewed paper (exit code {NO_PAPER_EXIT}): the problem column says why; "
                   f"`scientist resume {summary.run_id}` continues where it stopped.", err=True)
        raise typer.Exit(NO_PAPER_EXIT)


@app.command()
def run(template: str = typer.Argument(..., help="Template name, see `scientist templates`."),
        num_ideas: Optional[int] = typer.Option(None, "--num-ideas", help="New ideas to generate [2]."),
        reflections: Optional[int] = typer.Option(None, "--reflections", help="Rounds per idea: a draft plus "
                                                  "refinements [3]."),
        novelty_rounds: Optional[int] = typer.Option(None, "--novelty-rounds", help="Literature-search rounds per "
                                                     "idea [5]."),
        skip_novelty: Optional[bool] = typer.Option(None, "--skip-novelty", help="Take every idea to experiments."),
        max_runs: Optional[int] = typer.Option(None, "--max-runs", help="Experiment runs per idea besides the "
                                               "baseline [5]."),
        max_tries: Optional[int] = typer.Option(None, "--max-tries", help="Attempts per run when it fails [4]."),
        fresh_ideas: Optional[int] = typer.Option(None, "--fresh-ideas", help="New ideas tried in place of ideas "
                                                  "none of whose runs succeeded [2]."),
        citation_rounds: Optional[int] = typer.Option(None, "--citation-rounds", help="Literature searches for "
                                                      "citations [5]."),
        quick: Optional[bool] = typer.Option(None, "--quick", help="The template's quick mode."),
        improve: Optional[bool] = typer.Option(None, "--improve", help="Revise each paper from its review, "
                                               "review again."),
        workers: Optional[int] = typer.Option(None, "--workers", help="Ideas processed at once [1]."),
        model: Optional[str] = typer.Option(None, "--model", help="The scientist's model, provider/name."),
        reviewer_model: Optional[str] = typer.Option(None, "--reviewer-model", help="The reviewer's model."),
        max_cost: Optional[float] = typer.Option(None, "--max-cost", help="Budget for the run in USD."),
        coder: Optional[str] = typer.Option(None, "--coder", help="What applies code changes: search_replace "
                                            "(built-in) or an installed coder such as aider (`scientist coder list`)."),
        out: Optional[Path] = OutOption, allow_unisolated_code: bool = UnisolatedOption) -> None:
    """Ideas, novelty, experiments in the sandbox, plots, a LaTeX paper and its review, for one template.

    Defaults come from the \\[run] section of scientist.toml (see `scientist config show`); flags override them.
    """
    from pydantic import ValidationError

    from scientist_core.errors import SettingsError, first_problem
    from scientist_core.paths import writable_outputs
    from scientist_core.pipeline.context import RunOptions
    from scientist_core.pipeline.run import start_run

    settings = _settings(allow_unisolated_code, out_dir=out, max_cost=max_cost, model=model,
                         reviewer_model=reviewer_model, coder=coder)
    flags = dict(num_ideas=num_ideas, reflections=reflections, novelty_rounds=novelty_rounds,
                 skip_novelty=skip_novelty, max_runs=max_runs, max_tries=max_tries, fresh_ideas=fresh_ideas,
                 citation_rounds=citation_rounds,
                 quick=quick, improve=improve, workers=workers)
    try:
        options = RunOptions(template=template, model=model, reviewer_model=reviewer_model,
                             **{**settings.run.model_dump(), **{k: v for k, v in flags.items() if v is not None}})
    except ValidationError as exc:
        where, what = first_problem(exc)
        raise SettingsError(f"--{where.replace('_', '-')}: {what}", "see `scientist run --help`") from None
    writable_outputs(settings)
    progress = _ConsoleProgress()
    try:
        summary = start_run(settings, _host(), options, progress.report, progress.status)
    finally:
        progress.close()
    _print_summary(summary)


@app.command()
def resume(run_id: str = typer.Argument(..., help="The run to continue (see `scientist logs`)."),
           max_cost: Optional[float] = typer.Option(None, "--max-cost", help="A new budget in USD."),
           coder: Optional[str] = typer.Option(None, "--coder", help="What applies code changes (see "
                                               "`scientist run --help`)."),
           out: Optional[Path] = OutOption, allow_unisolated_code: bool = UnisolatedOption) -> None:
    """Continue a run after a crash, a kill or a spent budget, without redoing finished work."""
    from scientist_core.paths import writable_outputs
    from scientist_core.pipeline.run import resume_run

    settings = _settings(allow_unisolated_code, out_dir=out, max_cost=max_cost, coder=coder)
    writable_outputs(settings, existing_store=True)
    progress = _ConsoleProgress()
    try:
        summary = resume_run(settings, _host(), run_id, progress.report, progress.status)
    finally:
        progress.close()
    _print_summary(summary)


def _add_builtin_subcommands() -> None:
    from scientist_core.commands import coder, llm, template

    app.add_typer(llm.app, name="llm")
    app.add_typer(coder.app, name="coder")
    app.add_typer(template.app, name="template")


_add_builtin_subcommands()


def _user_error(exc: BaseException) -> ScientistError | None:
    """The one line for an exception the user can fix: a ScientistError, or an OS error a user fixes (a folder
    not writable, a file in the way, a full disk; naming the path, or the fullest folder the command checked
    when the error names none); None for a bug, which keeps its traceback."""
    if isinstance(exc, ScientistError):
        return exc
    if isinstance(exc, OSError):
        from scientist_core.errors import from_os_error
        from scientist_core.paths import fullest_folder

        return from_os_error(exc, where=fullest_folder())
    return None


def main() -> None:
    """Console entry point: plugin commands are added last; a user's error becomes one line (_user_error)."""
    debug = bool(os.environ.get("SCIENTIST_DEBUG"))
    try:
        _host().call_commands(app)
        app()
    except Exception as exc:
        problem = None if debug else _user_error(exc)
        if problem is None:
            raise
        typer.echo(f"Error: {visible(problem.one_line())}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
