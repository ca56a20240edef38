"""A plain Python training loop tuned by tuneflow through its REST API.

The model is a linear regression fitted by mini-batch gradient descent with momentum on a
small synthetic data set (pure Python, no numpy). tuneflow suggests the learning rate,
the momentum, the batch size and the L2 penalty; each epoch reports the validation loss,
and a diverged run is recorded as a failed trial.

    python train.py                       # starts a server (TUNEFLOW_BIN or `tuneflow` on PATH)
    TUNEFLOW_URL=http://127.0.0.1:8470 python train.py   # uses a running server
"""

from __future__ import annotations

import argparse
import math
import os
import random
from pathlib import Path
from typing import Dict, List, Tuple

import tuneflow

Example = Tuple[List[float], float]
TRUE_WEIGHTS = [2.5, -1.3, 0.4]
TRUE_BIAS = 0.7


def make_data(n: int, seed: int) -> List[Example]:
    """``n`` points ``y = w·x + b + noise`` with three features."""
    rng = random.Random(seed)
    data = []
    for _ in range(n):
        x = [rng.uniform(-2, 2) for _ in TRUE_WEIGHTS]
        y = sum(w * xi for w, xi in zip(TRUE_WEIGHTS, x)) + TRUE_BIAS + rng.gauss(0, 0.3)
        data.append((x, y))
    return data


class LinearModel:
    """``y = w·x + b`` trained with mini-batch SGD, momentum and an L2 penalty."""

    def __init__(self, features: int, lr: float, momentum: float, l2: float) -> None:
        self.w = [0.0] * features
        self.b = 0.0
        self.lr, self.momentum, self.l2 = lr, momentum, l2
        self.velocity = [0.0] * (features + 1)

    def predict(self, x: List[float]) -> float:
        return sum(wi * xi for wi, xi in zip(self.w, x)) + self.b

    def loss(self, data: List[Example]) -> float:
        """Mean squared error (inf once the weights have overflowed)."""
        total = 0.0
        for x, y in data:
            error = self.predict(x) - y
            total += error * error
        return total / len(data)

    def step(self, batch: List[Example]) -> None:
        grad = [0.0] * (len(self.w) + 1)
        for x, y in batch:
            error = self.predict(x) - y
            for i, xi in enumerate(x):
                grad[i] += 2 * error * xi / len(batch)
            grad[-1] += 2 * error / len(batch)
        for i, wi in enumerate(self.w):
            grad[i] += 2 * self.l2 * wi
        params = [*self.w, self.b]
        for i, g in enumerate(grad):
            self.velocity[i] = self.momentum * self.velocity[i] - self.lr * g
            params[i] += self.velocity[i]
        self.w, self.b = params[:-1], params[-1]


def train(
    trial: tuneflow.Trial, train_set: List[Example], val_set: List[Example], epochs: int
) -> None:
    """Trains one model with the trial's parameters, reporting every epoch."""
    p = trial.params
    model = LinearModel(len(TRUE_WEIGHTS), p["lr"], p["momentum"], p["l2"])
    rng = random.Random(trial.name)
    batch_size = int(p["batch_size"])
    for epoch in range(epochs):
        order = train_set[:]
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            model.step(order[start : start + batch_size])
        val_loss = model.loss(val_set)
        if not math.isfinite(val_loss) or val_loss > 1e6:
            trial.fail(f"diverged at epoch {epoch} (validation loss {val_loss:.3g})")
            print(f"{trial.name}: diverged at epoch {epoch}")
            return
        if trial.report(epoch, loss=val_loss, train_loss=model.loss(train_set)) == "prune":
            print(f"{trial.name}: pruned at epoch {epoch}")
            return
    done = trial.complete(loss=val_loss)
    print(f"{trial.name}: loss={done['objective']:.4f} {format_params(p)}")


def format_params(params: Dict[str, object]) -> str:
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def open_client() -> tuneflow.Client:
    """The server at TUNEFLOW_URL, or a new one on a store next to this file."""
    if os.environ.get("TUNEFLOW_URL"):
        return tuneflow.connect()
    return tuneflow.serve(store_dir=Path(__file__).resolve().parent / ".tuneflow")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="custom-loop", help="experiment name")
    parser.add_argument("--trials", type=int, default=20, help="maxTrialCount")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    data = make_data(300, seed=0)
    train_set, val_set = data[:200], data[200:]
    with open_client() as tf:
        exp = tf.create_experiment(
            args.name,
            objective="minimize",
            metric="loss",
            parameters={
                "lr": tuneflow.loguniform(1e-3, 1.0),
                "momentum": tuneflow.uniform(0.0, 0.95),
                "batch_size": tuneflow.discrete([8, 16, 32, 64]),
                "l2": tuneflow.loguniform(1e-6, 1e-1),
            },
            max_trials=args.trials,
            parallel_trials=1,
            max_failed_trials=args.trials,
            seed=42,
            exist_ok=True,  # running again continues (or just reports) the same experiment
        )
        for trial in exp.trials_iter():
            train(trial, train_set, val_set, args.epochs)
        best = exp.best()
        if best is None:
            print("no trial has an objective")
        else:
            params = format_params(best["parameters"])
            print(f"best: {best['trial']} loss={best['objective']:.4f} {params}")


if __name__ == "__main__":
    main()
