"""The `example` template: a tiny numpy MLP learning 2-D toy datasets, seconds per run on a CPU.

Everything the experiment does lives in `template/`, which the core copies into each run's workspace; this
module only tells the core where that folder is and how much time a run may take.
"""

from __future__ import annotations

from pathlib import Path

from scientist_core import Limits, Metric, Template, hookimpl
from scientist_example import __version__

TEMPLATE_DIR = Path(__file__).parent / "template"


class ExampleTemplate(Template):
    name = "example"
    description = "Tiny numpy MLP on 2-D toy data (spirals, XOR blobs, circles); seconds per run on a CPU."
    version = __version__
    limits = Limits(timeout_s=300)
    quick_limits = Limits(timeout_s=60)
    metrics = {
        "train_loss": Metric(direction="lower", description="cross-entropy on the training split after training"),
        "val_loss": Metric(direction="lower", description="cross-entropy on the validation split"),
        "val_accuracy": Metric(direction="higher", description="fraction of validation points classified right"),
        "train_time_s": Metric(direction="lower", unit="s", description="wall-clock training time per model",
                               timing=True),
    }

    def files_dir(self) -> Path:
        return TEMPLATE_DIR


@hookimpl
def register_templates(register) -> None:
    register(ExampleTemplate)
