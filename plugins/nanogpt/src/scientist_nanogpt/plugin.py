"""The `nanogpt` template: the paper's character-level GPT on shakespeare_char, enwik8 and text8, CPU or CUDA.

Everything the experiment does lives in `template/`, which the core copies into each run's workspace; this module
tells the core where that folder is, what the knobs are, how much a run may use, how a run is started (through
the causality guard) and how the data are prepared before any run (`data.py`: downloads on this machine, since
runs have no network).
"""

from __future__ import annotations

from pathlib import Path

from scientist_core import Limits, Template, hookimpl
from scientist_nanogpt import __version__, data

TEMPLATE_DIR = Path(__file__).parent / "template"


class NanoGPTTemplate(Template):
    name = "nanogpt"
    description = ("Character-level GPT (6 layers, width 384) on shakespeare_char, enwik8 and text8; best val loss. "
                   "CUDA or CPU; quick mode: a 2-layer model on shakespeare_char, about a minute on a CPU.")
    version = __version__
    # a 2-layer, width-128 model on 64-character contexts, 800 steps of 16 sequences, one seed, one thread: about
    # 40 CPU-seconds, and it reaches a validation loss of about 1.95 (the full model on a GPU: 1.47), far below the
    # 2.5 of a model that only learnt which character follows which, so a bad idea still scores clearly worse
    quick_knobs = {"datasets": ["shakespeare_char"], "num_seeds": 1, "n_layer": 2, "n_head": 4, "n_embd": 128,
                   "block_size": 64, "batch_size": 16, "max_iters": 800, "learning_rate": 3e-3, "warmup_iters": 50,
                   "dropout": 0.0, "eval_interval": 100, "eval_iters": 20, "inference_samples": 2,
                   "inference_tokens": 100, "num_threads": 1}
    primary_metric = "best_val_loss"
    # the measurement itself: the data, the evaluation, the seeds, and where and how it runs
    fixed_knobs = frozenset({"datasets", "eval_interval", "eval_iters", "num_seeds", "inference_samples",
                             "inference_tokens", "temperature", "top_k", "seed", "device", "dtype", "compile",
                             "num_threads", "data_dir"})
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
        return [data.prepare(name, data_dir) for name in dict.fromkeys(self.knobs(quick=quick).datasets)]


@hookimpl
def register_templates(register) -> None:
    register(NanoGPTTemplate)
