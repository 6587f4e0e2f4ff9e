"""The `example` template: a tiny numpy MLP learning 2-D toy datasets, seconds per run on a CPU.

Everything the experiment does lives in `template/`, which the core copies into each run's workspace; this
module only tells the core where that folder is and how much time a run may take.
"""

from __future__ import annotations

from pathlib import Path

from scientist_core import Limits, Template, hookimpl
from scientist_example import __version__

TEMPLATE_DIR = Path(__file__).parent / "template"


class ExampleTemplate(Template):
    name = "example"
    description = "Tiny numpy MLP on 2-D toy data (spirals, XOR blobs, circles); seconds per run on a CPU."
    version = __version__
    limits = Limits(timeout_s=300)
    quick_limits = Limits(timeout_s=60)

    def files_dir(self) -> Path:
        return TEMPLATE_DIR


@hookimpl
def register_templates(register) -> None:
    register(ExampleTemplate)
