"""`scientist baseline`: a template's unchanged experiment (run 0), on its own."""

from __future__ import annotations

from pathlib import Path

from scientist_core.errors import ExperimentError
from scientist_core.models import FinalInfo
from scientist_core.pipeline.context import LOGS_DIR, SANDBOX_DIR, configured_plugin, new_run_id
from scientist_core.pipeline.execution import RunOutcome, execute_run, probe_isolation, run_limits
from scientist_core.plugins import PluginHost
from scientist_core.settings import Settings
from scientist_core.store import Store
from scientist_core.template import Template

STAGE = "baseline"


def run_baseline(host: PluginHost, settings: Settings, template_name: str, quick: bool) -> RunOutcome:
    template = host.create("template", template_name, settings.templates)
    executor = configured_plugin(host, settings, "executor")
    knobs = template.knobs(quick=quick)
    limits = run_limits(template, quick, settings)  # the template's data first: offline, nothing is started
    probe_isolation(executor, limits)  # refused here, before anything is recorded, where runs cannot be isolated

    run_id = new_run_id(f"{template.name}-baseline")
    folder = Path(settings.out_dir) / run_id
    sandbox = template.prepare_workspace(folder / SANDBOX_DIR)  # the one folder the run may write
    store = Store(settings.store_path)
    try:
        store.create_run(run_id, "baseline", template.name, folder,
                         {"quick": quick, "template_version": template.version})
        store.start_stage(run_id, STAGE)
        outcome = execute_run(template, sandbox, "run_0", knobs, executor, limits, store, run_id,
                              idea="baseline", run_index=0, log_dir=folder / LOGS_DIR / "run_0")
        status = "done" if outcome.ok else "failed"
        store.finish_stage(run_id, STAGE, status, outcome.problem)
        store.set_run_status(run_id, status)
        if outcome.ok:
            store.add_artifact(run_id, "final_info", outcome.run_dir / "final_info.json")
    finally:
        store.close()
    if not outcome.ok:
        tail = outcome.execution.stderr_tail.strip().splitlines()
        last = f" (last stderr line: {tail[-1][:200]})" if tail else ""
        raise ExperimentError(f"baseline of {template.name!r}: {outcome.problem}{last}",
                              f"full log: {outcome.execution.stderr_path}")
    problem = undeclared_metrics(template, outcome.results)
    if problem:
        raise ExperimentError(f"baseline of {template.name!r}: {problem}",
                              "make the template's `metrics` and what experiment.py writes agree")
    return outcome


def undeclared_metrics(template: Template, results: FinalInfo) -> str:
    """Where a template that declares its metrics and its baseline's final_info.json disagree, in one line: a
    declared metric a dataset lacks, or one it writes undeclared; "" when they agree or nothing is declared."""
    declared = set(template.metrics)
    for dataset, result in results.datasets.items() if declared else ():
        missing, extra = sorted(declared - set(result.means)), sorted(set(result.means) - declared)
        if missing or extra:
            what = [f"lacks the declared metric(s) {', '.join(missing)}"] if missing else []
            what += [f"writes the undeclared metric(s) {', '.join(extra)}"] if extra else []
            return f"final_info.json: dataset {dataset!r} {' and '.join(what)}"
    return ""
