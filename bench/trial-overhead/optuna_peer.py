#!/usr/bin/env python3
"""The peer side of the trial-overhead benchmark: Optuna launching one process per trial.

Each trial's objective runs ``subprocess.run(["true"])`` (a process per trial, as tuneflow
does) after drawing one float from a RandomSampler (tuneflow's side uses its random algorithm
too, so neither side pays for a model-based sampler). ``study.optimize`` runs the trials in
``--jobs`` threads, with the study kept in memory or in an SQLite file.

Writes one JSON document to ``--out``:
    {"storage": ..., "trials": N, "jobs": J, "optimizeSeconds": wall time of study.optimize,
     "processSeconds": from interpreter start to the end of optimize (imports included),
     "states": {"COMPLETE": N, ...},
     "perTrial": [{"number", "start", "complete"}...]}   # epoch seconds, Optuna's own stamps

Usage: optuna_peer.py --storage memory|sqlite [--db PATH] [--trials 1000] [--jobs 8] --out FILE
"""

from __future__ import annotations

import time

# Taken first thing, so processSeconds covers importing Optuna (tuneflow's figure covers its
# binary starting and opening its store).
PROCESS_START = time.monotonic()

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import optuna  # noqa: E402


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    subprocess.run(["true"], check=True)
    return x


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", choices=["memory", "sqlite"], required=True)
    parser.add_argument("--db", help="SQLite file for --storage sqlite (must not exist yet)")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.storage == "sqlite" and not args.db:
        parser.error("--storage sqlite needs --db PATH")

    # Per-trial INFO logging would cost time on Optuna's side only; tuneflow prints no per-trial
    # line when its output is not a terminal either.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{args.db}" if args.storage == "sqlite" else None

    study = optuna.create_study(
        study_name="trial-overhead",
        storage=storage,
        direction="minimize",
        sampler=optuna.samplers.RandomSampler(seed=args.seed),
    )
    started = time.monotonic()
    study.optimize(objective, n_trials=args.trials, n_jobs=args.jobs)
    finished = time.monotonic()

    trials = study.get_trials(deepcopy=False)
    result = {
        "tool": "optuna",
        "optunaVersion": optuna.__version__,
        "storage": args.storage,
        "trials": len(trials),
        "jobs": args.jobs,
        "optimizeSeconds": finished - started,
        "processSeconds": finished - PROCESS_START,
        "states": dict(collections.Counter(t.state.name for t in trials)),
        "perTrial": [
            {
                "number": t.number,
                "start": t.datetime_start.timestamp() if t.datetime_start else None,
                "complete": t.datetime_complete.timestamp() if t.datetime_complete else None,
            }
            for t in trials
        ],
    }
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(result, out)
    print(
        f"optuna {args.storage}: {len(trials)} trials in {result['optimizeSeconds']:.2f} s "
        f"({len(trials) / result['optimizeSeconds']:.0f} trials/s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
