#!/usr/bin/env python3
"""The tuneflow side of the ask/tell benchmark: `tuneflow serve` driven over its REST API.

Standard library only: the workers speak HTTP/1.1 with `http.client` (one keep-alive
connection each), so what is measured is the server plus a minimal client, not tuneflow's
Python package.

Phases (each starts its own `tuneflow serve --addr 127.0.0.1:0` on a fresh store in --scratch,
reads the first stdout line `tuneflow serving on http://HOST:PORT`, and stops it with SIGTERM):

  throughput  one client-driven random-search experiment (lr: double logUniform, layers: int,
              opt: categorical), parallelTrialCount = --workers, maxTrialCount = workers x
              rounds. --workers processes each open one HTTPConnection, wait on a barrier, and
              do --rounds round trips of
                  POST .../suggestions {"count": 1}  ->  objective(parameters)  ->
                  POST .../trials/T/complete {"metrics": {"loss": v}}
              timing every call with time.perf_counter_ns. Phase wall time = first worker's
              start after the barrier -> last worker's end (CLOCK_MONOTONIC, shared by all
              processes). Afterwards GET /api/v1/experiments/NAME must say succeeded ==
              workers x rounds, nothing failed or running, and no trial name may have been
              handed out twice; otherwise this script exits 1.
  latency     one sequential client, parallelTrialCount 1, --asks round trips (after --warmup
              untimed ones), twice: with http.client, and with a raw socket that sends
              pre-encoded requests and reads the response by Content-Length (a minimal load
              generator without http.client's header parsing). The ask and the complete are
              timed separately.

An ask's latency runs from just before the request is written to just after the whole
response body is read; decoding the JSON body comes after and is not included. The server's
own view (its `tuneflow_http_request_duration_seconds` histogram, scraped from /metrics
before and after) and the server process's CPU time (/proc/PID/stat) are recorded too.

Usage: tuneflow_bench.py --tuneflow BIN --scratch DIR --phase throughput|latency --out FILE
           [--workers 4] [--rounds 2500] [--asks 5000] [--warmup 100] [--seed 7]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import os
import re
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tpe"))
import tuneflow_rest  # noqa: E402  (the harnesses' shared server)

SUGGEST_BODY = b'{"count":1}'
HEADERS = {"Content-Type": "application/json"}


# --- the experiment -----------------------------------------------------------------------------

def experiment_doc(name: str, max_trials: int, parallel: int, seed: int) -> dict:
    """A client-driven (no trialTemplate) random-search experiment over three parameters."""
    return {
        "apiVersion": "tuneflow.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random",
                          "algorithmSettings": [{"name": "random_state", "value": str(seed)}]},
            "maxTrialCount": max_trials,
            "parallelTrialCount": parallel,
            "trialLeaseSeconds": 600,
            "parameters": [
                {"name": "lr", "parameterType": "double",
                 "feasibleSpace": {"min": "1e-5", "max": "1e-1", "distribution": "logUniform"}},
                {"name": "layers", "parameterType": "int",
                 "feasibleSpace": {"min": "1", "max": "8"}},
                {"name": "opt", "parameterType": "categorical",
                 "feasibleSpace": {"list": ["adam", "sgd"]}},
            ],
        },
    }


def objective(p: dict) -> float:
    """Trivial and deterministic; the same function as optuna_bench.py's."""
    return ((math.log10(p["lr"]) + 3.0) ** 2 + 0.01 * (p["layers"] - 4) ** 2
            + (0.0 if p["opt"] == "adam" else 0.1))


# --- the server ---------------------------------------------------------------------------------

class Server(tuneflow_rest.Server):
    """`tuneflow serve` on a free loopback port and a fresh store (the harnesses' shared
    server), with its CPU time."""

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def call(conn: http.client.HTTPConnection, method: str, path: str, body: dict | None = None):
    """One request on a keep-alive connection; (status, decoded JSON or None)."""
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers=HEADERS if data is not None else {})
    response = conn.getresponse()
    raw = response.read()
    ctype = response.getheader("Content-Type", "")
    return response.status, (json.loads(raw) if raw and "json" in ctype else raw.decode())


def connect(host: str, port: int) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.connect()
    # http.client writes headers and a bytes body in one send(), so Nagle would not bite; set
    # anyway so that the client side never adds a delayed-ACK wait.
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def expect(status: int, body, wanted: int, what: str):
    if status != wanted:
        raise RuntimeError(f"{what}: HTTP {status}, expected {wanted}: {body}")
    return body


# Labels are matched greedily: route patterns contain braces themselves ("/{name}/").
HIST = re.compile(r'^tuneflow_http_request_duration_seconds_(bucket|sum|count)\{(.*)\} (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(host: str, port: int) -> tuple[str, dict]:
    """/metrics as text, and the request-duration histogram by route."""
    conn = connect(host, port)
    status, text = call(conn, "GET", "/metrics")
    conn.close()
    expect(status, text, 200, "GET /metrics")
    routes: dict[str, dict] = {}
    for line in text.splitlines():
        m = HIST.match(line)
        if not m:
            continue
        labels = dict(LABEL.findall(m.group(2)))
        r = routes.setdefault(labels.get("route", "?"), {"sum": 0.0, "count": 0, "buckets": {}})
        value = float(m.group(3))
        if m.group(1) == "bucket":
            r["buckets"][labels["le"]] = value
        elif m.group(1) == "sum":
            r["sum"] = value
        else:
            r["count"] = int(value)
    return text, routes


def histogram_delta(before: dict, after: dict) -> dict:
    """after - before, per route, with the buckets as a sorted [[upper bound, cumulative]]."""
    out = {}
    for route, a in after.items():
        b = before.get(route, {"sum": 0.0, "count": 0, "buckets": {}})
        count = a["count"] - b["count"]
        if count <= 0:
            continue
        buckets = sorted(((float(le), a["buckets"][le] - b["buckets"].get(le, 0))
                          for le in a["buckets"]), key=lambda x: x[0])
        out[route] = {"count": count, "sumSeconds": a["sum"] - b["sum"], "buckets": buckets}
    return out


# --- phase 1: throughput with concurrent worker processes ---------------------------------------

def throughput_worker(index: int, host: str, port: int, name: str, rounds: int,
                      barrier, out: str) -> None:
    result = {"worker": index, "asksNs": [], "tellsNs": [], "trials": [], "emptyAsks": 0,
              "error": None}
    try:
        conn = connect(host, port)
        suggest = f"/api/v1/experiments/{name}/suggestions"
        barrier.wait(timeout=300)
        cpu0 = time.process_time()
        result["startNs"] = time.perf_counter_ns()
        done = 0
        while done < rounds:
            t0 = time.perf_counter_ns()
            conn.request("POST", suggest, body=SUGGEST_BODY, headers=HEADERS)
            response = conn.getresponse()
            raw = response.read()
            t1 = time.perf_counter_ns()
            answer = expect(response.status, raw, 200, "suggestions")
            trials = json.loads(answer)["trials"]
            if not trials:
                # Cannot happen while each worker holds at most one trial and the
                # experiment allows `workers` at once: recorded, and the run fails below.
                result["emptyAsks"] += 1
                if result["emptyAsks"] > 100:
                    raise RuntimeError(f"100 empty suggestion answers, last: {answer!r}")
                continue
            trial = trials[0]
            body = json.dumps({"metrics": {"loss": objective(trial["parameters"])}}).encode()
            t2 = time.perf_counter_ns()
            conn.request("POST", f"/api/v1/experiments/{name}/trials/{trial['name']}/complete",
                         body=body, headers=HEADERS)
            response = conn.getresponse()
            raw = response.read()
            t3 = time.perf_counter_ns()
            expect(response.status, raw, 200, f"complete {trial['name']}")
            result["asksNs"].append(t1 - t0)
            result["tellsNs"].append(t3 - t2)
            result["trials"].append(trial["name"])
            done += 1
        result["endNs"] = time.perf_counter_ns()
        result["cpuSeconds"] = time.process_time() - cpu0
        conn.close()
    except Exception as e:  # recorded for the parent, which fails the run
        result["error"] = f"{type(e).__name__}: {e}"
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)
    sys.exit(1 if result["error"] else 0)


def phase_throughput(args, server: Server) -> dict:
    name = "asktell-throughput"
    total = args.workers * args.rounds
    conn = connect(server.host, server.port)
    expect(*call(conn, "POST", "/api/v1/experiments",
                 experiment_doc(name, total, args.workers, args.seed)), 201, "create experiment")
    _, hist0 = scrape(server.host, server.port)
    cpu0 = server.cpu_seconds()

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(args.workers)
    files = [Path(args.scratch) / f"tf-worker-{i}.json" for i in range(args.workers)]
    procs = [ctx.Process(target=throughput_worker,
                         args=(i, server.host, server.port, name, args.rounds, barrier, str(f)))
             for i, f in enumerate(files)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    cpu1 = server.cpu_seconds()
    metrics_text, hist1 = scrape(server.host, server.port)
    workers = [json.loads(f.read_text()) if f.exists() else
               {"worker": i, "error": f"no result (exit code {p.exitcode})"}
               for i, (f, p) in enumerate(zip(files, procs))]

    status, experiment = call(conn, "GET", f"/api/v1/experiments/{name}")
    expect(status, experiment, 200, "GET experiment")
    conn.close()

    problems = [f"worker {w['worker']}: {w['error']}" for w in workers if w.get("error")]
    counts = experiment["trials"]
    if counts["succeeded"] != total:
        problems.append(f"experiment says succeeded = {counts['succeeded']}, expected {total}")
    others = {k: v for k, v in counts.items() if k != "succeeded" and v}
    if others:
        problems.append(f"trials in other states: {others}")
    names = [t for w in workers for t in w.get("trials", [])]
    if len(names) != len(set(names)):
        problems.append(f"{len(names) - len(set(names))} trial names were handed out twice")
    empty = sum(w.get("emptyAsks", 0) for w in workers)
    if empty:
        problems.append(f"{empty} suggestion answers held no trial")
    ok = not problems
    starts = [w["startNs"] for w in workers if "startNs" in w]
    ends = [w["endNs"] for w in workers if "endNs" in w]
    for w in workers:
        w.pop("trials", None)
    return {
        "phase": "throughput", "experiment": name, "workers": args.workers,
        "roundsPerWorker": args.rounds, "roundTrips": len(names),
        "wallSeconds": (max(ends) - min(starts)) / 1e9 if ok else None,
        "serverCpuSeconds": cpu1 - cpu0,
        "serverHistogram": histogram_delta(hist0, hist1),
        "experimentAfter": {k: experiment.get(k) for k in ("state", "reason", "trials")},
        "perWorker": workers, "problems": problems, "metricsText": metrics_text,
    }


# --- phase 2: latency of one sequential client --------------------------------------------------

class RawClient:
    """HTTP/1.1 over one socket with pre-encoded requests: the least a client can do."""

    def __init__(self, host: str, port: int):
        self.sock = socket.create_connection((host, port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host = f"{host}:{port}"

    def encode(self, path: str, body: bytes) -> bytes:
        return (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode() + body

    def send(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        buf = b""
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed by the server")
            buf += chunk
        head, body = buf[:end], buf[end + 4:]
        status = int(head[9:12])
        length = None
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"response without Content-Length: {head!r}")
        while len(body) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed by the server")
            body += chunk
        return status, body


def sequential(client: str, host: str, port: int, name: str, n: int) -> dict:
    """n ask + complete round trips, one at a time; the latency of each call."""
    asks, tells, empty = [], [], 0
    suggest = f"/api/v1/experiments/{name}/suggestions"
    if client == "http.client":
        conn = connect(host, port)

        def post(path: str, body: bytes) -> tuple[int, bytes]:
            conn.request("POST", path, body=body, headers=HEADERS)
            response = conn.getresponse()
            return response.status, response.read()
        ask_request = None
    else:
        raw = RawClient(host, port)
        ask_request = raw.encode(suggest, SUGGEST_BODY)
    for _ in range(n):
        t0 = time.perf_counter_ns()
        status, body = post(suggest, SUGGEST_BODY) if ask_request is None else raw.send(ask_request)
        t1 = time.perf_counter_ns()
        expect(status, body, 200, "suggestions")
        trials = json.loads(body)["trials"]
        if not trials:
            empty += 1
            if empty > 100:
                raise RuntimeError(f"100 empty suggestion answers, last: {body!r}")
            continue
        trial = trials[0]
        path = f"/api/v1/experiments/{name}/trials/{trial['name']}/complete"
        done = json.dumps({"metrics": {"loss": objective(trial["parameters"])}}).encode()
        t2 = time.perf_counter_ns()
        status, body = post(path, done) if ask_request is None else raw.send(raw.encode(path, done))
        t3 = time.perf_counter_ns()
        expect(status, body, 200, f"complete {trial['name']}")
        asks.append(t1 - t0)
        tells.append(t3 - t2)
    return {"asksNs": asks, "tellsNs": tells, "emptyAsks": empty}


def phase_latency(args, server: Server) -> dict:
    conn = connect(server.host, server.port)
    variants, problems = [], []
    for client in ("http.client", "raw socket"):
        name = "asktell-latency-" + ("httpclient" if client == "http.client" else "raw")
        total = args.warmup + args.asks
        expect(*call(conn, "POST", "/api/v1/experiments",
                     experiment_doc(name, total, 1, args.seed)), 201, "create experiment")
        sequential(client, server.host, server.port, name, args.warmup)
        _, hist0 = scrape(server.host, server.port)
        cpu0 = server.cpu_seconds()
        started = time.perf_counter_ns()
        result = sequential(client, server.host, server.port, name, args.asks)
        wall = (time.perf_counter_ns() - started) / 1e9
        cpu1 = server.cpu_seconds()
        _, hist1 = scrape(server.host, server.port)
        status, experiment = call(conn, "GET", f"/api/v1/experiments/{name}")
        expect(status, experiment, 200, "GET experiment")
        if experiment["trials"]["succeeded"] != total:
            problems.append(f"{name}: succeeded = {experiment['trials']['succeeded']}, "
                            f"expected {total}")
        if result["emptyAsks"]:
            problems.append(f"{name}: {result['emptyAsks']} empty suggestion answers")
        variants.append({"client": client, "experiment": name, "asks": len(result["asksNs"]),
                         "warmup": args.warmup, "wallSeconds": wall,
                         "serverCpuSeconds": cpu1 - cpu0,
                         "serverHistogram": histogram_delta(hist0, hist1), **result})
    conn.close()
    return {"phase": "latency", "variants": variants, "problems": problems}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuneflow", required=True)
    parser.add_argument("--scratch", required=True)
    parser.add_argument("--phase", choices=["throughput", "latency"], required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2500)
    parser.add_argument("--asks", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    scratch = Path(args.scratch) / f"tuneflow-{args.phase}"
    scratch.mkdir(parents=True, exist_ok=True)
    args.scratch = str(scratch)
    log = Path(args.out).with_suffix(".server.log")
    server = Server(args.tuneflow, scratch / "tuneflow.db", log)
    try:
        result = (phase_throughput if args.phase == "throughput" else phase_latency)(args, server)
    finally:
        code = server.stop()
    result["serverExitCode"] = code
    if code != 0:
        result["problems"].append(f"tuneflow serve exited {code} on SIGTERM")
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f)
    if result["phase"] == "throughput" and not result["problems"]:
        print(f"tuneflow throughput: {result['roundTrips']} round trips by {args.workers} "
              f"workers in {result['wallSeconds']:.2f} s "
              f"({result['roundTrips'] / result['wallSeconds']:.0f}/s)", file=sys.stderr)
    for problem in result["problems"]:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
