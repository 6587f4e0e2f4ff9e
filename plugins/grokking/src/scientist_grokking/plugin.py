"""The `grokking` template: the paper's small Transformer on modular arithmetic and permutations, on CPUs.

Everything the experiment does lives in `template/`, which the core copies into each run's workspace; this
module only tells the core where that folder is and how much a run may use.
"""

from __future__ import annotations

from pathlib import Path

from scientist_core import Limits, Metric, Template, hookimpl
from scientist_grokking import __version__

TEMPLATE_DIR = Path(__file__).parent / "template"


class GrokkingTemplate(Template):
    name = "grokking"
    description = ("2-layer Transformer on x/y, x-y, x+y mod 97 and S5 composition; when validation accuracy "
                   "catches up with training (grokking).")
    version = __version__
    primary_metric = "final_val_acc"
    metrics = {
        "final_train_loss": Metric(direction="lower", description="cross-entropy on the training half after training"),
        "final_val_loss": Metric(direction="lower", description="cross-entropy on the validation half after training"),
        "final_train_acc": Metric(direction="higher", description="accuracy on the training half after training"),
        "final_val_acc": Metric(direction="higher", description="accuracy on the validation half after training"),
        "step_val_acc_99": Metric(direction="lower", unit="updates",
                                  description="first update with validation accuracy 0.99 (grokking); the number "
                                              "of updates if never"),
    }
    # the full baseline (12 models of 7,500 updates) takes about an hour on two idle cores; ideas may make it
    # bigger or slower, and the machine may be shared
    limits = Limits(timeout_s=4 * 3600, memory_mb=8192)
    quick_limits = Limits(timeout_s=600, memory_mb=8192)

    def files_dir(self) -> Path:
        return TEMPLATE_DIR


@hookimpl
def register_templates(register) -> None:
    register(GrokkingTemplate)
