"""Running one experiment of a template in the sandbox and reading back its results."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

from scientist_core.executor import Executor
from scientist_core.models import FinalInfo
from scientist_core.sandbox import LOG_DIR_NAME, ExecutionResult, Limits
from scientist_core.settings import SandboxSettings
from scientist_core.store import Store
from scientist_core.template import Template


class RunOutcome(BaseModel):
    """One experiment run: where it ran, what the sandbox saw, and its results when it produced them."""

    run_dir: Path
    execution: ExecutionResult
    results: FinalInfo | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.results is not None


def effective_limits(template: Template, quick: bool, overrides: SandboxSettings) -> Limits:
    """The template's limits for the mode, with the user's sandbox settings on top."""
    base = template.quick_limits if quick else template.limits
    return base.model_copy(update=overrides.model_dump(exclude_none=True))


def read_results(run_dir: Path) -> FinalInfo:
    path = run_dir / "final_info.json"
    return FinalInfo.from_json_obj(json.loads(path.read_text()))


def execute_run(template: Template, workspace: Path, run_name: str, knobs: BaseModel, executor: Executor,
                limits: Limits, store: Store, run_id: str, idea: str, run_index: int) -> RunOutcome:
    """Write the knobs, run the experiment in the sandbox, record the outcome in the store."""
    run_dir = workspace / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "knobs.json").write_text(knobs.model_dump_json(indent=2))
    experiment_id = store.start_experiment(run_id, idea, run_index, knobs.model_dump(mode="json"), run_dir)
    log_dir = workspace / LOG_DIR_NAME / run_name
    execution = executor.execute(template.experiment_command(run_name), workspace, limits, log_dir=log_dir)
    outcome = RunOutcome(run_dir=run_dir, execution=execution)
    if not execution.ok:
        reason = f"hit its {execution.limit_hit} limit" if execution.limit_hit else f"exited with {execution.exit_code}"
        outcome.problem = f"the experiment {reason}"
    else:
        try:
            outcome.results = read_results(run_dir)
        except FileNotFoundError:
            outcome.problem = f"the experiment wrote no {run_name}/final_info.json"
        except (json.JSONDecodeError, ValidationError) as exc:
            outcome.problem = f"{run_name}/final_info.json is not {{dataset: {{means: ...}}}}: {exc}"
    store.finish_experiment(
        experiment_id,
        "done" if outcome.ok else "failed",
        outcome.results.model_dump()["datasets"] if outcome.results else None,
        execution.model_dump(mode="json"),
        notes=outcome.problem,
    )
    return outcome
