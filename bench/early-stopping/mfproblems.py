"""The multi-fidelity problems of the early-stopping benchmark, defined once for every sampler.

A problem is a search space (bench/tpe/problems.py's `Param`s, so the same helpers turn it into
a tuneflow experiment's `parameters` and into Optuna `suggest_*` calls), a maximum step
`max_step` (a full training), and a learning curve: `problem.start(params)` returns a run whose
`.step()` gives the value (lower is better) after one more step, from step 1 to `max_step`.
The value that counts for a configuration is its value at `max_step`; runs compute steps
lazily, so a pruned MLP trial really trains only the epochs it was given.

  crossing-curves   4-d synthetic curves v(t) = final + (init - final) * exp(-t / tau) whose
                    learning speed (set by `lr`) trades against final quality: fast learners
                    lead at every rung (steps 1, 3, 9) and end worse; the best configurations
                    learn slowly. max_step 27. Known optimum (computed here).
  mf-hartmann6      the multi-fidelity Hartmann6 of mf-prior-bench / HPOBench's lineage
                    ("moderate" preset: fidelity bias 1.0, noise 0.2): at step t, with
                    z = log(t) / log(T), alpha' = alpha - bias * (1 - z) flattens the function
                    and |N(0, 1)| * noise * (1 - z) is added (deterministic per point and step);
                    at t = T it is Hartmann6 itself. max_step 27. Optimum -3.32237.
  mlp-digits        scikit-learn's MLPClassifier (adam, one hidden layer, random_state 0)
                    trained one epoch per step with partial_fit on the bundled digits data
                    (load_digits, X / 16, a fixed stratified split: 1,197 training / 600
                    validation images); value = validation error. max_step 20. No known
                    optimum: the report uses the best value any sampler reached.

`python3 mfproblems.py` checks the synthetic optima and prints how curves cross.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tpe"))
from problems import Param, discrete, double, integer, suggest, tuneflow_parameters  # noqa: E402,F401


@dataclass(frozen=True)
class MFProblem:
    name: str
    short: str            # for tuneflow experiment names (at most 40 characters in all)
    kind: str
    params: tuple[Param, ...]
    max_step: int
    start: Callable[[dict[str, Any]], Any]   # params -> run with .step() -> value
    optimum: float | None                    # None: not known (mlp-digits)
    target: float                            # the "good enough" final value of budget-to-target
    target_note: str


class _CurveRun:
    """A run of a closed-form curve: value(t) for t = 1, 2, ..."""

    def __init__(self, value: Callable[[int], float]):
        self.value = value
        self.t = 0

    def step(self) -> float:
        self.t += 1
        return float(self.value(self.t))


# --- crossing curves ---------------------------------------------------------------------------

CROSS_T = 27
_CROSS_C = (0.3, 0.7, 0.45)     # where the quality term is zero
_CROSS_W = (4.0, 6.0, 8.0)


def _cross_speed(lr: float) -> float:
    """u in [0, 1]: 0 = the slowest learner (lr 1e-4), 1 = the fastest (lr 1e-1)."""
    return (math.log10(lr) + 4.0) / 3.0


def _cross_parts(p: dict[str, Any]) -> tuple[float, float]:
    """(final, tau) of configuration p; init is 1."""
    u = _cross_speed(float(p["lr"]))
    d2 = sum(w * (float(p[f"x{i}"]) - c) ** 2
             for i, (c, w) in enumerate(zip(_CROSS_C, _CROSS_W)))
    quality = 0.25 * (1.0 - math.exp(-d2))          # in [0, 0.25)
    final = 0.1 + 0.6 * u + quality                 # fast learners end worse
    tau = 0.7 * 30.0 ** (1.0 - u)                   # ... and learn faster: tau 21 .. 0.7 steps
    return final, tau


def cross_value(p: dict[str, Any], t: int) -> float:
    final, tau = _cross_parts(p)
    return final + (1.0 - final) * math.exp(-t / tau)


def _cross_optimum() -> tuple[float, float]:
    """(optimum at step T, its lr): the quality term is 0 at x = c; a fine grid over the
    speed and a golden-section refinement."""
    def g(u: float) -> float:
        p = {"lr": 10 ** (3 * u - 4), "x0": _CROSS_C[0], "x1": _CROSS_C[1], "x2": _CROSS_C[2]}
        return cross_value(p, CROSS_T)
    n = 20000
    k = min(range(n + 1), key=lambda i: g(i / n))
    lo, hi = max(0.0, (k - 1) / n), min(1.0, (k + 1) / n)
    r = (math.sqrt(5) - 1) / 2
    for _ in range(100):
        a, b = hi - r * (hi - lo), lo + r * (hi - lo)
        if g(a) < g(b):
            hi = b
        else:
            lo = a
    u = (lo + hi) / 2
    return g(u), 10 ** (3 * u - 4)


CROSS_OPT, CROSS_LR_OPT = _cross_optimum()


# --- multi-fidelity Hartmann6 --------------------------------------------------------------------

MFH_T = 27
MFH_BIAS = 1.0     # mf-prior-bench's "moderate" preset
MFH_NOISE = 0.2
_H_ALPHA = (1.0, 1.2, 3.0, 3.2)
_H_A = ((10, 3, 17, 3.5, 1.7, 8), (0.05, 10, 17, 0.1, 8, 14),
        (3, 3.5, 1.7, 10, 17, 8), (17, 8, 0.05, 10, 0.1, 14))
_H_P = tuple(tuple(v * 1e-4 for v in row) for row in (
    (1312, 1696, 5569, 124, 8283, 5886), (2329, 4135, 8307, 3736, 1004, 9991),
    (2348, 1451, 3522, 2883, 3047, 6650), (4047, 8828, 8732, 5743, 1091, 381)))
HARTMANN6_OPT = -3.322368011415515
HARTMANN6_XOPT = (0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730054)


def mfh_value(p: dict[str, Any], t: int, T: int = MFH_T) -> float:
    x = [float(p[f"x{i}"]) for i in range(6)]
    z = math.log(t) / math.log(T)
    h = -sum((a - MFH_BIAS * (1 - z)) * math.exp(-sum(A[j] * (x[j] - P[j]) ** 2
                                                       for j in range(6)))
             for a, A, P in zip(_H_ALPHA, _H_A, _H_P))
    if z >= 1:
        return h
    # Deterministic noise per (point, step): the same configuration gives the same curve for
    # every sampler and process.
    key = hashlib.sha256(struct.pack("<6dq", *x, t)).digest()
    rng = random.Random(int.from_bytes(key[:8], "little"))
    return h + abs(rng.gauss(0.0, 1.0)) * MFH_NOISE * (1 - z)


# --- MLP on digits -------------------------------------------------------------------------------

MLP_T = 20
_DIGITS = None


def _digits():
    """(X_train, X_val, y_train, y_val, classes): loaded once per process (the data, not any
    result: every trial trains from scratch)."""
    global _DIGITS
    if _DIGITS is None:
        import numpy as np
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        X, y = load_digits(return_X_y=True)
        X = X / 16.0
        Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=600, random_state=0, stratify=y)
        _DIGITS = (Xtr, Xva, ytr, yva, np.unique(y))
    return _DIGITS


class _MlpRun:
    def __init__(self, p: dict[str, Any]):
        import warnings
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        self.data = _digits()
        self.model = MLPClassifier(hidden_layer_sizes=(int(p["hidden"]),),
                                   learning_rate_init=float(p["learning_rate_init"]),
                                   alpha=float(p["alpha"]), batch_size=int(p["batch_size"]),
                                   random_state=0)

    def step(self) -> float:
        Xtr, Xva, ytr, yva, classes = self.data
        self.model.partial_fit(Xtr, ytr, classes=classes)
        return float(1.0 - self.model.score(Xva, yva))


# --- the suite -----------------------------------------------------------------------------------

PROBLEMS: dict[str, MFProblem] = {p.name: p for p in [
    MFProblem(
        "crossing-curves", "cross", "log lr (speed vs final quality) + 3 doubles",
        (double("lr", 1e-4, 1e-1, log=True), double("x0", 0.0, 1.0), double("x1", 0.0, 1.0),
         double("x2", 0.0, 1.0)),
        CROSS_T, lambda p: _CurveRun(lambda t: cross_value(p, t)), CROSS_OPT,
        0.32, "0.32 (optimum + 0.038): only slow learners, lr in [1.4e-4, 1.1e-3], get there; "
              "no configuration with lr above 1.1e-3 can"),
    MFProblem(
        "mf-hartmann6", "mfh6", "6 doubles in [0, 1]",
        tuple(double(f"x{i}", 0.0, 1.0) for i in range(6)),
        MFH_T, lambda p: _CurveRun(lambda t: mfh_value(p, t)), HARTMANN6_OPT,
        -2.8, "-2.8 (regret 0.52; Hartmann6's next local minimum is -3.20)"),
    MFProblem(
        "mlp-digits", "mlp", "MLPClassifier: log lr, log alpha, log int width, discrete batch",
        (double("learning_rate_init", 1e-4, 1e-1, log=True),
         double("alpha", 1e-6, 1e-1, log=True),
         integer("hidden", 8, 256, log=True),
         discrete("batch_size", [16, 32, 64, 128, 256])),
        MLP_T, _MlpRun, None,
        0.025, "validation error <= 0.025 (at most 15 of 600 digits wrong)"),
]}


def select(spec: str) -> list[MFProblem]:
    """`all` or a comma-separated list of problem names."""
    if spec in ("", "all"):
        return list(PROBLEMS.values())
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in PROBLEMS]
    if unknown:
        raise SystemExit(f"unknown problem(s) {unknown}; known: {', '.join(PROBLEMS)}")
    return [PROBLEMS[n] for n in names]


def _self_check() -> None:
    # Hartmann6 at its minimiser, at the last step, is the published optimum.
    x = {f"x{i}": v for i, v in enumerate(HARTMANN6_XOPT)}
    assert abs(mfh_value(x, MFH_T) - HARTMANN6_OPT) < 1e-6
    # The crossing optimum: no grid point does better.
    for i in range(2001):
        u = i / 2000
        p = {"lr": 10 ** (3 * u - 4), "x0": 0.3, "x1": 0.7, "x2": 0.45}
        assert cross_value(p, CROSS_T) >= CROSS_OPT - 1e-12
    print(f"crossing-curves: optimum {CROSS_OPT:.6f} at lr {CROSS_LR_OPT:.3g} (u = "
          f"{_cross_speed(CROSS_LR_OPT):.3f}), step {CROSS_T}")
    print("  value by step for lr (x at its best):   t=1     t=3     t=9     t=27")
    for lr in (1e-4, CROSS_LR_OPT, 1e-3, 3e-3, 1e-2, 1e-1):
        p = {"lr": lr, "x0": 0.3, "x1": 0.7, "x2": 0.45}
        print(f"  lr {lr:9.3g}                          " + "  ".join(
            f"{cross_value(p, t):.4f}" for t in (1, 3, 9, 27)))
    print(f"mf-hartmann6: f(x*) at t = 1, 3, 9, 27: " + ", ".join(
        f"{mfh_value(x, t):.4f}" for t in (1, 3, 9, 27)))
    # Random configurations: how the synthetic problems' rankings at each rung relate to the
    # final value, and how often the targets are reached.
    rng = random.Random(0)
    for prob in (PROBLEMS["crossing-curves"], PROBLEMS["mf-hartmann6"]):
        pts = []
        for _ in range(2000):
            p = {}
            for par in prob.params:
                if par.log:
                    p[par.name] = math.exp(rng.uniform(math.log(par.low), math.log(par.high)))
                else:
                    p[par.name] = rng.uniform(par.low, par.high)
            run = prob.start(p)
            pts.append([run.step() for _ in range(prob.max_step)])
        finals = sorted(c[-1] for c in pts)
        hit = sum(f <= prob.target for f in finals) / len(finals)
        print(f"{prob.name}: random configurations: final value median {finals[1000]:.4f}, "
              f"1% quantile {finals[20]:.4f}, best {finals[0]:.4f}; target {prob.target:.4f} "
              f"reached by {hit:.1%}")
        best_final = {i for i in sorted(range(len(pts)), key=lambda i: pts[i][-1])[:200]}
        for rung in (1, 3, 9):
            top = set(sorted(range(len(pts)), key=lambda i: pts[i][rung - 1])[:667])
            print(f"  of the best 10% by final value, {len(top & best_final) / 200:.0%} are "
                  f"in the best third at step {rung}")


if __name__ == "__main__":
    _self_check()
