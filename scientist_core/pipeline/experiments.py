"""Stage 4: experiments. An idea's plan of runs, each executed in the sandbox (pipeline.execution) from the
baseline's code and knobs, a failed run fed back to the model for a corrected one."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from scientist_core.errors import ExperimentError
from scientist_core.pipeline.execution import execute_run, read_results, run_limits
from scientist_core.pipeline.plans import baseline_values, describe_changes, plan_models, refusing, wants_code_change
from scientist_core.template import Template

if TYPE_CHECKING:
    from scientist_core.models import Idea
    from scientist_core.pipeline.context import RunContext, RunRecord

STAGE = "experiments"
STDERR_FED_BACK = 1500
RECORD_FILE = "run_record.json"  # what the run was meant to do, written beside its results when it succeeds


def _cache_key(template: Template, knobs: BaseModel, quick: bool) -> str:
    code = (template.files_dir() / template.experiment_file).read_bytes()
    blob = json.dumps([template.name, template.version, knobs.model_dump(mode="json"), quick]).encode() + code
    return hashlib.sha256(blob).hexdigest()[:16]


def baseline_record(ctx: "RunContext", workspace: Path) -> "RunRecord":
    """Run 0 of an idea: the unchanged template, executed once per template version and knobs and then
    copied from the cache in the data folder."""
    from scientist_core.pipeline.context import RunRecord

    template, quick = ctx.template, ctx.options.quick
    knobs = template.knobs(quick=quick)
    cache = Path(ctx.settings.data_dir) / "baselines" / template.name / _cache_key(template, knobs, quick)
    run_dir = workspace / "run_0"
    done = _finished(ctx, workspace.name, 0)
    if done is None:
        if (cache / "final_info.json").is_file():
            shutil.copytree(cache, run_dir, dirs_exist_ok=True)
            experiment = ctx.store.start_experiment(ctx.run_id, workspace.name, 0, knobs.model_dump(mode="json"),
                                                    run_dir)
            ctx.store.finish_experiment(experiment, "done", read_results(run_dir).model_dump()["datasets"],
                                        {"cached_from": str(cache)}, notes="baseline (cached)")
            ctx.report(f"experiments: {workspace.name}: baseline from cache")
        else:
            executor = ctx.plugin("executor")
            outcome = execute_run(template, workspace, "run_0", knobs, executor,
                                  run_limits(template, quick, ctx.settings), ctx.store, ctx.run_id,
                                  workspace.name, 0, on_output=ctx.run_status(workspace.name, "run_0"))
            if not outcome.ok:
                raise ExperimentError(f"the baseline of {template.name!r} failed: {outcome.problem}",
                                      f"check it alone with `scientist baseline {template.name}`; log: "
                                      f"{outcome.execution.stderr_path}")
            cache.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(run_dir, cache, dirs_exist_ok=True)
            ctx.report(f"experiments: {workspace.name}: baseline done in {outcome.execution.wall_s:.0f} s")
    return RunRecord(index=0, name="run_0", description="baseline: the template unchanged",
                     results=read_results(run_dir))


def _finished(ctx: "RunContext", idea: str, index: int) -> dict | None:
    rows = [row for row in ctx.store.experiments(ctx.run_id)
            if row["idea"] == idea and row["run_index"] == index and row["status"] == "done"]
    return rows[-1] if rows else None


def _headline(record: "RunRecord", primary: str | None = None) -> str:
    """Each dataset's main metric, for a progress line: the template's `primary_metric`, else the first that
    measures quality (its name says which way is better, and it is not a time or a speed), else the first."""
    from scientist_core.metrics import better_direction, measures_time

    def main_metric(names: list[str]) -> str:
        if primary in names:
            return primary
        quality = [n for n in names if better_direction(n) and not measures_time(n)]
        return (quality or names)[0]

    return ", ".join(f"{dataset} {name}={result.means[name]:.4g}" for dataset, result in record.results.datasets.items()
                     if result.means for name in [main_metric(list(result.means))])


def _results_text(records: list["RunRecord"]) -> str:
    """The runs' results for a prompt: every metric but the timings (metrics.measures_time)."""
    from scientist_core.metrics import measures_time

    lines = []
    for record in records:
        means = {ds: {k: round(v, 4) for k, v in r.means.items() if not measures_time(k)}
                 for ds, r in record.results.datasets.items()}
        lines.append(f"{record.name} ({record.description}): {json.dumps(means)}")
    return "\n".join(lines)


def plan_conversation(ctx: "RunContext", idea: "Idea", records: list["RunRecord"]):
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
            f"Baseline results (run_0):\n{_results_text(records)}\n\n"
            f"Plan at most {options.max_runs} experiment runs that test this idea. Each run changes at most "
            f"{options.max_knob_changes} of{about} to values other than the baseline's, and leaves every other "
            "knob null"
            + ("; only if the knobs cannot express it, it describes a code change." if options.code_changes
               else "."))),
    ]
    return planned_model, plan_model, context


def run_experiments(ctx: "RunContext", idea: "Idea", workspace: Path) -> list["RunRecord"]:
    """Plan up to max_runs runs for `idea` and execute each in the sandbox; a failing run goes back to the
    model with its stderr tail for up to max_tries attempts. Finished runs (a resumed run) are not redone."""
    from scientist_core.chat import StructuredOutputError
    from scientist_core.pipeline.context import RunRecord
    from scientist_core.pipeline.machine import record_machine_facts

    options = ctx.options
    record_machine_facts(ctx)  # the paper's hardware and software facts come from the machine that ran it
    records = [baseline_record(ctx, workspace)]
    chat = ctx.chat(STAGE)
    planned_model, plan_model, context = plan_conversation(ctx, idea, records)
    plan_file = workspace / "plan.json"
    if plan_file.is_file():  # a resumed run keeps its plan
        plan = plan_model.model_validate_json(plan_file.read_text())
    else:
        try:
            plan = chat.ask_structured(context, plan_model)
        except StructuredOutputError as exc:
            ctx.report(f"experiments: {idea.name}: no usable plan ({exc.message})")
            return records
        plan_file.write_text(plan.model_dump_json(indent=2))
    notes = workspace / "notes.txt"
    planned_runs = plan.runs[:options.max_runs]
    spent: list[float] = []
    for index, planned in enumerate(planned_runs, start=1):
        name = f"run_{index}"
        if _finished(ctx, idea.name, index) is not None and (workspace / name / RECORD_FILE).is_file():
            records.append(RunRecord.model_validate_json((workspace / name / RECORD_FILE).read_text()))
            continue
        if spent:
            eta = sum(spent) / len(spent) * (len(planned_runs) - index + 1)
            left = f"about {eta / 60:.0f} min" if eta >= 90 else f"about {eta:.0f} s"
            ctx.report(f"experiments: {idea.name}: {name} of {len(planned_runs)} starting; {left} left for this "
                       "idea's runs")
        started = time.monotonic()
        record = _run_with_retries(ctx, chat, idea, workspace, index, planned, planned_model, context, records)
        spent.append(time.monotonic() - started)
        if record is not None:
            records.append(record)
            with notes.open("a") as journal:
                journal.write(f"## {name}: {record.description}\nknob changes: {json.dumps(record.knob_changes)}\n"
                              f"results: {_results_text([record])}\n\n")
    return records


def _run_with_retries(ctx, chat, idea, workspace: Path, index: int, planned, planned_model, context, records):
    from scientist_core.chat import StructuredOutputError
    from scientist_core.models import Message
    from scientist_core.pipeline.context import RunRecord

    template, options = ctx.template, ctx.options
    executor = ctx.plugin("executor")
    limits = run_limits(template, options.quick, ctx.settings)
    name = f"run_{index}"
    editable = [f for f in (template.experiment_file, template.plot_file) if (workspace / f).is_file()]
    before = {f: (workspace / f).read_text() for f in editable}  # each attempt edits from here, not from a failure
    problem = ""
    failed: list = []  # configurations that failed: a fix may not repeat one
    baseline = baseline_values(template, options.quick)
    for attempt in range(options.max_tries):
        _restore(workspace, before)
        changes = planned.knob_changes.model_dump(exclude_none=True)
        failure, problem = problem, ""
        code_changed = False
        if wants_code_change(getattr(planned, "code_change", "")):
            from scientist_core.coder import CodeRequest

            coder = ctx.plugin("coder")
            request = CodeRequest(
                instruction=planned.code_change, files=editable,
                read_only=[f for f in ("notes.txt",) if (workspace / f).is_file()], idea=idea, run=name,
                budget=f"run {index} of at most {options.max_runs}, attempt {attempt + 1} of {options.max_tries}",
                command=" ".join(template.experiment_command(name)), knob_changes=changes,
                previous_results=_results_text(records), failure=failure)
            change = coder.apply(workspace, request, chat)
            ctx.store.add_artifact(ctx.run_id, "code_change", workspace / template.experiment_file,
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
            outcome = execute_run(template, workspace, name, knobs, executor, limits, ctx.store, ctx.run_id,
                                  idea.name, index, attempt, on_output=ctx.run_status(idea.name, name))
            if outcome.ok:
                record = RunRecord(index=index, name=name, description=planned.description, knob_changes=changes,
                                   code_changed=code_changed, results=outcome.results)
                shutil.copy2(workspace / template.experiment_file, workspace / name / template.experiment_file)
                (workspace / name / RECORD_FILE).write_text(record.model_dump_json(indent=2))
                what = planned.description if code_changed else describe_changes(changes, baseline)  # the record's
                ctx.report(f"experiments: {idea.name}: {name} done in {outcome.execution.wall_s:.0f} s "
                           f"({what}): {_headline(record, template.primary_metric)}")
                return record
            tail = outcome.execution.stderr_tail.strip()[-STDERR_FED_BACK:]
            problem = f"{outcome.problem}; stderr ends with:\n{tail}" if tail else f"{outcome.problem} (no stderr)"
        if code_changed or not wants_code_change(getattr(planned, "code_change", "")):
            failed.append(planned)  # this configuration ran or was checked; one whose code change failed may repeat
        with (workspace / "notes.txt").open("a") as journal:
            journal.write(f"## {name} attempt {attempt + 1} failed: {planned.description}\n"
                          f"knob changes: {describe_changes(changes, baseline)}\n{problem}\n\n")
        ctx.report(f"experiments: {idea.name}: {name} attempt {attempt + 1} failed ({describe_changes(changes, baseline)}"
                   f"): {failure_line(problem)}")
        if attempt + 1 == options.max_tries:
            break
        try:
            planned = chat.ask_structured([
                *context,
                Message(role="user", content=(
                    f"Results so far:\n{_results_text(records)}\n\nThe planned {name} was: "
                    f"{planned.model_dump_json()}\nIt changed {describe_changes(changes, baseline)}.\n"
                    f"It failed: {problem}\nGive a corrected {name} that avoids the cause of this failure; a "
                    "configuration that failed is refused.")),
            ], refusing(planned_model, failed))
        except StructuredOutputError as exc:
            ctx.report(f"experiments: {idea.name}: no usable fix for {name} ({exc.message})")
            break
    _restore(workspace, before)  # the run failed: the next one starts from the code that last worked
    return None


def failure_line(problem: str) -> str:
    """One console line for a failed attempt: its first line and, when it has one, the stderr's last line, so
    a terminal shows why even where the live status line redraws over the lines above."""
    lines = [line.strip() for line in problem.splitlines() if line.strip()]
    if not lines:
        return "unknown failure"
    return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1][:300]}"


def _restore(workspace: Path, contents: dict[str, str]) -> None:
    for name, text in contents.items():
        path = workspace / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
