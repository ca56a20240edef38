"""`--mlflow-uri`: tuneflow mirrors its trials to a real MLflow tracking server.

Each test runs the real `tuneflow` binary and a real `mlflow server` (SQLite backend), then
reads MLflow back with the official client: the parent run and one nested run per trial,
params, metric history by step, statuses, and that nothing is created twice. MLflow being
down must cost the experiment nothing, and the export catches up once MLflow is up.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from mlflow_server import free_port, mlflow_server, start_mlflow, start_serve, tuneflow_bin  # noqa: F401

# A trial's program: three epochs of `loss` and `accuracy` on stdout (Katib's format). The
# `mode` parameter makes it fail (exit 3) or overrun its timeout (killed).
OBJECTIVE = """\
import sys, time
lr, layers, mode = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
for epoch in range(3):
    loss = (lr - 0.03) ** 2 * 100 + layers * 0.1 + 1.0 / (epoch + 1)
    print(f"epoch={epoch} loss={loss:.6f} accuracy={1 - loss / 10:.6f}", flush=True)
    if mode == "fail":
        sys.exit(3)
    if mode == "slow":
        time.sleep(30)
"""

STATUS = {"Succeeded": "FINISHED", "Failed": "FAILED", "MetricsUnavailable": "FAILED",
          "EarlyStopped": "KILLED", "Killed": "KILLED", "Running": "RUNNING"}


def write_experiment(directory: Path, name: str, modes=("ok", "fail", "slow"), extra: str = "") -> Path:
    """A grid over `mode` x layers in {1, 2}: 2 trials per mode, run by tuneflow itself."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "objective.py").write_text(OBJECTIVE)
    modes_list = ", ".join(modes)
    spec = f"""\
apiVersion: tuneflow.dev/v1alpha1
kind: Experiment
metadata:
  name: {name}
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
    additionalMetricNames: [accuracy]
  algorithm:
    algorithmName: grid
  parallelTrialCount: {min(3, 2 * len(modes))}
  maxTrialCount: {2 * len(modes)}
  maxFailedTrialCount: 10
  parameters:
    - {{name: lr, parameterType: discrete, feasibleSpace: {{list: ["0.02"]}}}}
    - {{name: layers, parameterType: int, feasibleSpace: {{min: 1, max: 2}}}}
    - {{name: mode, parameterType: categorical, feasibleSpace: {{list: [{modes_list}]}}}}
  trialTemplate:
    command: [python3, objective.py, "${{parameters.lr}}", "${{parameters.layers}}", "${{parameters.mode}}"]
    timeout: 2s
{extra}"""
    path = directory / "experiment.yaml"
    path.write_text(spec)
    return path


def tuneflow(directory: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([tuneflow_bin(), "--store", str(directory / "tuneflow.db"), *args],
                          cwd=directory, capture_output=True, text=True, timeout=timeout)


def stored_trials(directory: Path, experiment: str) -> dict[str, dict]:
    """Every trial as tuneflow stores it, with its observations, by name."""
    listed = json.loads(tuneflow(directory, "trials", experiment, "-o", "json").stdout)
    return {t["name"]: json.loads(tuneflow(directory, "trial", experiment, t["name"], "-o", "json").stdout)
            for t in listed}


def mirrored_runs(client, experiment: str):
    """(parent runs, trial runs by trial name) of the MLflow experiment `experiment`."""
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment}"
    runs = client.search_runs([found.experiment_id], max_results=1000)
    parents = [r for r in runs if "tuneflow.trial" not in r.data.tags]
    trials = {}
    for run in runs:
        if "tuneflow.trial" in run.data.tags:
            name = run.data.tags["tuneflow.trial"]
            assert name not in trials, f"trial {name} is mirrored twice"
            trials[name] = run
    return parents, trials


def assert_mirrors(client, directory: Path, experiment: str, expect_parent_status="FINISHED"):
    """MLflow holds exactly the stored experiment: one parent, one nested run per trial with
    its params, full metric history and status."""
    stored = stored_trials(directory, experiment)
    parents, runs = mirrored_runs(client, experiment)
    assert len(parents) == 1, [p.info.run_name for p in parents]
    parent = parents[0]
    assert parent.info.run_name == experiment
    assert parent.info.status == expect_parent_status
    assert parent.data.tags["tuneflow.experiment"] == experiment
    assert sorted(runs) == sorted(stored)
    for name, trial in stored.items():
        run = runs[name]
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["mlflow.runName"] == name and run.info.run_name == name
        assert tags["tuneflow.experiment"] == experiment and tags["tuneflow.trial"] == name
        assert run.info.status == STATUS[trial["state"]], (name, trial["state"], run.info.status)
        if trial["state"] != "Running":
            assert run.info.end_time is not None
        assert set(run.data.params) == set(trial["parameters"])
        for key, value in trial["parameters"].items():
            if isinstance(value, str):
                assert run.data.params[key] == value
            else:
                assert float(run.data.params[key]) == float(value)
        for metric in {o["metric"] for o in trial["observations"]}:
            history = client.get_metric_history(run.info.run_id, metric)
            got = sorted((m.step, m.value, m.timestamp) for m in history)
            want = sorted((o["step"], o["value"], o["timestamp"] // 1000)
                          for o in trial["observations"] if o["metric"] == metric)
            assert got == want, (name, metric)
    return stored, runs


def test_run_mirrors_every_trial_with_params_history_and_status(mlflow_server, tmp_path):
    spec = write_experiment(tmp_path, "mirror-run")
    done = tuneflow(tmp_path, "run", str(spec), "--mlflow-uri", mlflow_server.uri)
    assert done.returncode == 0, done.stderr
    assert "mirrored to" in done.stderr, done.stderr
    stored, runs = assert_mirrors(mlflow_server.client(), tmp_path, "mirror-run")
    states = sorted(t["state"] for t in stored.values())
    assert states == ["Failed", "Failed", "Killed", "Killed", "Succeeded", "Succeeded"]
    # Every epoch of a successful trial is in its history, step by step.
    ok = next(n for n, t in stored.items() if t["state"] == "Succeeded")
    history = mlflow_server.client().get_metric_history(runs[ok].info.run_id, "loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2]


def test_spec_field_names_the_server_and_the_flag_wins(mlflow_server, tmp_path):
    extra = f"  tracking:\n    mlflow:\n      uri: {mlflow_server.uri}\n"
    spec = write_experiment(tmp_path / "by-spec", "mirror-spec", modes=("ok",), extra=extra)
    done = tuneflow(tmp_path / "by-spec", "run", str(spec))
    assert done.returncode == 0, done.stderr
    assert_mirrors(mlflow_server.client(), tmp_path / "by-spec", "mirror-spec")

    # The flag overrides the spec: nothing listens on `down`, so the export is incomplete.
    down = f"http://127.0.0.1:{free_port()}"
    other = tmp_path / "by-flag"
    spec = write_experiment(other, "mirror-flag", modes=("ok",), extra=extra)
    done = tuneflow(other, "run", str(spec), "--mlflow-uri", down)
    assert done.returncode == 0, done.stderr
    assert "MLflow export incomplete" in done.stderr and down in done.stderr
    assert mlflow_server.client().get_experiment_by_name("mirror-flag") is None


def test_bad_uri_is_a_clear_error_naming_the_flag(tmp_path):
    spec = write_experiment(tmp_path, "mirror-bad", modes=("ok",))
    done = tuneflow(tmp_path, "run", str(spec), "--mlflow-uri", "localhost:5000")
    assert done.returncode == 2
    assert "--mlflow-uri" in done.stderr and "hint:" in done.stderr
    assert "panicked" not in done.stderr
    done = tuneflow(tmp_path, "serve", "--mlflow-uri", "ftp://host")
    assert done.returncode == 2 and "--mlflow-uri" in done.stderr


def test_mlflow_down_costs_nothing_and_export_catches_up_without_duplicates(start_mlflow, tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    spec = write_experiment(tmp_path, "mirror-down", modes=("ok", "fail"))

    # The same experiment without MLflow, for the time it takes by itself.
    baseline_dir = tmp_path / "baseline"
    baseline_spec = write_experiment(baseline_dir, "mirror-down", modes=("ok", "fail"))
    started = time.monotonic()
    assert tuneflow(baseline_dir, "run", str(baseline_spec)).returncode == 0
    baseline = time.monotonic() - started

    started = time.monotonic()
    done = tuneflow(tmp_path, "run", str(spec), "--mlflow-uri", uri)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "Succeeded" in done.stdout
    # At most the bounded flush on top (it gives up at once when nothing listens).
    assert elapsed < baseline + 10, (elapsed, baseline)
    assert "MLflow export incomplete" in done.stderr
    assert f"tuneflow export mirror-down --mlflow-uri {uri}" in done.stderr

    server = start_mlflow(port)
    exported = tuneflow(tmp_path, "export", "mirror-down", "--mlflow-uri", uri)
    assert exported.returncode == 0, exported.stderr
    client = server.client()
    _, runs = assert_mirrors(client, tmp_path, "mirror-down")
    ids = {name: run.info.run_id for name, run in runs.items()}

    # Exporting again, and running the finished experiment again, sends nothing twice.
    assert tuneflow(tmp_path, "export", "mirror-down", "--mlflow-uri", uri).returncode == 0
    again = tuneflow(tmp_path, "run", str(spec), "--mlflow-uri", uri)
    assert again.returncode == 0, again.stderr
    _, runs = assert_mirrors(client, tmp_path, "mirror-down")
    assert {name: run.info.run_id for name, run in runs.items()} == ids


def client_driven(name: str, max_trials: int) -> dict:
    return {
        "apiVersion": "tuneflow.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
                 "algorithm": {"algorithmName": "random",
                               "algorithmSettings": [{"name": "random_state", "value": "5"}]},
                 "maxTrialCount": max_trials, "parallelTrialCount": 1,
                 "parameters": [{"name": "x", "parameterType": "double",
                                 "feasibleSpace": {"min": "-1", "max": "1"}}]}}


def wait_until(check, timeout: float = 60, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(every)


def test_serve_catches_up_when_mlflow_comes_up_and_restarts_without_duplicates(
        start_mlflow, start_serve, tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    serve = start_serve("--mlflow-uri", uri)
    serve.call("POST", "/api/v1/experiments", client_driven("mirror-serve", 4))
    started = time.monotonic()
    for i in range(4):
        trial = serve.call("POST", "/api/v1/experiments/mirror-serve/suggestions", {"count": 1})["trials"][0]
        for step in range(3):
            serve.call("POST", f"/api/v1/experiments/mirror-serve/trials/{trial['name']}/observations",
                       {"step": step, "metrics": {"loss": trial["parameters"]["x"] ** 2 + 1 / (step + 1)}})
        body = {"state": "failed", "message": "diverged"} if i == 3 else {"metrics": {"loss": 0.5}}
        serve.call("POST", f"/api/v1/experiments/mirror-serve/trials/{trial['name']}/complete", body)
    # MLflow being down did not slow the API down.
    assert time.monotonic() - started < 10
    assert serve.call("GET", "/api/v1/experiments/mirror-serve")["state"] == "Succeeded"

    server = start_mlflow(port)
    client = server.client()
    directory = tmp_path / "serve"
    wait_until(lambda: assert_mirrors(client, directory, "mirror-serve"), timeout=60)
    _, runs = mirrored_runs(client, "mirror-serve")
    ids = {name: run.info.run_id for name, run in runs.items()}
    assert serve.stop() == 0
    log = (directory / "tuneflow-serve.log").read_text()
    assert "MLflow export is falling behind" in log
    assert "MLflow export caught up after" in log

    # A restarted server adopts the runs instead of creating them again.
    serve = start_serve("--mlflow-uri", uri)
    time.sleep(3)
    serve.call("POST", "/api/v1/experiments", client_driven("mirror-serve-2", 1))
    trial = serve.call("POST", "/api/v1/experiments/mirror-serve-2/suggestions", {"count": 1})["trials"][0]
    serve.call("POST", f"/api/v1/experiments/mirror-serve-2/trials/{trial['name']}/complete",
               {"metrics": {"loss": 0.1}})
    wait_until(lambda: assert_mirrors(client, directory, "mirror-serve-2"), timeout=30)
    _, runs = assert_mirrors(client, directory, "mirror-serve")
    assert {name: run.info.run_id for name, run in runs.items()} == ids
