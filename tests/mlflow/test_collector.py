"""The MLflow collector: a training script instrumented only with ``mlflow`` runs as trials.

``tuneflow run`` serves MLflow's tracking API to its trials and points each one's client at
the trial's own run (``MLFLOW_TRACKING_URI``, ``MLFLOW_RUN_ID``); what the script logs becomes
the trial's observations. Afterwards the same store, served by ``tuneflow serve``, shows the
trials as MLflow runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from mlflow.tracking import MlflowClient

TRAIN = textwrap.dedent(
    """
    import sys

    import mlflow

    x = float(sys.argv[1])
    with mlflow.start_run() as run:          # resumes the trial's run (MLFLOW_RUN_ID)
        mlflow.log_param("x", sys.argv[1])   # the value tuneflow recorded: accepted
        mlflow.log_param("script", "train.py")
        mlflow.set_tag("framework", "none")
        for epoch in range(1, 6):
            mlflow.log_metrics({"loss": x + 1 / epoch, "accuracy": 1 - x / epoch}, step=epoch)
    """
)

SPEC = """\
apiVersion: tuneflow.dev/v1alpha1
kind: Experiment
metadata: {{name: {name}}}
spec:
  objective: {{type: minimize, objectiveMetricName: loss, additionalMetricNames: [accuracy]}}
  algorithm: {{algorithmName: grid}}
  parallelTrialCount: 2
  metricsCollectorSpec:
    collector: {{kind: MLflow}}
  parameters:
    - {{name: x, parameterType: discrete, feasibleSpace: {{list: ["0.1", "0.5", "0.3"]}}}}
  trialTemplate:
    command: [{python}, train.py, "${{parameters.x}}"]
"""


def tuneflow(binary: str, store: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNEFLOW_", "MLFLOW_"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return subprocess.run(
        [binary, "--store", str(store), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_script_that_only_uses_mlflow_feeds_its_trials(binary: str, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "exp.yaml").write_text(SPEC.format(name="mlflow-only", python=json.dumps(sys.executable)))
    store = tmp_path / "tuneflow.db"

    run = tuneflow(binary, store, "run", "exp.yaml", "--output", "json", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["experiment"]["state"] == "Succeeded", report
    best = report["top"][0]
    assert best["parameters"] == {"x": 0.1}
    assert best["objective"] == 0.1 + 1 / 5

    shown = tuneflow(binary, store, "trial", "mlflow-only", best["name"], "--output", "json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    observations = json.loads(shown.stdout)["observations"]
    losses = [(o["step"], o["value"]) for o in observations if o["metric"] == "loss"]
    assert losses == [(epoch, 0.1 + 1 / epoch) for epoch in range(1, 6)]
    assert sum(o["metric"] == "accuracy" for o in observations) == 5


def test_the_trials_are_mlflow_runs_afterwards(binary: str, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "exp.yaml").write_text(SPEC.format(name="as-runs", python=json.dumps(sys.executable)))
    store = tmp_path / "tuneflow.db"
    run = tuneflow(binary, store, "run", "exp.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr

    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFLOW_")}
    server = subprocess.Popen(
        [binary, "serve", "--addr", "127.0.0.1:0", "--store", str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip().removeprefix("tuneflow serving on ")
        client = MlflowClient(tracking_uri=url)
        experiment = client.get_experiment_by_name("as-runs")
        assert experiment is not None
        runs = client.search_runs([experiment.experiment_id], order_by=["metrics.loss ASC"])
        parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        assert len(parent) == 1 and len(trials) == 3
        assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent[0].info.run_id}
        assert [r.data.params["x"] for r in trials] == ["0.1", "0.3", "0.5"]
        assert all(r.data.params["script"] == "train.py" for r in trials)
        assert all(r.data.tags["framework"] == "none" for r in trials)
        assert all(r.info.status == "FINISHED" for r in runs)
        history = client.get_metric_history(trials[0].info.run_id, "loss")
        assert [(m.step, m.value) for m in history] == [(e, 0.1 + 1 / e) for e in range(1, 6)]
        found = client.search_runs(
            [experiment.experiment_id], filter_string="params.x = '0.5' and metrics.loss > 0.6"
        )
        assert [r.data.params["x"] for r in found] == ["0.5"]
    finally:
        server.terminate()
        server.wait(timeout=10)
