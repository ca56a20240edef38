"""Running an objective function on trials from one or more worker threads."""

from __future__ import annotations

import logging
import numbers
import threading
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple, Type

from .trial import Trial, describe_exception

if TYPE_CHECKING:
    from .experiment import Experiment

log = logging.getLogger("tuneflow")

Objective = Callable[[Trial], Any]


class _Budget:
    """How many more trials this sweep may start (unbounded when ``None``); thread-safe."""

    def __init__(self, limit: Optional[int]) -> None:
        self._left = limit
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._left is None:
                return True
            if self._left <= 0:
                return False
            self._left -= 1
            return True


class _Sweep:
    """State shared by the workers of one :func:`run_sweep` call."""

    def __init__(
        self,
        experiment: "Experiment",
        fn: Objective,
        budget: _Budget,
        catch: Tuple[Type[BaseException], ...],
        poll: float,
    ) -> None:
        self.experiment = experiment
        self.fn = fn
        self.budget = budget
        self.catch = catch
        self.poll = poll
        self.stop = threading.Event()
        self.errors: List[BaseException] = []

    def work(self) -> None:
        """One worker: takes trials and runs them until done, out of budget or stopped."""
        try:
            while not self.stop.is_set() and self.budget.take():
                trial = self.experiment.next_trial(self.poll, self.stop)
                if trial is None:
                    return
                self.run(trial)
        except BaseException as err:  # noqa: BLE001 - handed to the calling thread
            self.errors.append(err)
            self.stop.set()

    def run(self, trial: Trial) -> None:
        """Runs the objective on one trial and finishes the trial with its outcome."""
        try:
            finish(trial, self.fn(trial))
        except BaseException as err:
            if not trial.finished:
                trial._fail_quietly(describe_exception(err))
            if not isinstance(err, self.catch):
                raise
            log.warning("trial %s failed: %s", trial.name, describe_exception(err))


def finish(trial: Trial, result: Any) -> None:
    """Completes a trial from what the objective function returned, unless it is over."""
    if trial.finished:
        return
    if result is None:
        trial.complete()
    elif isinstance(result, dict):
        trial.complete(metrics=result)
    elif isinstance(result, numbers.Real) and not isinstance(result, bool):
        trial.complete(metrics={trial.experiment.metric: float(result)})
    else:
        raise TypeError(
            f"the objective function returned {result!r}; expected a number, a dict of "
            "metrics or None"
        )


def run_sweep(
    experiment: "Experiment",
    fn: Objective,
    *,
    n_trials: Optional[int],
    n_workers: int,
    catch: Tuple[Type[BaseException], ...],
    poll: float,
) -> None:
    """Runs ``fn`` on up to ``n_trials`` trials with ``n_workers`` threads (see
    :meth:`Experiment.optimize`). The first error that stops a worker is re-raised."""
    if n_workers < 1:
        raise ValueError(f"n_workers must be at least 1, got {n_workers}")
    sweep = _Sweep(experiment, fn, _Budget(n_trials), tuple(catch), poll)
    if n_workers == 1:
        sweep.work()
    else:
        _run_threads(sweep, n_workers, experiment.client.transport.release)
    if sweep.errors:
        raise sweep.errors[0]


def _run_threads(sweep: _Sweep, n_workers: int, release: Callable[[], None]) -> None:
    def worker() -> None:
        try:
            sweep.work()
        finally:
            release()  # the thread's own connection ends with it

    threads = [
        threading.Thread(target=worker, name=f"tuneflow-worker-{i}", daemon=True)
        for i in range(n_workers)
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # in slices, so Ctrl-C reaches the calling thread
    except BaseException:
        sweep.stop.set()  # workers take no new trial; the ones running finish normally
        raise
