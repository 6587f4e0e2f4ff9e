"""Stage 4: experiments. An idea's plan of runs, each executed in the sandbox (pipeline.execution) from the
baseline's code and knobs, a failed run fed back to the model for a corrected one.

An idea's folder belongs to the host: the sources the coder edits, notes.txt, the code of each successful run
(code/run_N/). Its runs write only its sandbox/ folder, which the host fills before each run by replacing what is
there and reads back only through scientist_core.untrusted. Each run is a checkpoint of its own, so a resumed
run does none of them twice."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from scientist_core.errors import ExperimentError
from scientist_core.pipeline.context import LOGS_DIR, NOTES_FILE, SANDBOX_DIR, RunRecord
from scientist_core.pipeline.execution import RESULTS_FILE, execute_run, run_limits
from scientist_core.pipeline.machine import machine_facts, record_machine_facts, run_machine
from scientist_core.pipeline.plans import (baseline_values, describe_changes, plan_models, refusing, summarize_code_diff,
                                           wants_code_change)
from scientist_core.template import Template
from scientist_core.untrusted import append_atomic, copy_tree_out, make_folder_in, write_atomic, write_into

if TYPE_CHECKING:
    from scientist_core.models import FinalInfo, Idea
    from scientist_core.pipeline.context import RunContext

STAGE = "experiments"
STDERR_FED_BACK = 1500
CODE_DIR = "code"  # in an idea's folder: the sources each successful run executed, code/run_N/


def prepare_idea_folder(template: Template, folder: Path) -> Path:
    """An idea's folder on first use: the template's copy its runs may write (sandbox/), and beside it the
    sources the coder edits. Returns `folder`."""
    if not (folder / SANDBOX_DIR).is_dir():
        template.prepare_workspace(folder / SANDBOX_DIR)
    for name in editable_files(template):
        if not (folder / name).is_file():
            write_atomic(folder / name, (template.files_dir() / name).read_bytes())
    return folder


def editable_files(template: Template) -> list[str]:
    """The files a coder may change: the experiment file, then the plot file."""
    return [name for name in (template.experiment_file, template.plot_file) if (template.files_dir() / name).is_file()]


def baseline_cache_key(template: Template, knobs: BaseModel, quick: bool, machine: dict[str, str]) -> str:
    """The cached baseline's folder name: a hash of what its results and timings depend on. The template (name,
    version, experiment file), the knobs and the mode, and the machine (`machine`, machine_facts(): CPU, cores,
    memory, every GPU, OS, and the Python, NumPy and PyTorch versions), so a baseline cached on another machine or
    with other library versions is run again here, never reused as this machine's."""
    code = (template.files_dir() / template.experiment_file).read_bytes()
    blob = json.dumps([template.name, template.version, knobs.model_dump(mode="json"), quick,
                       sorted(machine.items())]).encode() + code
    return hashlib.sha256(blob).hexdigest()[:16]


CACHED_MACHINE = "machine.json"  # in a cached baseline's folder: the machine facts of the run that made it


def baseline_record(ctx: "RunContext", folder: Path) -> RunRecord:
    """Run 0 of the idea whose folder is `folder` (prepared by prepare_idea_folder): the unchanged template,
    executed once per template version and knobs and then copied from the cache in the data folder."""
    return ctx.checkpoint(f"{STAGE}:{folder.name}:run_0", RunRecord, lambda: _baseline(ctx, folder))


def _baseline(ctx: "RunContext", folder: Path) -> RunRecord:
    template, quick = ctx.template, ctx.options.quick
    knobs = template.knobs(quick=quick)
    here = machine_facts()
    cache = Path(ctx.settings.data_dir) / "baselines" / template.name / baseline_cache_key(template, knobs, quick,
                                                                                          here)
    sandbox = folder / SANDBOX_DIR
    results = _cached_results(cache)
    if results is not None:
        machine = _cached_machine(cache) or here
        make_folder_in(sandbox, "run_0")
        for path in sorted(p for p in cache.rglob("*") if p.is_file() and not p.is_symlink()):
            if path != cache / CACHED_MACHINE:
                write_into(sandbox, f"run_0/{path.relative_to(cache).as_posix()}", path.read_bytes())
        experiment = ctx.store.start_experiment(ctx.run_id, folder.name, 0, knobs.model_dump(mode="json"),
                                                sandbox / "run_0")
        ctx.store.finish_experiment(experiment, "done", results.model_dump()["datasets"], {"cached_from": str(cache)},
                                    notes="baseline (cached)")
        ctx.report(f"experiments: {folder.name}: baseline from cache")
    else:
        limits = run_limits(template, quick, ctx.settings)
        outcome = execute_run(template, sandbox, "run_0", knobs, ctx.plugin("executor"), limits, ctx.store,
                              ctx.run_id, folder.name, 0, log_dir=folder / LOGS_DIR / "run_0",
                              on_output=ctx.run_status(folder.name, "run_0"))
        if not outcome.ok:
            raise ExperimentError(f"the baseline of {template.name!r} failed: {outcome.problem}",
                                  f"check it alone with `scientist baseline {template.name}`; log: "
                                  f"{outcome.execution.stderr_path}")
        results, machine = outcome.results, run_machine(outcome.execution)
        left_out = copy_tree_out(sandbox, "run_0", cache, limit=limits.disk_mb * 2**20)
        write_atomic(cache / CACHED_MACHINE, json.dumps(machine, indent=1))
        if left_out:
            ctx.report(f"experiments: {folder.name}: the baseline cache left out what is not a plain file: "
                       f"{', '.join(left_out[:5])}")
        ctx.report(f"experiments: {folder.name}: baseline done in {outcome.execution.wall_s:.0f} s")
    return RunRecord(index=0, name="run_0", description="baseline: the template unchanged", results=results,
                     machine=machine)


def _cached_machine(cache: Path) -> dict[str, str]:
    """The machine facts of the run that made a cached baseline (with the GPUs it could use); {} when unreadable."""
    try:
        facts = json.loads((cache / CACHED_MACHINE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in facts.items()} if isinstance(facts, dict) else {}


def _cached_results(cache: Path) -> "FinalInfo | None":
    """The results of a cached baseline, or None when there is none or it is unreadable (it is then redone)."""
    from scientist_core.models import FinalInfo

    try:
        return FinalInfo.from_json_obj(json.loads((cache / RESULTS_FILE).read_text()))
    except (OSError, ValueError, ValidationError):
        return None


def _headline(record: RunRecord, template: Template) -> str:
    """Each dataset's main metric, for a progress line: the template's `primary_metric`, else the first that
    measures quality (it has a direction and is not a timing), else the first."""
    from scientist_core.metrics import resolve_metric

    def main_metric(names: list[str]) -> str:
        if template.primary_metric in names:
            return template.primary_metric
        quality = [n for n in names if (m := resolve_metric(n, template.metrics)).direction and not m.timing]
        return (quality or names)[0]

    return ", ".join(f"{dataset} {name}={result.means[name]:.4g}" for dataset, result in record.results.datasets.items()
                     if result.means for name in [main_metric(list(result.means))])


def _results_text(records: list[RunRecord], template: Template) -> str:
    """The runs' results for a prompt: every metric but the timings (Metric.timing)."""
    from scientist_core.metrics import resolve_metric

    lines = []
    for record in records:
        means = {ds: {k: round(v, 4) for k, v in r.means.items() if not resolve_metric(k, template.metrics).timing}
                 for ds, r in record.results.datasets.items()}
        lines.append(f"{record.name} ({record.description}): {json.dumps(means)}")
    return "\n".join(lines)


def plan_conversation(ctx: "RunContext", idea: "Idea", records: list[RunRecord]):
    """(PlannedRun, ExperimentPlan, the messages that ask for the plan) for `idea`, given the baseline's results
    in `records`. Every rule of a plan is a schema validator (plans.plan_models): a broken rule costs a repair
    round, never a run attempt. The messages hold nothing that differs between two runs of the same command."""
    from scientist_core.models import Message

    template, options = ctx.template, ctx.options
    planned_model, plan_model = plan_models(template, options.max_runs, options.code_changes, quick=options.quick,
                                            idea=idea, max_knob_changes=options.max_knob_changes)
    about = f" the knobs the idea names ({', '.join(idea.knobs)})" if idea.knobs else " knobs"
    context = [
        Message(role="system", content=template.prompt()["system"]),
        Message(role="user", content=(
            f"Idea: {idea.model_dump_json(by_alias=True)}\n\n"
            f"The baseline's knobs: {json.dumps(baseline_values(template, options.quick))}\n\n"
            f"Baseline results (run_0):\n{_results_text(records, template)}\n\n"
            f"Plan at most {options.max_runs} experiment runs that test this idea. Each run changes at most "
            f"{options.max_knob_changes} of{about} to values other than the baseline's, and leaves every other "
            "knob null"
            + ("; only if the knobs cannot express it, it describes a code change." if options.code_changes
               else "."))),
    ]
    return planned_model, plan_model, context


def run_experiments(ctx: "RunContext", idea: "Idea") -> list[RunRecord]:
    """Plan up to max_runs runs for `idea` and execute each in the sandbox; a failing run goes back to the
    model with its stderr tail for up to max_tries attempts. The plan and each run are checkpoints."""
    from scientist_core.chat import StructuredOutputError

    options = ctx.options
    folder = prepare_idea_folder(ctx.template, ctx.idea_dir(idea))
    record_machine_facts(ctx)  # the paper's hardware and software facts come from the machine that ran it
    records = [baseline_record(ctx, folder)]
    chat = ctx.chat(STAGE)
    planned_model, plan_model, context = plan_conversation(ctx, idea, records)

    def ask_plan():
        try:
            return chat.ask_structured(context, plan_model)
        except StructuredOutputError as exc:
            ctx.report(f"experiments: {idea.name}: no usable plan ({exc.message})")
            return None

    plan = ctx.checkpoint(f"{STAGE}:{idea.name}:plan", plan_model | None, ask_plan)
    planned_runs = plan.runs[:options.max_runs] if plan is not None else []
    spent: list[float] = []
    for index, planned in enumerate(planned_runs, start=1):
        def attempt_run(index=index, planned=planned):
            if spent:
                eta = sum(spent) / len(spent) * (len(planned_runs) - index + 1)
                left = f"about {eta / 60:.0f} min" if eta >= 90 else f"about {eta:.0f} s"
                ctx.report(f"experiments: {idea.name}: run_{index} of {len(planned_runs)} starting; {left} left for "
                           "this idea's runs")
            started = time.monotonic()
            record = _run_with_retries(ctx, chat, idea, folder, index, planned, planned_model, context, records)
            spent.append(time.monotonic() - started)
            if record is not None:
                results = _results_text([record], ctx.template)
                append_atomic(folder / NOTES_FILE, f"## {record.name}: {record.description}\nknob changes: "
                              f"{json.dumps(record.knob_changes)}\nresults: {results}\n\n")
            return record

        record = ctx.checkpoint(f"{STAGE}:{idea.name}:run_{index}", RunRecord | None, attempt_run)
        if record is not None:
            records.append(record)
    return records


def _sources(template: Template, folder: Path, records: list[RunRecord]) -> dict[str, str]:
    """The sources each attempt of the next run starts from: those of the last successful run, else the
    template's (never a failed attempt's edit, nor anything a run wrote)."""
    last = next((record.name for record in reversed(records) if record.index > 0), None)
    origin = folder / CODE_DIR / last if last else template.files_dir()
    return {name: (origin / name).read_text() for name in editable_files(template)}


def _run_with_retries(ctx, chat, idea, folder: Path, index: int, planned, planned_model, context, records):
    from scientist_core.chat import StructuredOutputError
    from scientist_core.models import Message

    template, options = ctx.template, ctx.options
    executor = ctx.plugin("executor")
    limits = run_limits(template, options.quick, ctx.settings)
    sandbox = folder / SANDBOX_DIR
    name = f"run_{index}"
    editable = editable_files(template)
    before = _sources(template, folder, records)  # each attempt edits from here, not from a failure
    problem = ""
    failed: list = []  # configurations that failed: a fix may not repeat one
    baseline = baseline_values(template, options.quick)
    for attempt in range(options.max_tries):
        _restore(folder, before)
        changes = planned.knob_changes.model_dump(exclude_none=True)
        failure, problem = problem, ""
        code_changed = False
        if wants_code_change(getattr(planned, "code_change", "")):
            from scientist_core.coder import CodeRequest

            coder = ctx.plugin("coder")
            request = CodeRequest(
                instruction=planned.code_change, files=editable,
                read_only=[f for f in (NOTES_FILE,) if (folder / f).is_file()], idea=idea, run=name,
                budget=f"run {index} of at most {options.max_runs}, attempt {attempt + 1} of {options.max_tries}",
                command=" ".join(template.experiment_command(name)), knob_changes=changes,
                previous_results=_results_text(records, template), failure=failure)
            change = coder.apply(folder, request, chat)
            ctx.store.add_artifact(ctx.run_id, "code_change", folder / template.experiment_file,
                                   {"idea": idea.name, "run": index, "attempt": attempt, "ok": change.ok,
                                    "coder": coder.name, "files": change.files_edited, "diff": change.diff,
                                    "message": change.message, "usage": change.usage.model_dump()})
            code_changed = change.ok
            if not change.ok:
                problem = f"the code change could not be applied: {change.message}"
        if not problem:
            try:
                knobs = template.knobs(quick=options.quick, changes=changes)
            except ExperimentError as exc:
                problem = exc.message
        if not problem:
            sources = {f: (folder / f).read_text() for f in editable}
            for file_name, text in sources.items():  # the run gets the host's sources, over whatever is there
                write_into(sandbox, file_name, text)
            outcome = execute_run(template, sandbox, name, knobs, executor, limits, ctx.store, ctx.run_id,
                                  idea.name, index, log_dir=folder / LOGS_DIR / name, attempt=attempt,
                                  on_output=ctx.run_status(idea.name, name))
            if outcome.ok:
                template_sources = {f: (template.files_dir() / f).read_text() for f in editable}
                record = RunRecord(index=index, name=name, description=planned.description, knob_changes=changes,
                                   code_changed=code_changed, results=outcome.results,
                                   code_diff=summarize_code_diff(template_sources, sources),
                                   machine=run_machine(outcome.execution))
                for file_name, text in sources.items():
                    write_atomic(folder / CODE_DIR / name / file_name, text)
                what = planned.description if code_changed else describe_changes(changes, baseline)  # the record's
                ctx.report(f"experiments: {idea.name}: {name} done in {outcome.execution.wall_s:.0f} s "
                           f"({what}): {_headline(record, template)}")
                return record
            tail = outcome.execution.stderr_tail.strip()[-STDERR_FED_BACK:]
            problem = f"{outcome.problem}; stderr ends with:\n{tail}" if tail else f"{outcome.problem} (no stderr)"
        if code_changed or not wants_code_change(getattr(planned, "code_change", "")):
            failed.append(planned)  # this configuration ran or was checked; one whose code change failed may repeat
        append_atomic(folder / NOTES_FILE, f"## {name} attempt {attempt + 1} failed: {planned.description}\n"
                      f"knob changes: {describe_changes(changes, baseline)}\n{problem}\n\n")
        ctx.report(f"experiments: {idea.name}: {name} attempt {attempt + 1} failed "
                   f"({describe_changes(changes, baseline)}): {failure_line(problem)}")
        if attempt + 1 == options.max_tries:
            break
        try:
            planned = chat.ask_structured([
                *context,
                Message(role="user", content=(
                    f"Results so far:\n{_results_text(records, template)}\n\nThe planned {name} was: "
                    f"{planned.model_dump_json()}\nIt changed {describe_changes(changes, baseline)}.\n"
                    f"It failed: {problem}\nGive a corrected {name} that avoids the cause of this failure; a "
                    "configuration that failed is refused.")),
            ], refusing(planned_model, failed))
        except StructuredOutputError as exc:
            ctx.report(f"experiments: {idea.name}: no usable fix for {name} ({exc.message})")
            break
    _restore(folder, before)  # the run failed: the next one starts from the code that last worked
    return None


def failure_line(problem: str) -> str:
    """One console line for a failed attempt: its first line and, when it has one, the stderr's last line, so
    a terminal shows why even where the live status line redraws over the lines above."""
    lines = [line.strip() for line in problem.splitlines() if line.strip()]
    if not lines:
        return "unknown failure"
    return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1][:300]}"


def _restore(folder: Path, contents: dict[str, str]) -> None:
    """Put the host's sources back in the idea's folder where an edit changed them."""
    for name, text in contents.items():
        path = folder / name
        if path.is_symlink() or not path.is_file() or path.read_text() != text:
            write_atomic(path, text)
