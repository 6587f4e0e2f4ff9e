"""Train a character-level GPT on shakespeare_char, enwik8 and text8, and measure its losses and its speed.

scientist runs it through the causality guard, in the workspace, after writing the validated knobs to the knobs
file:

    python guard.py --out_dir run_0 --knobs run_0/knobs.json

guard.py calls main() below and checks every trained model before its numbers are kept (see guard.py). On its
own, without the check:

    python experiment.py --out_dir run_0 --knobs run_0/knobs.json

Without --knobs the defaults of `Knobs` are used: the paper's nanoGPT template (a 6-layer GPT, 6 heads, width
384, context 256, dropout 0.2; shakespeare_char 5,000 iterations x 3 seeds, enwik8 and text8 100,000 iterations
x 1 seed). For every dataset and seed it trains a model from scratch, evaluates it every eval_interval
iterations on fixed batches of the train and validation splits, generates text to time inference, and writes:

    <out_dir>/final_info.json   {dataset: {"means": {metric: value}, "stderrs": {metric: value}, "n": seeds}};
                                stderrs over the seeds, only with two or more
    <out_dir>/all_results.npz   per dataset: "<dataset>.eval_iters" (evaluations,), "<dataset>.train_loss" and
                                "<dataset>.val_loss" (seeds, evaluations), "<dataset>.step_loss" (seeds,
                                iterations), "<dataset>.best_val_loss" (seeds,); read by plot.py
    <out_dir>/samples.txt       the generated text

Metrics, per dataset (mean, and standard error where there are two seeds or more):
    final_train_loss                  loss on the train split at the last evaluation (nats per character/byte)
    best_val_loss                     lowest loss on the validation split over the evaluations: the main metric
    total_train_time                  seconds in the training loop, evaluations included
    avg_inference_tokens_per_second   new tokens per second when generating inference_tokens tokens

The data are prepared by the scientist-nanogpt package before any run (download, checks, token files):
<data_dir>/<dataset>/{train,val}.bin hold one uint8 token per character (per byte for enwik8) and meta.json
the vocabulary. data_dir is the knob of that name or else the environment variable SCIENTIST_DATA_DIR, which
scientist sets for its runs. The device is chosen automatically (CUDA, then Apple's MPS, then the CPU): on CUDA
it trains in bfloat16 (float16 with loss scaling where bf16 is unsupported) and compiles the model with
torch.compile; on the CPU it trains in float32, uncompiled. The knobs device, dtype and compile override that.

Every random number comes from a generator seeded by (seed, dataset, replicate); the same knobs on the same
device give the same numbers, wall-clock times aside. Imports: numpy, torch, pydantic and the standard library.

For guard.py, keep `main(argv, on_trained)` and `GPT.forward(idx) -> logits (batch, time, vocabulary)`, and hand
every trained model to `on_trained` before its numbers are used.
"""

import argparse
import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

DATASETS = ("shakespeare_char", "enwik8", "text8")
Dataset = Literal["shakespeare_char", "enwik8", "text8"]

# v1's settings per dataset; a knob left at None takes its dataset's value from here
PER_DATASET = {
    "shakespeare_char": {"max_iters": 5000, "batch_size": 64, "learning_rate": 1e-3, "warmup_iters": 100,
                         "eval_interval": 250, "num_seeds": 3},
    "enwik8": {"max_iters": 100_000, "batch_size": 32, "learning_rate": 5e-4, "warmup_iters": 200,
               "eval_interval": 1000, "num_seeds": 1},
    "text8": {"max_iters": 100_000, "batch_size": 32, "learning_rate": 5e-4, "warmup_iters": 200,
              "eval_interval": 1000, "num_seeds": 1},
}


# Knobs marked "fixed" are the measurement itself (the data, the evaluation, the seeds, and where and how it
# runs): ideas may not change them. "quick" is the value in quick mode: a 2-layer, width-128 model on
# 64-character contexts, 800 steps of 16 sequences, one seed, one thread: about 40 CPU-seconds, and it reaches
# a validation loss of about 1.95 (the full model on a GPU: 1.47), far below the 2.5 of a model that only learnt
# which character follows which, so a bad idea still scores clearly worse.
class Knobs(BaseModel):
    """Everything an idea may change without editing code. The defaults are the paper's baseline."""

    model_config = ConfigDict(extra="forbid")

    datasets: list[Dataset] = Field(list(DATASETS), min_length=1, description="corpora to model, one model each",
                                    json_schema_extra={"fixed": True, "quick": ["shakespeare_char"]})
    # --- training
    max_iters: int | None = Field(None, ge=1, description="optimizer steps per model; None: 5,000 on "
                                                          "shakespeare_char, 100,000 on enwik8 and text8",
                                  json_schema_extra={"quick": 800})
    batch_size: int | None = Field(None, ge=1, description="sequences per optimizer step (per micro-step with "
                                                           "gradient accumulation); None: 64 on shakespeare_char, "
                                                           "32 on enwik8 and text8",
                                   json_schema_extra={"quick": 16})
    gradient_accumulation_steps: int = Field(1, ge=1, description="micro-batches whose gradients make one step")
    learning_rate: float | None = Field(None, gt=0.0, description="peak learning rate of AdamW; None: 1e-3 on "
                                                                  "shakespeare_char, 5e-4 on enwik8 and text8",
                                        json_schema_extra={"quick": 3e-3})
    lr_schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="cosine: linear warm-up, then cosine decay to min_lr_fraction * learning_rate at "
                              "max_iters; constant: warm-up, then learning_rate throughout")
    warmup_iters: int | None = Field(None, ge=0, description="steps of linear warm-up from 0 to learning_rate; "
                                                             "None: 100 on shakespeare_char, 200 on enwik8/text8",
                                     json_schema_extra={"quick": 50})
    min_lr_fraction: float = Field(0.1, ge=0.0, le=1.0, description="final learning rate of the cosine decay, as "
                                                                    "a fraction of learning_rate")
    weight_decay: float = Field(0.1, ge=0.0, description="AdamW's decoupled weight decay, on weight matrices "
                                                         "and embeddings only (not biases or LayerNorm gains)")
    beta1: float = Field(0.9, ge=0.0, lt=1.0, description="AdamW's first-moment decay")
    beta2: float = Field(0.99, ge=0.0, lt=1.0, description="AdamW's second-moment decay")
    grad_clip: float = Field(1.0, ge=0.0, description="gradients are rescaled to at most this global L2 norm; "
                                                      "0 turns clipping off")
    # --- model
    n_layer: int = Field(6, ge=1, le=48, description="transformer blocks", json_schema_extra={"quick": 2})
    n_head: int = Field(6, ge=1, description="attention heads per block; must divide n_embd",
                        json_schema_extra={"quick": 4})
    n_embd: int = Field(384, ge=8, le=4096, description="width of the residual stream",
                        json_schema_extra={"quick": 128})
    block_size: int = Field(256, ge=8, le=4096, description="context length in characters, in training and "
                                                            "generation",
                            json_schema_extra={"quick": 64})
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="dropout on embeddings, attention weights, and the "
                                                            "outputs of attention and MLP",
                           json_schema_extra={"quick": 0.0})
    bias: bool = Field(False, description="biases in the linear layers and LayerNorms")
    # --- evaluation (the measurement: fixed for ideas)
    eval_interval: int | None = Field(None, ge=1, description="steps between evaluations (and at the last step); "
                                                              "None: 250 on shakespeare_char, 1,000 on enwik8/text8",
                                      json_schema_extra={"fixed": True, "quick": 100})
    eval_iters: int = Field(200, ge=1, description="batches per split and evaluation; the same batches every time",
                            json_schema_extra={"fixed": True, "quick": 20})
    num_seeds: int | None = Field(None, ge=1, le=10, description="models trained per dataset, with seeds 0.."
                                                                 "n-1; None: 3 on shakespeare_char, 1 on the others",
                                  json_schema_extra={"fixed": True, "quick": 1})
    inference_samples: int = Field(10, ge=1, description="texts generated after training to time inference",
                                   json_schema_extra={"fixed": True, "quick": 2})
    inference_tokens: int = Field(500, ge=1, description="new tokens per generated text",
                                  json_schema_extra={"fixed": True, "quick": 100})
    temperature: float = Field(0.8, gt=0.0, description="sampling temperature of the generated texts",
                               json_schema_extra={"fixed": True})
    top_k: int = Field(200, ge=1, description="sample among the top_k most likely tokens only",
                       json_schema_extra={"fixed": True})
    # --- running (fixed)
    seed: int = Field(0, ge=0, description="seeds initialisation, batches, dropout and sampling",
                      json_schema_extra={"fixed": True})
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="auto: CUDA if available, then MPS, then the CPU",
        json_schema_extra={"fixed": True})
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="autocast precision of training; auto: bfloat16 on CUDA (float16 where unsupported), "
                            "float32 elsewhere",
        json_schema_extra={"fixed": True})
    compile: bool | None = Field(None, description="torch.compile the model for training; None: on CUDA only",
                                 json_schema_extra={"fixed": True})
    num_threads: int = Field(0, ge=0, description="CPU threads of torch; 0: torch's default (one per core)",
                             json_schema_extra={"fixed": True, "quick": 1})
    data_dir: str = Field("", description="folder of the prepared data; empty: $SCIENTIST_DATA_DIR",
                          json_schema_extra={"fixed": True})

    @model_validator(mode="after")
    def _heads_divide_the_width(self) -> "Knobs":
        if self.n_embd % self.n_head:
            raise ValueError(f"n_head ({self.n_head}) must divide n_embd ({self.n_embd})")
        return self

    def for_dataset(self, name: str, key: str):
        """The knob `key` for dataset `name`: its own value, or the dataset's v1 value when it is None."""
        value = getattr(self, key)
        return PER_DATASET[name][key] if value is None else value


class RunFailed(Exception):
    """A run that cannot give meaningful numbers; main() turns it into a one-line error on stderr."""


# ----------------------------------------------------------------------------------------------------------- data

def data_folder(knobs: Knobs) -> Path:
    folder = knobs.data_dir or os.environ.get("SCIENTIST_DATA_DIR", "")
    if not folder:
        raise RunFailed("no data folder: set the knob data_dir or the environment variable SCIENTIST_DATA_DIR "
                        "(scientist sets it for its runs)")
    return Path(folder)


def load_dataset(knobs: Knobs, name: str) -> tuple[dict[str, np.ndarray], list[int]]:
    """The train and validation tokens of a prepared dataset, and its vocabulary (the byte of each token)."""
    folder = data_folder(knobs) / name
    try:
        meta = json.loads((folder / "meta.json").read_text())
        splits = {split: np.fromfile(folder / f"{split}.bin", dtype=np.uint8) for split in ("train", "val")}
    except (OSError, ValueError) as exc:
        raise RunFailed(f"{name}: the prepared data in {folder} cannot be read ({exc}); prepare it with "
                        f"`python -m scientist_nanogpt.data {name}`") from None
    for split, tokens in splits.items():
        if len(tokens) != meta["tokens"][split]:
            raise RunFailed(f"{name}: {folder / (split + '.bin')} holds {len(tokens)} tokens, meta.json says "
                            f"{meta['tokens'][split]}; prepare the data again")
    return splits, meta["vocab"]


def batch_offsets(n_tokens: int, block_size: int, count: int, generator: torch.Generator) -> torch.Tensor:
    if n_tokens <= block_size:
        raise RunFailed(f"a split of {n_tokens} tokens is too short for block_size {block_size}")
    return torch.randint(n_tokens - block_size, (count,), generator=generator)


def make_batch(tokens: torch.Tensor, offsets: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets, (len(offsets), block_size) each, on the device of `tokens`."""
    index = offsets.to(tokens.device)[:, None] + torch.arange(block_size + 1, device=tokens.device)
    window = tokens[index].long()
    return window[:, :-1], window[:, 1:]


# ---------------------------------------------------------------------------------------------------------- model

class SelfAttention(nn.Module):
    """Multi-head attention in which position t attends to positions 0..t only."""

    def __init__(self, knobs: Knobs):
        super().__init__()
        self.n_head = knobs.n_head
        self.dropout = knobs.dropout
        self.qkv = nn.Linear(knobs.n_embd, 3 * knobs.n_embd, bias=knobs.bias)
        self.out = nn.Linear(knobs.n_embd, knobs.n_embd, bias=knobs.bias)
        self.out_dropout = nn.Dropout(knobs.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time_, width = x.shape
        heads = self.qkv(x).view(batch, time_, 3, self.n_head, width // self.n_head).permute(2, 0, 3, 1, 4)
        mixed = F.scaled_dot_product_attention(heads[0], heads[1], heads[2], is_causal=True,
                                               dropout_p=self.dropout if self.training else 0.0)
        return self.out_dropout(self.out(mixed.transpose(1, 2).reshape(batch, time_, width)))


class FeedForward(nn.Module):
    def __init__(self, knobs: Knobs):
        super().__init__()
        self.up = nn.Linear(knobs.n_embd, 4 * knobs.n_embd, bias=knobs.bias)
        self.out = nn.Linear(4 * knobs.n_embd, knobs.n_embd, bias=knobs.bias)
        self.dropout = nn.Dropout(knobs.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.out(F.gelu(self.up(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, knobs: Knobs):
        super().__init__()
        self.norm1 = nn.LayerNorm(knobs.n_embd, bias=knobs.bias)
        self.attention = SelfAttention(knobs)
        self.norm2 = nn.LayerNorm(knobs.n_embd, bias=knobs.bias)
        self.mlp = FeedForward(knobs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    """Token and position embeddings, n_layer blocks, a final LayerNorm and a head tied to the token embedding."""

    def __init__(self, knobs: Knobs, vocab_size: int):
        super().__init__()
        self.block_size = knobs.block_size
        self.token_embedding = nn.Embedding(vocab_size, knobs.n_embd)
        self.position_embedding = nn.Embedding(knobs.block_size, knobs.n_embd)
        self.dropout = nn.Dropout(knobs.dropout)
        self.blocks = nn.ModuleList(Block(knobs) for _ in range(knobs.n_layer))
        self.norm = nn.LayerNorm(knobs.n_embd, bias=knobs.bias)
        self.head = nn.Linear(knobs.n_embd, vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight  # weight tying (Press & Wolf, 2017)
        # GPT-2's initialisation: N(0, 0.02), and the layers that write into the residual stream scaled down by
        # sqrt(2 * n_layer), so the stream's variance does not grow with depth
        for name, parameter in self.named_parameters():
            if name.endswith(".bias"):
                nn.init.zeros_(parameter)
            elif parameter.dim() >= 2:
                std = 0.02 / math.sqrt(2 * knobs.n_layer) if name.endswith("out.weight") else 0.02
                nn.init.normal_(parameter, mean=0.0, std=std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits of the next token at every position: (batch, time, vocabulary)."""
        positions = torch.arange(idx.shape[1], device=idx.device)
        x = self.dropout(self.token_embedding(idx) + self.position_embedding(positions))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def count_parameters(self) -> int:
        """Parameters without the position embedding, as nanoGPT counts them (10.65M for the defaults)."""
        return sum(p.numel() for p in self.parameters()) - self.position_embedding.weight.numel()

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, new_tokens: int, temperature: float, top_k: int,
                 generator: torch.Generator) -> torch.Tensor:
        for _ in range(new_tokens):
            logits = self(idx[:, -self.block_size:])[:, -1, :].float() / temperature
            cutoff = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
            probabilities = F.softmax(logits.masked_fill(logits < cutoff, float("-inf")), dim=-1)
            next_token = torch.multinomial(probabilities.to(generator.device), 1, generator=generator)
            idx = torch.cat([idx, next_token.to(idx.device)], dim=1)
        return idx


# ------------------------------------------------------------------------------------------------------- running

def pick_device(knobs: Knobs) -> tuple[torch.device, torch.dtype, bool]:
    """The device, the autocast dtype (float32: none) and whether to compile."""
    if knobs.device == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    else:
        name = knobs.device
        available = {"cpu": True, "cuda": torch.cuda.is_available(),
                     "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
        if not available[name]:
            raise RunFailed(f"device {name!r} is not available here; set the knob device to auto")
    if knobs.dtype != "auto":
        dtype = getattr(torch, knobs.dtype)
    elif name == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    compile_ = name == "cuda" if knobs.compile is None else knobs.compile
    return torch.device(name), dtype, compile_


def learning_rate_at(step: int, peak: float, warmup: int, total: int, knobs: Knobs) -> float:
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    if knobs.lr_schedule == "constant" or total <= warmup:
        return peak
    progress = min(1.0, (step - warmup) / (total - warmup))
    floor = peak * knobs.min_lr_fraction
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - floor)


def make_optimizer(model: nn.Module, knobs: Knobs, device: torch.device) -> torch.optim.AdamW:
    matrices = [p for p in model.parameters() if p.dim() >= 2]  # weights and embeddings decay; gains, biases not
    vectors = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": matrices, "weight_decay": knobs.weight_decay}, {"params": vectors, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=0.0, betas=(knobs.beta1, knobs.beta2),
                             fused=device.type in ("cuda", "cpu"))


def seed_for(knobs: Knobs, name: str, replicate: int) -> int:
    """From the dataset's identity, not its place in the list: dropping a dataset changes nothing else."""
    return int(np.random.SeedSequence([knobs.seed, DATASETS.index(name), replicate]).generate_state(1)[0])


EVAL_SEED = 20_240_812  # the evaluation batches: the same for every run, seed and idea
CHECK_EVERY = 50  # steps between two checks that the training loss is finite


def train_one(knobs: Knobs, name: str, replicate: int, splits: dict[str, torch.Tensor], vocab: list[int],
              device: torch.device, dtype: torch.dtype, compile_: bool, on_trained: Callable | None) -> dict:
    """Train one model from scratch on one dataset; its metrics, loss curves and generated texts."""
    max_iters = knobs.for_dataset(name, "max_iters")
    batch_size = knobs.for_dataset(name, "batch_size")
    peak_lr = knobs.for_dataset(name, "learning_rate")
    warmup = knobs.for_dataset(name, "warmup_iters")
    eval_interval = knobs.for_dataset(name, "eval_interval")
    seed = seed_for(knobs, name, replicate)
    torch.manual_seed(seed)
    batches = torch.Generator().manual_seed(seed)
    eval_generator = torch.Generator().manual_seed(EVAL_SEED + DATASETS.index(name))
    eval_offsets = {split: batch_offsets(len(tokens), knobs.block_size, knobs.eval_iters * batch_size,
                                         eval_generator).view(knobs.eval_iters, batch_size)
                    for split, tokens in splits.items()}

    model = GPT(knobs, len(vocab)).to(device)
    optimizer = make_optimizer(model, knobs, device)
    trained = torch.compile(model) if compile_ else model
    autocast = (torch.autocast(device_type=device.type, dtype=dtype) if dtype != torch.float32 else nullcontext())
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    @torch.no_grad()
    def evaluate() -> dict[str, float]:
        trained.eval()
        losses = {}
        for split, tokens in splits.items():
            total = 0.0
            for offsets in eval_offsets[split]:
                x, y = make_batch(tokens, offsets, knobs.block_size)
                with autocast:
                    logits = trained(x)
                total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten()).item()
            losses[split] = total / knobs.eval_iters
        trained.train()
        return losses

    label = f"{name} seed {replicate}"
    eval_iters, train_curve, val_curve = [], [], []
    # the per-step losses stay on the device, read back every CHECK_EVERY steps: no GPU sync at every step
    step_loss = torch.zeros(max_iters, device=device)
    checked = 0
    start = time.perf_counter()
    for step in range(max_iters + 1):
        if step % eval_interval == 0 or step == max_iters:
            losses = evaluate()
            eval_iters.append(step)
            train_curve.append(losses["train"])
            val_curve.append(losses["val"])
            if not all(map(math.isfinite, losses.values())):
                raise RunFailed(f"{label}: the evaluation loss is {losses['val']} at step {step}; the model "
                                f"diverged: lower learning_rate")
            elapsed = time.perf_counter() - start
            left = f", about {elapsed / step * (max_iters - step):.0f} s left" if step else ""
            print(f"{label}: step {step}/{max_iters}  train {losses['train']:.4f}  val {losses['val']:.4f}  "
                  f"({elapsed:.0f} s{left})", flush=True)
        if step == max_iters:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, peak_lr, warmup, max_iters, knobs)
        for _ in range(knobs.gradient_accumulation_steps):
            x, y = make_batch(splits["train"], batch_offsets(len(splits["train"]), knobs.block_size, batch_size,
                                                             batches), knobs.block_size)
            with autocast:
                logits = trained(x)
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten()) / knobs.gradient_accumulation_steps
            scaler.scale(loss).backward()
            step_loss[step] += loss.detach()
        if step + 1 - checked >= CHECK_EVERY or step + 1 == max_iters:
            finite = torch.isfinite(step_loss[checked:step + 1]).cpu().numpy()
            if not finite.all():
                raise RunFailed(f"{label}: training diverged at step {checked + int(np.argmin(finite)) + 1} (loss "
                                f"{step_loss[checked + int(np.argmin(finite))].item()}); lower learning_rate (now "
                                f"{peak_lr})")
            checked = step + 1
        if knobs.grad_clip > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), knobs.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_time = time.perf_counter() - start

    model.eval()
    if on_trained is not None:  # guard.py's causality check, on a batch of real validation text
        on_trained(model, make_batch(splits["val"], eval_offsets["val"][0][:8], knobs.block_size)[0], label)

    start_token = vocab.index(ord("\n")) if ord("\n") in vocab else 0
    # sampling draws on the GPU where there is one (MPS: on the CPU, where torch's generators are complete)
    sampler = torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(seed)
    speeds, texts = [], []
    for _ in range(knobs.inference_samples):
        context = torch.full((1, 1), start_token, dtype=torch.long, device=device)
        began = time.perf_counter()
        with autocast:
            generated = model.generate(context, knobs.inference_tokens, knobs.temperature, knobs.top_k, sampler)
        if device.type == "cuda":
            torch.cuda.synchronize()
        speeds.append(knobs.inference_tokens / (time.perf_counter() - began))
        texts.append(bytes(vocab[t] for t in generated[0, 1:].tolist()).decode("utf-8", errors="replace"))

    best_val = min(val_curve)
    print(f"{label}: best val {best_val:.4f}, final train {train_curve[-1]:.4f}, {train_time:.0f} s, "
          f"{np.mean(speeds):.0f} tokens/s", flush=True)
    return {
        "metrics": {"final_train_loss": train_curve[-1], "best_val_loss": best_val, "total_train_time": train_time,
                    "avg_inference_tokens_per_second": float(np.mean(speeds))},
        "eval_iters": np.array(eval_iters), "train_loss": np.array(train_curve), "val_loss": np.array(val_curve),
        "step_loss": step_loss.cpu().numpy().astype(np.float64), "texts": texts,
    }


def mean_and_stderr(values: list[float]) -> tuple[float, float]:
    """The mean and its standard error, std (n - 1) / sqrt(n); 0 for a single value."""
    array = np.asarray(values, dtype=float)
    stderr = float(array.std(ddof=1) / math.sqrt(len(array))) if len(array) > 1 else 0.0
    return float(array.mean()), stderr


def main(argv: list[str] | None = None, on_trained: Callable | None = None) -> None:
    """Train and evaluate every dataset and seed; `on_trained(model, inputs, label)` sees each trained model."""
    parser = argparse.ArgumentParser(description="Train a character-level GPT; write final_info.json.")
    parser.add_argument("--out_dir", default="run_0", help="folder for final_info.json and all_results.npz")
    parser.add_argument("--knobs", help="JSON file of knob values; knobs it leaves out take their defaults")
    args = parser.parse_args(argv)
    knobs = Knobs.model_validate_json(Path(args.knobs).read_text()) if args.knobs else Knobs()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if knobs.num_threads:
        torch.set_num_threads(knobs.num_threads)

    try:
        device, dtype, compile_ = pick_device(knobs)
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        print(f"device {device.type}, {dtype}, {'compiled' if compile_ else 'not compiled'}, "
              f"{torch.get_num_threads()} CPU threads", flush=True)
        final_info, arrays, samples = {}, {}, []
        for name in dict.fromkeys(knobs.datasets):
            splits, vocab = load_dataset(knobs, name)
            tokens = {split: torch.from_numpy(values).to(device) for split, values in splits.items()}
            print(f"{name}: {len(splits['train']):,} train and {len(splits['val']):,} validation tokens, "
                  f"vocabulary {len(vocab)}; {GPT(knobs, len(vocab)).count_parameters() / 1e6:.2f}M parameters",
                  flush=True)
            runs = [train_one(knobs, name, replicate, tokens, vocab, device, dtype, compile_, on_trained)
                    for replicate in range(knobs.for_dataset(name, "num_seeds"))]
            means, stderrs = {}, {}
            for metric in runs[0]["metrics"]:
                means[metric], stderrs[metric] = mean_and_stderr([run["metrics"][metric] for run in runs])
            # one seed has no standard error: none is written, and n says how many seeds the means are over
            final_info[name] = {"means": means, "stderrs": stderrs if len(runs) > 1 else {}, "n": len(runs)}
            arrays[f"{name}.eval_iters"] = runs[0]["eval_iters"]
            for key in ("train_loss", "val_loss", "step_loss"):
                arrays[f"{name}.{key}"] = np.stack([run[key] for run in runs])
            arrays[f"{name}.best_val_loss"] = np.array([run["metrics"]["best_val_loss"] for run in runs])
            samples += [f"=== {name} seed {replicate} sample {number}\n{text}\n"
                        for replicate, run in enumerate(runs) for number, text in enumerate(run["texts"])]
    except RunFailed as exc:
        raise SystemExit(str(exc)) from None
    except torch.cuda.OutOfMemoryError:
        raise SystemExit("out of memory on the device: lower batch_size or block_size, or the model's size") from None

    np.savez_compressed(out_dir / "all_results.npz", **arrays)
    (out_dir / "samples.txt").write_text("".join(samples))
    # allow_nan=False: a NaN would make the file invalid JSON for every reader; better to fail here, loudly
    (out_dir / "final_info.json").write_text(json.dumps(final_info, indent=2, allow_nan=False) + "\n")


if __name__ == "__main__":
    main()
