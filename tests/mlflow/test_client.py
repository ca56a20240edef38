"""The official MLflow client against ``tuneflow serve``: the flows users run in notebooks and
training scripts, and the errors they must see with MLflow's error codes."""

from __future__ import annotations

import math
import re
import time
from typing import Any

import pytest
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

NAME_SHAPE = re.compile(r"^[a-z]+-[a-z]+-\d{1,4}$")


def error_code(excinfo: pytest.ExceptionInfo[MlflowException]) -> str:
    return excinfo.value.error_code


# -- experiments ------------------------------------------------------------------------------


def test_set_experiment_creates_once_and_reuses(mlflow: Any, client: Any, experiment_name: str) -> None:
    first = mlflow.set_experiment(experiment_name)
    again = mlflow.set_experiment(experiment_name)
    assert first.experiment_id == again.experiment_id
    assert isinstance(first.experiment_id, str) and first.experiment_id != "0"
    assert first.lifecycle_stage == "active"
    assert first.artifact_location.endswith(first.experiment_id)
    by_name = client.get_experiment_by_name(experiment_name)
    assert by_name.experiment_id == first.experiment_id
    assert client.get_experiment(first.experiment_id).name == experiment_name
    assert client.get_experiment("0").name == "Default"
    assert client.get_experiment_by_name("no such experiment here") is None


def test_experiment_tags_rename_delete_restore_and_search(
    mlflow: Any, client: Any, experiment_name: str
) -> None:
    experiment_id = client.create_experiment(experiment_name, tags={"team": "vision"})
    client.set_experiment_tag(experiment_id, "stage", "dev")
    experiment = client.get_experiment(experiment_id)
    assert experiment.tags == {"team": "vision", "stage": "dev"}

    found = client.search_experiments(filter_string=f"name = '{experiment_name}'")
    assert [e.experiment_id for e in found] == [experiment_id]
    found = mlflow.search_experiments(filter_string="tags.team = 'vision' AND tags.stage LIKE 'd%'")
    assert experiment_id in [e.experiment_id for e in found]

    renamed = experiment_name + "-renamed"
    client.rename_experiment(experiment_id, renamed)
    assert client.get_experiment(experiment_id).name == renamed

    with pytest.raises(MlflowException) as excinfo:
        client.create_experiment(renamed)
    assert error_code(excinfo) == "RESOURCE_ALREADY_EXISTS"

    client.delete_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    active = [e.experiment_id for e in client.search_experiments()]
    deleted = [e.experiment_id for e in client.search_experiments(view_type=ViewType.DELETED_ONLY)]
    assert experiment_id not in active and experiment_id in deleted
    with pytest.raises(MlflowException) as excinfo:
        client.create_run(experiment_id)
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"

    client.restore_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"

    ordered = client.search_experiments(order_by=["name ASC"], max_results=50000)
    names = [e.name for e in ordered]
    assert names == sorted(names)


def test_experiment_search_pages(client: Any, experiment_name: str) -> None:
    ids = {client.create_experiment(f"{experiment_name}-{i}") for i in range(5)}
    page = client.search_experiments(
        filter_string=f"name LIKE '{experiment_name}-%'", max_results=2
    )
    seen = [e.experiment_id for e in page]
    while page.token:
        page = client.search_experiments(
            filter_string=f"name LIKE '{experiment_name}-%'", max_results=2, page_token=page.token
        )
        seen += [e.experiment_id for e in page]
    assert len(seen) == 5 and set(seen) == ids


# -- runs -------------------------------------------------------------------------------------


def test_nested_runs_params_metrics_tags(mlflow: Any, client: Any, experiment_name: str) -> None:
    experiment = mlflow.set_experiment(experiment_name)
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("optimizer", "adam")
        mlflow.log_params({"lr": 0.01, "layers": 3})
        mlflow.log_param("optimizer", "adam")  # the same value again is fine
        mlflow.set_tag("team", "vision")
        mlflow.set_tags({"temporary": "yes", "stage": "dev"})
        mlflow.delete_tag("temporary")
        with mlflow.start_run(nested=True) as child:
            for step, loss in enumerate([0.9, 0.5, 0.3]):
                mlflow.log_metric("loss", loss, step=step)
            mlflow.log_metrics({"acc": 0.8, "f1": 0.7}, step=2)
        assert mlflow.active_run().info.run_id == parent.info.run_id

    parent_run = client.get_run(parent.info.run_id)
    assert parent_run.info.run_name == "parent"
    assert parent_run.info.experiment_id == experiment.experiment_id
    assert parent_run.info.status == "FINISHED"
    assert parent_run.info.end_time is not None and parent_run.info.end_time >= parent_run.info.start_time
    assert parent_run.data.params == {"optimizer": "adam", "lr": "0.01", "layers": "3"}
    assert parent_run.data.tags["team"] == "vision"
    assert parent_run.data.tags["stage"] == "dev"
    assert "temporary" not in parent_run.data.tags
    assert parent_run.data.tags["mlflow.runName"] == "parent"

    child_run = client.get_run(child.info.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert NAME_SHAPE.match(child_run.info.run_name), child_run.info.run_name
    assert child_run.data.tags["mlflow.runName"] == child_run.info.run_name
    assert child_run.data.metrics == {"loss": 0.3, "acc": 0.8, "f1": 0.7}
    # Milliseconds on the wire, like MLflow.
    assert abs(child_run.info.start_time / 1000 - time.time()) < 600


def test_metric_history_in_order_with_paging(mlflow: Any, client: Any, experiment_name: str) -> None:
    mlflow.set_experiment(experiment_name)
    with mlflow.start_run() as run:
        for step in range(7):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step, timestamp=1_700_000_000_000 + step)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(7))
    assert [m.value for m in history] == [1.0 / (s + 1) for s in range(7)]
    assert [m.timestamp for m in history] == [1_700_000_000_000 + s for s in range(7)]
    assert client.get_metric_history(run.info.run_id, "never-logged") == []
    # The store's paging, through the REST store directly.
    store = client._tracking_client.store
    page = store.get_metric_history(run.info.run_id, "loss", max_results=3)
    values = [m.step for m in page]
    while page.token:
        page = store.get_metric_history(run.info.run_id, "loss", max_results=3, page_token=page.token)
        values += [m.step for m in page]
    assert values == list(range(7))


def test_log_batch_and_non_finite_values(mlflow: Any, client: Any, experiment_name: str) -> None:
    mlflow.set_experiment(experiment_name)
    with mlflow.start_run() as run:
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[
                Metric("nan", math.nan, now, 0),
                Metric("up", math.inf, now, 0),
                Metric("down", -math.inf, now, 0),
                Metric("x", 1.5, now, 0),
                Metric("x", 2.5, now, 1),
            ],
            params=[Param("p", "1")],
            tags=[RunTag("t", "v")],
        )
    data = client.get_run(run.info.run_id).data
    assert math.isnan(data.metrics["nan"])
    assert data.metrics["up"] == math.inf and data.metrics["down"] == -math.inf
    assert data.metrics["x"] == 2.5
    assert data.params == {"p": "1"} and data.tags["t"] == "v"
    history = client.get_metric_history(run.info.run_id, "nan")
    assert len(history) == 1 and math.isnan(history[0].value)


@pytest.mark.parametrize("status", ["FINISHED", "FAILED", "KILLED"])
def test_end_run_statuses(mlflow: Any, client: Any, experiment_name: str, status: str) -> None:
    mlflow.set_experiment(experiment_name)
    run = mlflow.start_run()
    mlflow.end_run(status=status)
    info = client.get_run(run.info.run_id).info
    assert info.status == status
    assert info.end_time is not None


def test_terminal_runs_still_take_writes_but_deleted_runs_do_not(
    mlflow: Any, client: Any, experiment_name: str
) -> None:
    mlflow.set_experiment(experiment_name)
    with mlflow.start_run() as run:
        pass
    # MLflow checks the lifecycle stage, not the status: a FINISHED run can still be logged to.
    client.log_metric(run.info.run_id, "late", 1.0)
    assert client.get_run(run.info.run_id).data.metrics["late"] == 1.0

    client.delete_run(run.info.run_id)
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    with pytest.raises(MlflowException) as excinfo:
        client.log_metric(run.info.run_id, "loss", 1.0)
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as excinfo:
        client.set_tag(run.info.run_id, "k", "v")
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"

    client.restore_run(run.info.run_id)
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "active"
    client.log_metric(run.info.run_id, "loss", 1.0)


def test_rename_by_tag_and_client_named_runs(mlflow: Any, client: Any, experiment_name: str) -> None:
    mlflow.set_experiment(experiment_name)
    with mlflow.start_run(tags={"mlflow.runName": "from-tag"}) as run:
        assert run.info.run_name == "from-tag"
        mlflow.set_tag("mlflow.runName", "renamed")
    assert client.get_run(run.info.run_id).info.run_name == "renamed"


# -- search -----------------------------------------------------------------------------------


@pytest.fixture
def searchable(mlflow: Any, experiment_name: str) -> tuple[str, dict[str, str]]:
    """An experiment with four runs of known metrics, params and tags; returns its id and the
    run ids by name."""
    experiment = mlflow.set_experiment(experiment_name)
    runs = {}
    for name, loss, opt, lr in [
        ("r1", 0.5, "adam", "0.1"),
        ("r2", 0.2, "sgd", "0.01"),
        ("r3", 0.9, "adam", "0.001"),
        ("r4", None, "Adam", "0.1"),
    ]:
        with mlflow.start_run(run_name=name) as run:
            mlflow.log_params({"opt": opt, "lr": lr})
            mlflow.set_tag("group", "odd" if name in ("r1", "r3") else "even")
            if loss is not None:
                mlflow.log_metric("loss", loss)
            runs[name] = run.info.run_id
        time.sleep(0.005)  # distinct start times
    return experiment.experiment_id, runs


def test_search_runs_dataframe(mlflow: Any, searchable: tuple[str, dict[str, str]]) -> None:
    experiment_id, runs = searchable
    frame = mlflow.search_runs(experiment_ids=[experiment_id], filter_string="metrics.loss < 0.6")
    assert set(frame["run_id"]) == {runs["r1"], runs["r2"]}
    assert {"metrics.loss", "params.opt", "params.lr", "tags.group", "status", "start_time"} <= set(
        frame.columns
    )
    frame = mlflow.search_runs(experiment_ids=[experiment_id], order_by=["metrics.loss ASC"])
    assert list(frame["tags.mlflow.runName"]) == ["r2", "r1", "r3", "r4"]
    frame = mlflow.search_runs(experiment_ids=[experiment_id], order_by=["metrics.loss DESC"])
    assert list(frame["tags.mlflow.runName"]) == ["r3", "r1", "r2", "r4"]
    # Newest first by default.
    frame = mlflow.search_runs(experiment_ids=[experiment_id])
    assert list(frame["tags.mlflow.runName"]) == ["r4", "r3", "r2", "r1"]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("params.opt = 'adam'", {"r1", "r3"}),
        ("params.opt ILIKE 'adam'", {"r1", "r3", "r4"}),
        ("params.opt LIKE 'A%'", {"r4"}),
        ("params.lr = '0.1' and tags.group = 'even'", {"r4"}),
        ("metrics.loss >= 0.5", {"r1", "r3"}),
        ("metrics.loss != 0.5", {"r2", "r3"}),
        ("tags.group != 'odd'", {"r2", "r4"}),
        ("attributes.run_name = 'r2'", {"r2"}),
        ("run_name LIKE 'r%' AND metrics.`loss` < 1", {"r1", "r2", "r3"}),
        ("attributes.status = 'FINISHED'", {"r1", "r2", "r3", "r4"}),
        ("params.missing IS NULL and params.opt IS NOT NULL", {"r1", "r2", "r3", "r4"}),
        ("attributes.start_time > 0", {"r1", "r2", "r3", "r4"}),
    ],
)
def test_search_runs_filters(
    mlflow: Any,
    searchable: tuple[str, dict[str, str]],
    filter_string: str,
    expected: set[str],
) -> None:
    experiment_id, runs = searchable
    found = mlflow.search_runs(
        experiment_ids=[experiment_id], filter_string=filter_string, output_format="list"
    )
    names = {run.info.run_name for run in found}
    assert names == expected, filter_string


def test_search_runs_by_run_id_list_and_names(
    mlflow: Any, experiment_name: str, searchable: tuple[str, dict[str, str]]
) -> None:
    experiment_id, runs = searchable
    found = mlflow.search_runs(
        experiment_names=[experiment_name],
        filter_string=f"attributes.run_id IN ('{runs['r1']}', '{runs['r4']}')",
        output_format="list",
    )
    assert {r.info.run_id for r in found} == {runs["r1"], runs["r4"]}
    assert all(r.info.experiment_id == experiment_id for r in found)


def test_search_runs_pages_and_view_types(
    client: Any, searchable: tuple[str, dict[str, str]]
) -> None:
    experiment_id, runs = searchable
    page = client.search_runs([experiment_id], max_results=3)
    assert len(page) == 3 and page.token
    rest = client.search_runs([experiment_id], max_results=3, page_token=page.token)
    assert len(rest) == 1 and not rest.token
    assert {r.info.run_id for r in list(page) + list(rest)} == set(runs.values())

    client.delete_run(runs["r2"])
    active = {r.info.run_id for r in client.search_runs([experiment_id])}
    deleted = {
        r.info.run_id for r in client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
    }
    both = {r.info.run_id for r in client.search_runs([experiment_id], run_view_type=ViewType.ALL)}
    assert runs["r2"] not in active and deleted == {runs["r2"]} and len(both) == 4


# -- errors -----------------------------------------------------------------------------------


def test_missing_run_is_resource_does_not_exist(client: Any) -> None:
    with pytest.raises(MlflowException) as excinfo:
        client.get_run("0123456789abcdef0123456789abcdef")
    assert error_code(excinfo) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as excinfo:
        client.get_experiment("987654")
    assert error_code(excinfo) == "RESOURCE_DOES_NOT_EXIST"


def test_param_overwrite_is_invalid(mlflow: Any, experiment_name: str) -> None:
    mlflow.set_experiment(experiment_name)
    with mlflow.start_run():
        mlflow.log_param("lr", "0.1")
        with pytest.raises(MlflowException) as excinfo:
            mlflow.log_param("lr", "0.2")
        assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"
        assert "Changing param values is not allowed" in excinfo.value.message


@pytest.mark.parametrize(
    "filter_string",
    ["metrics.loss < 'x'", "params.lr = 0.1", "metrics.a = 1 OR metrics.b = 2", "loss < 1", "metrics.loss <"],
)
def test_invalid_filters(mlflow: Any, searchable: tuple[str, dict[str, str]], filter_string: str) -> None:
    experiment_id, _ = searchable
    with pytest.raises(MlflowException) as excinfo:
        mlflow.search_runs(experiment_ids=[experiment_id], filter_string=filter_string)
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"


def test_invalid_names_and_order_by(mlflow: Any, client: Any, experiment_name: str) -> None:
    mlflow.set_experiment(experiment_name)
    with mlflow.start_run() as run:
        pass
    with pytest.raises(MlflowException) as excinfo:
        client.log_metric(run.info.run_id, "../escape", 1.0)
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as excinfo:
        client.search_runs([run.info.experiment_id], order_by=["metrics.loss SIDEWAYS"])
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"


# -- tuneflow experiments seen through MLflow -------------------------------------------------


def _experiment_document(name: str, early_stopping: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "algorithm": {
            "algorithmName": "random",
            "algorithmSettings": [{"name": "random_state", "value": "5"}],
        },
        "parallelTrialCount": 3,
        "maxTrialCount": 3,
        "parameters": [
            {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.001", "max": "0.1"}},
            {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["adam", "sgd"]}},
        ],
    }
    if early_stopping:
        spec["earlyStopping"] = {
            "algorithmName": "medianstop",
            "algorithmSettings": [
                {"name": "min_trials_required", "value": "2"},
                {"name": "start_step", "value": "1"},
            ],
        }
    return {
        "apiVersion": "tuneflow.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": spec,
    }


def _tuneflow_name(experiment_name: str) -> str:
    # tuneflow experiment names are DNS labels of at most 40 characters.
    return re.sub(r"[^a-z0-9]+", "-", experiment_name.lower()).strip("-")[-36:].strip("-")


def test_tuneflow_trials_are_runs(mlflow: Any, server: Any, experiment_name: str) -> None:
    name = _tuneflow_name(experiment_name)
    status, body = server.call("POST", "/api/v1/experiments", _experiment_document(name, False))
    assert status == 201, body
    status, body = server.call("POST", f"/api/v1/experiments/{name}/suggestions", {"count": 1})
    assert status == 200, body
    trial = body["trials"][0]
    path = f"/api/v1/experiments/{name}/trials/{trial['name']}"
    for step, loss in enumerate([0.8, 0.4]):
        status, body = server.call("POST", path + "/observations", {"step": step, "metrics": {"loss": loss}})
        assert status == 200, body
    status, body = server.call("POST", path + "/complete", {"metrics": {"loss": 0.3}, "step": 2})
    assert status == 200, body

    runs = mlflow.search_runs(experiment_names=[name], output_format="list")
    by_trial = {r.data.tags.get("tuneflow.trial"): r for r in runs}
    run = by_trial[trial["name"]]
    parent_id = run.data.tags["mlflow.parentRunId"]
    assert parent_id in {r.info.run_id for r in runs}
    assert run.info.status == "FINISHED"
    assert float(run.data.params["lr"]) == pytest.approx(trial["parameters"]["lr"])
    assert run.data.params["opt"] == trial["parameters"]["opt"]
    assert run.data.metrics["loss"] == 0.3
    history = mlflow.tracking.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.8), (1, 0.4), (2, 0.3)]

    frame = mlflow.search_runs(
        experiment_names=[name], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    assert list(frame["tags.tuneflow.trial"]) == [trial["name"]]


def test_metrics_logged_through_mlflow_drive_early_stopping(
    mlflow: Any, client: Any, server: Any, experiment_name: str
) -> None:
    name = _tuneflow_name(experiment_name)
    status, body = server.call("POST", "/api/v1/experiments", _experiment_document(name, True))
    assert status == 201, body
    status, body = server.call("POST", f"/api/v1/experiments/{name}/suggestions", {"count": 3})
    assert status == 200, body
    trials = [t["name"] for t in body["trials"]]
    runs = {
        r.data.tags["tuneflow.trial"]: r.info.run_id
        for r in mlflow.search_runs(
            experiment_names=[name], filter_string="tags.`tuneflow.trial` IS NOT NULL", output_format="list"
        )
    }
    assert set(runs) == set(trials)
    # Two trials log good curves through MLflow and are completed through tuneflow's API.
    for trial in trials[:2]:
        for step in range(3):
            client.log_metric(runs[trial], "loss", 0.5 - 0.1 * step, step=step)
        status, body = server.call("POST", f"/api/v1/experiments/{name}/trials/{trial}/complete", {})
        assert status == 200, body
    # The third is worse than their median from step 1 on: the rule stops it.
    client.log_metric(runs[trials[2]], "loss", 0.9, step=0)
    client.log_batch(runs[trials[2]], metrics=[Metric("loss", 0.8, int(time.time() * 1000), 1)])
    status, body = server.call("GET", f"/api/v1/experiments/{name}/trials/{trials[2]}")
    assert status == 200, body
    assert body["state"] == "EarlyStopped", body
    assert client.get_run(runs[trials[2]]).info.status == "KILLED"


def test_log_input_is_accepted(mlflow: Any, client: Any, experiment_name: str) -> None:
    import pandas as pd

    mlflow.set_experiment(experiment_name)
    frame = pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]})
    with mlflow.start_run() as run:
        mlflow.log_input(mlflow.data.from_pandas(frame, name="train"), context="training")
        mlflow.log_metric("loss", 0.1)
    # Accepted and checked; datasets are not stored (docs/mlflow.md).
    assert client.get_run(run.info.run_id).data.metrics == {"loss": 0.1}
    with pytest.raises(MlflowException) as excinfo:
        client.log_inputs("0123456789abcdef0123456789abcdef", datasets=[])
    assert error_code(excinfo) == "RESOURCE_DOES_NOT_EXIST"
