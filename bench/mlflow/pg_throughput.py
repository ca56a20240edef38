#!/usr/bin/env python3
"""tuneflow's ask + complete throughput with a PostgreSQL store shared by several servers.

Starts --servers `tuneflow serve` processes on the same `--store postgres://...`, creates one
client-driven random-search experiment (parallelTrialCount = --workers, maxTrialCount =
--workers x --rounds) through the first, and runs --workers worker processes, worker i
talking to server i mod --servers over one keep-alive connection (tuneflow_rest.Client):

    POST .../suggestions {"count": 1}  ->  POST .../trials/T/complete {"metrics": {"value": v}}

until the experiment says it is done. A suggestion answer without a trial and with
`done: false` (every slot busy for a moment) is asked again; a 409 (another server took the
slot first) is counted and asked again. Wall time runs from the barrier to the last worker's
end. Afterwards the experiment must hold exactly maxTrialCount Succeeded trials, none failed,
and no trial may have been handed out twice; otherwise the script exits 1.

Usage: pg_throughput.py --tuneflow BIN --store postgres://... --scratch DIR --out FILE
           [--servers 2] [--workers 8] [--rounds 250]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tpe"))
import tuneflow_rest  # noqa: E402  (the harnesses' shared server and client)

NAME = "pg-throughput"


def experiment_doc(max_trials: int, parallel: int) -> dict:
    return {
        "apiVersion": "tuneflow.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": NAME},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "value"},
            "algorithm": {"algorithmName": "random",
                          "algorithmSettings": [{"name": "random_state", "value": "7"}]},
            "maxTrialCount": max_trials, "parallelTrialCount": parallel,
            "parameters": [
                {"name": "lr", "parameterType": "double",
                 "feasibleSpace": {"min": "1e-5", "max": "1e-1", "distribution": "logUniform"}},
                {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "8"}},
                {"name": "opt", "parameterType": "categorical",
                 "feasibleSpace": {"list": ["adam", "sgd", "rmsprop"]}}]}}


def worker(host: str, port: int, barrier, results) -> None:
    client = tuneflow_rest.Client(host, port)
    names, conflicts, empty = [], 0, 0
    barrier.wait()
    start = time.monotonic()
    while True:
        try:
            answer = client.ask(NAME)
        except tuneflow_rest.ApiError as e:
            if "-> 409" in str(e):
                conflicts += 1
                continue
            raise
        trials = answer.get("trials") or []
        if not trials:
            if answer.get("done"):
                break
            empty += 1
            continue
        trial = trials[0]
        p = trial["parameters"]
        value = (p["lr"] - 0.01) ** 2 + p["layers"] * 1e-3 + (p["opt"] == "sgd") * 1e-2
        client.complete(NAME, trial["name"], value)
        names.append(trial["name"])
    results.put({"start": start, "end": time.monotonic(), "names": names,
                 "conflicts": conflicts, "empty": empty})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tuneflow", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--scratch", required=True, type=Path)
    parser.add_argument("--out", required=True)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=250)
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    servers = [tuneflow_rest.Server(args.tuneflow, args.store, args.scratch / f"serve-{i}.log")
               for i in range(args.servers)]
    try:
        total = args.workers * args.rounds
        first = tuneflow_rest.Client(servers[0].host, servers[0].port)
        first.create(experiment_doc(total, args.workers))
        context = multiprocessing.get_context("fork")
        barrier, results = context.Barrier(args.workers), context.Queue()
        processes = [context.Process(target=worker, args=(servers[i % len(servers)].host,
                                                          servers[i % len(servers)].port,
                                                          barrier, results))
                     for i in range(args.workers)]
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=1800) for _ in processes]
        for process in processes:
            process.join()
        wall = max(o["end"] for o in outcomes) - min(o["start"] for o in outcomes)
        names = [n for o in outcomes for n in o["names"]]
        last = tuneflow_rest.Client(servers[-1].host, servers[-1].port).experiment(NAME)
        counts = last["trials"]
        verified = (len(names) == total and len(set(names)) == total
                    and counts["succeeded"] == total
                    and sum(v for k, v in counts.items() if k != "succeeded") == 0)
        result = {"servers": args.servers, "workers": args.workers, "trials": len(names),
                  "expected": total, "seconds": wall, "trialsPerSecond": len(names) / wall,
                  "conflicts": sum(o["conflicts"] for o in outcomes),
                  "emptyAnswers": sum(o["empty"] for o in outcomes),
                  "experimentTrials": counts, "verified": verified}
    finally:
        for server in servers:
            server.stop()
    with open(args.out, "w") as out:
        json.dump(result, out, indent=1)
    print(json.dumps(result), file=sys.stderr)
    return 0 if verified else 1


if __name__ == "__main__":
    sys.exit(main())
