"""One call that runs the whole pipeline on a template with a scripted model, for a template's tests:

    run = run_pipeline(MyTemplate(), Script().full_run(ideas=["wider"], metric="data.loss",
                                                       plan=[{"width": 64}]), out=tmp_path)
    assert run.reviewed_papers == 1 and run.runs["wider"][1].results.datasets["data"].means["loss"] < 1

Everything is real (the sandbox, the plot step, latexmk, the reviewer) except the model, which answers from the
script, and the literature, which comes from the offline index: no network, no key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scientist_core.pipeline.context import RunOptions, RunRecord, checkpoint_file
from scientist_core.pipeline.run import RunSummary, start_run
from scientist_core.plugins import get_host
from scientist_core.settings import load_settings
from scientist_core.template import Template
from scientist_core.testing.script import FAKE_PROVIDER, Script, register_fake_llm

SCRIPTED_MODEL = "fake/scripted"
# settings of a scripted run: the offline literature index, a small review ensemble (a scientist.toml too)
SCRIPTED_SETTINGS_TOML = """\
searchers_order = ["offline"]
[searchers.offline]
sources = ["nips*"]
[reviewers.llm]
ensemble = 2
reflections = 2
"""
SCRIPTED_SETTINGS: dict[str, Any] = tomllib.loads(SCRIPTED_SETTINGS_TOML)
# a run of one idea with few rounds, in the template's quick mode
SCRIPTED_OPTIONS: dict[str, Any] = dict(num_ideas=1, reflections=2, novelty_rounds=3, max_runs=2, max_tries=1,
                                        citation_rounds=1, quick=True)


@dataclass
class PipelineRun:
    """A finished scripted run: its summary, and each idea's recorded runs (the baseline first) as the
    write-up got them."""

    summary: RunSummary
    runs: dict[str, list[RunRecord]]

    @property
    def reviewed_papers(self) -> int:
        return self.summary.reviewed_papers


def recorded_runs(run_dir: Path, idea_name: str) -> list[RunRecord]:
    """The RunRecords the experiments stage of `idea_name` saved (baseline first); [] when it saved none."""
    from pydantic import TypeAdapter

    saved = checkpoint_file(run_dir, f"experiments:{idea_name}")
    return TypeAdapter(list[RunRecord]).validate_json(saved.read_bytes()) if saved.is_file() else []


def run_pipeline(template: Template | str, script: Script, *, out: Path | None = None,
                 settings: dict[str, Any] | None = None, **options: Any) -> PipelineRun:
    """`scientist run` on `template` in this process, answered by `script`: every stage for real. `options` are
    `scientist run`'s (num_ideas, max_runs, quick ...; SCRIPTED_OPTIONS by default), `settings` override
    SCRIPTED_SETTINGS, `out` is the output folder (default: the settings')."""
    host = get_host()
    if FAKE_PROVIDER not in host.names("llm"):
        register_fake_llm(host, script)
    elif host.get("llm", FAKE_PROVIDER).cls.script is not script:
        raise AssertionError("another script answers as the fake model here: pass that one (the fake_llm fixture's)")
    flags = {**SCRIPTED_SETTINGS, **(settings or {}), "model": SCRIPTED_MODEL, "out_dir": out}
    name = template if isinstance(template, str) else template.name
    summary = start_run(load_settings(**flags), host, RunOptions(template=name, **{**SCRIPTED_OPTIONS, **options}),
                        report=lambda line: None)
    return PipelineRun(summary, {idea.name: recorded_runs(summary.run_dir, idea.name) for idea in summary.ideas})
