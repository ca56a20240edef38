#!/usr/bin/env python3
"""Measures one MLflow tracking API (an `mlflow server`, or `tuneflow serve`'s MLflow-compatible
routes) with the same client code, so the two can be put side by side.

Raw HTTP: one keep-alive `http.client` connection (TCP_NODELAY), JSON bodies built in advance
where possible, each call timed from just before the request to the end of the response body.
Official client: `mlflow.MlflowClient(tracking_uri)` (requests, its own keep-alive session).

First, untimed, a warm-up: 20 log-metric calls through each client, 3 log-batch calls and 3
searches, so that no server is measured while it still initialises lazily after its start.

Phases (each bounded by --seconds of wall time and a maximum count, whichever comes first):

  log-metric   sequential POST runs/log-metric, one point per call (step = call number),
               raw HTTP, then the same through MlflowClient.log_metric; verified afterwards
               by reading the metric history back (every point must be there).
  log-batch    sequential POST runs/log-batch with 1,000 metric points each (10 keys x 100
               steps); points per second; verified by the histories' total length.
  search       1,000 runs created first (each: 3 params, 2 tags, 3 metrics, from a seeded
               RNG, so both servers hold the same data; 4 connections in parallel, set-up
               only), then --search-repeats times
               POST runs/search {filter: "metrics.loss < 0.5 and params.optimizer = 'adam'",
               order_by: ["metrics.loss ASC"], max_results: 1000}; every answer must hold the
               same number of runs, which is checked against the data.

Usage: tracking_bench.py --uri http://127.0.0.1:PORT --name mlflow|tuneflow --out FILE
           [--seconds 10] [--phases log-metric,log-batch,search]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import socket
import statistics
import sys
import time
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

API = "/api/2.0/mlflow"
SEARCH_FILTER = "metrics.loss < 0.5 and params.optimizer = 'adam'"
SEARCH_ORDER = ["metrics.loss ASC"]
OPTIMIZERS = ["adam", "sgd", "rmsprop"]
SETUP_THREADS = 4
WARM_UP_CALLS = 20


class Raw:
    """One keep-alive HTTP/1.1 connection speaking MLflow's JSON API."""

    def __init__(self, uri: str):
        parsed = urllib.parse.urlparse(uri)
        self.host, self.port = parsed.hostname, parsed.port
        self.reconnects = 0
        self.connect()

    def connect(self) -> None:
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call(self, method: str, endpoint: str, body: bytes | None = None) -> dict:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            self.conn.request(method, f"{API}/{endpoint}", body=body, headers=headers)
            response = self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed an idle keep-alive connection: open another and send again.
            self.conn.close()
            self.connect()
            self.reconnects += 1
            self.conn.request(method, f"{API}/{endpoint}", body=body, headers=headers)
            response = self.conn.getresponse()
        raw = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {endpoint} -> {response.status}: {raw[:300]!r}")
        return json.loads(raw) if raw else {}

    def post(self, endpoint: str, body: dict) -> dict:
        return self.call("POST", endpoint, json.dumps(body).encode())

    def history(self, run_id: str, key: str) -> list[dict]:
        points, token = [], None
        while True:
            query = {"run_id": run_id, "metric_key": key, "max_results": 25000}
            if token:
                query["page_token"] = token
            answer = self.call("GET", "metrics/get-history?" + urllib.parse.urlencode(query))
            points += answer.get("metrics", [])
            token = answer.get("next_page_token")
            if not token:
                return points


def now_ms() -> int:
    return int(time.time() * 1000)


def new_run(raw: Raw, experiment: str, run_name: str = "bench") -> tuple[str, str]:
    experiment_id = raw.post("experiments/create", {"name": experiment})["experiment_id"]
    run = raw.post("runs/create", {"experiment_id": experiment_id, "run_name": run_name,
                                   "start_time": now_ms()})
    return experiment_id, run["run"]["info"]["run_id"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timings(latencies: list[float], elapsed: float, unit_count: int) -> dict:
    return {"count": unit_count, "calls": len(latencies), "seconds": elapsed,
            "perSecond": unit_count / elapsed,
            "latencyMs": {"p50": percentile(latencies, 0.5) * 1e3,
                          "p90": percentile(latencies, 0.9) * 1e3,
                          "p99": percentile(latencies, 0.99) * 1e3,
                          "mean": statistics.fmean(latencies) * 1e3}}


def warm_up(uri: str, raw: Raw, tag: str) -> None:
    """Untimed calls of every kind measured, through both clients, so that neither server is
    measured while it still imports or initialises lazily (MLflow's workers do, after start)."""
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=uri)
    experiment_id, run_id = new_run(raw, f"bench-warm-up-{tag}")
    for step in range(WARM_UP_CALLS):
        raw.post("runs/log-metric", {"run_id": run_id, "key": "w", "value": 1.0,
                                     "timestamp": now_ms(), "step": step})
        client.log_metric(run_id, "w", 2.0, step=step)
    for batch in range(3):
        raw.post("runs/log-batch", {"run_id": run_id, "metrics": [
            {"key": "b", "value": 0.5, "timestamp": now_ms(), "step": batch * 1000 + s}
            for s in range(1000)]})
    for _ in range(3):
        raw.post("runs/search", {"experiment_ids": [experiment_id], "filter": SEARCH_FILTER,
                                 "order_by": SEARCH_ORDER, "max_results": 1000})
    raw.history(run_id, "w")


def log_metric(uri: str, raw: Raw, tag: str, seconds: float, max_calls: int) -> dict:
    result = {}
    # Raw HTTP.
    _, run_id = new_run(raw, f"bench-log-metric-raw-{tag}")
    latencies, start = [], time.perf_counter()
    deadline = start + seconds
    step = 0
    while step < max_calls and time.perf_counter() < deadline:
        body = json.dumps({"run_id": run_id, "key": "loss", "value": 1.0 / (step + 1),
                           "timestamp": now_ms(), "step": step}).encode()
        t0 = time.perf_counter()
        raw.call("POST", "runs/log-metric", body)
        latencies.append(time.perf_counter() - t0)
        step += 1
    elapsed = time.perf_counter() - start
    stored = len(raw.history(run_id, "loss"))
    result["raw"] = timings(latencies, elapsed, step) | {"verified": stored == step,
                                                         "stored": stored}
    # The official client.
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=uri)
    _, run_id = new_run(raw, f"bench-log-metric-client-{tag}")
    latencies, start = [], time.perf_counter()
    deadline = start + seconds
    step = 0
    while step < max_calls and time.perf_counter() < deadline:
        t0 = time.perf_counter()
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
        latencies.append(time.perf_counter() - t0)
        step += 1
    elapsed = time.perf_counter() - start
    stored = len(raw.history(run_id, "loss"))
    result["client"] = timings(latencies, elapsed, step) | {"verified": stored == step,
                                                            "stored": stored}
    return result


def log_batch(raw: Raw, tag: str, seconds: float, max_batches: int) -> dict:
    _, run_id = new_run(raw, f"bench-log-batch-{tag}")
    latencies, start = [], time.perf_counter()
    deadline = start + seconds
    batches = 0
    while batches < max_batches and time.perf_counter() < deadline:
        ts = now_ms()
        metrics = [{"key": f"m{k}", "value": random.random(), "timestamp": ts,
                    "step": batches * 100 + s} for k in range(10) for s in range(100)]
        body = json.dumps({"run_id": run_id, "metrics": metrics}).encode()
        t0 = time.perf_counter()
        raw.call("POST", "runs/log-batch", body)
        latencies.append(time.perf_counter() - t0)
        batches += 1
    elapsed = time.perf_counter() - start
    stored = sum(len(raw.history(run_id, f"m{k}")) for k in range(10))
    points = batches * 1000
    return timings(latencies, elapsed, points) | {"batches": batches, "stored": stored,
                                                   "verified": stored == points}


def create_search_run(uri: str, experiment_id: str, i: int, local) -> bool:
    """Creates run `i` (its data from a seed of its own, so the order of creation does not
    matter); True when it matches the search filter."""
    if not hasattr(local, "raw"):
        local.raw = Raw(uri)
    raw = local.raw
    rng = random.Random(1_000_003 * 7 + i)
    run_id = raw.post("runs/create", {"experiment_id": experiment_id, "run_name": f"run-{i}",
                                      "start_time": now_ms()})["run"]["info"]["run_id"]
    loss, optimizer = rng.random(), rng.choice(OPTIMIZERS)
    ts = now_ms()
    raw.post("runs/log-batch", {
        "run_id": run_id,
        "params": [{"key": "lr", "value": repr(10 ** rng.uniform(-5, -1))},
                   {"key": "optimizer", "value": optimizer},
                   {"key": "layers", "value": str(rng.randint(1, 8))}],
        "tags": [{"key": "team", "value": rng.choice(["a", "b"])},
                 {"key": "seed", "value": str(i)}],
        "metrics": [{"key": "loss", "value": loss, "timestamp": ts, "step": 0},
                    {"key": "accuracy", "value": 1 - loss, "timestamp": ts, "step": 0},
                    {"key": "epoch_seconds", "value": rng.uniform(1, 9), "timestamp": ts,
                     "step": 0}]})
    return loss < 0.5 and optimizer == "adam"


def search(uri: str, raw: Raw, tag: str, runs: int, repeats: int, seconds: float) -> dict:
    experiment_id = raw.post("experiments/create", {"name": f"bench-search-{tag}"})["experiment_id"]
    start = time.perf_counter()
    # Set-up only (not measured): SETUP_THREADS connections create the runs side by side.
    local = threading.local()
    with ThreadPoolExecutor(SETUP_THREADS) as pool:
        expected = sum(pool.map(lambda i: create_search_run(uri, experiment_id, i, local),
                                range(runs)))
    setup = time.perf_counter() - start
    body = json.dumps({"experiment_ids": [experiment_id], "filter": SEARCH_FILTER,
                       "order_by": SEARCH_ORDER, "max_results": 1000}).encode()
    latencies, counts, ordered = [], set(), True
    start = time.perf_counter()
    while len(latencies) < repeats and (len(latencies) < 3 or time.perf_counter() - start < seconds):
        t0 = time.perf_counter()
        answer = raw.call("POST", "runs/search", body)
        latencies.append(time.perf_counter() - t0)
        found = answer.get("runs", [])
        counts.add(len(found))
        losses = [next(m["value"] for m in r["data"]["metrics"] if m["key"] == "loss") for r in found]
        ordered &= losses == sorted(losses)
    return {"runs": runs, "setupSeconds": setup, "runsCreatedPerSecond": runs / setup,
            "repeats": len(latencies), "expectedMatches": expected, "returned": sorted(counts),
            "verified": counts == {expected} and ordered,
            "latencyMs": {"median": statistics.median(latencies) * 1e3,
                          "min": min(latencies) * 1e3, "max": max(latencies) * 1e3}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-calls", type=int, default=50_000)
    parser.add_argument("--max-batches", type=int, default=1_000)
    parser.add_argument("--search-runs", type=int, default=1000)
    parser.add_argument("--search-repeats", type=int, default=20)
    parser.add_argument("--phases", default="log-metric,log-batch,search")
    args = parser.parse_args()
    random.seed(11)
    tag = f"{args.name}-{int(time.time())}"
    raw = Raw(args.uri)
    result = {"server": args.name, "uri": args.uri}
    phases = args.phases.split(",")
    print(f"[{args.name}] warm-up (untimed)", file=sys.stderr, flush=True)
    warm_up(args.uri, raw, tag)
    if "log-metric" in phases:
        print(f"[{args.name}] log-metric", file=sys.stderr, flush=True)
        result["logMetric"] = log_metric(args.uri, raw, tag, args.seconds, args.max_calls)
    if "log-batch" in phases:
        print(f"[{args.name}] log-batch", file=sys.stderr, flush=True)
        result["logBatch"] = log_batch(raw, tag, args.seconds, args.max_batches)
    if "search" in phases:
        print(f"[{args.name}] search over {args.search_runs} runs", file=sys.stderr, flush=True)
        result["search"] = search(args.uri, raw, tag, args.search_runs, args.search_repeats, args.seconds * 6)
    with open(args.out, "w") as out:
        json.dump(result, out, indent=1)
    verified = all(v.get("verified", True) for v in
                   [result.get("logBatch", {}), result.get("search", {}),
                    *result.get("logMetric", {}).values()])
    if not verified:
        print(f"[{args.name}] VERIFICATION FAILED: see {args.out}", file=sys.stderr)
    return 0 if verified else 1


if __name__ == "__main__":
    sys.exit(main())
