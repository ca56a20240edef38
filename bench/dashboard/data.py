"""The synthetic experiment both dashboards draw: its search space and each trial's outcome.

One experiment per size: N trials x 20 steps of one metric, `loss` (minimized), over five
parameters: `lr` (double, log scale), `dropout` (double), `layers` (int), `units` (int) and
`optimizer` (categorical). tuneflow's `random` algorithm (seeded with `random_state`) picks the
parameters; everything else about a trial is a pure function of (size seed, trial index,
parameters), drawn here with a seeded `random.Random`, so the same trials come out on every
machine and every rerun:

- state: ~85 % Succeeded (20 steps), ~10 % EarlyStopped (3..15 steps, then pruned), ~5 %
  Failed (1..19 steps, then failed with a message);
- loss(step) = floor(params) + (start - floor) * exp(-rate * step) + noise: decreasing with the
  step, noisy, with a floor that depends on every parameter (most on `lr`, then `optimizer`,
  `layers`, `dropout`; `units` barely), so that parameter importance has something to find.

Optuna's names for the same states: Succeeded -> COMPLETE, EarlyStopped -> PRUNED,
Failed -> FAIL.
"""

from __future__ import annotations

import math
import random

STEPS = 20
METRIC = "loss"
SEED = 20261205  # the size is added to it: one independent experiment per size

PARAMETERS = [
    {"name": "lr", "parameterType": "double",
     "feasibleSpace": {"min": "1e-5", "max": "1e-1", "distribution": "logUniform"}},
    {"name": "dropout", "parameterType": "double",
     "feasibleSpace": {"min": "0.0", "max": "0.5"}},
    {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "8"}},
    {"name": "units", "parameterType": "int", "feasibleSpace": {"min": "16", "max": "512"}},
    {"name": "optimizer", "parameterType": "categorical",
     "feasibleSpace": {"list": ["adam", "sgd", "rmsprop", "adagrad"]}},
]

OPTIMIZER_PENALTY = {"adam": 0.0, "rmsprop": 0.03, "sgd": 0.08, "adagrad": 0.12}


def experiment_name(size: int) -> str:
    return f"dash-{size}"


def experiment_doc(size: int) -> dict:
    """The client-driven tuneflow experiment for `size` trials (no trialTemplate)."""
    return {
        "apiVersion": "tuneflow.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": experiment_name(size)},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": METRIC},
            "algorithm": {"algorithmName": "random",
                          "algorithmSettings": [{"name": "random_state",
                                                 "value": str(SEED + size)}]},
            "maxTrialCount": size,
            "parallelTrialCount": min(size, 1000),
            "maxFailedTrialCount": size,
            "trialLeaseSeconds": 86400,
            "parameters": PARAMETERS,
        },
    }


def optuna_distributions() -> dict:
    """The same search space as Optuna distributions (imported lazily: seeding tuneflow
    does not need Optuna)."""
    from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                      IntDistribution)
    return {
        "lr": FloatDistribution(1e-5, 1e-1, log=True),
        "dropout": FloatDistribution(0.0, 0.5),
        "layers": IntDistribution(1, 8),
        "units": IntDistribution(16, 512),
        "optimizer": CategoricalDistribution(["adam", "sgd", "rmsprop", "adagrad"]),
    }


def outcome(size: int, index: int, params: dict) -> dict:
    """What trial `index` of the experiment of `size` trials does with `params`:
    {"state": "Succeeded"|"EarlyStopped"|"Failed", "curve": [loss at step 0, 1, ...],
     "message": str|None}."""
    rng = random.Random(f"{SEED + size}:{index}")
    lr = float(params["lr"])
    dropout = float(params["dropout"])
    layers = int(params["layers"])
    units = int(params["units"])
    optimizer = str(params["optimizer"])
    # Best around lr = 3e-3, dropout 0.2, 4 layers.
    floor = (0.12
             + 0.05 * (math.log10(lr) + 2.5) ** 2
             + 0.25 * (dropout - 0.2) ** 2
             + 0.012 * (layers - 4) ** 2
             + OPTIMIZER_PENALTY[optimizer]
             + 0.01 * abs(math.log2(units / 128)) / 3
             + rng.gauss(0.0, 0.01))
    start = floor + 1.5 + rng.gauss(0.0, 0.1)
    rate = 0.08 + 0.25 * min(1.0, lr * 100) + rng.uniform(0.0, 0.05)
    u = rng.random()
    if u < 0.85:
        state, steps, message = "Succeeded", STEPS, None
    elif u < 0.95:
        state, steps, message = "EarlyStopped", rng.randint(3, 15), None
    else:
        state, steps = "Failed", rng.randint(1, STEPS - 1)
        message = f"loss diverged at step {steps}"
    curve = []
    for step in range(steps):
        value = floor + (start - floor) * math.exp(-rate * step) + rng.gauss(0.0, 0.01)
        curve.append(round(max(value, 1e-4), 6))
    return {"state": state, "curve": curve, "message": message}
