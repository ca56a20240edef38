"""The test problems of the TPE quality benchmark, defined once for every sampler.

Each problem is a search space (a list of `Param`) plus an objective to minimise and its known
global minimum `optimum` (and one minimiser `x_opt`, which `python3 problems.py` checks). The
same definition is turned into a tuneflow experiment's `parameters` (`tuneflow_parameters`),
into Optuna / Rustuna `suggest_*` calls (`suggest`), and evaluated on the parameter dict that
either side hands back (`Problem.evaluate`).

Parameter kinds, and how each side asks for them:

  kind         tuneflow spec                                   Optuna / Rustuna
  double       parameterType double, min/max                   suggest_float(low, high)
  double log   ... distribution logUniform                     suggest_float(..., log=True)
  double step  ... step                                        suggest_float(..., step=step)
  int          parameterType int, min/max (logUniform opt.)    suggest_int(low, high, log=...)
  discrete     parameterType discrete, list of numbers         suggest_categorical(numbers)
  categorical  parameterType categorical, list of strings      suggest_categorical(strings)

Continuous classics (formulas and optima as in Surjanovic & Bingham's Virtual Library of
Simulation Experiments): Branin, Hartmann6, Rosenbrock, Ackley, Levy, Styblinski-Tang.
Synthetic "hyperparameter-like" problems (svm-log, xgb-mixed, mlp-mixed, int-ellipsoid,
cat-shift) are sums of non-negative terms that are all zero at `x_opt`, so their global
minimum is known by construction. Standard library only (the tuneflow client loop needs
nothing else).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "double" | "int" | "discrete" | "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()


def double(name, low, high, log=False, step=None):
    return Param(name, "double", low, high, log=log, step=step)


def integer(name, low, high, log=False):
    return Param(name, "int", low, high, log=log)


def discrete(name, values):
    return Param(name, "discrete", choices=tuple(values))


def categorical(name, values):
    return Param(name, "categorical", choices=tuple(values))


@dataclass(frozen=True)
class Problem:
    name: str
    kind: str  # short description of what the space exercises
    params: tuple[Param, ...]
    func: Callable[[dict[str, Any]], float]
    optimum: float
    x_opt: dict[str, Any] = field(default_factory=dict)

    def evaluate(self, values: dict[str, Any]) -> float:
        return float(self.func(values))


# --- continuous classics ------------------------------------------------------------------------

def _vec(p: dict[str, Any], d: int) -> list[float]:
    return [float(p[f"x{i}"]) for i in range(d)]


def branin(p):
    x, y = float(p["x0"]), float(p["x1"])
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


_H_ALPHA = (1.0, 1.2, 3.0, 3.2)
_H_A = ((10, 3, 17, 3.5, 1.7, 8), (0.05, 10, 17, 0.1, 8, 14),
        (3, 3.5, 1.7, 10, 17, 8), (17, 8, 0.05, 10, 0.1, 14))
_H_P = tuple(tuple(v * 1e-4 for v in row) for row in (
    (1312, 1696, 5569, 124, 8283, 5886), (2329, 4135, 8307, 3736, 1004, 9991),
    (2348, 1451, 3522, 2883, 3047, 6650), (4047, 8828, 8732, 5743, 1091, 381)))


def hartmann6(p):
    x = _vec(p, 6)
    return -sum(a * math.exp(-sum(A[j] * (x[j] - P[j]) ** 2 for j in range(6)))
                for a, A, P in zip(_H_ALPHA, _H_A, _H_P))


def rosenbrock(d):
    def f(p):
        x = _vec(p, d)
        return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(d - 1))
    return f


def ackley(d):
    def f(p):
        x = _vec(p, d)
        s1 = sum(v * v for v in x) / d
        s2 = sum(math.cos(2 * math.pi * v) for v in x) / d
        return -20 * math.exp(-0.2 * math.sqrt(s1)) - math.exp(s2) + 20 + math.e
    return f


def levy(d):
    def f(p):
        w = [1 + (v - 1) / 4 for v in _vec(p, d)]
        head = math.sin(math.pi * w[0]) ** 2
        body = sum((wi - 1) ** 2 * (1 + 10 * math.sin(math.pi * wi + 1) ** 2) for wi in w[:-1])
        tail = (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
        return head + body + tail
    return f


_ST_XOPT = -2.903534027771177  # root of 4x^3 - 32x + 5 = 0 near -2.9
_ST_MIN1 = 0.5 * (_ST_XOPT ** 4 - 16 * _ST_XOPT ** 2 + 5 * _ST_XOPT)  # -39.16616570377142


def styblinski_tang(d):
    def f(p):
        return 0.5 * sum(v ** 4 - 16 * v * v + 5 * v for v in _vec(p, d))
    return f


def _box(d, low, high):
    return tuple(double(f"x{i}", low, high) for i in range(d))


def _point(d, value):
    return {f"x{i}": value for i in range(d)}


# --- synthetic hyperparameter-like problems -----------------------------------------------------

def svm_log(p):
    """An RBF-SVM-like validation error over four log-scale parameters: a smooth, correlated
    bowl in log space (error 0.05 at the optimum) that flattens out to 0.5 far from it."""
    u = math.log10(p["C"]) - 1.5
    v = math.log10(p["gamma"]) + 2.5
    w = math.log10(p["tol"]) + 3.0
    z = math.log10(p["epsilon"]) + 1.7
    q = u * u + 2 * v * v + 1.8 * u * v + 0.5 * w * w + 0.3 * z * z  # positive definite
    return 0.05 + 0.45 * (1 - math.exp(-q / 2))


def xgb_mixed(p):
    """A boosting-like loss: log-scale learning rate traded off against a discrete number of
    rounds (lr * rounds = 20 is ideal, 400 rounds best), an int depth and three more
    continuous knobs (one log-scale)."""
    n = float(p["n_estimators"])
    lr_target = math.log10(20.0 / n)
    return (0.2
            + 0.05 * (math.log10(p["learning_rate"]) - lr_target) ** 2
            + 0.01 * math.log2(n / 400.0) ** 2
            + 0.004 * (int(p["max_depth"]) - 6) ** 2
            + 0.2 * (p["subsample"] - 0.8) ** 2
            + 0.2 * (p["colsample"] - 0.6) ** 2
            + 0.01 * (math.log10(p["min_child_weight"]) - 0.5) ** 2)


_MLP_OPT_PEN = {"sgd": 0.08, "momentum": 0.04, "adam": 0.01, "adamw": 0.0, "rmsprop": 0.03}
_MLP_OPT_LR = {"sgd": -1.5, "momentum": -2.0, "adam": -3.0, "adamw": -3.2, "rmsprop": -3.5}
_MLP_ACT_PEN = {"relu": 0.01, "tanh": 0.05, "gelu": 0.0, "sigmoid": 0.12}


def mlp_mixed(p):
    """An MLP-like loss over every parameter kind: log-scale learning rate whose best value
    depends on the optimizer (categorical) and the batch size (discrete), int layers,
    log-scale int units, a stepped dropout whose best value depends on the layers, and an
    activation (categorical). Minimum 0.1."""
    opt, act = p["optimizer"], p["activation"]
    lb = math.log2(float(p["batch_size"]))
    layers = int(p["layers"])
    lr_target = _MLP_OPT_LR[opt] + 0.15 * (lb - 6)
    return (0.1 + _MLP_OPT_PEN[opt] + _MLP_ACT_PEN[act]
            + 0.15 * (math.log10(p["lr"]) - lr_target) ** 2
            + 0.02 * (layers - 4) ** 2
            + 0.03 * (math.log2(int(p["units"])) - 8) ** 2
            + 0.02 * (lb - 6) ** 2
            + 0.5 * (float(p["dropout"]) - 0.05 * layers) ** 2)


_INT_C = (7, -3, 12, 0, -11, 18)


def int_ellipsoid(p):
    """Six integers in [-20, 30]: a weighted ellipsoid with one coupling term, minimum 0."""
    x = [int(p[f"k{i}"]) for i in range(6)]
    return (sum((i + 1) * (x[i] - _INT_C[i]) ** 2 for i in range(6))
            + (x[0] - x[1] - 10) ** 2)


_CAT_KERNEL = {"linear": (0.15, (0.2, 0.8)), "poly": (0.1, (0.7, 0.3)),
               "rbf": (0.0, (0.35, 0.6)), "sigmoid": (0.25, (0.9, 0.9))}
_CAT_PREP = {"none": 0.2, "standard": 0.0, "minmax": 0.05, "robust": 0.08}
_CAT_LOSS = {"hinge": 0.04, "log": 0.0, "huber": 0.06}


def cat_shift(p):
    """Three categoricals (4 x 4 x 3 combinations) and two doubles whose best point moves
    with the kernel; minimum 0 at (rbf, standard, log, 0.35, 0.6)."""
    pen, (cx, cy) = _CAT_KERNEL[p["kernel"]]
    return (pen + _CAT_PREP[p["preprocessing"]] + _CAT_LOSS[p["loss"]]
            + (p["x"] - cx) ** 2 + (p["y"] - cy) ** 2)


# --- the suite ----------------------------------------------------------------------------------

def _continuous(name, d, func, low, high, optimum, x_opt):
    return Problem(name, f"continuous {d}-d", _box(d, low, high), func, optimum, x_opt)


PROBLEMS: dict[str, Problem] = {p.name: p for p in [
    Problem("branin", "continuous 2-d", (double("x0", -5.0, 10.0), double("x1", 0.0, 15.0)),
            branin, 5 / (4 * math.pi), {"x0": math.pi, "x1": 2.275}),
    _continuous("hartmann6", 6, hartmann6, 0.0, 1.0, -3.322368011415515,
                {f"x{i}": v for i, v in enumerate(
                    (0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730054))}),
    _continuous("rosenbrock-4d", 4, rosenbrock(4), -5.0, 10.0, 0.0, _point(4, 1.0)),
    _continuous("rosenbrock-10d", 10, rosenbrock(10), -5.0, 10.0, 0.0, _point(10, 1.0)),
    _continuous("ackley-2d", 2, ackley(2), -32.768, 32.768, 0.0, _point(2, 0.0)),
    _continuous("ackley-10d", 10, ackley(10), -32.768, 32.768, 0.0, _point(10, 0.0)),
    _continuous("levy-5d", 5, levy(5), -10.0, 10.0, 0.0, _point(5, 1.0)),
    _continuous("styblinski-tang-2d", 2, styblinski_tang(2), -5.0, 5.0, 2 * _ST_MIN1,
                _point(2, _ST_XOPT)),
    _continuous("styblinski-tang-5d", 5, styblinski_tang(5), -5.0, 5.0, 5 * _ST_MIN1,
                _point(5, _ST_XOPT)),
    _continuous("styblinski-tang-10d", 10, styblinski_tang(10), -5.0, 5.0, 10 * _ST_MIN1,
                _point(10, _ST_XOPT)),
    Problem("svm-log", "4 log-scale doubles",
            (double("C", 1e-3, 1e3, log=True), double("gamma", 1e-5, 1e1, log=True),
             double("tol", 1e-6, 1e-1, log=True), double("epsilon", 1e-4, 1.0, log=True)),
            svm_log, 0.05, {"C": 10 ** 1.5, "gamma": 10 ** -2.5, "tol": 1e-3,
                            "epsilon": 10 ** -1.7}),
    Problem("xgb-mixed", "log doubles, int, discrete list, doubles",
            (double("learning_rate", 1e-3, 1.0, log=True),
             discrete("n_estimators", [50, 100, 200, 400, 800, 1600]),
             integer("max_depth", 2, 12),
             double("subsample", 0.5, 1.0), double("colsample", 0.3, 1.0),
             double("min_child_weight", 0.1, 100.0, log=True)),
            xgb_mixed, 0.2, {"learning_rate": 0.05, "n_estimators": 400, "max_depth": 6,
                             "subsample": 0.8, "colsample": 0.6,
                             "min_child_weight": 10 ** 0.5}),
    Problem("mlp-mixed", "log double, int, log int, discrete, stepped double, 2 categorical",
            (double("lr", 1e-5, 1e-1, log=True), integer("layers", 1, 8),
             integer("units", 16, 1024, log=True),
             discrete("batch_size", [16, 32, 64, 128, 256, 512]),
             double("dropout", 0.0, 0.5, step=0.05),
             categorical("optimizer", ["sgd", "momentum", "adam", "adamw", "rmsprop"]),
             categorical("activation", ["relu", "tanh", "gelu", "sigmoid"])),
            mlp_mixed, 0.1, {"lr": 10 ** -3.2, "layers": 4, "units": 256, "batch_size": 64,
                             "dropout": 0.2, "optimizer": "adamw", "activation": "gelu"}),
    Problem("int-ellipsoid-6d", "6 ints",
            tuple(integer(f"k{i}", -20, 30) for i in range(6)), int_ellipsoid, 0.0,
            {f"k{i}": c for i, c in enumerate(_INT_C)}),
    Problem("cat-shift", "3 categorical + 2 doubles",
            (categorical("kernel", list(_CAT_KERNEL)),
             categorical("preprocessing", list(_CAT_PREP)),
             categorical("loss", list(_CAT_LOSS)),
             double("x", 0.0, 1.0), double("y", 0.0, 1.0)),
            cat_shift, 0.0, {"kernel": "rbf", "preprocessing": "standard", "loss": "log",
                             "x": 0.35, "y": 0.6}),
]}

def select(spec: str) -> list[Problem]:
    """`all` or a comma-separated list of problem names."""
    if spec in ("", "all"):
        return list(PROBLEMS.values())
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in PROBLEMS]
    if unknown:
        raise SystemExit(f"unknown problem(s) {unknown}; known: {', '.join(PROBLEMS)}")
    return [PROBLEMS[n] for n in names]


# --- the two sides ------------------------------------------------------------------------------

def _num(v: float) -> str:
    """A number as tuneflow's (Katib's) string form, exact enough to round-trip."""
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


def tuneflow_parameters(problem: Problem) -> list[dict]:
    out = []
    for p in problem.params:
        if p.kind in ("double", "int"):
            space = {"min": _num(p.low), "max": _num(p.high)}
            if p.log:
                space["distribution"] = "logUniform"
            if p.step is not None:
                space["step"] = _num(p.step)
        elif p.kind == "discrete":
            space = {"list": [_num(v) for v in p.choices]}
        else:
            space = {"list": list(p.choices)}
        out.append({"name": p.name, "parameterType": p.kind, "feasibleSpace": space})
    return out


def suggest(trial, problem: Problem) -> dict[str, Any]:
    """Ask an Optuna or Rustuna trial for every parameter of the problem."""
    values = {}
    for p in problem.params:
        if p.kind == "double":
            if p.step is not None:
                values[p.name] = trial.suggest_float(p.name, p.low, p.high, step=p.step)
            else:
                values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
        elif p.kind == "int":
            values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
        else:
            values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
    return values


def _self_check() -> None:
    """Every problem's x_opt is inside its space and evaluates to its optimum."""
    for problem in PROBLEMS.values():
        x = problem.x_opt
        for p in problem.params:
            v = x[p.name]
            if p.kind in ("double", "int"):
                assert p.low <= v <= p.high, (problem.name, p.name, v)
            else:
                assert v in p.choices, (problem.name, p.name, v)
        value = problem.evaluate(x)
        assert abs(value - problem.optimum) <= 1e-6 * max(1.0, abs(problem.optimum)), (
            problem.name, value, problem.optimum)
        print(f"{problem.name:22s} {len(problem.params):2d} params  optimum {problem.optimum:.6g}"
              f"  f(x_opt) = {value:.6g}  ({problem.kind})")


if __name__ == "__main__":
    _self_check()
