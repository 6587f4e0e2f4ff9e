"""The `grokking` template: the paper's small Transformer on modular arithmetic and permutations, on CPUs.

Everything the experiment does lives in `template/`, which the core copies into each run's workspace; this
module only tells the core where that folder is, what the knobs are, and how much a run may use.
"""

from __future__ import annotations

from pathlib import Path

from scientist_core import Limits, Template, hookimpl
from scientist_grokking import __version__

TEMPLATE_DIR = Path(__file__).parent / "template"


class GrokkingTemplate(Template):
    name = "grokking"
    description = ("2-layer Transformer on x/y, x-y, x+y mod 97 and S5 composition; when validation accuracy "
                   "catches up with training (grokking).")
    version = __version__
    # x_plus_y, the task that generalises first, with two seeds (one per core) for 800 of the 7,500 updates:
    # about a minute on two idle cores. By then the model has memorised its training half (train accuracy 1.0)
    # and validation accuracy is climbing (about 0.2), so both memorisation and the start of generalisation
    # are measured: a learning rate 100x too small or no weight decay scores clearly worse.
    quick_knobs = {"datasets": ["x_plus_y"], "num_seeds": 2, "steps": 800}
    primary_metric = "final_val_acc"
    # the measurement itself: the tasks and their split, the evaluation cadence, the seeds, and how the work
    # is spread over processes
    fixed_knobs = frozenset({"datasets", "prime", "permutation_size", "train_fraction", "eval_every", "num_seeds",
                             "seed", "num_workers"})
    # the full baseline (12 models of 7,500 updates) takes about an hour on two idle cores; ideas may make it
    # bigger or slower, and the machine may be shared
    limits = Limits(timeout_s=4 * 3600, memory_mb=8192)
    quick_limits = Limits(timeout_s=600, memory_mb=8192)

    def files_dir(self) -> Path:
        return TEMPLATE_DIR


@hookimpl
def register_templates(register) -> None:
    register(GrokkingTemplate)
