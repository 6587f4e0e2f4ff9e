"""The `diffusion` template: the paper's DDPM on 2-D point clouds (circle, dino, line, moons), on CPUs.

Everything the experiment does lives in `template/`, which the core copies into each run's workspace; this
module only tells the core where that folder is and how much a run may use.
"""

from __future__ import annotations

from pathlib import Path

from scientist_core import Limits, Metric, Template, hookimpl
from scientist_diffusion import __version__

TEMPLATE_DIR = Path(__file__).parent / "template"


class DiffusionTemplate(Template):
    name = "diffusion"
    description = "DDPM with an MLP denoiser on 2-D data (circle, dino, line, moons); KL of samples to data."
    version = __version__
    primary_metric = "kl_divergence"
    metrics = {
        "kl_divergence": Metric(direction="lower", unit="bits", description="KL(data || samples), a k-nearest-"
                                                                           "neighbour estimate"),
        "eval_loss": Metric(direction="lower", description="denoising loss (MSE of the predicted noise) of the EMA "
                                                           "model over the whole dataset"),
        "training_time": Metric(direction="lower", unit="s", description="seconds in the training loop",
                                timing=True),
        "inference_time": Metric(direction="lower", unit="s", description="seconds to draw the samples",
                                 timing=True),
    }
    # the full baseline (3 seeds) takes about 9 minutes on two cores (1,050 CPU-seconds); ideas may make it bigger
    # or slower
    limits = Limits(timeout_s=3600, memory_mb=8192)
    quick_limits = Limits(timeout_s=600, memory_mb=8192)

    def files_dir(self) -> Path:
        return TEMPLATE_DIR


@hookimpl
def register_templates(register) -> None:
    register(DiffusionTemplate)
