"""The `example` template: a tiny numpy MLP learning 2-D toy datasets, seconds per run on a CPU.

Everything the experiment does lives in `template/`, which the core copies into each run's workspace; this
module only tells the core where that folder is, what the knobs are, and how much time a run may take.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path

from pydantic import BaseModel

from scientist_core import Limits, Template, hookimpl
from scientist_example import __version__

TEMPLATE_DIR = Path(__file__).parent / "template"


class ExampleTemplate(Template):
    name = "example"
    description = "Tiny numpy MLP on 2-D toy data (spirals, XOR blobs, circles); seconds per run on a CPU."
    version = __version__
    # one seed and a third of the steps: still far above chance, so quick mode can tell a bad idea from a good one
    quick_knobs = {"steps": 1000, "num_seeds": 1}
    limits = Limits(timeout_s=300)
    quick_limits = Limits(timeout_s=60)

    def files_dir(self) -> Path:
        return TEMPLATE_DIR

    def knobs_model(self) -> type[BaseModel]:
        return _knobs_from_experiment_file()


@cache
def _knobs_from_experiment_file() -> type[BaseModel]:
    """`Knobs` from template/experiment.py, loaded by path: the script must stay standalone in a workspace."""
    path = TEMPLATE_DIR / "experiment.py"
    spec = importlib.util.spec_from_file_location("scientist_example._experiment", path)
    module = importlib.util.module_from_spec(spec)
    # registered so pydantic (and pickle) can find the model's module by name
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.Knobs


@hookimpl
def register_templates(register) -> None:
    register(ExampleTemplate)
