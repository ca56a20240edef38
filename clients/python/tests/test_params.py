"""The parameter helpers and the experiment document (no server needed)."""

from __future__ import annotations

import pytest

import tuneflow
from tuneflow.client import experiment_document


def test_numbers_are_written_as_strings_like_katib() -> None:
    assert tuneflow.loguniform(1e-5, 1e-1) == {
        "parameterType": "double",
        "feasibleSpace": {"min": "1e-05", "max": "0.1", "distribution": "logUniform"},
    }
    assert tuneflow.uniform(0, 1.5, step=0.25)["feasibleSpace"] == {
        "min": "0",
        "max": "1.5",
        "step": "0.25",
    }
    assert tuneflow.intrange(1, 64, step=2, log=True) == {
        "parameterType": "int",
        "feasibleSpace": {"min": "1", "max": "64", "step": "2", "distribution": "logUniform"},
    }
    assert tuneflow.discrete([16, 0.5]) == {
        "parameterType": "discrete",
        "feasibleSpace": {"list": ["16", "0.5"]},
    }
    assert tuneflow.choice(["adam", "sgd"]) == {
        "parameterType": "categorical",
        "feasibleSpace": {"list": ["adam", "sgd"]},
    }


@pytest.mark.parametrize(
    "make",
    [
        lambda: tuneflow.choice(["adam", 3]),
        lambda: tuneflow.intrange(1.5, 3),
        lambda: tuneflow.uniform("0", 1),
        lambda: tuneflow.discrete([True]),
    ],
)
def test_wrong_types_are_refused_locally(make) -> None:
    with pytest.raises(TypeError):
        make()


def test_empty_lists_and_infinite_bounds_are_refused_locally() -> None:
    with pytest.raises(ValueError):
        tuneflow.choice([])
    with pytest.raises(ValueError):
        tuneflow.uniform(0, float("inf"))


def test_experiment_document_maps_every_argument() -> None:
    document = experiment_document(
        "mnist-lr",
        "minimize",
        "loss",
        {"lr": tuneflow.loguniform(1e-5, 1e-1)},
        algorithm="grid",
        max_trials=50,
        parallel_trials=4,
        max_failed_trials=2,
        goal=0.1,
        seed=1234,
        lease_seconds=600,
        settings={"other": 1.5},
    )
    assert document == {
        "apiVersion": "tuneflow.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "mnist-lr"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss", "goal": 0.1},
            "algorithm": {
                "algorithmName": "grid",
                "algorithmSettings": [
                    {"name": "other", "value": "1.5"},
                    {"name": "random_state", "value": "1234"},
                ],
            },
            "maxTrialCount": 50,
            "parallelTrialCount": 4,
            "maxFailedTrialCount": 2,
            "trialLeaseSeconds": 600,
            "parameters": [
                {
                    "name": "lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": "1e-05", "max": "0.1", "distribution": "logUniform"},
                },
            ],
        },
    }


def test_optional_fields_are_left_out() -> None:
    spec = experiment_document("e", "maximize", "acc", {"u": tuneflow.uniform(0, 1)})["spec"]
    assert set(spec) == {"objective", "algorithm", "parameters"}
    assert spec["algorithm"] == {"algorithmName": "random"}
