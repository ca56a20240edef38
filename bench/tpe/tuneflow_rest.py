"""What the benchmark harnesses (tpe, early-stopping, ask-tell) share: a minimal client of
`tuneflow serve`, standard library only, and the seed and resume rules of a run.

`Server` starts `tuneflow serve --addr 127.0.0.1:0 --store DB`, reads the first stdout line
(`tuneflow serving on http://HOST:PORT`) and stops the server with SIGTERM. `Client` speaks
HTTP/1.1 over one keep-alive `http.client` connection (TCP_NODELAY set).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

HEADERS = {"Content-Type": "application/json"}


def seeds(n: int) -> list[int]:
    """Seeds SEED_BASE+1 .. SEED_BASE+n (SEED_BASE from the environment, default 0), so that a
    report can use seeds no one looked at while developing."""
    base = int(os.environ.get("SEED_BASE", "0"))
    return list(range(base + 1, base + n + 1))


def finished_runs(out: Path, **match) -> set[tuple[str, int]]:
    """(problem, seed) of the runs already in the JSON-lines file `out` whose fields equal
    `match`, so that an interrupted benchmark resumes where it stopped."""
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if all(r.get(k) == v for k, v in match.items()):
                    done.add((r["problem"], r["seed"]))
    return done


def start(binary: str, scratch: Path, tag: str) -> tuple["Server", "Client"]:
    """A fresh server (store and log in `scratch`, named by `tag`) and a client of it."""
    scratch.mkdir(parents=True, exist_ok=True)
    server = Server(binary, scratch / f"{tag}.db", scratch / f"{tag}.log")
    return server, Client(server.host, server.port)


class Server:
    def __init__(self, binary: str, store: Path, log: Path):
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(
            [binary, "serve", "--addr", "127.0.0.1:0", "--store", str(store)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode().strip()
        match = re.fullmatch(r"tuneflow serving on http://([^:]+):(\d+)", line)
        if not match:
            self.proc.kill()
            raise SystemExit(f"unexpected first line from tuneflow serve: {line!r} "
                             f"(stderr in {log})")
        self.host, self.port = match.group(1), int(match.group(2))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        return code

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class ApiError(RuntimeError):
    pass


class Client:
    def __init__(self, host: str, port: int):
        self.conn = http.client.HTTPConnection(host, port, timeout=600)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call(self, method: str, path: str, body: dict | None = None, expect=(200, 201, 204)):
        data = None if body is None else json.dumps(body).encode()
        self.conn.request(method, path, body=data, headers=HEADERS if data is not None else {})
        response = self.conn.getresponse()
        raw = response.read()
        decoded = json.loads(raw) if raw else None
        if response.status not in expect:
            raise ApiError(f"{method} {path} -> {response.status}: {decoded}")
        return decoded

    def create(self, doc: dict) -> dict:
        return self.call("POST", "/api/v1/experiments", doc)

    def ask(self, name: str) -> dict:
        """POST .../suggestions {"count": 1}: the raw answer."""
        return self.call("POST", f"/api/v1/experiments/{name}/suggestions", {"count": 1})

    def complete(self, name: str, trial: str, value: float) -> dict:
        return self.call("POST", f"/api/v1/experiments/{name}/trials/{trial}/complete",
                         {"metrics": {"value": value}})

    def experiment(self, name: str) -> dict:
        return self.call("GET", f"/api/v1/experiments/{name}")

    def close(self):
        self.conn.close()


# tuneflow variants the harness runs: name -> (algorithmName, extra algorithmSettings).
VARIANTS = {
    "tpe": ("tpe", {}),                                  # the default: a joint model
    "tpe-indep": ("tpe", {"multivariate": "false"}),     # independent per-parameter estimators
    "multivariate-tpe": ("multivariate-tpe", {}),        # Katib's name; the same as tpe now
    "random": ("random", {}),
}


def experiment_doc(name: str, variant: str, seed: int, max_trials: int,
                   parameters: list[dict]) -> dict:
    """A client-driven experiment (no trialTemplate): minimise metric `value`, one trial at a
    time, `random_state` = seed, with the algorithm and settings of `variant` (VARIANTS)."""
    algorithm, extra = VARIANTS[variant]
    settings = [{"name": "random_state", "value": str(seed)}]
    settings += [{"name": k, "value": v} for k, v in extra.items()]
    return {
        "apiVersion": "tuneflow.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "value"},
            "algorithm": {"algorithmName": algorithm, "algorithmSettings": settings},
            "maxTrialCount": max_trials,
            "parallelTrialCount": 1,
            "parameters": parameters,
        },
    }
