"""Train a tiny numpy MLP classifier on 2-D toy datasets and record how well it learns.

The exact command (the core runs it in the workspace, after writing the validated knobs to the knobs file):

    python experiment.py --out_dir run_0 --knobs run_0/knobs.json

Without --knobs the defaults of `Knobs` below are used. For every dataset in `datasets` it trains `num_seeds`
models (replicates differ in initialisation and batch order, not in data) and writes:

    <out_dir>/final_info.json   {dataset: {"means": {metric: value}, "stderrs": {metric: value}, "n": num_seeds}}
    <out_dir>/all_results.npz   "<dataset>.train_loss" (num_seeds, steps), "<dataset>.val_accuracy"
                                (num_seeds, evals) and "eval_steps" (evals,), read by plot.py

Metrics: train_loss and val_loss (cross-entropy on the whole split after training), val_accuracy, train_time_s.
Stderrs are over the replicates, written only with two or more (a single model has no standard error). The same
knobs give the same numbers, except train_time_s (wall-clock).
Only numpy, pydantic and the standard library are imported, so this file runs on its own.
"""

import argparse
import json
import time
from pathlib import Path
from typing import Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Dataset = Literal["spirals", "xor", "circles"]


# Knobs marked "fixed" define the measurement (the data, the evaluation, the seeds): ideas may not change them.
# "quick" is the value in quick mode: two seeds (the fewest with a standard error) and a third of the steps, still
# far above chance, so quick mode can tell a bad idea from a good one.
class Knobs(BaseModel):
    """Everything an idea may change without editing code."""

    model_config = ConfigDict(extra="forbid")

    datasets: list[Dataset] = Field(["spirals", "xor", "circles"], min_length=1,
                                    description="toy datasets to train on, one model per dataset and seed",
                                    json_schema_extra={"fixed": True})
    n_samples: int = Field(1000, ge=20, description="points per dataset, split 80/20 into train and validation",
                           json_schema_extra={"fixed": True})
    noise: float = Field(0.1, ge=0.0, description="std of the Gaussian noise added to every point",
                         json_schema_extra={"fixed": True})
    hidden_size: int = Field(32, ge=1, description="units in each hidden layer")
    num_layers: int = Field(2, ge=1, description="number of hidden layers")
    activation: Literal["tanh", "relu"] = Field("tanh", description="hidden-layer nonlinearity")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="update rule")
    learning_rate: float = Field(0.01, gt=0.0, description="step size of the optimizer")
    weight_decay: float = Field(0.0, ge=0.0, description="L2 penalty on the weight matrices, added to the gradient")
    batch_size: int = Field(64, ge=1, description="training points per step, drawn with replacement")
    steps: int = Field(3000, ge=1, description="optimizer steps per model", json_schema_extra={"quick": 1000})
    eval_every: int = Field(100, ge=1, description="steps between validation-accuracy measurements",
                            json_schema_extra={"fixed": True})
    num_seeds: int = Field(3, ge=1, description="replicates per dataset; stderrs are taken over them",
                           json_schema_extra={"fixed": True, "quick": 2})
    seed: int = Field(0, ge=0, description="base seed of data, initialisation and batch order",
                      json_schema_extra={"fixed": True})


# ---------------------------------------------------------------------------------------------------------- data

def make_dataset(name: str, n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n points in roughly [-1, 1]^2 with balanced labels 0/1, shuffled."""
    y = np.arange(n) % 2
    if name == "spirals":
        # sqrt spreads the points evenly along the arm instead of crowding the centre
        t = np.sqrt(rng.uniform(0.0, 1.0, n)) * 3 * np.pi
        arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)
        x = np.where(y[:, None] == 0, arm, -arm)
    elif name == "xor":
        sign_x = rng.choice([-1.0, 1.0], n)
        sign_y = np.where(y == 0, sign_x, -sign_x)
        x = 0.5 * np.stack([sign_x, sign_y], axis=1) + rng.normal(0.0, 0.2, (n, 2))
    elif name == "circles":
        angle = rng.uniform(0.0, 2 * np.pi, n)
        radius = np.where(y == 0, 0.5, 1.0)
        x = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    else:
        raise ValueError(f"unknown dataset {name!r}")
    x = x + noise * rng.normal(0.0, 1.0, (n, 2))
    order = rng.permutation(n)
    return x[order], y[order]


# ----------------------------------------------------------------------------------------------------------- model

def init_params(sizes: list[int], activation: str, rng: np.random.Generator) -> list[np.ndarray]:
    """[W1, b1, W2, b2, ...] with variance-preserving initialisation (He for relu, LeCun for tanh)."""
    gain = 2.0 if activation == "relu" else 1.0
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params += [rng.normal(0.0, np.sqrt(gain / fan_in), (fan_in, fan_out)), np.zeros(fan_out)]
    return params


def forward(params: list[np.ndarray], x: np.ndarray, activation: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits, and the input of every layer (kept for the backward pass)."""
    inputs = [x]
    h = x
    n_layers = len(params) // 2
    for i in range(n_layers):
        z = h @ params[2 * i] + params[2 * i + 1]
        if i == n_layers - 1:
            return z, inputs
        h = np.tanh(z) if activation == "tanh" else np.maximum(z, 0.0)
        inputs.append(h)
    raise AssertionError("unreachable")


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean loss and its gradient with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    grad = np.exp(log_probs)
    grad[rows, y] -= 1.0
    return float(-log_probs[rows, y].mean()), grad / len(y)


def backward(params: list[np.ndarray], inputs: list[np.ndarray], d_logits: np.ndarray,
             activation: str) -> list[np.ndarray]:
    grads: list[np.ndarray] = [np.empty(0)] * len(params)
    d = d_logits
    for i in reversed(range(len(params) // 2)):
        h = inputs[i]
        grads[2 * i] = h.T @ d
        grads[2 * i + 1] = d.sum(axis=0)
        if i > 0:
            d = d @ params[2 * i].T
            # both derivatives are written in terms of the layer's output h, which is what we kept
            d = d * (1.0 - h * h) if activation == "tanh" else d * (h > 0.0)
    return grads


def accuracy(params: list[np.ndarray], x: np.ndarray, y: np.ndarray, activation: str) -> float:
    logits, _ = forward(params, x, activation)
    return float((logits.argmax(axis=1) == y).mean())


# -------------------------------------------------------------------------------------------------------- training

def train(knobs: Knobs, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
          rng: np.random.Generator, label: str) -> dict:
    sizes = [2] + [knobs.hidden_size] * knobs.num_layers + [2]
    params = init_params(sizes, knobs.activation, rng)
    adam_m = [np.zeros_like(p) for p in params]
    adam_v = [np.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    losses = np.empty(knobs.steps)
    val_accuracies = []
    start = time.perf_counter()
    for step in range(1, knobs.steps + 1):
        batch = rng.integers(0, len(x_train), knobs.batch_size)
        logits, inputs = forward(params, x_train[batch], knobs.activation)
        loss, d_logits = cross_entropy(logits, y_train[batch])
        if not np.isfinite(loss):
            raise SystemExit(f"{label}: training diverged at step {step} (loss {loss}); "
                             f"lower learning_rate (now {knobs.learning_rate})")
        losses[step - 1] = loss
        grads = backward(params, inputs, d_logits, knobs.activation)
        for i, (p, g) in enumerate(zip(params, grads)):
            if i % 2 == 0 and knobs.weight_decay:
                g = g + knobs.weight_decay * p
            if knobs.optimizer == "sgd":
                p -= knobs.learning_rate * g
                continue
            adam_m[i] = beta1 * adam_m[i] + (1 - beta1) * g
            adam_v[i] = beta2 * adam_v[i] + (1 - beta2) * g * g
            m_hat = adam_m[i] / (1 - beta1 ** step)
            v_hat = adam_v[i] / (1 - beta2 ** step)
            p -= knobs.learning_rate * m_hat / (np.sqrt(v_hat) + eps)
        if step % knobs.eval_every == 0 or step == knobs.steps:
            val_accuracies.append(accuracy(params, x_val, y_val, knobs.activation))
    train_time = time.perf_counter() - start
    train_loss, _ = cross_entropy(forward(params, x_train, knobs.activation)[0], y_train)
    val_loss, _ = cross_entropy(forward(params, x_val, knobs.activation)[0], y_val)
    return {
        "metrics": {"train_loss": train_loss, "val_loss": val_loss,
                    "val_accuracy": val_accuracies[-1], "train_time_s": train_time},
        "train_loss_curve": losses,
        "val_accuracy_curve": np.array(val_accuracies),
    }


def eval_steps(knobs: Knobs) -> np.ndarray:
    steps = list(range(knobs.eval_every, knobs.steps + 1, knobs.eval_every))
    if not steps or steps[-1] != knobs.steps:
        steps.append(knobs.steps)
    return np.array(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description="Train a tiny numpy MLP on 2-D toy datasets.")
    parser.add_argument("--out_dir", default="run_0", help="folder for final_info.json and all_results.npz")
    parser.add_argument("--knobs", help="JSON file of knob values; knobs it leaves out take their defaults")
    args = parser.parse_args()
    knobs = Knobs.model_validate_json(Path(args.knobs).read_text()) if args.knobs else Knobs()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    final_info: dict[str, dict] = {}
    arrays: dict[str, np.ndarray] = {"eval_steps": eval_steps(knobs)}
    for name in knobs.datasets:
        # seeds keyed by the dataset's identity, not its position, so listing fewer datasets changes nothing
        dataset_id = get_args(Dataset).index(name)
        x, y = make_dataset(name, knobs.n_samples, knobs.noise, np.random.default_rng([knobs.seed, dataset_id, 0]))
        n_train = int(0.8 * len(x))
        runs = [train(knobs, x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                      np.random.default_rng([knobs.seed, dataset_id, 1, replicate]), f"{name} replicate {replicate}")
                for replicate in range(knobs.num_seeds)]
        metrics = {key: np.array([run["metrics"][key] for run in runs]) for key in runs[0]["metrics"]}
        final_info[name] = {
            "means": {key: float(values.mean()) for key, values in metrics.items()},
            "stderrs": {key: float(values.std(ddof=1) / np.sqrt(len(values)))
                        for key, values in metrics.items() if len(values) > 1},
            "n": knobs.num_seeds,
        }
        arrays[f"{name}.train_loss"] = np.stack([run["train_loss_curve"] for run in runs])
        arrays[f"{name}.val_accuracy"] = np.stack([run["val_accuracy_curve"] for run in runs])
        means = final_info[name]["means"]
        print(f"{name}: train_loss {means['train_loss']:.4f}  val_loss {means['val_loss']:.4f}  "
              f"val_accuracy {means['val_accuracy']:.3f}  ({means['train_time_s']:.2f} s per model)", flush=True)

    # allow_nan=False: a NaN would make the file invalid JSON for every reader; better to fail here, loudly
    (out_dir / "final_info.json").write_text(json.dumps(final_info, indent=2, allow_nan=False) + "\n")
    np.savez_compressed(out_dir / "all_results.npz", **arrays)


if __name__ == "__main__":
    main()
