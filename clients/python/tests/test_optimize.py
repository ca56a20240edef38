"""Experiment.optimize: worker threads, return values, exceptions."""

from __future__ import annotations

import threading
import time

import pytest


def test_four_workers_run_max_trials_with_unique_names(make) -> None:
    exp = make(max_trials=12, parallel_trials=4)
    names, lock, active, peak = [], threading.Lock(), [0], [0]

    def objective(trial) -> float:
        with lock:
            names.append(trial.name)
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return (trial.params["x"] - 0.3) ** 2 + trial.params["k"]

    best = exp.optimize(objective, n_workers=4)
    assert len(names) == len(set(names)) == 12
    assert peak[0] > 1  # the workers did run at the same time
    stored = exp.trials()
    assert sorted(t["name"] for t in stored) == sorted(names)
    assert all(t["state"] == "Succeeded" for t in stored)
    assert best["objective"] == pytest.approx(min(t["objective"] for t in stored))
    assert exp.status()["reason"] == "MaxTrialsReached"


def test_n_trials_bounds_one_call(make) -> None:
    exp = make(parallel_trials=2)  # no maxTrialCount: unbounded
    exp.optimize(lambda trial: trial.params["x"] ** 2, n_trials=3, n_workers=2)
    exp.optimize(lambda trial: {"loss": 1.0, "acc": 0.5}, n_trials=2)
    assert len(exp.trials()) == 5


def test_none_means_the_reports_decide(make) -> None:
    exp = make(max_trials=2)

    def objective(trial) -> None:
        for step, loss in enumerate([0.5, 0.2, 0.3]):
            trial.report(step, loss=loss)

    assert exp.optimize(objective)["objective"] == pytest.approx(0.2)


def test_exceptions_fail_the_trial_and_the_sweep_goes_on(make) -> None:
    exp = make(max_trials=4, max_failed_trials=4)
    calls = []

    def objective(trial) -> float:
        calls.append(trial.name)
        if len(calls) % 2:
            raise ValueError("diverged")
        return 1.0

    assert exp.optimize(objective)["objective"] == 1.0
    states = {t["name"]: (t["state"], t["message"]) for t in exp.trials()}
    assert [states[name][0] for name in calls] == ["Failed", "Succeeded"] * 2
    assert states[calls[0]][1] == "ValueError: diverged"


def test_an_exception_outside_catch_stops_the_sweep_and_is_raised(make) -> None:
    exp = make(max_trials=10)
    with pytest.raises(ZeroDivisionError):
        exp.optimize(lambda trial: 1 / 0, catch=(ValueError,), n_workers=2)
    stored = exp.trials()
    assert 1 <= len(stored) <= 2
    assert all(t["state"] == "Failed" for t in stored)
    assert stored[0]["message"] == "ZeroDivisionError: division by zero"


def test_a_nan_objective_fails_the_trial(make) -> None:
    exp = make(max_trials=1)
    exp.optimize(lambda trial: float("nan"))
    (stored,) = exp.trials()
    assert stored["state"] == "Failed" and "trial.fail" in stored["message"]
