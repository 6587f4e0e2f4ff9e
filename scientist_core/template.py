"""Research templates: a small working experiment, its plot step, prompts and a LaTeX skeleton.

Every template's paper starts from the one skeleton in `latex_skeleton/` beside this module; a template's own
`latex/` folder holds only what it changes (its references, another layout), copied over the skeleton.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from scientist_core.component import Component
from scientist_core.errors import ExperimentError, PluginError, first_problem
from scientist_core.executor import Limits
from scientist_core.metrics import Metric
from scientist_core.models import Idea

# the paper skeleton every template starts from: template.tex (the LaTeX contract of docs/writeup.md) and the
# conference layout it uses, scientistconf.sty
LATEX_SKELETON = Path(__file__).parent / "latex_skeleton"
_CACHES = shutil.ignore_patterns("__pycache__", "*.pyc")


class Template(Component):
    """Base class of research templates.

    A template is a folder of files (`files_dir`) that is copied into each run's workspace:
    `experiment.py` (trains and writes `<out_dir>/final_info.json`), `plot.py`, `prompt.json`
    (`system`, `task_description`), `seed_ideas.json`, and optionally `latex/` with what its paper changes of
    the core's skeleton. Its knobs are a pydantic model so an idea can change them without editing code; the
    core writes them to `<out_dir>/knobs.json` and runs
    `python experiment.py --out_dir <out_dir> --knobs <out_dir>/knobs.json` in the sandbox. A knob declares
    on its field what the core must know of it, so the experiment file stays the one place knobs are named:
    `json_schema_extra={"fixed": True}` for a knob that defines the measurement (data, evaluation, seeds: ideas
    may not change it, or runs would stop being comparable with the baseline), and `{"quick": value}` for its
    value in quick mode.
    """

    kind: ClassVar[str] = "template"
    version: ClassVar[str] = "0"
    experiment_file: ClassVar[str] = "experiment.py"
    plot_file: ClassVar[str] = "plot.py"
    knobs_class: ClassVar[str] = "Knobs"
    # the metric a reader looks at first (progress lines show it); None: the first metric that measures quality
    primary_metric: ClassVar[str | None] = None
    # every metric of final_info.json: which way it improves, its unit, whether it is a timing; an undeclared
    # metric's direction is guessed from its name, with a warning (metrics.resolve_metric)
    metrics: ClassVar[dict[str, Metric]] = {}
    # True: the same knobs give the same numbers (no seed, no noise), so any difference at the precision shown is
    # real and comparisons are exact; False: differences are judged against the standard errors over seeds
    deterministic: ClassVar[bool] = False
    limits: ClassVar[Limits] = Limits()
    quick_limits: ClassVar[Limits] = Limits(timeout_s=900)

    def files_dir(self) -> Path:
        """The folder whose contents seed every run's workspace."""
        raise NotImplementedError

    def knobs_model(self) -> type[BaseModel]:
        """The pydantic model of the experiment's knobs: by default the class `knobs_class` of the experiment
        file, loaded by path so the file stays standalone in a workspace, on first use (it may import torch),
        executing only its definitions (`load_experiment_module`): nothing the file runs at module level."""
        return _load_knobs(self.files_dir() / self.experiment_file, self.knobs_class)

    @property
    def fixed_knobs(self) -> frozenset[str]:
        """The knobs whose field says `"fixed": True`: they define the measurement, so ideas may not change them."""
        return frozenset(name for name, extra in self._knob_extras().items() if extra.get("fixed"))

    @property
    def quick_knobs(self) -> dict[str, Any]:
        """Quick mode's knob values, from the fields that give a `"quick"` value, in the order of the fields."""
        return {name: extra["quick"] for name, extra in self._knob_extras().items() if "quick" in extra}

    def _knob_extras(self) -> dict[str, dict[str, Any]]:
        fields = self.knobs_model().model_fields
        return {name: field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
                for name, field in fields.items()}

    def knobs(self, quick: bool = False, changes: dict[str, Any] | None = None) -> BaseModel:
        """Defaults, then quick mode's overrides, then an idea's changes, validated together."""
        values = {**(self.quick_knobs if quick else {}), **(changes or {})}
        try:
            return self.knobs_model().model_validate(values)
        except ValidationError as exc:
            where, what = first_problem(exc)
            raise ExperimentError(
                f"knob {where} of template {self.name!r}: {what}",
                f"see `scientist templates --json` for the knobs of {self.name!r}",
            ) from None

    def prepare_workspace(self, workspace: Path) -> Path:
        """Copy the template's files, its paper's skeleton in `latex/`, into a fresh workspace; the installed
        package is never written to."""
        if workspace.exists() and any(workspace.iterdir()):
            raise ExperimentError(f"workspace {workspace} is not empty", "choose another --out folder")
        shutil.copytree(self.files_dir(), workspace, dirs_exist_ok=True, ignore=_CACHES)
        self.write_latex(workspace / "latex")
        return workspace

    def write_latex(self, folder: Path) -> Path:
        """Write the paper's skeleton into `folder`: the core's (`LATEX_SKELETON`), then the template's own
        `latex/` files over it. Returns `folder`."""
        shutil.copytree(LATEX_SKELETON, folder, dirs_exist_ok=True)
        own = self.files_dir() / "latex"
        if own.is_dir():
            shutil.copytree(own, folder, dirs_exist_ok=True, ignore=_CACHES)
        return folder

    def prepare_data(self, data_dir: Path, quick: bool) -> list[Path]:
        """Fetch, check and cache what the experiment reads, on this machine, before the template's runs: the
        sandbox has no network and hides most of the filesystem. The core calls it before `scientist baseline`,
        in the pre-flight of `scientist run` and before each run, so it must be quick once the data are cached.
        Returns the folders the runs read, under `data_dir` (the settings' data folder): the sandbox shows them
        read-only, and a run finds `data_dir` in its environment variable SCIENTIST_DATA_DIR. Raises a
        ScientistError (one line: what is missing and where to put it) when the data cannot be had. The default:
        no data."""
        return []

    def experiment_command(self, out_dir: str) -> list[str]:
        return ["python", self.experiment_file, "--out_dir", out_dir, "--knobs", f"{out_dir}/knobs.json"]

    def plot_command(self, run_dirs: list[str]) -> list[str]:
        return ["python", self.plot_file, *run_dirs]

    def prompt(self) -> dict[str, str]:
        """`system` and `task_description` for the LLM."""
        return self._read_json("prompt.json")

    def seed_ideas(self) -> list[Idea]:
        return [Idea.model_validate(item) for item in self._read_json("seed_ideas.json")]

    def _read_json(self, name: str) -> Any:
        path = self.files_dir() / name
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise PluginError(f"template {self.name!r} ships no {name}", f"add {path}") from None
        except json.JSONDecodeError as exc:
            raise PluginError(f"template {self.name!r}: {path} is not valid JSON ({exc})", "fix the file") from None


def load_experiment_module(path: Path, module_name: str, only_definitions: bool = False) -> ModuleType:
    """The experiment file at `path` as module `module_name` (registered in sys.modules: pydantic resolves a
    model's annotations through its module). `only_definitions` executes only its imports, classes, functions
    and assignments that call nothing: what the Knobs need, without what runs at module level (an original AI
    Scientist script parses its arguments there, which would exit the `scientist` process)."""
    tree = ast.parse(path.read_text(), str(path))
    if only_definitions:
        tree.body = [node for node in tree.body if _is_definition(node)]
    module = ModuleType(module_name)
    module.__file__ = str(path)
    sys.modules[module_name] = module
    exec(compile(tree, str(path), "exec"), module.__dict__)
    return module


def _is_definition(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import | ast.ImportFrom | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return True
    if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
        return not any(isinstance(inner, ast.Call) for inner in ast.walk(node.value))
    return False


@functools.cache
def _load_knobs(path: Path, class_name: str) -> type[BaseModel]:
    if not path.is_file():
        raise PluginError(f"the template's experiment file {path} is missing", "reinstall the template")
    module_name = f"scientist_template_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    try:
        module = load_experiment_module(path, module_name, only_definitions=True)
    except (Exception, SystemExit) as exc:  # one broken template must not stop a command that lists them all
        raise PluginError(f"the knobs of {path} cannot be read: {type(exc).__name__}: {exc}",
                          "keep the experiment file's imports and its Knobs class importable on their own "
                          "(docs/writing-a-template.md)") from None
    knobs = getattr(module, class_name, None)
    if not (isinstance(knobs, type) and issubclass(knobs, BaseModel)):
        raise PluginError(f"{path} defines no pydantic model {class_name}",
                          "declare the knobs as `class Knobs(BaseModel)` at the top of the experiment file")
    return knobs
