#!/usr/bin/env python3
"""The operator benchmark (issue 7): `tuneflow operator` against the fake API server.

    bench.py launch --tuneflow BIN --fake-kube BIN --out DIR [--experiments 100 --parallel 30
                    --lines 30 --line-delay-ms 1000]
    bench.py memory --tuneflow BIN --fake-kube BIN --out DIR [--trials 10000 --parallel 100]
    bench.py report DIR          # re-print the tables of an earlier run

`launch`: N Experiment resources of P parallel trials each (maxTrialCount = P, so every trial
of an experiment runs at once), POSTed one after the other. Watches on Jobs, Pods and
Experiments (this script's own, with the receive time of every event) give: when each Job
appeared, when its pod became Running, when each Experiment reached Succeeded. The operator's
CPU (utime + stime) and memory (VmRSS, VmHWM) come from /proc every 250 ms.

`memory`: one Experiment of T trials (one log line each) fills the operator's store; then the
operator is stopped and started again on the filled store (the experiment is finished: it may
only read the store and write the status). One status field is changed by hand while the
operator is down, so the restarted operator has to write the status once: the time to that
write, then 30 s of idle CPU and the settled RSS.

Standard library only. Timings are measurements, never pass/fail.
"""

import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

NS = "bench"
GROUP_PATH = "/apis/tuneflow.dev/v1alpha1"
TICK = os.sysconf("SC_CLK_TCK")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def now():
    return time.monotonic()


# ---------------------------------------------------------------------------------------------
# processes


class Proc:
    """A child process whose stdout+stderr go to a log file, scanned for a line."""

    def __init__(self, argv, log_path, env=None, want=None):
        self.log_path = log_path
        self.log = open(log_path, "w", buffering=1)
        self.lines = []
        self.found = threading.Event()
        self.match = None
        self.want = want
        self.started = now()
        self.p = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            bufsize=1,
        )
        self.t = threading.Thread(target=self._pump, daemon=True)
        self.t.start()

    def _pump(self):
        for line in self.p.stdout:
            self.log.write(line)
            if self.want and not self.found.is_set() and self.want in line:
                self.match = line.strip()
                self.found.set()
        self.log.flush()

    def wait_for(self, timeout):
        if not self.found.wait(timeout):
            raise SystemExit(f"{self.p.args[0]}: no {self.want!r} in {timeout} s; see {self.log_path}")
        return self.match

    def stop(self, timeout=60):
        """SIGINT (what ctrl-c does), then SIGKILL if it does not end."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.t.join(5)
        self.log.flush()
        return self.p.returncode


def proc_stats(pid):
    """(cpu seconds, VmRSS KiB, VmHWM KiB, threads) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        rss = hwm = threads = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        return cpu, rss, hwm, threads
    except (OSError, ValueError, IndexError):
        return None


def sockets(pid):
    """How many sockets a process has open (HTTP connections: watches, log streams, pool)."""
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    n += 1
            except OSError:
                pass
    except OSError:
        return None
    return n


class Sampler:
    """Samples /proc of some processes every `every` seconds: (t, cpu s, rss KiB, hwm KiB)."""

    def __init__(self, procs, t0, every=0.25):
        self.procs = procs  # name -> pid
        self.t0 = t0
        self.every = every
        self.samples = {name: [] for name in procs}
        self.stopping = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stopping.is_set():
            t = now() - self.t0
            for name, pid in self.procs.items():
                s = proc_stats(pid)
                if s:
                    self.samples[name].append((round(t, 3), s[0], s[1], s[2], sockets(pid)))
            self.stopping.wait(self.every)

    def stop(self):
        self.stopping.set()
        self.t.join()


# ---------------------------------------------------------------------------------------------
# the API server


class Api:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.url = url.rstrip("/")
        self.host, self.port = u.hostname, u.port

    def request(self, method, path, body=None, content_type="application/json"):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def get(self, path):
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body}")
        return body


class Watch:
    """Follows a collection with list + watch, re-listing when the stream ends or expires.

    `on_event(kind, obj, t)` gets kind ADDED/MODIFIED/DELETED for watch events and LISTED for
    objects found by a (re)list; t is the receive time (monotonic, relative to t0).
    """

    def __init__(self, api, path, on_event, t0):
        self.api, self.path, self.on_event, self.t0 = api, path, on_event, t0
        self.relists = 0
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _list(self):
        body = self.api.get(self.path)
        t = now() - self.t0
        for item in body.get("items") or []:
            self.on_event("LISTED", item, t)
        return body["metadata"]["resourceVersion"]

    def _run(self):
        rv = None
        while not self.stopping.is_set():
            try:
                if rv is None:
                    rv = self._list()
                    self.relists += 1
                    self.ready.set()
                conn = http.client.HTTPConnection(self.api.host, self.api.port, timeout=3600)
                conn.request(
                    "GET",
                    f"{self.path}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true",
                )
                resp = conn.getresponse()
                while not self.stopping.is_set():
                    line = resp.readline()
                    if not line:
                        break
                    t = now() - self.t0
                    ev = json.loads(line)
                    kind, obj = ev["type"], ev["object"]
                    if kind == "ERROR":
                        rv = None  # 410 Expired: list again
                        break
                    new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if new_rv:
                        rv = new_rv
                    if kind != "BOOKMARK":
                        self.on_event(kind, obj, t)
                conn.close()
            except (OSError, http.client.HTTPException, ValueError, RuntimeError) as e:
                if self.stopping.is_set():
                    return
                print(f"watch {self.path}: {e}; listing again", file=sys.stderr)
                rv = None
                time.sleep(0.2)

    def stop(self):
        self.stopping.set()


def start_fake(args, out, lines, delay_ms, tag):
    kubeconfig = os.path.join(out, f"kubeconfig-{tag}")
    fake = Proc(
        [
            args.fake_kube,
            "--simulate-jobs",
            "--lines",
            str(lines),
            "--line-delay-ms",
            str(delay_ms),
            "--kubeconfig",
            kubeconfig,
        ],
        os.path.join(out, f"fake-kube-{tag}.log"),
        want="listening on",
    )
    url = fake.wait_for(30).split("listening on", 1)[1].strip()
    return fake, Api(url), kubeconfig


def start_operator(args, store, kubeconfig, log_path):
    env = dict(os.environ, KUBECONFIG=kubeconfig, NO_COLOR="1", TUNEFLOW_LOG=os.environ.get("TUNEFLOW_LOG", "info"))
    env.pop("TUNEFLOW_TOKEN", None)
    op = Proc(
        [
            args.tuneflow,
            "--store",
            store,
            "operator",
            "--listen",
            "127.0.0.1:0",
            "--no-leader-election",
        ],
        log_path,
        env=env,
        want="API on http://",
    )
    op.wait_for(60)
    op.ready_at = now()
    return op


def experiment(name, max_trials, parallel, seed):
    """An Experiment resource: random search, a Job trialSpec whose container is the primary."""
    return {
        "apiVersion": "tuneflow.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {
                "algorithmName": "random",
                "algorithmSettings": [{"name": "random_state", "value": str(seed)}],
            },
            "parallelTrialCount": parallel,
            "maxTrialCount": max_trials,
            "maxFailedTrialCount": 3,
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.001", "max": "0.1"}},
                {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "8"}},
            ],
            "trialTemplate": {
                "primaryContainerName": "training",
                "trialParameters": [
                    {"name": "learningRate", "reference": "lr"},
                    {"name": "numLayers", "reference": "layers"},
                ],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {
                        "template": {
                            "spec": {
                                "containers": [
                                    {
                                        "name": "training",
                                        "image": "docker.io/example/train:1.0",
                                        "command": [
                                            "python",
                                            "train.py",
                                            "--lr=${trialParameters.learningRate}",
                                            "--layers=${trialParameters.numLayers}",
                                        ],
                                    }
                                ],
                                "restartPolicy": "Never",
                            }
                        }
                    },
                },
            },
        },
    }


def pct(values, q):
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def log_findings(path):
    """Warnings and errors in an operator log: counts by message shape, a few examples."""
    warn, err, examples = 0, 0, []
    with open(path, errors="replace") as f:
        for line in f:
            line = ANSI.sub("", line)
            head = line[:40]
            if " WARN " in head:
                warn += 1
            elif " ERROR " in head or line.startswith("error"):
                err += 1
            else:
                continue
            if len(examples) < 20:
                examples.append(line.rstrip()[:400])
    return {"warn_lines": warn, "error_lines": err, "examples": examples}


def machine():
    info = {"nproc": os.cpu_count()}
    try:
        with open("/proc/loadavg") as f:
            info["loadavg_at_start"] = f.read().split()[:3]
        with open("/proc/meminfo") as f:
            info["mem_total_kib"] = int(f.readline().split()[1])
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


# ---------------------------------------------------------------------------------------------
# part 1: launch throughput


def launch(args):
    out = args.out
    os.makedirs(out, exist_ok=True)
    store = os.path.join(out, "launch-store", "tuneflow.db")
    os.makedirs(os.path.dirname(store), exist_ok=True)
    n, p = args.experiments, args.parallel
    total = n * p
    print(f"[launch] {n} experiments x {p} parallel trials = {total} Jobs; trials print "
          f"{args.lines} lines {args.line_delay_ms} ms apart", file=sys.stderr)
    load_before = machine()
    fake, api, kubeconfig = start_fake(args, out, args.lines, args.line_delay_ms, "launch")
    op = start_operator(args, store, kubeconfig, os.path.join(out, "operator-launch.log"))
    time.sleep(1.0)  # let it list and watch
    base = proc_stats(op.p.pid)

    lock = threading.Lock()
    t0 = now()
    jobs = {}  # name -> {experiment, created, deleted, running}
    pods_running = {}  # job name -> t of first Running pod
    pods_per_job = {}
    exps = {}  # name -> {posted, succeeded, state, status}
    timeline = []  # (t, created, existing, running)
    counters = {"existing": 0, "running_now": 0, "job_added_events": 0}
    running_pods = set()
    marks = {}

    def note():
        timeline.append((round(now() - t0, 3), len(jobs), counters["existing"], len(running_pods)))

    def on_job(kind, obj, t):
        md = obj["metadata"]
        name = md["name"]
        with lock:
            if kind in ("ADDED", "LISTED", "MODIFIED"):
                if name not in jobs:
                    exp = (md.get("labels") or {}).get("tuneflow.dev/experiment")
                    jobs[name] = {"experiment": exp, "created": t, "via": kind, "deleted": None}
                    counters["existing"] += 1
                    if kind == "ADDED":
                        counters["job_added_events"] += 1
                    if len(jobs) == total:
                        marks.setdefault("all_jobs", t)
                    note()
            elif kind == "DELETED":
                j = jobs.get(name)
                if j and j["deleted"] is None:
                    j["deleted"] = t
                    counters["existing"] -= 1
                    note()

    def on_pod(kind, obj, t):
        md = obj["metadata"]
        job = (md.get("labels") or {}).get("job-name")
        phase = (obj.get("status") or {}).get("phase")
        with lock:
            pods_per_job.setdefault(job, set()).add(md["name"])
            if kind == "DELETED" or phase in ("Succeeded", "Failed"):
                if md["name"] in running_pods:
                    running_pods.discard(md["name"])
                    note()
                return
            if phase == "Running":
                if md["name"] not in running_pods:
                    running_pods.add(md["name"])
                    marks["peak_running"] = max(marks.get("peak_running", 0), len(running_pods))
                    if job not in pods_running:
                        pods_running[job] = t
                        if len(pods_running) == total:
                            marks.setdefault("all_running", t)
                    note()

    def on_exp(kind, obj, t):
        name = obj["metadata"]["name"]
        st = obj.get("status") or {}
        with lock:
            e = exps.setdefault(name, {"posted": None, "succeeded": None})
            e["state"] = st.get("state")
            e["status"] = {k: st.get(k) for k in ("trials", "trialsSucceeded", "trialsFailed",
                                                    "trialsRunning", "trialsPending", "trialsKilled")}
            e["status_writes"] = e.get("status_writes", 0) + (kind == "MODIFIED")
            if st.get("state") in ("Succeeded", "Failed") and e["succeeded"] is None:
                e["succeeded"] = t
                e["final_state"] = st.get("state")

    watches = [
        Watch(api, f"/apis/batch/v1/namespaces/{NS}/jobs", on_job, t0),
        Watch(api, f"/api/v1/namespaces/{NS}/pods", on_pod, t0),
        Watch(api, f"{GROUP_PATH}/namespaces/{NS}/experiments", on_exp, t0),
    ]
    for w in watches:
        w.ready.wait(30)
    t0 = now()
    for w in watches:
        w.t0 = t0
    sampler = Sampler({"operator": op.p.pid, "fake-kube": fake.p.pid}, t0)
    post_errors, post_seconds = [], []
    for i in range(n):
        name = f"exp-{i:03d}"
        t = now() - t0
        try:
            status, body = api.request("POST", f"{GROUP_PATH}/namespaces/{NS}/experiments",
                                       experiment(name, p, p, seed=i + 1))
        except OSError as e:
            # The API server stopped answering (seen at 100 x 30): record it, stop posting,
            # and still report what happened so far.
            post_errors.append(f"{name}: {e}")
            print(f"[launch] POST {name} failed: {e}; not posting the rest", file=sys.stderr)
            break
        with lock:
            e = exps.setdefault(name, {"posted": None, "succeeded": None})
            e["posted"] = t
            e["posted_done"] = now() - t0
            post_seconds.append(e["posted_done"] - t)
        if status != 201:
            post_errors.append(f"{name}: {status} {body}")
    posted_all = now() - t0
    n_posted = sum(1 for e in exps.values() if e.get("posted") is not None)
    print(f"[launch] posted {n} experiments in {posted_all:.2f} s", file=sys.stderr)

    deadline = now() + args.timeout
    last = -1
    while now() < deadline:
        with lock:
            done = sum(1 for e in exps.values() if e.get("succeeded") is not None)
            created, running = len(jobs), len(pods_running)
            existing = counters["existing"]
        if (created, running, done) != last:
            print(f"[launch] t={now() - t0:6.1f}s Jobs created {created}/{total}, pods Running "
                  f"{running}/{total}, experiments finished {done}/{n}, Jobs existing {existing}",
                  file=sys.stderr)
            last = (created, running, done)
        if done == n_posted and existing == 0:
            break
        if op.p.poll() is not None:
            print("[launch] the operator exited!", file=sys.stderr)
            break
        time.sleep(1.0)
    t_end = now() - t0
    time.sleep(1.0)
    sampler.stop()
    for w in watches:
        w.stop()
    op_samples = sampler.samples["operator"]
    final = proc_stats(op.p.pid)
    rc = op.stop()
    fake_final = sampler.samples["fake-kube"][-1] if sampler.samples["fake-kube"] else None
    fake.stop(10)

    with lock:
        posted = {k: v["posted"] for k, v in exps.items()}
        lat = [j["created"] - posted[j["experiment"]] for j in jobs.values()
               if j["via"] == "ADDED" and posted.get(j["experiment"]) is not None]
        run_lat = [pods_running[name] - j["created"] for name, j in jobs.items()
                   if name in pods_running and j["via"] == "ADDED"]
        per_exp = {}
        for j in jobs.values():
            per_exp[j["experiment"]] = per_exp.get(j["experiment"], 0) + 1
        multi_pod = sum(1 for v in pods_per_job.values() if len(v) > 1)
        finished = [e["succeeded"] for e in exps.values() if e.get("succeeded") is not None]
        states = {}
        for e in exps.values():
            states[e.get("final_state") or e.get("state")] = states.get(e.get("final_state") or e.get("state"), 0) + 1
        status_trials = [e["status"] for e in exps.values() if e.get("status")]
        status_writes = [e.get("status_writes", 0) for e in exps.values()]
    all_jobs = marks.get("all_jobs")
    all_running = marks.get("all_running")
    cpu_used = (final[0] - base[0]) if final and base else None
    result = {
        "kind": "launch",
        "experiments": n,
        "parallel": p,
        "trials": total,
        "lines": args.lines,
        "line_delay_ms": args.line_delay_ms,
        "machine": load_before,
        "post_seconds": round(posted_all, 3),
        "post_errors": post_errors,
        "post_latency_s": {"p50": pct(post_seconds, 0.5), "max": max(post_seconds, default=None)},
        "jobs_created": len(jobs),
        "jobs_seen_only_by_relist": sum(1 for j in jobs.values() if j["via"] != "ADDED"),
        "jobs_per_experiment_min_max": [min(per_exp.values(), default=0), max(per_exp.values(), default=0)],
        "jobs_with_more_than_one_pod": multi_pod,
        "t_all_jobs_s": all_jobs,
        "t_all_pods_running_s": all_running,
        "t_all_experiments_finished_s": max(finished) if len(finished) == n else None,
        "t_end_s": round(t_end, 3),
        "launch_rate_trials_per_s": round(total / all_jobs, 1) if all_jobs else None,
        "peak_pods_running": marks.get("peak_running", 0),
        "launch_latency_s": {"p50": pct(lat, 0.5), "p95": pct(lat, 0.95), "max": max(lat, default=None), "n": len(lat)},
        "job_to_running_s": {"p50": pct(run_lat, 0.5), "p95": pct(run_lat, 0.95), "max": max(run_lat, default=None)},
        "experiment_final_states": states,
        "status_totals": {
            "trials": sum((s.get("trials") or 0) for s in status_trials),
            "trialsSucceeded": sum((s.get("trialsSucceeded") or 0) for s in status_trials),
            "trialsFailed": sum((s.get("trialsFailed") or 0) for s in status_trials),
        },
        "status_writes_per_experiment": {"mean": statistics.mean(status_writes) if status_writes else None,
                                         "max": max(status_writes, default=None)},
        "operator": {
            "cpu_seconds": round(cpu_used, 2) if cpu_used is not None else None,
            "cpu_seconds_to_all_jobs": cpu_at(op_samples, all_jobs, base),
            "rss_kib_idle_before": base[1] if base else None,
            "vmhwm_kib": final[2] if final else None,
            "rss_kib_end": final[1] if final else None,
            "threads_end": final[3] if final else None,
            "peak_sockets": max((x[4] or 0 for x in op_samples), default=None),
            "exit_code": rc,
        },
        "fake_kube": {"cpu_seconds": fake_final[1] if fake_final else None,
                      "vmhwm_kib": fake_final[3] if fake_final else None},
        "watch_relists": [w.relists for w in watches],
        "operator_log": log_findings(op.log_path),
    }
    with open(os.path.join(out, "launch.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(out, "launch-timeline.json"), "w") as f:
        json.dump({"timeline": timeline, "operator_samples": op_samples,
                   "fake_kube_samples": sampler.samples["fake-kube"],
                   "posted": posted, "launch_latency": sorted(lat)}, f)
    print_launch(result)
    return result


def cpu_at(samples, t, base):
    if t is None or not samples or not base:
        return None
    before = [s for s in samples if s[0] <= t]
    return round((before[-1][1] if before else samples[0][1]) - base[0], 2)


# ---------------------------------------------------------------------------------------------
# part 2: memory with 10,000 finished trials


def memory(args):
    out = args.out
    os.makedirs(out, exist_ok=True)
    store = os.path.join(out, "memory-store", "tuneflow.db")
    os.makedirs(os.path.dirname(store), exist_ok=True)
    name, total, p = "big", args.trials, args.parallel
    print(f"[memory] filling the store: 1 experiment, {total} trials, {p} parallel, 1 line each",
          file=sys.stderr)
    fake, api, kubeconfig = start_fake(args, out, 1, 1, "memory")
    op = start_operator(args, store, kubeconfig, os.path.join(out, "operator-fill.log"))
    time.sleep(2.0)
    empty = proc_stats(op.p.pid)

    t0 = now()
    state = {"trials": 0, "done": None, "status": {}, "writes": 0, "progress": []}
    lock = threading.Lock()

    def on_exp(kind, obj, t):
        if obj["metadata"]["name"] != name:
            return
        st = obj.get("status") or {}
        with lock:
            state["status"] = st
            state["writes"] += kind == "MODIFIED"
            state["progress"].append((round(t, 3), st.get("trials") or 0, st.get("trialsSucceeded") or 0))
            if st.get("state") in ("Succeeded", "Failed") and state["done"] is None:
                state["done"] = t

    w = Watch(api, f"{GROUP_PATH}/namespaces/{NS}/experiments", on_exp, t0)
    w.ready.wait(30)
    t0 = now()
    w.t0 = t0
    sampler = Sampler({"operator": op.p.pid, "fake-kube": fake.p.pid}, t0, every=0.5)
    status, body = api.request("POST", f"{GROUP_PATH}/namespaces/{NS}/experiments",
                               experiment(name, total, p, seed=42))
    if status != 201:
        raise SystemExit(f"POST: {status} {body}")
    deadline = now() + args.timeout
    last_print = 0
    while now() < deadline and state["done"] is None and op.p.poll() is None:
        time.sleep(0.5)
        if now() - last_print > 10:
            last_print = now()
            st = state["status"]
            s = proc_stats(op.p.pid)
            print(f"[memory] t={now() - t0:6.1f}s trials {st.get('trials')} succeeded "
                  f"{st.get('trialsSucceeded')} running {st.get('trialsRunning')}; operator RSS "
                  f"{s[1] // 1024 if s else '?'} MiB", file=sys.stderr)
    fill_s = state["done"]
    time.sleep(2.0)
    sampler.stop()
    filled = proc_stats(op.p.pid)
    fill_status = dict(state["status"])
    fill_writes = state["writes"]
    w.stop()
    rc1 = op.stop()
    print(f"[memory] filled in {fill_s} s; status {fill_status.get('trials')} trials, "
          f"{fill_status.get('trialsSucceeded')} succeeded", file=sys.stderr)

    # While the operator is down: change one status field so that the restarted operator must
    # write the status once (it writes only when the computed status differs).
    path = f"{GROUP_PATH}/namespaces/{NS}/experiments/{name}/status"
    st, body = api.request("PATCH", path, {"status": {"trials": 0}}, "application/merge-patch+json")
    if st != 200:
        raise SystemExit(f"PATCH status: {st} {body}")
    jobs_before = len(api.get(f"/apis/batch/v1/namespaces/{NS}/jobs").get("items") or [])

    events = {"first_write": None, "writes": [], "jobs_added": 0}

    def on_exp2(kind, obj, t):
        if obj["metadata"]["name"] != name or kind != "MODIFIED":
            return
        st = obj.get("status") or {}
        with lock:
            events["writes"].append(round(t, 3))
            if events["first_write"] is None and st.get("trials") == total:
                events["first_write"] = t

    def on_job2(kind, obj, t):
        if kind == "ADDED":
            with lock:
                events["jobs_added"] += 1

    t1 = now()
    w2 = Watch(api, f"{GROUP_PATH}/namespaces/{NS}/experiments", on_exp2, t1)
    w3 = Watch(api, f"/apis/batch/v1/namespaces/{NS}/jobs", on_job2, t1)
    w2.ready.wait(30)
    w3.ready.wait(30)
    t1 = now()
    w2.t0 = w3.t0 = t1
    op2 = start_operator(args, store, kubeconfig, os.path.join(out, "operator-restart.log"))
    api_ready = op2.ready_at - t1
    sampler2 = Sampler({"operator": op2.p.pid}, t1, every=0.1)
    while now() - t1 < 60 and events["first_write"] is None:
        time.sleep(0.05)
    first_write = events["first_write"]
    time.sleep(5.0)  # settle
    a = proc_stats(op2.p.pid)
    ta = now()
    time.sleep(args.idle)
    b = proc_stats(op2.p.pid)
    tb = now()
    sampler2.stop()
    w2.stop()
    w3.stop()
    rc2 = op2.stop()
    fake.stop(10)
    restart_samples = sampler2.samples["operator"]
    result = {
        "kind": "memory",
        "trials": total,
        "parallel": p,
        "machine": machine(),
        "fill": {
            "seconds": round(fill_s, 2) if fill_s else None,
            "trials_per_s": round(total / fill_s, 1) if fill_s else None,
            "final_status": {k: fill_status.get(k) for k in ("state", "trials", "trialsSucceeded",
                                                              "trialsFailed", "trialsKilled")},
            "status_writes": fill_writes,
            "operator_rss_kib_empty": empty[1] if empty else None,
            "operator_rss_kib_end": filled[1] if filled else None,
            "operator_vmhwm_kib": filled[2] if filled else None,
            "operator_cpu_seconds": round(filled[0] - empty[0], 2) if filled and empty else None,
            "exit_code": rc1,
        },
        "restart": {
            "api_ready_s": round(api_ready, 3),
            "first_status_write_s": round(first_write, 3) if first_write is not None else None,
            "status_writes_in_window": len(events["writes"]),
            "status_write_times_s": events["writes"][:20],
            "jobs_before_restart": jobs_before,
            "jobs_created_after_restart": events["jobs_added"],
            "vmrss_kib_settled": b[1] if b else None,
            "vmhwm_kib": b[2] if b else None,
            "idle_cpu_seconds": round(b[0] - a[0], 3) if a and b else None,
            "idle_window_s": round(tb - ta, 2),
            "cpu_seconds_total": b[0] if b else None,
            "threads": b[3] if b else None,
            "exit_code": rc2,
        },
        "operator_log_fill": log_findings(op.log_path),
        "operator_log_restart": log_findings(op2.log_path),
        "store_bytes": sum(os.path.getsize(os.path.join(os.path.dirname(store), f))
                           for f in os.listdir(os.path.dirname(store))
                           if f.startswith("tuneflow.db")),
    }
    with open(os.path.join(out, "memory.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(out, "memory-timeline.json"), "w") as f:
        json.dump({"fill_progress": state["progress"], "fill_samples": sampler.samples,
                   "restart_samples": restart_samples}, f)
    print_memory(result)
    return result


# ---------------------------------------------------------------------------------------------
# reports


def mib(kib):
    return "n/a" if kib is None else f"{kib / 1024:.1f}"


def fmt(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}"


def print_launch(r):
    lat, run = r["launch_latency_s"], r["job_to_running_s"]
    op = r["operator"]
    print(f"\n### Launch: {r['experiments']} experiments x {r['parallel']} parallel trials "
          f"({r['trials']} Jobs; trials print {r['lines']} lines {r['line_delay_ms']} ms apart)\n")
    print("| figure | value |")
    print("|---|---|")
    rows = [
        ("POST of all Experiments", f"{fmt(r['post_seconds'])} s"),
        (f"first POST → all {r['trials']} Jobs exist", f"{fmt(r['t_all_jobs_s'])} s"),
        ("trials launched per second", fmt(r["launch_rate_trials_per_s"], 1)),
        (f"first POST → all {r['trials']} pods Running", f"{fmt(r['t_all_pods_running_s'])} s"),
        ("peak pods Running at once", str(r["peak_pods_running"])),
        ("Experiment POST → its Job appears, p50 / p95 / max", f"{fmt(lat['p50'])} / {fmt(lat['p95'])} / {fmt(lat['max'])} s"),
        ("Job appears → pod Running, p50 / p95 / max", f"{fmt(run['p50'], 3)} / {fmt(run['p95'], 3)} / {fmt(run['max'], 3)} s"),
        ("first POST → all Experiments Succeeded", f"{fmt(r['t_all_experiments_finished_s'])} s"),
        ("operator CPU, whole run (to all Jobs)", f"{fmt(op['cpu_seconds'])} s ({fmt(op['cpu_seconds_to_all_jobs'])} s)"),
        ("operator RSS idle before / peak (VmHWM) / end", f"{mib(op['rss_kib_idle_before'])} / {mib(op['vmhwm_kib'])} / {mib(op['rss_kib_end'])} MiB"),
        ("operator peak open sockets (watches, log streams, pool)", str(op.get("peak_sockets"))),
        ("fake API server CPU / peak RSS", f"{fmt(r['fake_kube']['cpu_seconds'])} s / {mib(r['fake_kube']['vmhwm_kib'])} MiB"),
        ("Jobs created (per experiment min–max)", f"{r['jobs_created']} ({r['jobs_per_experiment_min_max'][0]}–{r['jobs_per_experiment_min_max'][1]})"),
        ("Experiments by final state", json.dumps(r["experiment_final_states"])),
        ("status totals (trials / succeeded / failed)", f"{r['status_totals']['trials']} / {r['status_totals']['trialsSucceeded']} / {r['status_totals']['trialsFailed']}"),
        ("operator log WARN / ERROR lines", f"{r['operator_log']['warn_lines']} / {r['operator_log']['error_lines']}"),
    ]
    for k, v in rows:
        print(f"| {k} | {v} |")


def print_memory(r):
    f, s = r["fill"], r["restart"]
    print(f"\n### Memory: one experiment of {r['trials']} finished trials in the store\n")
    print("| figure | value |")
    print("|---|---|")
    rows = [
        (f"fill through the operator ({r['parallel']} parallel, 1 log line per trial)", f"{fmt(f['seconds'], 1)} s ({fmt(f['trials_per_s'], 1)} trials/s)"),
        ("final status (state, trials, succeeded)", f"{f['final_status'].get('state')}, {f['final_status'].get('trials')}, {f['final_status'].get('trialsSucceeded')}"),
        ("operator during the fill: RSS empty / peak (VmHWM) / end", f"{mib(f['operator_rss_kib_empty'])} / {mib(f['operator_vmhwm_kib'])} / {mib(f['operator_rss_kib_end'])} MiB"),
        ("operator CPU during the fill", f"{fmt(f['operator_cpu_seconds'])} s"),
        ("restart: start → API listening", f"{fmt(s['api_ready_s'], 3)} s"),
        ("restart: start → first status write", f"{fmt(s['first_status_write_s'], 3)} s"),
        ("restart: settled VmRSS / VmHWM", f"{mib(s['vmrss_kib_settled'])} / {mib(s['vmhwm_kib'])} MiB"),
        (f"restart: idle CPU over {s['idle_window_s']:.0f} s", f"{fmt(s['idle_cpu_seconds'], 3)} s"),
        ("restart: status writes / Jobs created", f"{s['status_writes_in_window']} / {s['jobs_created_after_restart']}"),
        ("store size (SQLite + WAL)", f"{r['store_bytes'] / 1e6:.1f} MB"),
        ("operator log WARN / ERROR lines (fill, restart)", f"{r['operator_log_fill']['warn_lines']} / {r['operator_log_fill']['error_lines']}, {r['operator_log_restart']['warn_lines']} / {r['operator_log_restart']['error_lines']}"),
    ]
    for k, v in rows:
        print(f"| {k} | {v} |")


def report(args):
    for part, fn in (("launch.json", print_launch), ("memory.json", print_memory)):
        path = os.path.join(args.dir, part)
        if os.path.exists(path):
            with open(path) as f:
                fn(json.load(f))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for cmd in ("launch", "memory"):
        s = sub.add_parser(cmd)
        s.add_argument("--tuneflow", required=True)
        s.add_argument("--fake-kube", required=True)
        s.add_argument("--out", required=True)
        s.add_argument("--timeout", type=float, default=1800)
        if cmd == "launch":
            s.add_argument("--experiments", type=int, default=100)
            s.add_argument("--parallel", type=int, default=30)
            s.add_argument("--lines", type=int, default=30)
            s.add_argument("--line-delay-ms", type=int, default=1000)
        else:
            s.add_argument("--trials", type=int, default=10000)
            s.add_argument("--parallel", type=int, default=100)
            s.add_argument("--idle", type=float, default=30.0, help="idle window after the restart")
    r = sub.add_parser("report")
    r.add_argument("dir")
    args = ap.parse_args()
    {"launch": launch, "memory": memory, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
