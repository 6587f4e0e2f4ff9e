"""What every stage of a run shares: settings, plugins, the store, the template, the options."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from scientist_core.errors import ScientistError
from scientist_core.models import FinalInfo, Idea
from scientist_core.plugins import PluginHost, get_host
from scientist_core.searcher import Searcher
from scientist_core.settings import RunSettings, Settings, load_settings
from scientist_core.store import Store
from scientist_core.template import Template
from scientist_core.untrusted import write_atomic

CHECKPOINTS_DIR = ".stages"  # in the run folder: the outcome of every finished stage and step, for resume
SANDBOX_DIR = "sandbox"      # in an idea's folder: the one folder its runs may write
LOGS_DIR = "logs"            # in an idea's folder: each run's stdout.log and stderr.log, written by the sandbox
NOTES_FILE = "notes.txt"     # in an idea's folder: the lab journal of its runs, written by the host


def configured_plugin(host: PluginHost, settings: Settings, kind: str) -> Any:
    """The plugin of `kind` that the settings choose (the setting named `kind`), with its `[<kind>s.NAME]` section:
    how preflight and the stages both resolve the executor, coder, writer, compiler and reviewer. The compiler runs
    the model's LaTeX in the sandbox, so it gets the user's [sandbox] allow_unisolated_code too (Compiler.Config)."""
    flags = {"allow_unisolated_code": settings.sandbox.allow_unisolated_code} if kind == "compiler" else None
    return host.create(kind, getattr(settings, kind), getattr(settings, f"{kind}s"), flags)


def searchers_from_settings(settings: Settings | None = None, host: PluginHost | None = None,
                            order: Sequence[str] | None = None) -> list[Searcher]:
    """The searchers named by `order`, else by the `searchers_order` setting, created with their
    `[searchers.NAME]` sections. A name no plugin provides is a PluginError."""
    settings = settings or load_settings()
    host = host or get_host()
    names = list(order or settings.searchers_order)
    return [host.create("searcher", name, settings.searchers) for name in names]


def checkpoint_file(run_dir: Path, name: str) -> Path:
    """Where the outcome of the finished stage or step `name` of the run in `run_dir` is kept (ctx.checkpoint)."""
    return run_dir / CHECKPOINTS_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]', '--', name)}.json"


def new_run_id(label: str) -> str:
    """A run's id: when it started, what it is, and four hex digits so two runs in the same second differ."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{label}-{secrets.token_hex(2)}"


class RunOptions(RunSettings):
    """The knobs of one `scientist run`, stored with the run so `scientist resume` continues with the same ones."""

    template: str
    model: str | None = None
    reviewer_model: str | None = None


class RunRecord(BaseModel):
    """One finished experiment run of an idea, as the write-up sees it."""

    index: int
    name: str = Field(description="folder name, e.g. run_1")
    description: str
    knob_changes: dict[str, Any] = Field(default_factory=dict)
    code_changed: bool = False
    code_diff: str = Field("", description="how the code it ran differs from the template's, in one line by code "
                                           "(plans.summarize_code_diff); empty when it ran the template's code")
    results: FinalInfo
    notes: str = ""
    machine: dict[str, str] = Field(default_factory=dict, description="the machine it ran on, with the GPUs it could "
                                                                      "use (machine.run_machine); empty in records "
                                                                      "made before runs carried their machine")


class Figure(BaseModel):
    path: Path
    caption: str


@dataclass
class RunContext:
    """Shared by the stages of one run; stages record everything in `store` under `run_id`."""

    run_id: str
    run_dir: Path
    options: RunOptions
    settings: Settings
    host: PluginHost
    store: Store
    template: Template
    report: Callable[[str], None] = field(default=lambda message: None)
    # the live status line: what is running now (an experiment's latest output line); replaced, not kept
    status: Callable[[str], None] = field(default=lambda message: None)
    idea_name: str | None = None  # set while an idea is processed: its calls are ledger rows of `stage:idea`
    # the plugins resolved so far, by kind; shared by the copies `for_idea` makes
    resolved: dict[str, Any] = field(default_factory=dict, repr=False)

    def plugin(self, kind: str) -> Any:
        """The configured plugin of `kind` ("executor", "coder", "writer", "compiler", "reviewer"), created once."""
        if kind not in self.resolved:
            self.resolved[kind] = configured_plugin(self.host, self.settings, kind)
        return self.resolved[kind]

    def run_status(self, idea: str, run_name: str) -> Callable[[str], None]:
        """A status callback for one experiment run: its latest output line, prefixed with where it is."""
        return lambda line: self.status(f"experiments: {idea}: {run_name}: {line}" if line else "")

    def for_idea(self, idea: Idea) -> "RunContext":
        return replace(self, idea_name=idea.name)

    def chat(self, stage: str, role: str = "scientist", **options: Any):
        """A Chat whose calls are ledger rows of this run under `stage` (`stage:idea` within an idea)."""
        from scientist_core.model_choice import open_chat

        model = self.options.reviewer_model if role == "reviewer" else self.options.model
        if self.idea_name:
            stage = f"{stage}:{self.idea_name}"
        return open_chat(self.settings, stage=stage, role=role, model=model, store=self.store, run_id=self.run_id,
                         host=self.host, check_ready=False, **options)

    def searchers(self) -> list:
        """The installed searchers of `searchers_order`, in that order."""
        return searchers_from_settings(self.settings, self.host)

    def idea_dir(self, idea: Idea) -> Path:
        """The idea's folder, written by the host only: its current sources, notes, figures, paper and review."""
        return self.run_dir / idea.name

    def sandbox_dir(self, idea: Idea) -> Path:
        """The one folder the idea's runs may write (a copy of the template with run_0 ... run_N): everything
        in it is read back through scientist_core.untrusted."""
        return self.idea_dir(idea) / SANDBOX_DIR

    def checkpoint(self, name: str, result: Any, work: Callable[[], Any], stage: bool = False) -> Any:
        """The run's one resume layer: `work()`, unless a run of this name finished before, in which case its
        saved outcome is returned. The outcome (of type `result`, e.g. list[RunRecord]) is saved atomically when
        work returns, so a crash leaves no half outcome; an unreadable one is done again. A `stage` is also
        recorded in the store and announced ("novelty:idea: started"); a step within a stage (one experiment
        run, a plan) is only saved."""
        adapter = TypeAdapter(result)
        saved = checkpoint_file(self.run_dir, name)
        if saved.is_file():
            try:
                outcome = adapter.validate_json(saved.read_bytes())
            except ValidationError:
                self.report(f"{name}: its saved outcome is unreadable, so it is done again")
            else:
                recorded = {s["name"]: s["status"] for s in self.store.stages(self.run_id)} if stage else {}
                if stage and recorded.get(name) != "done":  # saved, then stopped before the store heard of it
                    self.store.start_stage(self.run_id, name)
                    self.store.finish_stage(self.run_id, name, "done")
                return outcome
        if stage:
            self.store.start_stage(self.run_id, name)
            self.report(f"{name}: started")
        try:
            outcome = work()
        except BaseException as exc:
            if stage:
                detail = exc.one_line() if isinstance(exc, ScientistError) else f"{type(exc).__name__}: {exc}"
                self.store.finish_stage(self.run_id, name, "failed", detail)
            raise
        write_atomic(saved, adapter.dump_json(outcome, by_alias=True, indent=1))
        if stage:
            self.store.finish_stage(self.run_id, name, "done")
        return outcome
