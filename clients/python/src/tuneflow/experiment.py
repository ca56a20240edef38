"""An experiment on the server: asking for trials, reading results, running a sweep."""

from __future__ import annotations

import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Tuple, Type

from . import analysis
from .optimize import run_sweep
from .trial import Trial

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Experiment", "Suggestions"]

# How long trials_iter() and optimize() first wait when every parallel slot is taken; the
# wait doubles on each empty answer, up to their ``poll`` argument.
FIRST_WAIT = 0.05


class Suggestions(List[Trial]):
    """The trials one :meth:`Experiment.ask` handed out, plus why there are not more.

    Attributes:
        done: True when asking again can never give more trials (the experiment is
            finished, ``maxTrialCount`` trials were handed out, or the space is exhausted);
            False when fewer came back only because the parallel limit is reached.
        reason: the server's reason when fewer trials than asked came back, else ``None``.
    """

    def __init__(self, trials: List[Trial], done: bool, reason: Optional[str]) -> None:
        super().__init__(trials)
        self.done = done
        self.reason = reason


class Experiment:
    """A handle on one experiment of the server, by name."""

    def __init__(self, client: "Client", name: str, info: Optional[Dict[str, Any]] = None) -> None:
        self.client = client
        self.name = name
        self._info = info or {}

    def __repr__(self) -> str:
        return f"Experiment({self.name!r})"

    @property
    def path(self) -> str:
        """The experiment's route on the server."""
        return f"/api/v1/experiments/{urllib.parse.quote(self.name, safe='')}"

    def status(self) -> Dict[str, Any]:
        """The experiment as the server has it now: state, reason, trial counts, best, spec."""
        self._info = self.client.transport.request("GET", self.path)
        return self._info

    def ask(self, count: int = 1) -> Suggestions:
        """Asks for up to ``count`` new trials (each is Running when it arrives).

        Fewer (possibly none) come back when fewer may start; the answer's ``done`` and
        ``reason`` say why.
        """
        answer = self.client.transport.request("POST", f"{self.path}/suggestions", {"count": count})
        trials = [Trial(self, t["name"], t.get("parameters", {})) for t in answer.get("trials", [])]
        return Suggestions(trials, bool(answer.get("done")), answer.get("reason"))

    def trials_iter(self, poll: float = 1.0) -> Iterator[Trial]:
        """Yields new trials one at a time until the experiment is done.

        While the parallel limit is reached it waits (from 50 ms, doubling up to ``poll``
        seconds) and asks again. Each trial is finished when the loop moves on, as a
        :class:`Trial` context manager would: completed from its reports if the loop body
        did not finish it, or failed if the loop is left (``break``, an exception) while
        it is still running.
        """
        while True:
            trial = self.next_trial(poll)
            if trial is None:
                return
            with trial:
                yield trial

    def next_trial(
        self, poll: float = 1.0, stop: Optional[threading.Event] = None
    ) -> Optional[Trial]:
        """Asks for one trial, waiting while the parallel limit is reached.

        Returns ``None`` when the experiment is done (or ``stop`` is set).
        """
        wait = FIRST_WAIT
        while stop is None or not stop.is_set():
            answer = self.ask(1)
            if answer:
                return answer[0]
            if answer.done:
                return None
            if stop is None:
                time.sleep(wait)
            elif stop.wait(wait):
                return None
            wait = min(wait * 2, max(poll, FIRST_WAIT))
        return None

    def trials(self) -> List[Dict[str, Any]]:
        """Every trial of the experiment, by index, as dicts."""
        answer = self.client.transport.request("GET", f"{self.path}/trials")
        trials: List[Dict[str, Any]] = answer["trials"]
        return trials

    def trial(self, name: str) -> Dict[str, Any]:
        """One trial with every observation it recorded."""
        quoted = urllib.parse.quote(name, safe="")
        trial: Dict[str, Any] = self.client.transport.request("GET", f"{self.path}/trials/{quoted}")
        return trial

    def best(self) -> Optional[Dict[str, Any]]:
        """The best trial so far (``trial``, ``metric``, ``direction``, ``objective``,
        ``parameters``), or ``None`` before any trial has an objective."""
        return self.status().get("best")

    def delete(self) -> None:
        """Stops the experiment's running trials and removes it with all it recorded."""
        self.client.transport.request("DELETE", self.path)

    @property
    def metric(self) -> str:
        """The name of the objective metric."""
        return self._objective("objectiveMetricName")

    @property
    def direction(self) -> str:
        """``"minimize"`` or ``"maximize"``."""
        return self._objective("type")

    def to_dataframe(self) -> Any:
        """The trials as a pandas DataFrame (see :func:`tuneflow.analysis.trials_dataframe`)."""
        return analysis.trials_dataframe(self.trials())

    def plot_history(self, ax: Any = None) -> Any:
        """Plots each trial's objective and the best so far; returns the matplotlib Axes."""
        return analysis.plot_history(self.trials(), self.direction, self.metric, self.name, ax)

    def optimize(
        self,
        fn: Callable[[Trial], Any],
        n_trials: Optional[int] = None,
        n_workers: int = 1,
        catch: Tuple[Type[BaseException], ...] = (Exception,),
        poll: float = 1.0,
    ) -> Optional[Dict[str, Any]]:
        """Runs ``fn`` on new trials until the experiment is done or ``n_trials`` ran.

        ``fn(trial)`` returns the objective value (a number), a dict of metrics, or
        ``None`` (the objective then comes from what it reported). It may also finish
        the trial itself. When it raises, the trial is marked Failed with the exception's
        text; exceptions that are not instances of ``catch`` then stop the sweep and are
        re-raised. ``n_workers`` threads run trials at once (the experiment's
        ``parallelTrialCount`` still bounds how many run). Returns :meth:`best`.
        """
        run_sweep(self, fn, n_trials=n_trials, n_workers=n_workers, catch=catch, poll=poll)
        return self.best()

    def _objective(self, key: str) -> str:
        spec = self._info.get("spec") or self.status().get("spec") or {}
        value = objective_field(spec, key)
        if value is None:
            raise KeyError(f"the server's answer for {self.name} has no spec.objective.{key}")
        return value


# The experiment's ``spec`` as the server answers it: docs/rest-api.md does not show its shape.
# The experiment document's names come first; the server currently sends its internal model
# instead (``objective.direction`` and ``objective.metric``), read as a fallback.
_SPEC_OBJECTIVE_NAMES = {
    "type": ("type", "direction"),
    "objectiveMetricName": ("objectiveMetricName", "metric"),
}


def objective_field(spec: Dict[str, Any], key: str) -> Optional[str]:
    """``spec.objective.type`` or ``spec.objective.objectiveMetricName`` from an experiment."""
    objective = spec.get("objective") or {}
    for name in _SPEC_OBJECTIVE_NAMES[key]:
        value = objective.get(name)
        if value is not None:
            return str(value)
    return None
