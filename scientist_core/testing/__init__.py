"""Pytest fixtures for scientist and its plugin authors (loaded through the `pytest11` entry point).

- `scientist_env`: an isolated home, data folder and working folder; no SCIENTIST_* variable leaks in.
- `plugin_host`: a freshly loaded plugin host (the same one the CLI uses in this process).
- `fake_llm`: a scripted LLM provider `fake` registered as a real plugin: `enqueue()` replies, read `history`.
- `run_store`: a run store in a temporary folder.
- `experiment_module`: a template's experiment file as a module (given a `template` fixture).

For template authors, plain functions that run a template's scripts the way the core lays them out (knobs.json
in the run folder, the template's own commands, this interpreter), without the sandbox, so a test sees the
experiment itself: `start_experiment` / `finish_experiment`, `run_experiment`, `run_plot`, `read_final_info`;
`template_contract_problems`, everything a template must hold to that code can check without running it; and
`TemplateContract`, the tests every template passes, which a template's suite subclasses.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ValidationError

from scientist_core.errors import ExperimentError
from scientist_core.hookspecs import hookimpl
from scientist_core.llm import LLM
from scientist_core.models import Completion, FinalInfo, Message, ModelInfo, Usage
from scientist_core.plugins import PluginHost, PluginInfo, get_host, reset_host
from scientist_core.store import Store
from scientist_core.template import Template

FAKE_PROVIDER = "fake"
FAKE_MODEL = "scripted"


@dataclass
class Call:
    """One request the fake LLM received."""

    model: str
    messages: list[Message]
    schema: type[BaseModel] | None
    max_tokens: int | None = None


@dataclass
class Script:
    """Replies the fake LLM gives, in order, and the calls it received.

    `enqueue` queues replies for any request; `answer(schema_name, ...)` queues replies for requests asking
    for that schema only, which keeps long pipelines scriptable: a request for a schema with its own queue
    takes from it, anything else from the general queue. A reply may be a callable taking the Call.
    """

    replies: deque = field(default_factory=deque)
    by_schema: dict[str, deque] = field(default_factory=dict)
    history: list[Call] = field(default_factory=list)

    def enqueue(self, *replies: str | dict | BaseModel | Exception) -> "Script":
        """Queue replies: text as is, dicts and models as JSON, exceptions raised when their turn comes."""
        self.replies.extend(replies)
        return self

    def answer(self, schema_name: str, *replies: Any) -> "Script":
        """Queue replies for requests whose schema is named `schema_name`."""
        self.by_schema.setdefault(schema_name, deque()).extend(replies)
        return self

    def next_reply(self, call: Call | None = None) -> str:
        queue = self.replies
        if call is not None and call.schema is not None and call.schema.__name__ in self.by_schema:
            queue = self.by_schema[call.schema.__name__]
        if not queue:
            asked = f" for {call.schema.__name__}" if call is not None and call.schema is not None else ""
            raise AssertionError(f"the fake LLM was asked{asked} more often than replies were enqueued")
        reply = queue.popleft()
        if callable(reply) and not isinstance(reply, type):
            reply = reply(call)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, BaseModel):
            return reply.model_dump_json(by_alias=True)
        if isinstance(reply, dict | list):
            return json.dumps(reply)
        return reply


class FakeLLM(LLM):
    """An LLM that answers from a Script; usage counts words so ledgers have something to add up. `prices`
    (a Price, per token) makes it a priced model, which a run with `max_cost` needs; unset, it has none."""

    name = FAKE_PROVIDER
    description = "scripted replies for tests"
    script: Script = Script()
    prices: ClassVar[Any] = None

    def price(self, model: str) -> Any:
        return self.prices

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(provider=self.name, name=FAKE_MODEL, description=self.description)]

    def complete(self, model, messages, *, schema=None, temperature=0.7, max_tokens=4096) -> Completion:
        call = Call(model, list(messages), schema, max_tokens)
        self.script.history.append(call)
        text = self.script.next_reply(call)
        usage = Usage(tokens_in=sum(len(m.content.split()) for m in messages), tokens_out=len(text.split()))
        return Completion(text=text, model=f"{self.name}/{model}", usage=usage)


def register_fake_llm(host: PluginHost, script: Script, cls: type[FakeLLM] = FakeLLM,
                      plugin: str = "scientist-testing", **attributes: Any) -> type[FakeLLM]:
    """Add a fake LLM answering from `script` to `host` as plugin `plugin`: `cls` (a FakeLLM subclass) bound to
    the script and to `attributes` (e.g. prices=Price(1e-6, 2e-6)). Returns the bound class."""
    bound = type(cls.__name__, (cls,), {"script": script, **attributes})

    class FakePlugin:
        @hookimpl
        def register_llms(self, register):
            register(bound)

    host.add(FakePlugin(), PluginInfo(plugin, "scientist-core", "test"))
    return bound


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
    """The template's experiment file as a module, loaded by path as the core loads it for the knobs. Needs a
    module-scoped `template` fixture: the suite's own, or TemplateContract's."""
    return sys.modules[template.knobs_model().__module__]


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


def template_contract_problems(template: Template, allowed_imports: set[str], work_dir: Path) -> list[str]:
    """What `template` gets wrong of the template contract (docs/writing-a-template.md), one line each; [] when
    nothing: the experiment and plot scripts import only `allowed_imports` and the standard library, the
    docstring of the script the command runs gives the exact command, prompt.json has its two texts, there are one or two seed
    ideas with distinct names that each name a knob ideas may change, and a workspace prepared in `work_dir`
    holds the scripts, the prompts and the LaTeX skeleton, without caches."""
    problems = []
    allowed = set(allowed_imports) | set(sys.stdlib_module_names)
    command = template.experiment_command("run_0")
    entry = command[1] if len(command) > 1 and command[1].endswith(".py") else template.experiment_file
    for script in dict.fromkeys((template.experiment_file, entry, template.plot_file)):
        tree = ast.parse((template.files_dir() / script).read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        if imported - allowed:
            problems.append(f"{script} imports {', '.join(sorted(imported - allowed))}, not among the allowed")
    doc = ast.get_docstring(ast.parse((template.files_dir() / entry).read_text())) or ""
    if " ".join(command) not in doc:
        problems.append(f"the docstring of {entry} does not give the exact command {' '.join(command)!r}")
    prompt = template.prompt()
    problems += [f"prompt.json has no {key}" for key in ("system", "task_description")
                 if not str(prompt.get(key, "")).strip()]
    ideas = template.seed_ideas()
    if not 1 <= len(ideas) <= 2 or len({idea.name for idea in ideas}) != len(ideas):
        problems.append(f"seed_ideas.json holds {len(ideas)} idea(s) with {len({i.name for i in ideas})} distinct "
                        "names; one or two, each its own name")
    from scientist_core.pipeline.plans import idea_model

    runnable = idea_model(template, code_changes=False, max_knobs=3)  # what the offline profile accepts
    for idea in ideas:
        try:
            runnable.model_validate(idea.model_dump(by_alias=True))
        except ValidationError as exc:
            problems.append(f"the seed idea {idea.name} is not testable by knob changes alone: "
                            f"{exc.errors()[0]['msg']}")
    workspace = template.prepare_workspace(work_dir / "contract-workspace")
    problems += [f"a prepared workspace lacks {name}" for name in
                 dict.fromkeys((template.experiment_file, entry, template.plot_file, "prompt.json",
                                "seed_ideas.json", "latex/template.tex")) if not (workspace / name).is_file()]
    if list(workspace.rglob("__pycache__")):
        problems.append("a prepared workspace holds __pycache__ folders")
    return problems + _skeleton_problems(workspace / "latex")


def _skeleton_problems(skeleton: Path) -> list[str]:
    """What the configured writer finds wrong with the prepared skeleton without compiling it (scientist-paper's:
    a citation its references.bib does not hold); nothing when no writer is installed."""
    from scientist_core.errors import PluginError
    from scientist_core.settings import load_settings

    settings = load_settings()
    try:
        writer = get_host().create("writer", settings.writer, settings.writers)
    except PluginError:
        return []
    return writer.skeleton_problems(skeleton)


class TemplateContract:
    """The tests every template passes. A template's suite subclasses it, naming the template and what its
    scripts may import besides the standard library:

        class TestExampleTemplate(TemplateContract):
            template_class = ExampleTemplate
            allowed_imports = {"numpy", "pydantic", "matplotlib"}

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
        """Every metric is declared (`Template.metrics`), and each dataset records the seeds behind its means (n),
        with standard errors exactly when there are two or more."""
        info = read_final_info(cli_baseline)
        assert info.datasets
        for dataset, result in info.datasets.items():
            undeclared = set(result.means) - set(template.metrics)
            assert undeclared == set(), f"{dataset}: metrics the template does not declare"
            assert result.n is not None, f"{dataset}: no n (the seeds behind each mean) in final_info.json"
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
