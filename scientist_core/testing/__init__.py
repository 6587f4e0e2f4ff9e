"""The public test harness of scientist, for its plugin authors (pytest fixtures load through the `pytest11`
entry point). docs/writing-a-template.md shows it in use.

Fixtures:
- `scientist_env`: an isolated home, data folder and working folder; no SCIENTIST_* variable leaks in.
- `plugin_host`: a freshly loaded plugin host (the same one the CLI uses in this process).
- `fake_llm`: a scripted model (`Script`) registered as the real LLM plugin `fake`: queue replies, read `history`.
- `run_store`: a run store in a temporary folder.
- `experiment_module`: a template's experiment file as a module (given a `template` fixture).

A scripted model, whole runs (`script.py`, `pipeline.py`):
- `Script`: replies by stage with named helpers (`idea`, `novel`, `plan`, `figure_notes`, `paper`, `review`,
  `full_run`), no reply schema to learn; `save(path)` writes them for the `script` provider
  (`scientist run NAME --model script/PATH`, out of process).
- `run_pipeline(template, script, **options)`: `scientist run` in this process with that script; returns a
  `PipelineRun`, the summary and each idea's typed `RunRecord`s; `recorded_runs` reads those of a run folder.

A template's scripts, run the way the core lays them out (knobs.json in the run folder, the template's own
commands, this interpreter), without the sandbox, so a test sees the experiment itself: `start_experiment` /
`finish_experiment`, `run_experiment` (quick mode unless told otherwise), `run_plot`, `read_final_info`; and the
contract: `template_contract_problems` (scientist_core.template_contract: what code can check without running),
and `TemplateContract`, the tests every template passes, which a template's suite subclasses.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from scientist_core.errors import ExperimentError
from scientist_core.models import FinalInfo
from scientist_core.plugins import PluginHost, get_host, reset_host
from scientist_core.store import Store
from scientist_core.template import Template, load_experiment_module
from scientist_core.template_contract import template_contract_problems
from scientist_core.testing.script import (FAKE_MODEL, FAKE_PROVIDER, Call, FakeLLM, Script, ScriptExhausted,
                                           register_fake_llm)

__all__ = ["FAKE_MODEL", "FAKE_PROVIDER", "Call", "FakeLLM", "PipelineRun", "Script", "ScriptExhausted", "TemplateContract", "finish_experiment",
           "read_final_info", "recorded_runs", "register_fake_llm", "run_experiment", "run_pipeline", "run_plot",
           "start_experiment", "template_contract_problems"]

def __getattr__(name: str) -> Any:
    """The whole-pipeline harness (scientist_core.testing.pipeline) loads the pipeline when first used."""
    if name in ("PipelineRun", "recorded_runs", "run_pipeline", "SCRIPTED_SETTINGS_TOML"):
        from scientist_core.testing import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'scientist_core.testing' has no attribute {name!r}")


@pytest.fixture
def scientist_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder with a private HOME and SCIENTIST_DATA_DIR; returns that folder."""
    import os

    for name in list(os.environ):
        if name.startswith("SCIENTIST_"):
            monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SCIENTIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(work)
    reset_host()
    yield work
    reset_host()


@pytest.fixture
def plugin_host(scientist_env: Path) -> PluginHost:
    return get_host()


@pytest.fixture
def fake_llm(plugin_host: PluginHost) -> Script:
    script = Script()
    register_fake_llm(plugin_host, script)
    return script


@pytest.fixture
def run_store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "store" / "scientist.db")
    yield store
    store.close()


@pytest.fixture(scope="module")
def experiment_module(template: Template):
    """The template's experiment file as a module, loaded by path (it is not a package module) and executed
    whole except what its `if __name__ == "__main__":` runs. Needs a module-scoped `template` fixture: the suite's
    own, or TemplateContract's."""
    path = template.files_dir() / template.experiment_file
    return load_experiment_module(path, f"scientist_experiment_of_{template.name}")


@pytest.fixture
def openai_server():
    """A loopback OpenAI-compatible HTTP server (scientist_core.testing.fake_openai.FakeOpenAIServer), started for the
    test and stopped after it: `enqueue()` replies (text, JSON, `Reply.rate_limited()`, `Reply.error(500)`,
    `Reply.slow(5)`), point a client at `.base_url`, read `.requests`. It also speaks Ollama (`.url`) and
    Anthropic's Messages API."""
    from scientist_core.testing.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        yield server


# -- running a template's scripts in tests -------------------------------------------------------------------------

def start_experiment(template: Template, workspace: Path, changes: dict | None = None, *, quick: bool = True,
                     out_dir: str = "run_0") -> subprocess.Popen:
    """Copy the template into `workspace` (if not there yet), write `<out_dir>/knobs.json` and start the
    experiment command with this interpreter; stdout and stderr are captured as text."""
    if not (workspace / template.experiment_file).exists():
        template.prepare_workspace(workspace)
    (workspace / out_dir).mkdir()
    (workspace / out_dir / "knobs.json").write_text(template.knobs(quick=quick, changes=changes).model_dump_json())
    command = template.experiment_command(out_dir)  # ["python", "experiment.py", ...]
    return subprocess.Popen([sys.executable, *command[1:]], cwd=workspace, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish_experiment(proc: subprocess.Popen, workspace: Path, *, out_dir: str = "run_0",
                      timeout: float = 600) -> Path:
    """Wait for a run started by `start_experiment`; fail the test with its stderr if it did not succeed."""
    _, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, stderr
    return workspace / out_dir


def run_experiment(template: Template, workspace: Path, changes: dict | None = None, *, quick: bool = True,
                   timeout: float = 600) -> Path:
    """One run to completion in `workspace`; returns its run folder."""
    return finish_experiment(start_experiment(template, workspace, changes, quick=quick), workspace, timeout=timeout)


def run_plot(template: Template, workspace: Path, run_dirs: list[Path], *,
             timeout: float = 300) -> subprocess.CompletedProcess:
    """The template's plot step over `run_dirs`, in `workspace` (copied there if needed); returns the process."""
    if not (workspace / template.plot_file).exists():
        template.prepare_workspace(workspace)
    command = template.plot_command([str(path) for path in run_dirs])
    return subprocess.run([sys.executable, *command[1:]], cwd=workspace, capture_output=True, text=True,
                          timeout=timeout)


def read_final_info(run_dir: Path) -> FinalInfo:
    """A run folder's final_info.json, validated against the results contract."""
    return FinalInfo.from_json_obj(json.loads((run_dir / "final_info.json").read_text()))


class TemplateContract:
    """The tests every template passes. A template's suite subclasses it, naming the template and what its
    scripts may import besides the standard library:

        class TestExampleTemplate(TemplateContract):
            template_class = ExampleTemplate
            allowed_imports = {"numpy", "pydantic", "matplotlib"}

    Its tests: the template is registered through its distribution's entry point; an unknown knob is refused;
    quick mode's values apply and an idea's changes win; every knob is described; a quick baseline runs through
    the real `scientist baseline --quick` (console script and sandbox) and writes valid results; the plot step
    names a run folder without results; the paper skeleton compiles (with latexmk and pdflatex installed); and
    `template_contract_problems` finds nothing (imports, the command in the docstring, prompts, seed ideas that
    each name a knob, a clean workspace, the skeleton's citations). `scientist template check` asks the same.

    Tests of the subclass may use its `cli_baseline` fixture: the template's quick baseline, run once through the
    real `scientist` console script and sandbox. A template whose runs read data overrides the class fixture
    `template_data_dir` with a folder that holds them (the runs have no network).
    """

    template_class: ClassVar[type[Template]]
    allowed_imports: ClassVar[set[str]] = set()

    @pytest.fixture(scope="module")  # module: the suite's module-scoped fixtures may take it too
    @classmethod
    def template(cls) -> Template:
        return cls.template_class()

    @pytest.fixture(scope="class")
    @classmethod
    def template_data_dir(cls, tmp_path_factory: pytest.TempPathFactory) -> Path:
        """SCIENTIST_DATA_DIR of `cli_baseline`; empty here."""
        return tmp_path_factory.mktemp("data")

    @pytest.fixture(scope="class")
    @classmethod
    def cli_baseline(cls, template: Template, template_data_dir: Path,
                     tmp_path_factory: pytest.TempPathFactory) -> Path:
        """`scientist baseline <template> --quick` through the real console script and sandbox: its run folder.
        The data folder may lie under /tmp, which the sandbox hides: runs see it because the core exposes it."""
        work = tmp_path_factory.mktemp("cli")
        env = {key: value for key, value in os.environ.items() if not key.startswith("SCIENTIST_")}
        env.update(HOME=str(work / "home"), SCIENTIST_DATA_DIR=str(template_data_dir))
        scientist = Path(sys.executable).with_name("scientist")
        proc = subprocess.run([str(scientist), "baseline", template.name, "--quick", "--out", str(work / "out")],
                              cwd=work, env=env, capture_output=True, text=True,
                              timeout=template.quick_limits.timeout_s + 300)  # the run's limit, start-up and data
        assert proc.returncode == 0, proc.stderr
        printed = Path(proc.stdout.strip().splitlines()[0])
        assert printed.name == "final_info.json" and printed.is_file(), proc.stdout
        assert printed.is_relative_to(work / "out")
        return printed.parent

    def test_registered_through_its_distributions_entry_point(self, plugin_host, template):
        registration = plugin_host.get("template", template.name)
        assert registration.cls is self.template_class
        entry_points = importlib.metadata.distribution(registration.plugin.distribution).entry_points
        assert self.template_class.__module__ in {ep.value for ep in entry_points if ep.group == "scientist"}

    def test_unknown_knob_is_rejected(self, template):
        with pytest.raises(ExperimentError, match="lerning_rate"):
            template.knobs(changes={"lerning_rate": 0.1})

    def test_quick_overrides_apply_and_an_ideas_changes_win(self, template):
        full, quick = template.knobs(), template.knobs(quick=True)
        for key, value in template.quick_knobs.items():
            assert getattr(quick, key) == value != getattr(full, key), key
        changeable = [key for key in template.quick_knobs if key not in template.fixed_knobs]
        assert changeable, "quick mode sets no knob an idea may change"
        key = changeable[0]
        assert getattr(template.knobs(quick=True, changes={key: getattr(full, key)}), key) == getattr(full, key)

    def test_every_knob_is_described(self, template):
        fields = template.knobs_model().model_fields
        assert [name for name, field in fields.items() if not field.description] == []

    def test_a_quick_baseline_through_the_cli_writes_final_info(self, template, cli_baseline):
        """A template that declares its metrics (`Template.metrics`) declares every one, and a dataset that
        records the seeds behind its means (n) has standard errors exactly when there are two or more."""
        info = read_final_info(cli_baseline)
        assert info.datasets
        for dataset, result in info.datasets.items():
            undeclared = set(result.means) - set(template.metrics)
            assert not template.metrics or undeclared == set(), f"{dataset}: undeclared metrics {sorted(undeclared)}"
            if result.n is not None:
                assert set(result.stderrs) == (set(result.means) if result.n >= 2 else set()), dataset

    def test_plot_names_a_run_that_has_no_results(self, template, tmp_path):
        empty = tmp_path / "run_0"
        empty.mkdir()
        proc = subprocess.run([sys.executable, str(template.files_dir() / template.plot_file), str(empty)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0
        assert str(empty) in proc.stderr

    @pytest.mark.skipif(not (shutil.which("latexmk") and shutil.which("pdflatex")),
                        reason="needs latexmk and pdflatex")
    def test_the_paper_skeleton_follows_the_writeup_contract(self, plugin_host, template, tmp_path):
        """The skeleton, the core's with the template's changes, compiles with the files the write-up generates
        (placeholders here)."""
        writer, compiler = plugin_host.create("writer", "latex"), plugin_host.create("compiler", "latexmk")
        assert writer.preflight(template.write_latex(tmp_path / "skeleton"), compiler, tmp_path / "latex") == []
        assert (tmp_path / "latex" / "template.pdf").read_bytes()[:5] == b"%PDF-"

    def test_the_template_keeps_the_template_contract(self, template, tmp_path):
        """Imports, the command in the docstring, prompts, seed ideas, a clean workspace, the skeleton's citations."""
        assert template_contract_problems(template, self.allowed_imports, tmp_path) == []
