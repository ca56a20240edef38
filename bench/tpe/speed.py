#!/usr/bin/env python3
"""Suggestion latency with a long history: a 10-d continuous space (x0..x9 in [-5, 5], the
Styblinski-Tang-10d problem of problems.py), PRELOAD completed trials, then ASKS timed asks,
each followed by an untimed tell/complete of the objective value.

  tuneflow-tpe, tuneflow-multivariate-tpe, tuneflow-random
      `tuneflow serve` on a fresh store; one client-driven experiment (algorithmName tpe /
      multivariate-tpe / random, random_state = seed, maxTrialCount = PRELOAD + ASKS,
      parallelTrialCount 1). Preload: PRELOAD rounds of POST suggestions {"count": 1} ->
      evaluate -> POST complete, i.e. the history is the algorithm's own suggestions (the REST
      API has no way to import trials). Timed: the round trip of POST .../suggestions on a
      keep-alive http.client connection (request written -> whole body read), over loopback.
      The preload asks are timed too and kept in the raw JSON.
  optuna-tpe
      optuna.create_study(sampler=TPESampler(seed=seed)) (in memory), then PRELOAD trials
      added with study.add_trials([optuna.trial.create_trial(params, distributions, value)])
      where params are uniform random points (Python random.Random(seed)) and value is the
      objective. Nothing is sampled during the preload, so TPE's cost is not paid for it.
      Timed: trial = study.ask(); trial.suggest_float(x_i, -5, 5) for the 10 parameters
      (define-by-run, as a user writes it). Untimed: study.tell(trial, value).
  rustuna-tpe
      The same with rustuna: rustuna.create_study(sampler=TPESampler(seed=seed)), PRELOAD x
      study.add_trial(rustuna.create_trial(params=..., distributions=..., value=...)), timed
      study.ask() + 10 x suggest_float, untimed study.tell(trial.number, value).

Writes {"sampler", "preload", "asks", "latenciesMs": [...], "preloadLatenciesMs": [...] (tuneflow
only), "preloadSeconds", ...} to --out.

Usage: speed.py --sampler NAME --out FILE.json [--preload 1000] [--asks 50] [--seed 1]
                [--tuneflow BIN --scratch DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import problems as P  # noqa: E402

PROBLEM = P.PROBLEMS["styblinski-tang-10d"]
NAMES = [p.name for p in PROBLEM.params]
LOW, HIGH = PROBLEM.params[0].low, PROBLEM.params[0].high
TUNEFLOW = {"tuneflow-tpe": "tpe", "tuneflow-tpe-indep": "tpe-indep",
            "tuneflow-multivariate-tpe": "multivariate-tpe",
            "tuneflow-random": "random"}


def random_points(seed: int, n: int) -> list[dict]:
    rng = random.Random(seed)
    return [{name: rng.uniform(LOW, HIGH) for name in NAMES} for _ in range(n)]


def run_optuna(args) -> dict:
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = optuna.create_study(direction="minimize",
                                sampler=optuna.samplers.TPESampler(seed=args.seed))
    dists = {n: optuna.distributions.FloatDistribution(LOW, HIGH) for n in NAMES}
    t0 = time.perf_counter()
    study.add_trials([optuna.trial.create_trial(params=x, distributions=dists,
                                                value=PROBLEM.evaluate(x))
                      for x in random_points(args.seed, args.preload)])
    preload = time.perf_counter() - t0
    lat = []
    for _ in range(args.asks):
        t0 = time.perf_counter_ns()
        trial = study.ask()
        x = {n: trial.suggest_float(n, LOW, HIGH) for n in NAMES}
        lat.append((time.perf_counter_ns() - t0) / 1e6)
        study.tell(trial, PROBLEM.evaluate(x))
    assert len(study.trials) == args.preload + args.asks
    return {"version": optuna.__version__, "latenciesMs": lat, "preloadSeconds": preload,
            "how": "add_trials(create_trial(random points)); timed ask() + 10 suggest_float"}


def run_rustuna(args) -> dict:
    import importlib.metadata

    import rustuna
    study = rustuna.create_study(direction="minimize",
                                 sampler=rustuna.samplers.TPESampler(seed=args.seed))
    dists = {n: rustuna.distributions.Distribution.float(LOW, HIGH) for n in NAMES}
    t0 = time.perf_counter()
    for x in random_points(args.seed, args.preload):
        study.add_trial(rustuna.create_trial(params=x, distributions=dists,
                                             value=PROBLEM.evaluate(x)))
    preload = time.perf_counter() - t0
    lat = []
    for _ in range(args.asks):
        t0 = time.perf_counter_ns()
        trial = study.ask()
        x = {n: trial.suggest_float(n, LOW, HIGH) for n in NAMES}
        lat.append((time.perf_counter_ns() - t0) / 1e6)
        study.tell(trial.number, PROBLEM.evaluate(x))
    assert len(study.trials) == args.preload + args.asks
    return {"version": importlib.metadata.version("rustuna"), "latenciesMs": lat,
            "preloadSeconds": preload,
            "how": "add_trial(create_trial(random points)); timed ask() + 10 suggest_float"}


def run_tuneflow(args) -> dict:
    from tuneflow_rest import Client, Server, experiment_doc
    algorithm = TUNEFLOW[args.sampler]
    args.scratch.mkdir(parents=True, exist_ok=True)
    tag = f"speed-{algorithm}-{time.strftime('%H%M%S')}"
    total = args.preload + args.asks
    with Server(args.tuneflow, args.scratch / f"{tag}.db", args.scratch / f"{tag}.log") as srv:
        client = Client(srv.host, srv.port)
        name = f"speed-{algorithm}"
        client.create(experiment_doc(name, algorithm, args.seed, total,
                                     P.tuneflow_parameters(PROBLEM)))
        path = f"/api/v1/experiments/{name}/suggestions"
        lat = []
        t_start = time.perf_counter()
        t_preload = None
        for i in range(total):
            if i == args.preload:
                t_preload = time.perf_counter() - t_start
            t0 = time.perf_counter_ns()
            answer = client.call("POST", path, {"count": 1})
            lat.append((time.perf_counter_ns() - t0) / 1e6)
            trial = answer["trials"][0]
            client.complete(name, trial["name"], PROBLEM.evaluate(trial["parameters"]))
        exp = client.experiment(name)
        client.close()
    if exp["trials"]["succeeded"] != total:
        raise RuntimeError(f"expected {total} succeeded trials, got {exp['trials']}")
    return {"latenciesMs": lat[args.preload:], "preloadLatenciesMs": lat[:args.preload],
            "preloadSeconds": t_preload,
            "how": "preload by ask+complete over REST; timed POST suggestions round trip"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sampler", required=True,
                    choices=list(TUNEFLOW) + ["optuna-tpe", "rustuna-tpe"])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--preload", type=int, default=1000)
    ap.add_argument("--asks", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tuneflow")
    ap.add_argument("--scratch", type=Path)
    args = ap.parse_args()
    if args.sampler in TUNEFLOW:
        if not args.tuneflow or not args.scratch:
            ap.error("tuneflow samplers need --tuneflow and --scratch")
        result = run_tuneflow(args)
    elif args.sampler == "optuna-tpe":
        result = run_optuna(args)
    else:
        result = run_rustuna(args)
    result.update({"sampler": args.sampler, "preload": args.preload, "asks": args.asks,
                   "seed": args.seed, "dimensions": len(NAMES)})
    args.out.write_text(json.dumps(result, indent=1))
    lat = sorted(result["latenciesMs"])
    print(f"[tpe] speed {args.sampler}: median {lat[len(lat) // 2]:.2f} ms over {len(lat)} asks "
          f"after {args.preload} trials", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
