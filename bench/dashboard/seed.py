#!/usr/bin/env python3
"""Seeds one experiment of SIZE trials x 20 steps into tuneflow's store and the same trials
into an Optuna RDB (SQLite) study, once; later runs find them in DATA/SIZE/ and skip this.

1. tuneflow: `tuneflow serve --addr 127.0.0.1:0 --store DATA/SIZE.tmp/tuneflow.db`; POST the
   client-driven experiment of data.py (algorithm `random`, seeded, `parallelTrialCount`
   min(SIZE, 1000)); then, in chunks of up to 1,000:
     POST .../suggestions {"count": k}                    -> k Running trials and parameters
     POST /api/2.0/mlflow/runs/search (status RUNNING)    -> each trial's MLflow run id
     per trial, on THREADS threads with one keep-alive connection each:
       POST /api/2.0/mlflow/runs/log-batch (the trial's whole curve, one point per step)
         [--observe-via observations: POST .../observations {"step", "metrics"} per step]
       POST .../trials/T/complete  ({} -> Succeeded, objective = min over the curve;
                                    {"state": "pruned"} -> EarlyStopped;
                                    {"state": "failed", "message"} -> Failed)
   The curve and state of a trial come from data.outcome(size, index, parameters), so they
   depend only on the parameters tuneflow suggested.
2. Read back: GET .../trials (state, objective, parameters, times) and, for a sample of
   trials, GET .../trials/T (observations) which must equal the curves sent. The trials as
   tuneflow has them go to DATA/SIZE/trials.json.gz.
3. Optuna: `optuna.create_study(storage="sqlite:///DATA/SIZE.tmp/optuna.db")`, then the rows
   that `study.add_trials` would write for FrozenTrials built from trials.json.gz (tuneflow's
   parameters, objective as the value for COMPLETE and PRUNED, the curve as intermediate
   values, tuneflow's start/complete times, fail_reason for FAIL), in one sqlite3
   transaction (`--optuna-load add-trials` calls `study.add_trials` itself: ~16 ms a trial).
   Every trial is read back through `optuna.load_study` and compared field by field.
4. DATA/SIZE.tmp is renamed to DATA/SIZE with seed.json (timings, counts, cache key).

Usage: seed.py --tuneflow BIN --size N --data DIR [--threads 4] [--observe-via log-batch]
               [--key KEY] [--optuna-load bulk|add-trials]
       seed.py ... --only-measure K    (K trials into a scratch store: the rate of --observe-via)
       seed.py ... --optuna-only        (rebuild DATA/SIZE/optuna-<load>.db from trials.json.gz)
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import gzip
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import data

HEADERS = {"Content-Type": "application/json"}


def log(msg: str) -> None:
    print(f"[seed] {msg}", file=sys.stderr, flush=True)


# --- a minimal keep-alive client ------------------------------------------------------------

class Client:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.conn = http.client.HTTPConnection(host, port, timeout=300)

    def call(self, method: str, path: str, body=None, ok=(200, 201, 204)):
        payload = None if body is None else json.dumps(body).encode()
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=payload,
                                  headers=HEADERS if payload is not None else {})
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, ConnectionError):
                if attempt:
                    raise
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
        if resp.status not in ok:
            raise RuntimeError(f"{method} {path} -> {resp.status}: {raw[:500]!r}")
        return json.loads(raw) if raw else None


class Server:
    """`tuneflow serve` on a free loopback port over STORE."""

    def __init__(self, binary: str, store: Path, logfile: Path):
        self.logfile = open(logfile, "wb")
        self.proc = subprocess.Popen(
            [binary, "serve", "--addr", "127.0.0.1:0", "--store", str(store)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.logfile)
        line = self.proc.stdout.readline().decode().strip()
        match = re.fullmatch(r"tuneflow serving on http://([^:]+):(\d+)", line)
        if not match:
            self.proc.kill()
            raise SystemExit(f"unexpected first line from tuneflow serve: {line!r} "
                             f"(stderr in {logfile})")
        self.host, self.port = match.group(1), int(match.group(2))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logfile.close()


# --- 1. tuneflow --------------------------------------------------------------------------------

def trial_index(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def seed_tuneflow(server: Server, size: int, threads: int, via: str, limit: int | None) -> dict:
    name = data.experiment_name(size)
    base = f"/api/v1/experiments/{name}"
    main = Client(server.host, server.port)
    main.call("POST", "/api/v1/experiments", data.experiment_doc(size))
    exp_id = main.call("GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name="
                       + name)["experiment"]["experiment_id"]

    local = threading.local()

    def client() -> Client:
        if not hasattr(local, "c"):
            local.c = Client(server.host, server.port)
        return local.c

    def report(trial: dict, run_id: str) -> int:
        c = client()
        index = trial_index(trial["name"])
        out = data.outcome(size, index, trial["parameters"])
        tpath = f"{base}/trials/{trial['name']}"
        now = int(time.time() * 1000)
        requests = 0
        if via == "log-batch":
            if out["curve"]:
                c.call("POST", "/api/2.0/mlflow/runs/log-batch", {
                    "run_id": run_id,
                    "metrics": [{"key": data.METRIC, "value": v, "timestamp": now + s,
                                 "step": s} for s, v in enumerate(out["curve"])]})
                requests += 1
        else:
            for s, v in enumerate(out["curve"]):
                c.call("POST", f"{tpath}/observations", {"step": s, "metrics": {data.METRIC: v}})
                requests += 1
        if out["state"] == "Succeeded":
            body = {}
        elif out["state"] == "EarlyStopped":
            body = {"state": "pruned"}
        else:
            body = {"state": "failed", "message": out["message"]}
        c.call("POST", f"{tpath}/complete", body)
        return requests + 1

    timings = {"suggest": 0.0, "search": 0.0, "report": 0.0}
    total = size if limit is None else limit
    done = 0
    requests = 0
    points = 0
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(threads) as pool:
        while done < total:
            k = min(1000, total - done)
            t = time.perf_counter()
            answer = main.call("POST", f"{base}/suggestions", {"count": k})
            timings["suggest"] += time.perf_counter() - t
            trials = answer["trials"]
            if len(trials) != k:
                raise SystemExit(f"asked {k} suggestions, got {len(trials)}: {answer}")
            t = time.perf_counter()
            run_ids = {}
            token = None
            while True:
                query = {"experiment_ids": [exp_id], "max_results": 1000,
                         "filter": "tags.`tuneflow.trial` IS NOT NULL and "
                                   "attributes.status = 'RUNNING'"}
                if token:
                    query["page_token"] = token
                page = main.call("POST", "/api/2.0/mlflow/runs/search", query)
                for run in page.get("runs", []):
                    tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
                    run_ids[tags["tuneflow.trial"]] = run["info"]["run_id"]
                token = page.get("next_page_token")
                if not token:
                    break
            timings["search"] += time.perf_counter() - t
            missing = [tr["name"] for tr in trials if tr["name"] not in run_ids]
            if missing:
                raise SystemExit(f"no RUNNING MLflow run for {missing[:5]} ...")
            t = time.perf_counter()
            for n in pool.map(lambda tr: report(tr, run_ids[tr["name"]]), trials):
                requests += n
            timings["report"] += time.perf_counter() - t
            points += sum(len(data.outcome(size, trial_index(tr["name"]), tr["parameters"])
                              ["curve"]) for tr in trials)
            done += k
            if done % 10000 == 0 or done == total:
                log(f"{name}: {done}/{total} trials in {time.perf_counter() - t0:.1f} s")
    wall = time.perf_counter() - t0
    return {"trials": total, "observations": points, "reportRequests": requests,
            "observeVia": via, "threads": threads, "wallSeconds": round(wall, 3),
            "trialsPerSecond": round(total / wall, 1),
            "observationsPerSecond": round(points / timings["report"], 1),
            **{f"{k}Seconds": round(v, 3) for k, v in timings.items()}}


def read_back(server: Server, size: int, sample: int = 200) -> list[dict]:
    name = data.experiment_name(size)
    main = Client(server.host, server.port)
    exp = main.call("GET", f"/api/v1/experiments/{name}")
    trials = main.call("GET", f"/api/v1/experiments/{name}/trials")["trials"]
    if len(trials) != size:
        raise SystemExit(f"tuneflow has {len(trials)} trials of {name}, expected {size}")
    out = []
    for t in trials:
        o = data.outcome(size, t["index"], t["parameters"])
        if t["state"] != o["state"]:
            raise SystemExit(f"{t['name']}: state {t['state']} in tuneflow, {o['state']} sent")
        if trial_index(t["name"]) != t["index"]:
            raise SystemExit(f"{t['name']} has index {t['index']}")
        if t["state"] == "Succeeded" and t["objective"] != min(o["curve"]):
            raise SystemExit(f"{t['name']}: objective {t['objective']} != min {min(o['curve'])}")
        out.append({"index": t["index"], "name": t["name"], "state": t["state"],
                    "objective": t["objective"], "parameters": t["parameters"],
                    "message": t.get("message"), "curve": o["curve"],
                    "createdAt": t["createdAt"], "startedAt": t["startedAt"],
                    "completedAt": t["completedAt"]})
    step = max(1, size // sample)
    for t in out[::step]:
        detail = main.call("GET", f"/api/v1/experiments/{name}/trials/{t['name']}")
        got = sorted((o["step"], o["value"]) for o in detail["observations"]
                     if o["metric"] == data.METRIC)
        if got != list(enumerate(t["curve"])):
            raise SystemExit(f"{t['name']}: observations in tuneflow {got[:3]}... != sent "
                             f"{t['curve'][:3]}...")
    log(f"{name}: tuneflow holds {len(out)} trials ({exp['trials']}), state {exp['state']}; "
        f"observations of {len(out[::step])} sampled trials match")
    return out


# --- 3. Optuna ----------------------------------------------------------------------------------

def parse_time(text: str | None):
    if text is None:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(
        dt.timezone.utc).replace(tzinfo=None)


def frozen_trials(trials: list[dict]):
    from optuna.trial import FrozenTrial, TrialState
    states = {"Succeeded": TrialState.COMPLETE, "EarlyStopped": TrialState.PRUNED,
              "Failed": TrialState.FAIL}
    dists = data.optuna_distributions()
    frozen = []
    for t in trials:
        state = states[t["state"]]
        frozen.append(FrozenTrial(
            number=t["index"], state=state,
            value=t["objective"] if state != TrialState.FAIL else None,
            datetime_start=parse_time(t["startedAt"]),
            datetime_complete=parse_time(t["completedAt"]),
            params=dict(t["parameters"]), distributions=dists, user_attrs={},
            # What Optuna itself records for a failed trial.
            system_attrs={"fail_reason": t["message"]} if state == TrialState.FAIL else {},
            intermediate_values={s: v for s, v in enumerate(t["curve"])}, trial_id=0))
    return frozen


def bulk_insert(db: Path, study_id: int, frozen) -> None:
    """The rows `study.add_trials(frozen)` writes, in one sqlite3 transaction (add_trials
    commits each trial with SQLAlchemy's ORM: ~22 ms a trial here, 18 minutes for 50,000)."""
    import sqlite3
    from optuna.distributions import distribution_to_json
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    conn = sqlite3.connect(db)
    with conn:
        next_id = (conn.execute("SELECT COALESCE(MAX(trial_id), 0) FROM trials").fetchone()[0]
                   + 1)
        trials, params, values, inter, attrs = [], [], [], [], []
        for offset, f in enumerate(frozen):
            tid = next_id + offset
            trials.append((tid, f.number, study_id, f.state.name,
                           f.datetime_start and f.datetime_start.strftime(fmt),
                           f.datetime_complete and f.datetime_complete.strftime(fmt)))
            for name, value in f.params.items():
                d = f.distributions[name]
                params.append((tid, name, d.to_internal_repr(value), distribution_to_json(d)))
            if f.value is not None:
                values.append((tid, 0, f.value, "FINITE"))
            for step, v in f.intermediate_values.items():
                inter.append((tid, step, v, "FINITE"))
            for key, v in f.system_attrs.items():
                attrs.append((tid, key, json.dumps(v)))
        conn.executemany("INSERT INTO trials (trial_id, number, study_id, state, "
                         "datetime_start, datetime_complete) VALUES (?,?,?,?,?,?)", trials)
        conn.executemany("INSERT INTO trial_params (trial_id, param_name, param_value, "
                         "distribution_json) VALUES (?,?,?,?)", params)
        conn.executemany("INSERT INTO trial_values (trial_id, objective, value, value_type) "
                         "VALUES (?,?,?,?)", values)
        conn.executemany("INSERT INTO trial_intermediate_values (trial_id, step, "
                         "intermediate_value, intermediate_value_type) VALUES (?,?,?,?)", inter)
        conn.executemany("INSERT INTO trial_system_attributes (trial_id, key, value_json) "
                         "VALUES (?,?,?)", attrs)
    conn.close()


def comparable(g):
    return (g.number, g.state, g.value, g.params, g.distributions,
            dict(g.intermediate_values), g.system_attrs, g.user_attrs,
            g.datetime_start, g.datetime_complete)


def build_optuna(trials: list[dict], size: int, db: Path, how: str) -> dict:
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    frozen = frozen_trials(trials)
    name = data.experiment_name(size)
    url = f"sqlite:///{db}"
    t0 = time.perf_counter()
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, study_name=name, direction="minimize")
    if how == "add-trials":
        study.add_trials(frozen)
    else:
        bulk_insert(db, study._study_id, frozen)
    wall = time.perf_counter() - t0
    storage.engine.dispose()
    # Read back through Optuna's own storage and compare every field of every trial.
    t1 = time.perf_counter()
    got = sorted(optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False),
                 key=lambda g: g.number)
    read = time.perf_counter() - t1
    if len(got) != len(frozen):
        raise SystemExit(f"optuna study has {len(got)} trials, expected {len(frozen)}")
    for f, g in zip(frozen, got):
        if comparable(f) != comparable(g):
            raise SystemExit(f"optuna trial {g.number} differs from what was loaded:\n"
                             f"{comparable(f)}\n{comparable(g)}")
    log(f"optuna study {name}: {len(got)} trials loaded ({how}) in {wall:.1f} s, read back "
        f"through optuna.load_study in {read:.1f} s and equal")
    return {"trials": len(got), "load": how, "wallSeconds": round(wall, 3),
            "readBackSeconds": round(read, 3), "optunaVersion": optuna.__version__}


# --- main -----------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tuneflow", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--observe-via", choices=["log-batch", "observations"], default="log-batch")
    ap.add_argument("--key", default="")
    ap.add_argument("--optuna-load", choices=["bulk", "add-trials"], default="bulk")
    ap.add_argument("--optuna-only", action="store_true",
                    help="rebuild only the Optuna study of a seeded size from trials.json.gz")
    ap.add_argument("--only-measure", type=int, default=0,
                    help="seed only this many trials into a scratch store with --observe-via "
                         "and print the rate (no cache written)")
    args = ap.parse_args()

    if args.only_measure:
        scratch = args.data / f"measure-{args.observe_via}.tmp"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        server = Server(args.tuneflow, scratch / "tuneflow.db", scratch / "serve.log")
        try:
            r = seed_tuneflow(server, args.size, args.threads, args.observe_via,
                              args.only_measure)
        finally:
            server.stop()
            shutil.rmtree(scratch, ignore_errors=True)
        print(json.dumps(r))
        return

    final = args.data / str(args.size)
    if args.optuna_only:
        with gzip.open(final / "trials.json.gz", "rt") as f:
            trials = json.load(f)
        db = final / f"optuna-{args.optuna_load}.db"
        db.unlink(missing_ok=True)
        print(json.dumps(build_optuna(trials, args.size, db, args.optuna_load)))
        return
    meta_file = final / "seed.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("key") == args.key:
            log(f"size {args.size}: seeded already ({final}), skipped")
            return
        log(f"size {args.size}: cache key changed, seeding again")
    shutil.rmtree(final, ignore_errors=True)
    tmp = args.data / f"{args.size}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    server = Server(args.tuneflow, tmp / "tuneflow.db", tmp / "serve.log")
    try:
        tf = seed_tuneflow(server, args.size, args.threads, args.observe_via, None)
        log(f"tuneflow: {json.dumps(tf)}")
        trials = read_back(server, args.size)
    finally:
        server.stop()
    with gzip.open(tmp / "trials.json.gz", "wt") as f:
        json.dump(trials, f)
    op = build_optuna(trials, args.size, tmp / "optuna.db", args.optuna_load)
    states = {}
    for t in trials:
        states[t["state"]] = states.get(t["state"], 0) + 1
    meta = {"key": args.key, "size": args.size, "steps": data.STEPS,
            "experiment": data.experiment_name(size=args.size), "states": states,
            "observations": sum(len(t["curve"]) for t in trials),
            "tuneflowBinary": args.tuneflow, "tuneflow": tf, "optuna": op,
            "seededAt": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    (tmp / "seed.json").write_text(json.dumps(meta, indent=1))
    os.replace(tmp, final)
    log(f"size {args.size}: seeded into {final}: {states}")


if __name__ == "__main__":
    main()
