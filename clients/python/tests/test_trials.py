"""Trials: the ask loop, done/reason, completion rules, local checks, context manager."""

from __future__ import annotations

import math
import threading
import time

import pytest

import tuneflow


def test_trials_iter_runs_until_max_trials(make) -> None:
    exp = make(max_trials=5, parallel_trials=2)
    seen = []
    for trial in exp.trials_iter(poll=0.1):
        seen.append(trial.name)
        for epoch in range(3):
            loss = (trial.params["x"] - 0.3) ** 2 + 1.0 / (epoch + 1)
            if trial.report(epoch, loss=loss) == "prune":
                break
        else:
            trial.complete(loss=loss)
    assert len(seen) == len(set(seen)) == 5
    status = exp.status()
    assert status["state"] == "Succeeded" and status["reason"] == "MaxTrialsReached"
    assert status["trials"]["succeeded"] == 5
    after = exp.ask()
    assert list(after) == [] and after.done and after.reason


def test_done_and_reason_with_the_parallel_limit(make) -> None:
    exp = make(max_trials=4, parallel_trials=2)
    running = exp.ask(5)
    assert len(running) == 2
    assert running.done is False and running.reason  # the parallel limit, not the end
    blocked = exp.ask()
    assert list(blocked) == [] and blocked.done is False and blocked.reason
    running[0].complete(loss=1.0)
    refill = exp.ask(3)
    assert len(refill) == 1 and refill.done is False
    running[1].complete(loss=2.0)
    last = exp.ask(3)
    assert len(last) == 1
    # all four trials were handed out: asking again can never give more, though two still run
    over = exp.ask()
    assert list(over) == [] and over.done is True and over.reason
    names = [t.name for t in [*running, *refill, *last]]
    assert len(set(names)) == 4


def test_trials_iter_waits_for_a_free_slot(make) -> None:
    exp = make(max_trials=3, parallel_trials=1)
    (held,) = exp.ask()
    threading.Timer(0.3, lambda: held.complete(loss=0.5)).start()
    names = [trial.name for trial in exp.trials_iter(poll=0.05)]  # completed by the with-exit
    assert len(names) == 2 and held.name not in names


def test_completing_twice_is_a_conflict(make) -> None:
    exp = make()
    (trial,) = exp.ask()
    trial.complete(loss=0.5)
    with pytest.raises(tuneflow.Conflict) as caught:
        trial.complete(loss=0.4)
    assert (caught.value.status, caught.value.code) == (409, "trial_finished")
    assert caught.value.message
    with pytest.raises(tuneflow.Conflict):
        trial.fail("too late")
    # an observation for a final trial: the worker is told to stop
    assert trial.report(5, loss=0.1) == "prune"


def test_completing_an_early_stopped_trial_changes_nothing(make) -> None:
    exp = make()
    (trial,) = exp.ask()
    assert trial.prune()["state"] == "EarlyStopped"
    assert trial.complete(loss=0.1)["state"] == "EarlyStopped"


def test_fail_and_heartbeat(make) -> None:
    exp = make()
    first, second = exp.ask(2)
    assert first.heartbeat() is None
    failed = first.fail("loss diverged")
    assert failed["state"] == "Failed" and failed["message"] == "loss diverged"
    assert first.finished and first.state == "Failed"
    assert exp.trial(first.name)["message"] == "loss diverged"
    second.complete(loss=0.3)
    assert exp.status()["trials"]["failed"] == 1


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_metrics_are_refused_locally(make, bad: float) -> None:
    exp = make()
    (trial,) = exp.ask()
    with pytest.raises(ValueError, match=r"trial\.fail"):
        trial.report(0, loss=bad)
    with pytest.raises(ValueError, match=r"trial\.fail"):
        trial.complete(loss=bad)
    assert exp.trial(trial.name)["observations"] == []  # nothing was sent
    assert trial.state == "Running"


def test_step_must_be_a_non_negative_integer(make) -> None:
    (trial,) = make().ask()
    for step in (-1, 1.5, "3", True):
        with pytest.raises(ValueError):
            trial.report(step, loss=1.0)


def test_context_manager_fails_on_exception(make) -> None:
    exp = make()
    (trial,) = exp.ask()
    with pytest.raises(RuntimeError):
        with trial:
            trial.report(0, loss=1.0)
            raise RuntimeError("out of memory")
    stored = exp.trial(trial.name)
    assert stored["state"] == "Failed" and stored["message"] == "RuntimeError: out of memory"


def test_context_manager_completes_from_reports_on_normal_exit(make) -> None:
    exp = make()
    reported, silent = exp.ask(2)
    with reported:
        reported.report(0, loss=0.8)
        reported.report(1, loss=0.6)
    assert reported.state == "Succeeded"
    assert exp.trial(reported.name)["objective"] == pytest.approx(0.6)
    with silent:
        pass
    assert silent.state == "MetricsUnavailable"


def test_leaving_trials_iter_fails_the_running_trial(make) -> None:
    exp = make(max_trials=10)
    with pytest.raises(KeyError):
        for trial in exp.trials_iter():
            trial.report(0, loss=1.0)
            raise KeyError("bug in the training loop")
    stored = exp.trials()
    assert len(stored) == 1 and stored[0]["state"] == "Failed"
    assert "trials_iter" in stored[0]["message"]


def _wait_for_state(exp, trial_name: str, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        stored = exp.trial(trial_name)
        if stored["state"] != "Running" or time.monotonic() > deadline:
            return stored
        time.sleep(0.1)


def test_an_expired_lease_fails_the_trial_and_frees_its_slot(make) -> None:
    exp = make(parallel_trials=1, lease_seconds=1, max_failed_trials=5)
    (lost,) = exp.ask()
    assert list(exp.ask()) == []  # the one slot is taken
    stored = _wait_for_state(exp, lost.name, 5.0)
    assert stored["state"] == "Failed" and stored["message"].startswith("lease expired")
    assert lost.report(0, loss=1.0) == "prune"  # too late: the worker must stop
    assert len(exp.ask()) == 1


def test_heartbeats_keep_a_trial_alive(make) -> None:
    exp = make(lease_seconds=2)
    (trial,) = exp.ask()
    for _ in range(10):  # 2.5 s in all, each heartbeat well within the lease
        time.sleep(0.25)
        trial.heartbeat()
    assert exp.trial(trial.name)["state"] == "Running"
    trial.complete(loss=0.5)


def test_reaching_the_goal_finishes_the_experiment(make) -> None:
    exp = make(goal=0.5, parallel_trials=2)
    good, other = exp.ask(2)
    good.complete(loss=0.1)
    status = exp.status()
    assert (status["state"], status["reason"]) == ("Succeeded", "GoalReached")
    answer = exp.ask()
    assert list(answer) == [] and answer.done is True


def test_grid_search_ends_when_the_space_is_exhausted(make) -> None:
    exp = make(
        algorithm="grid",
        parameters={"opt": tuneflow.choice(["adam", "sgd"]), "batch": tuneflow.discrete([16, 32])},
    )
    seen = set()
    for trial in exp.trials_iter(poll=0.05):
        seen.add((trial.params["opt"], trial.params["batch"]))
        trial.complete(loss=1.0)
    assert seen == {("adam", 16), ("adam", 32), ("sgd", 16), ("sgd", 32)}
    assert exp.status()["reason"] == "SearchSpaceExhausted"
