"""Grokking: a small Transformer learns modular arithmetic and permutation composition from half of all
equations, long after it has memorised them, and we measure when (and whether) it generalises.

The exact command (the core runs it in the workspace, after writing the validated knobs to the knobs file):

    python experiment.py --out_dir run_0 --knobs run_0/knobs.json

Without --knobs the defaults of `Knobs` below are used: the setting of the paper's grokking template (Power et
al., 2022). Four tasks, each a table of every equation "x o y = z" over a finite group:

    x_div_y       z = x * y^-1 (mod 97), y = 1..96, the inverse by Fermat's little theorem
    x_minus_y     z = x - y (mod 97)
    x_plus_y      z = x + y (mod 97)
    permutation   z = x . y, the composition of two permutations of 5 elements, z(i) = x(y(i))

The model reads the four tokens [x, o, y, =] and predicts z at the last position. A seeded random half of the
equations trains it, the other half is the validation set. For every task and each of num_seeds replicates it
trains a 2-layer post-norm Transformer with AdamW (learning-rate warm-up, strong weight decay) on random
minibatches of the training half, measures the whole validation half every eval_every updates, and writes:

    <out_dir>/final_info.json   {task: {"means": {metric: value}, "stderrs": {metric: value}, "n": num_seeds}}
    <out_dir>/all_results.npz   "<task>.step" (evals,) and "<task>.train_loss", ".train_acc", ".val_loss",
                                ".val_acc" (num_seeds, evals): the curves plot.py draws

Metrics, per task, as the mean over replicates and its standard error (sample std / sqrt(num_seeds); none for a
single replicate):
    final_train_loss, final_train_acc   cross-entropy and accuracy on the whole training half, after training
    final_val_loss, final_val_acc       the same on the whole validation half
    step_val_acc_99                     the first update at which validation accuracy reached 0.99, checked
                                        every eval_every updates; `steps` if it never did (as in v1)

The training curves: train_loss and train_acc are the means over the minibatches since the previous
evaluation (as in v1), val_loss and val_acc cover the whole validation half.

Tasks and replicates train in parallel worker processes (num_workers), each on one CPU thread: for a model this
small, torch's own thread pool costs more than it brings. Every random number (split, initialisation, batches,
dropout) comes from seeds derived from (seed, task, replicate), so the same knobs give the same numbers
whatever num_workers is. A diverged run exits with status 1 and one line on stderr. Imports: numpy, torch,
pydantic and the standard library.
"""

import argparse
import itertools
import json
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

DATASETS = ("x_div_y", "x_minus_y", "x_plus_y", "permutation")
Dataset = Literal["x_div_y", "x_minus_y", "x_plus_y", "permutation"]


# Knobs marked "fixed" are the measurement itself (the tasks and their split, the evaluation cadence, the seeds,
# and how the work is spread over processes): ideas may not change them. "quick" is the value in quick mode:
# x_plus_y, the task that generalises first, with two seeds (one per core) for 800 of the 7,500 updates, about a
# minute on two idle cores. By then the model has memorised its training half (train accuracy 1.0) and
# validation accuracy is climbing (about 0.2), so both memorisation and the start of generalisation are
# measured: a learning rate 100x too small or no weight decay scores clearly worse.
class Knobs(BaseModel):
    """Everything an idea may change without editing code. The defaults are the paper's baseline."""

    model_config = ConfigDict(extra="forbid")

    # --- the tasks
    datasets: list[Dataset] = Field(list(DATASETS), min_length=1,
                                    description="tasks to learn; one model per task and replicate",
                                    json_schema_extra={"fixed": True, "quick": ["x_plus_y"]})
    prime: int = Field(97, ge=3, le=997, description="modulus p of x_div_y, x_minus_y and x_plus_y; must be prime",
                       json_schema_extra={"fixed": True})
    permutation_size: int = Field(5, ge=2, le=6, description="the permutation task composes permutations of this "
                                                              "many elements (5: the 120 elements of S5)",
                                  json_schema_extra={"fixed": True})
    train_fraction: float = Field(0.5, gt=0.0, lt=1.0, description="share of all equations in the training half; "
                                                                   "the rest is the validation half",
                                  json_schema_extra={"fixed": True})
    # --- training
    steps: int = Field(7500, ge=1, le=200_000, description="optimizer updates per model",
                       json_schema_extra={"quick": 800})
    batch_size: int = Field(512, ge=1, le=16_384, description="equations per update, drawn at random (with "
                                                              "replacement) from the training half")
    learning_rate: float = Field(1e-3, gt=0.0, le=10.0, description="peak learning rate of AdamW")
    warmup_steps: int = Field(50, ge=0, le=200_000, description="the learning rate rises linearly from 0 to "
                                                                "learning_rate over this many updates")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="after the warm-up: constant (v1), or cosine decay to 0 at the last update")
    weight_decay: float = Field(0.5, ge=0.0, le=10.0, description="AdamW's decoupled weight decay")
    adam_beta1: float = Field(0.9, ge=0.0, lt=1.0, description="AdamW's decay of the gradient average")
    adam_beta2: float = Field(0.98, ge=0.0, lt=1.0, description="AdamW's decay of the squared-gradient average")
    grad_clip: float = Field(0.0, ge=0.0, le=1000.0, description="gradients are rescaled to at most this global "
                                                                 "L2 norm; 0: no clipping (v1)")
    # --- model
    num_layers: int = Field(2, ge=1, le=8, description="Transformer blocks")
    d_model: int = Field(128, ge=8, le=1024, description="width of the token representations")
    num_heads: int = Field(4, ge=1, le=32, description="attention heads per block; must divide d_model")
    ffn_multiplier: int = Field(4, ge=1, le=16, description="the feed-forward layer is this many times d_model wide")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the attention and feed-forward outputs "
                                                            "while training; 0 in v1")
    # --- measurement and running
    eval_every: int = Field(10, ge=1, le=10_000, description="updates between two measurements of the whole "
                                                             "validation half (the resolution of step_val_acc_99)",
                            json_schema_extra={"fixed": True})
    num_seeds: int = Field(3, ge=1, le=10, description="replicates per task (split, initialisation, batches); "
                                                       "stderrs are taken over them",
                           json_schema_extra={"fixed": True, "quick": 2})
    seed: int = Field(0, ge=0, le=2**31 - 1, description="seeds every replicate's split, initialisation and batches",
                      json_schema_extra={"fixed": True})
    num_workers: int = Field(2, ge=0, le=64, description="models trained at once, in worker processes with one "
                                                         "thread each; 0: one per CPU core, 1: one after another "
                                                         "in this process",
                             json_schema_extra={"fixed": True})

    @model_validator(mode="after")
    def _consistent(self) -> "Knobs":
        if any(self.prime % divisor == 0 for divisor in range(2, math.isqrt(self.prime) + 1)):
            raise ValueError(f"prime ({self.prime}) must be a prime number, or x_div_y has no inverses")
        if self.d_model % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide d_model ({self.d_model})")
        return self


class RunFailed(Exception):
    """A run that cannot give meaningful numbers; main() turns it into a one-line error on stderr."""


# ---------------------------------------------------------------------------------------------------------- data

SEQUENCE_LENGTH = 4  # [x, o, y, =]


def make_dataset(name: str, prime: int, permutation_size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Every equation of the task exactly once, x-major: tokens (N, 4) int64, answers (N,) int64 and the number
    of group elements n. Elements are tokens 0..n-1 (and the answers' classes); "o" is token n, "=" is n+1."""
    if name == "permutation":
        # all permutations in lexicographic order; element i is the i-th of them
        perms = np.array(list(itertools.permutations(range(permutation_size))))
        n = len(perms)
        x, y = np.divmod(np.arange(n * n), n)
        composed = np.take_along_axis(perms[x], perms[y], axis=1)  # composed[e, i] = x_e(y_e(i))
        # a permutation's rank: read it as a base-k number; those numbers are sorted like the permutations
        place_values = permutation_size ** np.arange(permutation_size - 1, -1, -1)
        z = np.searchsorted(perms @ place_values, composed @ place_values)
    else:
        n = prime
        first_y = 1 if name == "x_div_y" else 0  # no division by 0
        x, y = np.divmod(np.arange(prime * (prime - first_y)), prime - first_y)
        y = y + first_y
        if name == "x_plus_y":
            z = (x + y) % prime
        elif name == "x_minus_y":
            z = (x - y) % prime
        elif name == "x_div_y":
            inverse = np.array([0] + [pow(value, prime - 2, prime) for value in range(1, prime)])
            z = x * inverse[y] % prime
        else:
            raise ValueError(f"unknown dataset {name!r}")
    tokens = np.stack([x, np.full_like(x, n), y, np.full_like(x, n + 1)], axis=1)
    return tokens.astype(np.int64), z.astype(np.int64), n


def split(num_examples: int, train_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and validation halves: a seeded shuffle, cut at train_fraction (v1's cut)."""
    order = rng.permutation(num_examples)
    num_train = int(num_examples * train_fraction)
    return order[:num_train], order[num_train:]


def job_seeds(knobs: Knobs, name: str, replicate: int) -> tuple[int, int]:
    """Seeds of a replicate's split and of its torch generator (initialisation, batches, dropout), from the task's
    identity rather than its position in the list, so dropping a task or a worker changes nothing else."""
    split_seed, torch_seed = np.random.SeedSequence([knobs.seed, DATASETS.index(name), replicate]).generate_state(2)
    return int(split_seed), int(torch_seed)


# ----------------------------------------------------------------------------------------------------------- model

class Block(nn.Module):
    """A post-norm Transformer block with causal self-attention, as in v1: x = LN(x + attention(x)), then
    x = LN(x + FFN(x))."""

    def __init__(self, knobs: Knobs):
        super().__init__()
        width, hidden = knobs.d_model, knobs.ffn_multiplier * knobs.d_model
        self.num_heads, self.dropout = knobs.num_heads, knobs.dropout
        self.qkv = nn.Linear(width, 3 * width)  # queries, keys and values of every head in one product
        self.attn_out = nn.Linear(width, width)
        self.attn_norm = nn.LayerNorm(width)
        self.ffn_in = nn.Linear(width, hidden)
        self.ffn_out = nn.Linear(hidden, width)
        self.ffn_norm = nn.LayerNorm(width)
        # the initialisation of torch's nn.MultiheadAttention, which v1 used
        nn.init.xavier_uniform_(self.qkv.weight)
        nn.init.zeros_(self.qkv.bias)
        nn.init.zeros_(self.attn_out.bias)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (batch, heads, positions, head width)

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """x: (batch, positions, d_model). With last_only, only the last position's output is computed (every
        position still serves as a key and a value): the same numbers for it, at a fraction of the cost."""
        width = x.shape[-1]
        if last_only:
            w_q, w_kv = self.qkv.weight.split([width, 2 * width])
            b_q, b_kv = self.qkv.bias.split([width, 2 * width])
            q = F.linear(x[:, -1:], w_q, b_q)
            k, v = F.linear(x, w_kv, b_kv).chunk(2, dim=-1)
            x = x[:, -1:]
            # the last position may attend to every position: no mask
            attended = F.scaled_dot_product_attention(*map(self.split_heads, (q, k, v)))
        else:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            attended = F.scaled_dot_product_attention(*map(self.split_heads, (q, k, v)), is_causal=True)
        attended = attended.transpose(1, 2).flatten(2)
        x = self.attn_norm(x + F.dropout(self.attn_out(attended), self.dropout, self.training))
        return self.ffn_norm(x + F.dropout(self.ffn_out(F.gelu(self.ffn_in(x))), self.dropout, self.training))


class Transformer(nn.Module):
    """Token and position embeddings, num_layers blocks, a final LayerNorm and a linear classifier that reads the
    last position ("="): 422,497 parameters for the arithmetic tasks with the default knobs."""

    def __init__(self, knobs: Knobs, vocab_size: int, num_classes: int):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, knobs.d_model)
        self.position_embedding = nn.Parameter(torch.randn(SEQUENCE_LENGTH, knobs.d_model))  # as nn.Embedding
        self.blocks = nn.ModuleList(Block(knobs) for _ in range(knobs.num_layers))
        self.norm = nn.LayerNorm(knobs.d_model)
        self.head = nn.Linear(knobs.d_model, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (batch, 4) -> logits (batch, num_classes)."""
        x = self.token_embedding(tokens) + self.position_embedding
        for number, block in enumerate(self.blocks, start=1):
            x = block(x, last_only=number == len(self.blocks))  # the classifier reads the last position only
        return self.head(self.norm(x[:, -1]))


# -------------------------------------------------------------------------------------------------------- training

EVAL_CHUNK = 1024  # equations per forward pass when measuring a whole half; larger chunks run slower on a CPU


@torch.inference_mode()
def evaluate(model: Transformer, tokens: torch.Tensor, answers: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over all the given equations."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for chunk_tokens, chunk_answers in zip(tokens.split(EVAL_CHUNK), answers.split(EVAL_CHUNK)):
        logits = model(chunk_tokens)
        loss_sum += F.cross_entropy(logits, chunk_answers, reduction="sum").item()
        correct += int((logits.argmax(dim=-1) == chunk_answers).sum())
    model.train()
    return loss_sum / len(answers), correct / len(answers)


def learning_rate(knobs: Knobs, step: int) -> float:
    """The learning rate of update `step` (1-based): linear warm-up, then constant or cosine decay."""
    if step <= knobs.warmup_steps:
        return knobs.learning_rate * step / knobs.warmup_steps
    if knobs.lr_schedule == "constant":
        return knobs.learning_rate
    progress = (step - knobs.warmup_steps) / max(1, knobs.steps - knobs.warmup_steps)
    return knobs.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_one(knobs: Knobs, name: str, replicate: int) -> dict:
    """Train one model on one task; its final metrics and its curves."""
    torch.set_num_threads(1)
    split_seed, torch_seed = job_seeds(knobs, name, replicate)
    torch.manual_seed(torch_seed)
    label = f"{name} seed {replicate}"
    tokens, answers, num_elements = make_dataset(name, knobs.prime, knobs.permutation_size)
    train_idx, val_idx = split(len(answers), knobs.train_fraction, np.random.default_rng(split_seed))
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise RunFailed(f"{name}: train_fraction {knobs.train_fraction} leaves an empty half of "
                        f"{len(answers)} equations")
    train_x, train_y = torch.from_numpy(tokens[train_idx]), torch.from_numpy(answers[train_idx])
    val_x, val_y = torch.from_numpy(tokens[val_idx]), torch.from_numpy(answers[val_idx])

    model = Transformer(knobs, vocab_size=num_elements + 2, num_classes=num_elements)
    optimizer = torch.optim.AdamW(model.parameters(), lr=knobs.learning_rate, weight_decay=knobs.weight_decay,
                                  betas=(knobs.adam_beta1, knobs.adam_beta2),
                                  fused=True)  # one kernel for all parameters: fewer Python round trips
    params = list(model.parameters())

    curves = {key: [] for key in ("step", "train_loss", "train_acc", "val_loss", "val_acc")}
    first_99 = None  # the first update at which validation accuracy reached 0.99
    window_loss, window_correct, window_count = 0.0, 0, 0
    start = time.perf_counter()
    for step in range(1, knobs.steps + 1):
        batch = torch.randint(len(train_y), (knobs.batch_size,))
        inputs, targets = train_x[batch], train_y[batch]
        logits = model(inputs)
        loss = F.cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if knobs.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, knobs.grad_clip, foreach=True)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(knobs, step)
        optimizer.step()

        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise RunFailed(f"{label}: training diverged at update {step} (loss {loss_value}); lower learning_rate "
                            f"(now {knobs.learning_rate})")
        window_loss += loss_value * len(targets)
        window_correct += int((logits.argmax(dim=-1) == targets).sum())
        window_count += len(targets)
        if step % knobs.eval_every == 0 or step == knobs.steps:
            val_loss, val_acc = evaluate(model, val_x, val_y)
            curves["step"].append(step)
            curves["train_loss"].append(window_loss / window_count)
            curves["train_acc"].append(window_correct / window_count)
            curves["val_loss"].append(val_loss)
            curves["val_acc"].append(val_acc)
            window_loss, window_correct, window_count = 0.0, 0, 0
            if val_acc >= 0.99 and first_99 is None:
                first_99 = step
        if step % 1000 == 0:
            print(f"{label}: update {step}/{knobs.steps}  train loss {curves['train_loss'][-1]:.4f}  "
                  f"val acc {curves['val_acc'][-1]:.3f}", flush=True)

    train_loss, train_acc = evaluate(model, train_x, train_y)
    val_loss, val_acc = curves["val_loss"][-1], curves["val_acc"][-1]  # measured after the last update
    if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
        raise RunFailed(f"{label}: the final loss is not finite; the model diverged")
    elapsed = time.perf_counter() - start
    print(f"{label}: train acc {train_acc:.3f}  val acc {val_acc:.3f}  val acc >= 0.99 "
          f"{'never' if first_99 is None else f'from update {first_99}'}  "
          f"({elapsed:.0f} s, {1000 * elapsed / knobs.steps:.0f} ms per update)", flush=True)
    metrics = {"final_train_loss": train_loss, "final_val_loss": val_loss, "final_train_acc": train_acc,
               "final_val_acc": val_acc,
               # v1's value for "never reached": the number of updates
               "step_val_acc_99": float(knobs.steps if first_99 is None else first_99)}
    return {"metrics": metrics, "curves": {key: np.array(values) for key, values in curves.items()}}


def summarise(runs: list[dict]) -> dict:
    """Means, standard errors (sample std / sqrt(n); none for one replicate, which has no spread to measure)
    and the number n of the replicates behind them."""
    values = {key: np.array([run["metrics"][key] for run in runs]) for key in runs[0]["metrics"]}
    return {
        "means": {key: float(array.mean()) for key, array in values.items()},
        "stderrs": {key: float(array.std(ddof=1) / math.sqrt(len(array)))
                    for key, array in values.items() if len(array) > 1},
        "n": len(runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Train Transformers on grokking tasks; write final_info.json.")
    parser.add_argument("--out_dir", default="run_0", help="folder for final_info.json and all_results.npz")
    parser.add_argument("--knobs", help="JSON file of knob values; knobs it leaves out take their defaults")
    args = parser.parse_args()
    knobs = Knobs.model_validate_json(Path(args.knobs).read_text()) if args.knobs else Knobs()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    names = list(dict.fromkeys(knobs.datasets))
    # the permutation task (the largest) first, so that the last jobs running side by side are the short ones
    jobs = sorted(((name, replicate) for name in names for replicate in range(knobs.num_seeds)),
                  key=lambda job: job[0] != "permutation")
    workers = min(knobs.num_workers or len(os.sched_getaffinity(0)), len(jobs))
    try:
        if workers == 1:
            results = [train_one(knobs, name, replicate) for name, replicate in jobs]
        else:
            # spawn, not fork: a fresh interpreter per worker shares no thread-pool state with this one
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(train_one, knobs, name, replicate) for name, replicate in jobs]
                try:
                    results = [future.result() for future in futures]
                except BaseException:
                    for future in futures:  # a failed job fails the run: start nothing more
                        future.cancel()
                    raise
    except RunFailed as exc:
        raise SystemExit(str(exc)) from None
    except BrokenProcessPool:
        raise SystemExit("a worker process died without a word: out of memory? (see the sandbox's limits)") from None
    by_job = dict(zip(jobs, results))

    final_info, arrays = {}, {}
    for name in names:
        runs = [by_job[name, replicate] for replicate in range(knobs.num_seeds)]
        final_info[name] = summarise(runs)
        arrays[f"{name}.step"] = runs[0]["curves"]["step"]
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            arrays[f"{name}.{key}"] = np.stack([run["curves"][key] for run in runs])
        means = final_info[name]["means"]
        print(f"{name}: final train acc {means['final_train_acc']:.3f}  val acc {means['final_val_acc']:.3f}  "
              f"val loss {means['final_val_loss']:.4f}  step_val_acc_99 {means['step_val_acc_99']:.0f}", flush=True)
    # allow_nan=False: a NaN would make the file invalid JSON for every reader; better to fail here, loudly
    (out_dir / "final_info.json").write_text(json.dumps(final_info, indent=2, allow_nan=False) + "\n")
    np.savez_compressed(out_dir / "all_results.npz", **arrays)


if __name__ == "__main__":
    main()
