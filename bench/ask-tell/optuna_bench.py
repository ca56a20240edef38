#!/usr/bin/env python3
"""The peer side of the ask/tell benchmark: Optuna's ask-and-tell on a shared SQLite study.

The way Optuna documents for sharing a study between worker processes: one RDB storage URL
(here `sqlite:///DB`, with SQLite's busy timeout raised to 30 s through
`engine_kwargs={"connect_args": {"timeout": 30}}`), the study created once, then every worker
process calls `optuna.load_study(...)` and loops

    trial = study.ask(distributions)    # lr: FloatDistribution(1e-5, 1e-1, log=True),
                                        # layers: IntDistribution(1, 8),
                                        # opt: CategoricalDistribution(["adam", "sgd"])
    study.tell(trial, objective(trial.params))

with a RandomSampler (seeded per worker), the same search space and objective as the tuneflow
side. Workers wait on a barrier after loading the study (imports and connecting are not
timed); phase wall time = first worker's start -> last worker's end (CLOCK_MONOTONIC).

A failed call (SQLite's "database is locked" when the 30 s are not enough, or anything else)
is counted, its message and latency kept, and the worker goes on with its next round trip; a
trial whose tell failed stays RUNNING. Nothing is retried or hidden. Afterwards the number of
COMPLETE trials must equal the number of successful tells, or this script exits 1.

Usage: optuna_bench.py --db PATH --out FILE [--workers 4] [--rounds 100] [--seed 7]
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import multiprocessing
import sys
import time
from pathlib import Path

STUDY = "asktell-throughput"


def objective(p: dict) -> float:
    """The same as tuneflow_bench.py's."""
    return ((math.log10(p["lr"]) + 3.0) ** 2 + 0.01 * (p["layers"] - 4) ** 2
            + (0.0 if p["opt"] == "adam" else 0.1))


def storage(url: str):
    import optuna
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 30}})


def worker(index: int, url: str, rounds: int, seed: int, barrier, out: str) -> None:
    result = {"worker": index, "asksNs": [], "tellsNs": [], "failures": [], "error": None}
    try:
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        distributions = {
            "lr": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True),
            "layers": optuna.distributions.IntDistribution(1, 8),
            "opt": optuna.distributions.CategoricalDistribution(["adam", "sgd"]),
        }
        study = optuna.load_study(study_name=STUDY, storage=storage(url),
                                  sampler=optuna.samplers.RandomSampler(seed=seed + index))
        barrier.wait(timeout=300)
        cpu0 = time.process_time()
        result["startNs"] = time.perf_counter_ns()
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            try:
                trial = study.ask(distributions)
            except Exception as e:
                result["failures"].append({"call": "ask", "error": f"{type(e).__name__}: {e}",
                                           "ns": time.perf_counter_ns() - t0})
                continue
            t1 = time.perf_counter_ns()
            value = objective(trial.params)
            t2 = time.perf_counter_ns()
            try:
                study.tell(trial, value)
            except Exception as e:
                result["failures"].append({"call": "tell", "error": f"{type(e).__name__}: {e}",
                                           "ns": time.perf_counter_ns() - t2})
                result["asksNs"].append(t1 - t0)
                continue
            t3 = time.perf_counter_ns()
            result["asksNs"].append(t1 - t0)
            result["tellsNs"].append(t3 - t2)
        result["endNs"] = time.perf_counter_ns()
        result["cpuSeconds"] = time.process_time() - cpu0
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)
    sys.exit(1 if result["error"] else 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="SQLite file (must not exist yet)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    import optuna
    import sqlalchemy
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if Path(args.db).exists():
        parser.error(f"{args.db} exists already")
    url = f"sqlite:///{args.db}"
    optuna.create_study(study_name=STUDY, storage=storage(url), direction="minimize",
                        sampler=optuna.samplers.RandomSampler(seed=args.seed))

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(args.workers)
    files = [Path(args.out).with_name(f"optuna-worker-{i}.tmp.json") for i in range(args.workers)]
    procs = [ctx.Process(target=worker, args=(i, url, args.rounds, args.seed, barrier, str(f)))
             for i, f in enumerate(files)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    workers = []
    for i, (f, p) in enumerate(zip(files, procs)):
        if f.exists():
            workers.append(json.loads(f.read_text()))
            f.unlink()
        else:
            workers.append({"worker": i, "error": f"no result (exit code {p.exitcode})"})

    study = optuna.load_study(study_name=STUDY, storage=storage(url))
    states = dict(collections.Counter(t.state.name for t in study.get_trials(deepcopy=False)))
    tells = sum(len(w.get("tellsNs", [])) for w in workers)
    failures = [f for w in workers for f in w.get("failures", [])]
    problems = [f"worker {w['worker']}: {w['error']}" for w in workers if w.get("error")]
    if states.get("COMPLETE", 0) != tells:
        problems.append(f"{states.get('COMPLETE', 0)} COMPLETE trials in the study, "
                        f"{tells} successful tells")
    starts = [w["startNs"] for w in workers if "startNs" in w]
    ends = [w["endNs"] for w in workers if "endNs" in w]
    result = {
        "phase": "throughput", "optunaVersion": optuna.__version__,
        "sqlalchemyVersion": sqlalchemy.__version__, "sqliteVersion": __import__("sqlite3").sqlite_version,
        "storage": "sqlite (RDBStorage, connect_args timeout 30 s)",
        "workers": args.workers, "roundsPerWorker": args.rounds,
        "attempted": args.workers * args.rounds, "roundTrips": tells,
        "failures": len(failures),
        "failureKinds": dict(collections.Counter(f"{f['call']}: {f['error'][:200]}"
                                                 for f in failures)),
        "states": states,
        "wallSeconds": (max(ends) - min(starts)) / 1e9 if starts and ends else None,
        "perWorker": workers, "problems": problems,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f)
    if result["wallSeconds"]:
        print(f"optuna throughput: {tells} round trips ({len(failures)} failed calls) by "
              f"{args.workers} workers in {result['wallSeconds']:.2f} s "
              f"({tells / result['wallSeconds']:.1f}/s)", file=sys.stderr)
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
