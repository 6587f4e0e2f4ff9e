"""Running one experiment of a template in the sandbox and reading back its results: what the experiments
stage, the baseline command and the plots stage share."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ValidationError

from scientist_core.errors import first_problem
from scientist_core.executor import ExecutionResult, Executor, Limits
from scientist_core.models import FinalInfo
from scientist_core.settings import SandboxSettings, Settings
from scientist_core.store import Store
from scientist_core.template import Template
from scientist_core.untrusted import UntrustedOutput, make_folder_in, read_json, write_into


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


DATA_DIR_ENV = "SCIENTIST_DATA_DIR"


def run_limits(template: Template, quick: bool, settings: Settings) -> Limits:
    """The limits of the template's runs once its data are prepared (`Template.prepare_data`, here on the host):
    `effective_limits`, plus the data folders readable inside the sandbox and SCIENTIST_DATA_DIR naming the data
    folder. Raises the template's one-line error when its data cannot be had."""
    limits = effective_limits(template, quick, settings.sandbox)
    data_dir = Path(settings.data_dir).expanduser().resolve()
    folders = template.prepare_data(data_dir, quick)
    if not folders:
        return limits
    return limits.model_copy(update={"read_only": [*limits.read_only, *map(str, folders)],
                                     "env": {**limits.env, DATA_DIR_ENV: str(data_dir)}})


RESULTS_FILE = "final_info.json"
RESULTS_MAX_BYTES = 8 * 2**20  # far above any template's results; what a run writes past it is not read


RESULTS_SHAPE = "{dataset: {means: {metric: finite number}, stderrs: {...}}}"


def results_problem(exc: ValueError) -> str:
    """What is wrong with a results file, in one line (pydantic's first problem, or the JSON error)."""
    if isinstance(exc, ValidationError):
        where, what = first_problem(exc)
        return f"{where.removeprefix('datasets').lstrip('.') or 'the file'}: {what}"
    return str(exc).splitlines()[0]


def read_results(sandbox: Path, run_name: str) -> FinalInfo:
    """The results a run wrote to <sandbox>/<run_name>/final_info.json, taken back through the one-way boundary:
    FileNotFoundError when it wrote none, UntrustedOutput for a link or the like, ValueError for a bad shape."""
    return FinalInfo.from_json_obj(read_json(sandbox, f"{run_name}/{RESULTS_FILE}", RESULTS_MAX_BYTES))


class _following:
    """While the block runs, a thread hands `on_output` each new last line of the log file `path`; "" at the end."""

    def __init__(self, path: Path, on_output: Callable[[str], None] | None, every_s: float = 1.0) -> None:
        self.path, self.on_output, self.every_s = path, on_output, every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True, name=f"follow {path}")

    def __enter__(self) -> "_following":
        if self.on_output is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
            self.on_output("")  # the run is over: nothing is running now

    def _follow(self) -> None:
        last = ""
        while not self.stop.wait(self.every_s):
            line = last_line(self.path)
            if line and line != last:
                last = line
                self.on_output(line)


def last_line(path: Path, window: int = 4096) -> str:
    """The last complete non-empty line of a growing text file ("" when there is none yet)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - window))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    # the part after the last \n may be half; of a line a progress bar rewrote with \r, what a terminal shows
    lines = [line.rstrip("\r").rsplit("\r", 1)[-1].strip() for line in tail.split("\n")[:-1]]
    lines = [line for line in lines if line]
    return lines[-1][:200] if lines else ""


# what each isolation of ExecutionResult.isolation keeps from the run, in the words the console uses
ISOLATIONS = {"processes": "other processes", "filesystem": "files outside the run folder", "network": "the network",
              "unprivileged": "root"}


# how the console names the user's consent to generated code that runs unisolated
UNISOLATED_ALLOWED = "you allowed it: allow_unisolated_code"


def contained(network_allowed: bool = False) -> str:
    """What every isolation holding means for a run, in the words the console uses."""
    return f"own processes, {'the network it was allowed' if network_allowed else 'no network'}, writes only to " \
           "its folder, no root"


def uncontained(isolations: list[dict[str, bool]], network_allowed: bool = False) -> list[str]:
    """What at least one of the runs (ExecutionResult.isolation of each) could reach: [] when every isolation held."""
    return [words for key, words in ISOLATIONS.items() if not (key == "network" and network_allowed)
            and any(not found.get(key, False) for found in isolations)]


def probe_isolation(executor: Executor, limits: Limits) -> dict[str, bool]:
    """What the executor isolates on this machine, from a command that does nothing (well under a second)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="scientist-probe-") as folder:
        probe = limits.model_copy(update={"timeout_s": min(limits.timeout_s, 60)})
        return executor.execute(["python", "-c", "pass"], Path(folder), probe).isolation


def execute_run(template: Template, sandbox: Path, run_name: str, knobs: BaseModel, executor: Executor,
                limits: Limits, store: Store, run_id: str, idea: str, run_index: int, log_dir: Path,
                attempt: int = 0, on_output: Callable[[str], None] | None = None) -> RunOutcome:
    """Write the knobs into a fresh <sandbox>/<run_name>, run the experiment in the sandbox (its logs go to the
    host's `log_dir`), record the outcome in the store. `on_output` is given the experiment's latest line of
    output about once a second while it runs."""
    run_dir = make_folder_in(sandbox, run_name)  # what an earlier attempt left cannot pass for results
    write_into(sandbox, f"{run_name}/knobs.json", knobs.model_dump_json(indent=2))
    experiment_id = store.start_experiment(run_id, idea, run_index, knobs.model_dump(mode="json"), run_dir,
                                           attempt)
    with _following(log_dir / "stdout.log", on_output):
        execution = executor.execute(template.experiment_command(run_name), sandbox, limits, log_dir=log_dir)
    outcome = RunOutcome(run_dir=run_dir, execution=execution)
    if not execution.ok:
        reason = f"hit its {execution.limit_hit} limit" if execution.limit_hit else f"exited with {execution.exit_code}"
        outcome.problem = f"the experiment {reason}"
    else:
        try:
            outcome.results = read_results(sandbox, run_name)
        except FileNotFoundError:
            outcome.problem = f"the experiment wrote no {run_name}/{RESULTS_FILE}"
        except UntrustedOutput as exc:
            outcome.problem = exc.message
        except (ValueError, ValidationError) as exc:
            outcome.problem = f"{run_name}/{RESULTS_FILE} is not {RESULTS_SHAPE}: {results_problem(exc)}"
    store.finish_experiment(
        experiment_id,
        "done" if outcome.ok else "failed",
        outcome.results.model_dump()["datasets"] if outcome.results else None,
        execution.model_dump(mode="json"),
        notes=outcome.problem,
    )
    return outcome
