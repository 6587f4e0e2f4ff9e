"""The `nanogpt` template: the paper's character-level GPT on shakespeare_char, enwik8 and text8, CPU or CUDA.

Everything the experiment does lives in `template/`, which the core copies into each run's workspace; this module
tells the core where that folder is, how much a run may use, how a run is started (through the causality guard)
and how the data are prepared before any run (`data.py`: downloads on this machine, since runs have no network).
"""

from __future__ import annotations

from pathlib import Path

from scientist_core import Limits, Metric, Template, hookimpl
from scientist_nanogpt import __version__

TEMPLATE_DIR = Path(__file__).parent / "template"


class NanoGPTTemplate(Template):
    name = "nanogpt"
    description = ("Character-level GPT (6 layers, width 384) on shakespeare_char, enwik8 and text8; best val loss. "
                   "CUDA or CPU; quick mode: a 2-layer model on shakespeare_char, about a minute on a CPU.")
    version = __version__
    primary_metric = "best_val_loss"
    metrics = {
        "final_train_loss": Metric(direction="lower", unit="nats", description="loss on the train split at the last "
                                                                                "evaluation, per character or byte"),
        "best_val_loss": Metric(direction="lower", unit="nats", description="lowest validation loss over the "
                                                                            "evaluations, per character or byte"),
        "total_train_time": Metric(direction="lower", unit="s", description="seconds in the training loop",
                                   timing=True),
        "avg_inference_tokens_per_second": Metric(direction="higher", unit="tokens/s", timing=True,
                                                  description="new tokens per second when generating text"),
    }
    # the full baseline is 5,000 x 3 + 2 x 100,000 steps of a 10.65M-parameter model: under an hour on a recent
    # GPU, weeks on a CPU. torch.compile starts worker processes, hence the larger process cap
    limits = Limits(timeout_s=12 * 3600, memory_mb=16384, procs=1024)
    quick_limits = Limits(timeout_s=900, memory_mb=8192, procs=1024)

    def files_dir(self) -> Path:
        return TEMPLATE_DIR

    def experiment_command(self, out_dir: str) -> list[str]:
        """guard.py runs experiment.py and checks that every trained model is causal (see guard.py)."""
        return ["python", "guard.py", "--out_dir", out_dir, "--knobs", f"{out_dir}/knobs.json"]

    def prepare_data(self, data_dir: Path, quick: bool) -> list[Path]:
        """Download (once), check and tokenize the datasets of the mode under `data_dir`; their folders."""
        from scientist_nanogpt import data  # numpy: imported when data are prepared, not when plugins load

        return [data.prepare(name, data_dir) for name in dict.fromkeys(self.knobs(quick=quick).datasets)]


@hookimpl
def register_templates(register) -> None:
    register(NanoGPTTemplate)
