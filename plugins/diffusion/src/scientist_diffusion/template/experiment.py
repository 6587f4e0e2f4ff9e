"""Train a denoising diffusion model (DDPM) on four 2-D point clouds and measure how close its samples come.

The exact command (the core runs it in the workspace, after writing the validated knobs to the knobs file):

    python experiment.py --out_dir run_0 --knobs run_0/knobs.json

Without --knobs the defaults of `Knobs` below are used: the setting of the paper's 2-D diffusion template. For
every dataset in `datasets` it trains an MLP denoiser (sinusoidal embeddings of the time step and of both
coordinates, residual blocks) with the DDPM noise-prediction loss, keeps an exponential moving average (EMA)
of its weights, samples from the EMA model, once per seed (num_seeds replicates), and writes:

    <out_dir>/final_info.json   {dataset: {"means": {metric: value}, "stderrs": {metric: value}, "n": num_seeds}}
    <out_dir>/all_results.npz   "<dataset>.train_loss" (steps,) and "<dataset>.samples" (num_samples, 2) of the
                                first replicate, read by plot.py

Metrics, per dataset, as the mean over the replicates and its standard error (sample std / sqrt(num_seeds); none
for a single replicate):
    training_time    seconds spent in the training loop
    eval_loss        the denoising loss (MSE of the predicted noise) of the EMA model over the whole dataset
    inference_time   seconds to draw num_samples samples through all num_timesteps reverse steps
    kl_divergence    KL(data || samples) in bits, a k-nearest-neighbour estimate: lower is better

Datasets and replicates train in parallel worker processes (num_workers), each on one CPU thread: for a model
this small, torch's own thread pool costs more than it brings. Every random number comes from a generator seeded
by (seed + replicate, dataset), so the same knobs give the same numbers, wall-clock times aside, whatever
num_workers is, and replicate r of seed 0 is the single run of seed r.
The points of each dataset are drawn once with a fixed generator, as in the paper's template, so all runs
share them. Imports: numpy, scipy, torch, pydantic and the standard library; the dino points are read from
the CSV file the installed package data-morph-ai ships (nothing is downloaded).
"""

import argparse
import copy
import importlib.util
import json
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import repeat
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.spatial import cKDTree
from torch import nn

DATASETS = ("circle", "dino", "line", "moons")
Dataset = Literal["circle", "dino", "line", "moons"]


# Knobs marked "fixed" are the measurement itself (the data, the KL estimator, the seeds, and how the work is
# spread over processes): ideas may not change them. "quick" is the value in quick mode: two seeds (the fewest
# with a standard error), each with a tenth of the steps and a fifth of the samples, 80 CPU-seconds (about 40 s on
# two idle cores) in all, and models that have learnt the coarse shape of each dataset, so a bad idea still scores
# clearly worse than the baseline.
class Knobs(BaseModel):
    """Everything an idea may change without editing code. The defaults are the paper's baseline."""

    model_config = ConfigDict(extra="forbid")

    datasets: list[Dataset] = Field(list(DATASETS), min_length=1,
                                    description="2-D datasets to model, one model each",
                                    json_schema_extra={"fixed": True})
    dataset_size: int = Field(100_000, ge=1_000, description="points drawn from each dataset",
                              json_schema_extra={"fixed": True})
    # --- training
    steps: int = Field(10_000, ge=1, description="optimizer steps per dataset and seed",
                       json_schema_extra={"quick": 1000})
    batch_size: int = Field(256, ge=1, description="points per step; each epoch visits every point once")
    learning_rate: float = Field(3e-4, gt=0.0, description="peak learning rate of AdamW")
    lr_schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="cosine: anneal from learning_rate to 0 over the steps; constant: keep it")
    weight_decay: float = Field(0.01, ge=0.0, description="AdamW's decoupled weight decay")
    grad_clip: float = Field(0.5, gt=0.0, description="gradients are rescaled to at most this global L2 norm")
    ema_beta: float = Field(0.995, ge=0.0, lt=1.0, description="decay of the exponential moving average of weights")
    ema_every: int = Field(10, ge=1, description="steps between two EMA updates")
    ema_start: int = Field(100, ge=0, description="until this step the EMA copies the weights; then it warms up "
                                                  "with decay min(ema_beta, 1 - (step - ema_start)^(-2/3))")
    # --- model
    hidden_size: int = Field(256, ge=1, description="width of the MLP denoiser")
    hidden_layers: int = Field(3, ge=0, description="residual blocks of the MLP denoiser")
    embedding_dim: int = Field(128, ge=4, multiple_of=2,
                               description="size of each sinusoidal embedding (time step, x, y)")
    input_scale: float = Field(25.0, gt=0.0, description="coordinates are multiplied by this before their "
                                                         "sinusoidal embedding: higher resolves finer detail")
    # --- diffusion
    num_timesteps: int = Field(100, ge=2, description="diffusion steps T, in training and sampling")
    beta_schedule: Literal["linear", "quadratic"] = Field(
        "linear", description="noise variances from beta_start to beta_end: linear, or linear in sqrt(beta)")
    beta_start: float = Field(1e-4, gt=0.0, lt=1.0, description="noise variance of the first diffusion step")
    beta_end: float = Field(0.02, gt=0.0, lt=1.0, description="noise variance of the last diffusion step")
    # --- evaluation
    num_samples: int = Field(10_000, ge=10, description="samples drawn after training, for the KL and the plot",
                             json_schema_extra={"fixed": True, "quick": 2000})
    eval_batch_size: int = Field(10_000, ge=1, description="points per forward pass when computing eval_loss",
                                 json_schema_extra={"fixed": True})
    kl_neighbours: int = Field(5, ge=1, description="k of the k-nearest-neighbour KL estimator",
                               json_schema_extra={"fixed": True})
    # --- running
    num_seeds: int = Field(3, ge=1, le=10, description="replicates per dataset (initialisation, batches, noise, "
                                                       "sampling); stderrs are taken over them",
                           json_schema_extra={"fixed": True, "quick": 2})
    seed: int = Field(0, ge=0, description="seeds initialisation, batch order, noise and sampling; replicate r uses "
                                           "seed + r", json_schema_extra={"fixed": True})
    num_workers: int = Field(0, ge=0, description="models (dataset and seed) trained at once, in worker processes "
                                                  "with one thread each; 0: one per CPU core, 1: one after another "
                                                  "in this process", json_schema_extra={"fixed": True})

    @model_validator(mode="after")
    def _enough_samples_for_the_kl(self) -> "Knobs":
        if self.kl_neighbours >= self.num_samples:
            raise ValueError(f"kl_neighbours ({self.kl_neighbours}) must be below num_samples ({self.num_samples})")
        return self


# ---------------------------------------------------------------------------------------------------------- data

DATA_SEED = 42  # the datasets are fixed, as in the paper's template; `seed` varies everything else


class RunFailed(Exception):
    """A run that cannot give meaningful numbers; main() turns it into a one-line error on stderr."""


def dino_points() -> np.ndarray:
    """The 142 (x, y) points of the Datasaurus dino, as shipped by data-morph-ai (MIT licence)."""
    # located without importing data_morph, whose __init__ pulls in pandas and matplotlib
    spec = importlib.util.find_spec("data_morph")
    if spec is None or not spec.submodule_search_locations:
        raise RunFailed("the dino dataset needs the package data-morph-ai: pip install data-morph-ai")
    csv = Path(spec.submodule_search_locations[0]) / "data" / "starter_shapes" / "dino.csv"
    return np.loadtxt(csv, delimiter=",", skiprows=1)


def make_dataset(name: str, n: int) -> np.ndarray:
    """n points of the named 2-D distribution, float32, roughly within [-4, 4]^2."""
    rng = np.random.default_rng(DATA_SEED)
    if name == "circle":
        # points of a coarse 5x5 grid pushed onto the unit circle (the grid's centre stays at the origin),
        # then jittered: a dotted circle with a dot in the middle
        grid = np.round(rng.uniform(-0.5, 0.5, (2, n)).T / 2, 1) * 2  # all x first, then all y, as v1 drew them
        points = grid / (np.linalg.norm(grid, axis=1, keepdims=True) + 1e-10)
        angle = rng.uniform(0.0, 2 * np.pi, n)
        radius = rng.uniform(0.0, 0.03, n)
        points += radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        points *= 3
    elif name == "dino":
        dino = dino_points()
        points = dino[rng.integers(0, len(dino), n)] + 0.15 * rng.normal(size=(2, n)).T
        points = (points / [54.0, 48.0] - 1) * 4
    elif name == "line":
        points = np.stack([rng.uniform(-0.5, 0.5, n), rng.uniform(-1.0, 1.0, n)], axis=1) * 4
    elif name == "moons":
        # two interleaved half circles with Gaussian noise, stretched as in the paper's template
        outer, inner = n // 2, n - n // 2
        a, b = np.linspace(0, np.pi, outer), np.linspace(0, np.pi, inner)
        points = np.concatenate([np.stack([np.cos(a), np.sin(a)], axis=1),
                                 np.stack([1 - np.cos(b), 0.5 - np.sin(b)], axis=1)])
        points = points + 0.03 * rng.normal(size=(n, 2))
        points = (points + 0.3) * [2.0, 3.0] - 1
    else:
        raise ValueError(f"unknown dataset {name!r}")
    return points.astype(np.float32)


# ----------------------------------------------------------------------------------------------------------- model

class SinusoidalEmbedding(nn.Module):
    """sin and cos of scale * value at `dim // 2` frequencies spaced geometrically from 1 to 1/10000."""

    def __init__(self, dim: int, scale: float = 1.0):
        super().__init__()
        half = dim // 2
        self.register_buffer("frequencies", scale * torch.exp(-math.log(10000.0) * torch.arange(half) / (half - 1)))

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        angles = value.float().unsqueeze(-1) * self.frequencies
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear(F.relu(x))


class MLPDenoiser(nn.Module):
    """Predicts the noise in a noisy point x_t, given x_t and t."""

    def __init__(self, knobs: Knobs):
        super().__init__()
        # sinusoidal embeddings of the raw coordinates let a small MLP draw sharp, high-frequency shapes
        self.embed_x = SinusoidalEmbedding(knobs.embedding_dim, knobs.input_scale)
        self.embed_y = SinusoidalEmbedding(knobs.embedding_dim, knobs.input_scale)
        self.embed_t = SinusoidalEmbedding(knobs.embedding_dim)
        self.network = nn.Sequential(
            nn.Linear(3 * knobs.embedding_dim, knobs.hidden_size),
            *[ResidualBlock(knobs.hidden_size) for _ in range(knobs.hidden_layers)],
            nn.ReLU(),
            nn.Linear(knobs.hidden_size, 2),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        features = torch.cat([self.embed_x(x[:, 0]), self.embed_y(x[:, 1]), self.embed_t(t)], dim=-1)
        return self.network(features)


class NoiseSchedule:
    """DDPM's forward process q(x_t | x_0) and its reverse step (Ho et al., 2020), for t = 0 .. T-1."""

    def __init__(self, knobs: Knobs):
        T = knobs.num_timesteps
        if knobs.beta_schedule == "linear":
            betas = torch.linspace(knobs.beta_start, knobs.beta_end, T)
        else:
            betas = torch.linspace(knobs.beta_start ** 0.5, knobs.beta_end ** 0.5, T) ** 2
        alphas = 1.0 - betas
        alpha_bar = torch.cumprod(alphas, dim=0)
        alpha_bar_prev = torch.cat([torch.ones(1), alpha_bar[:-1]])
        self.num_timesteps = T
        self.signal = alpha_bar.sqrt()                      # x_t = signal * x_0 + noise_level * noise
        self.noise_level = (1.0 - alpha_bar).sqrt()
        self.x0_from_xt = (1.0 / alpha_bar).sqrt()          # x_0 = x0_from_xt * x_t - x0_from_noise * noise
        self.x0_from_noise = (1.0 / alpha_bar - 1.0).sqrt()
        # mean of q(x_{t-1} | x_t, x_0) = mean_x0 * x_0 + mean_xt * x_t, and its standard deviation
        self.mean_x0 = betas * alpha_bar_prev.sqrt() / (1.0 - alpha_bar)
        self.mean_xt = (1.0 - alpha_bar_prev) * alphas.sqrt() / (1.0 - alpha_bar)
        self.posterior_std = (betas * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)).clamp(min=1e-20).sqrt()

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.signal[t, None] * x0 + self.noise_level[t, None] * noise

    def reverse_step(self, xt: torch.Tensor, predicted_noise: torch.Tensor, t: int) -> torch.Tensor:
        """One draw of x_{t-1} given x_t, with x_0 estimated from the predicted noise."""
        x0 = self.x0_from_xt[t] * xt - self.x0_from_noise[t] * predicted_noise
        mean = self.mean_x0[t] * x0 + self.mean_xt[t] * xt
        if t == 0:
            return mean
        return mean + self.posterior_std[t] * torch.randn_like(xt)


# -------------------------------------------------------------------------------------------------------- metrics

def kl_divergence(real: np.ndarray, generated: np.ndarray, k: int) -> float:
    """KL(real || generated) in bits from k-th-neighbour distances in the max-norm (Wang, Kulkarni & Verdu, 2009).

    For each real point: rho = distance to its k-th nearest other real point, nu = distance to its k-th
    nearest generated point; KL ~ d * mean(log nu - log rho) + log(m / (n - 1)).
    """
    n, d = real.shape
    m = len(generated)
    rho = cKDTree(real).query(real, k=k + 1, p=np.inf)[0][:, k]  # neighbour 0 is the point itself
    nu = cKDTree(generated).query(real, k=k, p=np.inf)[0]
    nu = nu[:, k - 1] if k > 1 else nu
    return float((d * np.mean(np.log(nu) - np.log(rho)) + np.log(m / (n - 1))) / np.log(2))


# -------------------------------------------------------------------------------------------------------- training

def train_and_evaluate(knobs: Knobs, name: str, replicate: int = 0) -> dict:
    """Train one model on one dataset with one seed; its metrics, per-step training losses and samples."""
    torch.set_num_threads(1)
    # seeded by the dataset's identity, not its position in the list, so dropping a dataset changes nothing else
    seed = np.random.SeedSequence([knobs.seed + replicate, DATASETS.index(name)]).generate_state(1)[0]
    torch.manual_seed(int(seed))
    data = torch.from_numpy(make_dataset(name, knobs.dataset_size))
    schedule = NoiseSchedule(knobs)
    model = MLPDenoiser(knobs)
    ema_model = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=knobs.learning_rate, weight_decay=knobs.weight_decay,
                                  fused=True)  # one kernel for all parameters: fewer Python round trips
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=knobs.steps)
                 if knobs.lr_schedule == "cosine" else None)
    params, ema_params = list(model.parameters()), list(ema_model.parameters())

    losses = np.empty(knobs.steps)
    order, position = torch.randperm(len(data)), 0
    start = time.perf_counter()
    for step in range(1, knobs.steps + 1):
        if position >= len(data):  # a new epoch, in a new order
            order, position = torch.randperm(len(data)), 0
        x0 = data[order[position:position + knobs.batch_size]]
        position += knobs.batch_size
        noise = torch.randn_like(x0)
        t = torch.randint(0, schedule.num_timesteps, (len(x0),))
        loss = F.mse_loss(model(schedule.add_noise(x0, noise, t), t), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, knobs.grad_clip, foreach=True)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses[step - 1] = loss.item()
        if not math.isfinite(losses[step - 1]):
            raise RunFailed(f"{name}: training diverged at step {step} (loss {losses[step - 1]}); "
                             f"lower learning_rate (now {knobs.learning_rate})")
        if step % knobs.ema_every == 0:
            # ema <- decay * ema + (1 - decay) * weights, with a decay that grows from 0 towards ema_beta
            warmup = 1 - (step - knobs.ema_start) ** (-2 / 3) if step > knobs.ema_start else 0.0
            decay = min(knobs.ema_beta, warmup)
            with torch.no_grad():
                for ema_param, param in zip(ema_params, params):
                    ema_param.lerp_(param, 1.0 - decay)
        if step % 500 == 0:
            print(f"{name}: step {step}/{knobs.steps}  loss {losses[step - 1]:.4f}", flush=True)
    training_time = time.perf_counter() - start
    if knobs.steps < knobs.ema_every:
        ema_model.load_state_dict(model.state_dict())  # the average was never updated: use the weights themselves

    with torch.inference_mode():
        squared_error = 0.0
        for batch in data.split(knobs.eval_batch_size):
            noise = torch.randn_like(batch)
            t = torch.randint(0, schedule.num_timesteps, (len(batch),))
            squared_error += F.mse_loss(ema_model(schedule.add_noise(batch, noise, t), t), noise,
                                        reduction="sum").item()
        eval_loss = squared_error / data.numel()

        start = time.perf_counter()
        sample = torch.randn(knobs.num_samples, 2)
        for t in reversed(range(schedule.num_timesteps)):
            predicted_noise = ema_model(sample, torch.full((knobs.num_samples,), t))
            sample = schedule.reverse_step(sample, predicted_noise, t)
        inference_time = time.perf_counter() - start
    samples = sample.numpy()
    if not np.isfinite(samples).all():
        raise RunFailed(f"{name}: sampling produced non-finite points; the model diverged")

    metrics = {
        "training_time": training_time,
        "eval_loss": eval_loss,
        "inference_time": inference_time,
        "kl_divergence": kl_divergence(data.numpy(), samples, knobs.kl_neighbours),
    }
    print(f"{name}: eval_loss {eval_loss:.4f}  KL {metrics['kl_divergence']:.3f}  "
          f"({training_time:.1f} s training, {inference_time:.1f} s sampling)", flush=True)
    return {"metrics": metrics, "train_loss": losses, "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description="Train a DDPM on 2-D datasets; write final_info.json.")
    parser.add_argument("--out_dir", default="run_0", help="folder for final_info.json and all_results.npz")
    parser.add_argument("--knobs", help="JSON file of knob values; knobs it leaves out take their defaults")
    args = parser.parse_args()
    knobs = Knobs.model_validate_json(Path(args.knobs).read_text()) if args.knobs else Knobs()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    names = list(dict.fromkeys(knobs.datasets))
    jobs = [(name, replicate) for replicate in range(knobs.num_seeds) for name in names]
    workers = min(knobs.num_workers or len(os.sched_getaffinity(0)), len(jobs))
    try:
        if workers == 1:
            done = [train_and_evaluate(knobs, name, replicate) for name, replicate in jobs]
        else:
            # spawn, not fork: a fresh interpreter per worker shares no thread-pool state with this one
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                done = list(pool.map(train_and_evaluate, repeat(knobs), *zip(*jobs)))
    except RunFailed as exc:
        raise SystemExit(str(exc)) from None
    except BrokenProcessPool:
        raise SystemExit("a worker process died without a word: out of memory? (see the sandbox's limits)") from None

    by_job = dict(zip(jobs, done))
    final_info, arrays = {}, {}
    for name in names:
        runs = [by_job[name, replicate] for replicate in range(knobs.num_seeds)]
        values = {key: np.array([run["metrics"][key] for run in runs]) for key in runs[0]["metrics"]}
        final_info[name] = {
            "means": {key: float(array.mean()) for key, array in values.items()},
            # one replicate has no spread to measure: no standard error is written for it
            "stderrs": {key: float(array.std(ddof=1) / math.sqrt(len(array)))
                        for key, array in values.items() if len(array) > 1},
            "n": len(runs),
        }
        arrays[f"{name}.train_loss"] = runs[0]["train_loss"]
        arrays[f"{name}.samples"] = runs[0]["samples"]
    # allow_nan=False: a NaN would make the file invalid JSON for every reader; better to fail here, loudly
    (out_dir / "final_info.json").write_text(json.dumps(final_info, indent=2, allow_nan=False) + "\n")
    np.savez_compressed(out_dir / "all_results.npz", **arrays)


if __name__ == "__main__":
    main()
