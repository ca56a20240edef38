#!/usr/bin/env python3
"""Run one sampler over problems x seeds, TRIALS sequential trials each, and append one JSON
line per run to --out: {"sampler", "problem", "seed", "trials", "values": [objective of trial
0, 1, ...], "seconds": wall time of the run}. Runs already in --out are skipped, so an
interrupted run.sh resumes where it stopped.

Samplers (all minimise; same problems, budgets and seeds):
  optuna-tpe          optuna.samplers.TPESampler(seed=seed)          (Optuna's default)
  optuna-tpe-indep    optuna.samplers.TPESampler(seed=seed, multivariate=False)
  optuna-tpe-mv       optuna.samplers.TPESampler(seed=seed, multivariate=True)
  optuna-random       optuna.samplers.RandomSampler(seed=seed)       (the regret baseline)
  rustuna-tpe         rustuna.samplers.TPESampler(seed=seed)         (Rustuna's default)
  tuneflow-tpe, tuneflow-multivariate-tpe, tuneflow-random
                      `tuneflow serve` (--tuneflow BIN, a fresh store in --scratch), one
                      client-driven experiment per (problem, seed) with algorithmName tpe /
                      multivariate-tpe / random, random_state = seed, maxTrialCount = TRIALS,
                      parallelTrialCount 1. A sequential loop on one keep-alive connection:
                      POST suggestions {"count": 1} -> evaluate -> POST complete
                      {"metrics": {"value": v}}, until TRIALS trials are done.

Optuna and Rustuna run `study.optimize(objective, n_trials=TRIALS)` in memory; the objective
calls problems.suggest (one suggest_* per parameter) and Problem.evaluate.

Usage: quality.py --sampler NAME --out FILE.jsonl [--problems all|a,b] [--seeds 10]
                  [--trials 100] [--tuneflow BIN --scratch DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import problems as P  # noqa: E402
from tuneflow_rest import finished_runs, seeds, start  # noqa: E402

TUNEFLOW = {"tuneflow-tpe": "tpe", "tuneflow-tpe-indep": "tpe-indep",
            "tuneflow-multivariate-tpe": "multivariate-tpe",
            "tuneflow-random": "random"}
IN_PROCESS = ("optuna-tpe", "optuna-tpe-indep", "optuna-tpe-mv", "optuna-random",
              "rustuna-tpe")


def make_in_process(sampler: str, seed: int):
    """(create_study callable, suggest-capable module) for an in-process sampler."""
    if sampler.startswith("optuna"):
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        s = {"optuna-tpe": lambda: optuna.samplers.TPESampler(seed=seed),
             "optuna-tpe-indep": lambda: optuna.samplers.TPESampler(seed=seed,
                                                                    multivariate=False),
             "optuna-tpe-mv": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True),
             "optuna-random": lambda: optuna.samplers.RandomSampler(seed=seed)}[sampler]()
        return optuna.create_study(direction="minimize", sampler=s)
    import rustuna
    return rustuna.create_study(direction="minimize",
                                sampler=rustuna.samplers.TPESampler(seed=seed))


def run_in_process(sampler: str, problem: P.Problem, seed: int, trials: int) -> list[float]:
    study = make_in_process(sampler, seed)
    values: list[float] = []

    def objective(trial):
        v = problem.evaluate(P.suggest(trial, problem))
        values.append(v)
        return v

    study.optimize(objective, n_trials=trials)
    return values


def run_tuneflow(client, algorithm: str, problem: P.Problem, seed: int, trials: int) -> list[float]:
    from tuneflow_rest import experiment_doc
    # Experiment names are at most 40 characters: problem by its index in the suite.
    index = list(P.PROBLEMS).index(problem.name)
    short = {"tpe": "tpe", "tpe-indep": "tpei", "multivariate-tpe": "mvtpe",
             "random": "random"}[algorithm]
    name = f"q{index:02d}-{short}-s{seed}"
    client.create(experiment_doc(name, algorithm, seed, trials, P.tuneflow_parameters(problem)))
    values: list[float] = []
    while True:
        answer = client.ask(name)
        if not answer["trials"]:
            if answer["done"]:
                break
            raise RuntimeError(f"{name}: no suggestion but not done: {answer}")
        trial = answer["trials"][0]
        v = problem.evaluate(trial["parameters"])
        client.complete(name, trial["name"], v)
        values.append(v)
    exp = client.experiment(name)
    if exp["trials"]["succeeded"] != trials or len(values) != trials:
        raise RuntimeError(f"{name}: expected {trials} succeeded trials, got {exp['trials']}")
    return values


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sampler", required=True, choices=list(TUNEFLOW) + list(IN_PROCESS))
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--problems", default="all")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--tuneflow")
    ap.add_argument("--scratch", type=Path)
    args = ap.parse_args()

    done = finished_runs(args.out, sampler=args.sampler, trials=args.trials)
    todo = [(p, s) for p in P.select(args.problems) for s in seeds(args.seeds)
            if (p.name, s) not in done]
    if not todo:
        return 0

    server = client = None
    if args.sampler in TUNEFLOW:
        if not args.tuneflow or not args.scratch:
            ap.error("tuneflow samplers need --tuneflow and --scratch")
        server, client = start(args.tuneflow, args.scratch,
                               f"{args.sampler}-{time.strftime('%H%M%S')}")

    started = time.monotonic()
    try:
        with args.out.open("a", encoding="utf-8") as out:
            for problem, seed in todo:
                t0 = time.perf_counter()
                if client is not None:
                    values = run_tuneflow(client, TUNEFLOW[args.sampler], problem, seed,
                                          args.trials)
                else:
                    values = run_in_process(args.sampler, problem, seed, args.trials)
                seconds = time.perf_counter() - t0
                if len(values) != args.trials or not all(math.isfinite(v) for v in values):
                    raise RuntimeError(f"{args.sampler} {problem.name} seed {seed}: bad values")
                out.write(json.dumps({"sampler": args.sampler, "problem": problem.name,
                                      "seed": seed, "trials": args.trials, "values": values,
                                      "seconds": seconds}) + "\n")
                out.flush()
    finally:
        if client is not None:
            client.close()
        if server is not None:
            server.stop()
    print(f"[tpe] {args.sampler}: {len(todo)} runs in {time.monotonic() - started:.1f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
