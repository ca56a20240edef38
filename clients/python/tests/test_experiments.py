"""Creating, finding, listing and deleting experiments; asking and telling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import raw_error

import tuneflow


def test_create_ask_report_complete_list_best(tf, make, name) -> None:
    exp = make(max_trials=3, parallel_trials=2)
    status = exp.status()
    assert status["name"] == name
    assert status["driver"] == "client"
    assert status["maxTrialCount"] == 3 and status["parallelTrialCount"] == 2
    assert status["best"] is None and exp.best() is None

    trials = exp.ask(2)
    assert len(trials) == 2 and not trials.done
    for trial in trials:
        assert set(trial.params) == {"x", "k"}
        assert -1.0 <= trial.params["x"] <= 1.0
        assert isinstance(trial.params["k"], int) and 1 <= trial.params["k"] <= 4
    first, second = trials
    for step, loss in enumerate([0.9, 0.4, 0.6]):
        assert first.report(step, loss=loss, acc=1 - loss) == "continue"
    done = first.complete()  # the objective comes from the reports: min when minimizing
    assert done["state"] == "Succeeded" and done["objective"] == pytest.approx(0.4)
    assert second.complete(loss=0.25)["objective"] == pytest.approx(0.25)

    listed = exp.trials()
    assert [t["name"] for t in listed] == [first.name, second.name]
    assert [t["state"] for t in listed] == ["Succeeded", "Succeeded"]
    detail = exp.trial(first.name)
    assert {(o["metric"], o["step"]) for o in detail["observations"]} >= {
        ("loss", 0),
        ("loss", 1),
        ("loss", 2),
        ("acc", 2),
    }
    best = exp.best()
    assert best["trial"] == second.name and best["objective"] == pytest.approx(0.25)
    assert best["parameters"] == second.params and best["direction"] == "minimize"
    assert name in [e["name"] for e in tf.experiments()]
    assert tf.experiment(name).status()["trials"]["succeeded"] == 2


def test_complete_records_the_final_metrics_at_the_given_step(make) -> None:
    exp = make(objective="maximize", metric="acc")
    (trial,) = exp.ask()
    trial.report(0, acc=0.5)
    done = trial.complete(metrics={"acc": 0.75, "val-loss": 0.1}, step=4)
    assert done["objective"] == pytest.approx(0.75)
    steps = {(o["metric"], o["step"]) for o in exp.trial(trial.name)["observations"]}
    assert {("acc", 0), ("acc", 4), ("val-loss", 4)} <= steps


def test_create_from_yaml_and_json_files(tf, name, tmp_path: Path) -> None:
    yaml_file = tmp_path / "experiment.yaml"
    yaml_file.write_text(
        "apiVersion: tuneflow.dev/v1alpha1\nkind: Experiment\n"
        f"metadata:\n  name: {name}-yaml\n"
        "spec:\n  objective: {type: minimize, objectiveMetricName: loss}\n"
        "  algorithm: {algorithmName: random}\n  maxTrialCount: 2\n"
        "  parameters:\n"
        '    - {name: x, parameterType: double, feasibleSpace: {min: "0", max: "1"}}\n'
    )
    assert tf.create_experiment_from_file(yaml_file).name == f"{name}-yaml"
    document = {
        "apiVersion": "tuneflow.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": f"{name}-json"},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "acc"},
            "algorithm": {"algorithmName": "random"},
            "parameters": [
                {
                    "name": "opt",
                    "parameterType": "categorical",
                    "feasibleSpace": {"list": ["adam", "sgd"]},
                }
            ],
        },
    }
    json_file = tmp_path / "experiment.json"
    json_file.write_text(json.dumps(document))
    exp = tf.create_experiment_from_file(json_file)
    assert exp.ask()[0].params["opt"] in ("adam", "sgd")


def test_duplicate_name_is_a_conflict_unless_exist_ok(tf, make, name) -> None:
    exp = make()
    document = tuneflow.client.experiment_document(
        name, "minimize", "loss", {"x": tuneflow.uniform(0, 1)}
    )
    expected = raw_error(tf.url, "POST", "/api/v1/experiments", document)
    with pytest.raises(tuneflow.Conflict) as caught:
        make()
    assert (caught.value.status, caught.value.code) == (409, "already_exists")
    assert caught.value.message == expected["message"]
    again = make(exist_ok=True)
    assert again.name == exp.name


def test_unknown_experiment_is_not_found_with_the_server_message(tf) -> None:
    expected = raw_error(tf.url, "GET", "/api/v1/experiments/no-such-experiment")
    assert expected["status"] == 404 and expected["code"] == "not_found"
    with pytest.raises(tuneflow.NotFound) as caught:
        tf.experiment("no-such-experiment")
    assert caught.value.message == expected["message"]
    assert caught.value.code == "not_found" and caught.value.status == 404
    assert str(caught.value) == expected["message"]
    with pytest.raises(tuneflow.NotFound):
        tuneflow.Experiment(tf, "no-such-experiment").ask()


def test_unknown_trial_is_not_found(make) -> None:
    exp = make()
    with pytest.raises(tuneflow.NotFound):
        exp.trial(f"{exp.name}-9999")
    with pytest.raises(tuneflow.NotFound):
        tuneflow.Trial(exp, f"{exp.name}-9999", {}).complete(loss=1.0)


def test_invalid_spec_lists_every_problem(tf, name) -> None:
    with pytest.raises(tuneflow.InvalidInput) as caught:
        tf.create_experiment(
            name,
            objective="minimize",
            metric="loss",
            parameters={"lr": tuneflow.loguniform(0, 1), "n": tuneflow.intrange(5, 1)},
        )
    error = caught.value
    assert (error.status, error.code) == (422, "invalid_spec")
    assert isinstance(error.details, list) and len(error.details) >= 2
    paths = " ".join(str(item.get("path")) for item in error.details)
    assert "spec.parameters[0]" in paths and "spec.parameters[1]" in paths
    assert error.message in str(error) and "spec.parameters[0]" in str(error)


def test_a_body_that_is_not_json_is_malformed_body(tf) -> None:
    # docs/rest-api.md: 400 malformed_body when "the body is not valid JSON (or YAML)"
    with pytest.raises(tuneflow.InvalidInput) as caught:
        tf.transport.request("POST", "/api/v1/experiments", raw=b"{not json")
    assert (caught.value.status, caught.value.code) == (400, "malformed_body")


def test_delete_removes_the_experiment(tf, make, name) -> None:
    exp = make()
    exp.ask()
    tf.delete_experiment(name)
    with pytest.raises(tuneflow.NotFound):
        exp.status()
    assert name not in [e["name"] for e in tf.experiments()]
    make().delete()
    with pytest.raises(tuneflow.NotFound):
        tf.delete_experiment(name)


def test_health(tf) -> None:
    assert tf.health() == {"status": "ok"}


def test_a_body_of_another_media_type_is_refused(tf) -> None:
    with pytest.raises(tuneflow.InvalidInput) as caught:
        tf.transport.request(
            "POST", "/api/v1/experiments", raw=b"<x/>", content_type="application/xml"
        )
    assert (caught.value.status, caught.value.code) == (415, "unsupported_media_type")


def test_requests_share_one_keep_alive_connection(tf, make) -> None:
    exp = make()
    exp.status()
    local_address = tf.transport._local.conn.sock.getsockname()
    exp.ask()
    exp.trials()
    assert tf.transport._local.conn.sock.getsockname() == local_address
