"""A trial handed out by the server: its parameters and the calls that report on it."""

from __future__ import annotations

import logging
import math
import numbers
import urllib.parse
from types import TracebackType
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Type

from .errors import Conflict, TuneflowError

if TYPE_CHECKING:
    from .experiment import Experiment

__all__ = ["Trial"]

log = logging.getLogger("tuneflow")

CONTINUE = "continue"
PRUNE = "prune"


class Trial:
    """A running trial of a client-driven experiment.

    Attributes:
        name: the trial's name, e.g. ``"mnist-lr-0012"``.
        params: its parameters, ``{name: value}`` (numbers, or strings for categorical ones).
        state: ``"Running"`` until this client finishes it; then the state the server
            answered (``"Succeeded"``, ``"Failed"``, ``"EarlyStopped"``, ...), or
            ``"Finished"`` when the server said the trial was already final.

    Used as a context manager, a trial that is still running when the block ends is
    finished: an exception fails it with the exception's text; a normal exit completes it
    with no further metrics, so its objective comes from what :meth:`report` sent (and it
    ends ``MetricsUnavailable`` if the objective metric was never reported).
    """

    def __init__(self, experiment: "Experiment", name: str, params: Dict[str, Any]) -> None:
        self.experiment = experiment
        self.name = name
        self.params = params
        self.state = "Running"

    def __repr__(self) -> str:
        return f"Trial({self.name!r}, params={self.params!r}, state={self.state!r})"

    @property
    def finished(self) -> bool:
        """True once this client completed, failed or pruned the trial, or was told to stop."""
        return self.state != "Running"

    def report(self, step: int, metrics: Optional[Mapping[str, float]] = None, **kw: float) -> str:
        """Records metric values at ``step`` (an epoch or iteration, from 0).

        Metrics are keyword arguments (``trial.report(3, loss=0.41)``) or a mapping for
        names that are not identifiers. Returns ``"continue"``, or ``"prune"`` when the
        trial is over (stopped early, or already final on the server): then stop working
        on it, it needs no completion. Renews the trial's lease.

        Raises:
            ValueError: a value is NaN or infinite (call :meth:`fail` for a diverged trial).
        """
        body = {"step": _step(step), "metrics": _metrics(metrics, kw)}
        try:
            answer = self._post("observations", body)
        except Conflict as err:
            if err.code != "trial_finished":
                raise
            self.state = "Finished"
            return PRUNE
        decision = answer.get("decision", CONTINUE) if answer else CONTINUE
        if decision == PRUNE:
            self.state = "EarlyStopped"
        return decision

    def complete(
        self,
        metrics: Optional[Mapping[str, float]] = None,
        *,
        step: Optional[int] = None,
        **kw: float,
    ) -> Dict[str, Any]:
        """Marks the trial Succeeded, recording the given final metrics.

        ``trial.complete(loss=0.2)`` or ``trial.complete(metrics={"loss": 0.2}, step=9)``.
        The metrics are recorded at ``step`` (default: the last step reported); the
        objective is the objective metric reduced over every observation. With no
        metrics, the objective comes from what :meth:`report` sent. Returns the trial as
        the server records it.

        Raises:
            ValueError: a value is NaN or infinite (call :meth:`fail` instead).
            Conflict: the trial already Succeeded, Failed or ended MetricsUnavailable
                (code ``trial_finished``).
        """
        body: Dict[str, Any] = {"metrics": _metrics(metrics, kw)}
        if step is not None:
            body["step"] = _step(step)
        return self._finish(body)

    def fail(self, message: str) -> Dict[str, Any]:
        """Marks the trial Failed with ``message`` (e.g. ``"loss diverged"``)."""
        return self._finish({"state": "failed", "message": str(message)})

    def prune(self) -> Dict[str, Any]:
        """Marks the trial EarlyStopped: this client stopped it early."""
        return self._finish({"state": "pruned"})

    def heartbeat(self) -> None:
        """Renews the trial's lease without reporting anything."""
        self._post("heartbeat", None)

    def __enter__(self) -> "Trial":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self.finished:
            return
        if exc_type is None:
            self._complete_if_running()
        elif issubclass(exc_type, GeneratorExit):
            self._fail_quietly("the trials_iter() loop was left before the trial finished")
        else:
            self._fail_quietly(describe_exception(exc))

    def _complete_if_running(self) -> None:
        """Completes the trial from its reports, unless the server has finished it already
        (e.g. its lease ran out): that is logged, not raised."""
        try:
            self.complete()
        except Conflict as err:
            if err.code != "trial_finished":
                raise
            self.state = "Finished"
            log.warning("trial %s was already finished: %s", self.name, err.message)

    def _fail_quietly(self, message: str) -> None:
        """Fails the trial; a failure to do so is logged, not raised (an error is on its way)."""
        try:
            self.fail(message)
        except (TuneflowError, OSError) as err:
            log.warning("could not mark trial %s failed: %s", self.name, err)

    def _finish(self, body: Dict[str, Any]) -> Dict[str, Any]:
        answer = self._post("complete", body) or {}
        self.state = answer.get("state") or "Finished"
        return answer

    def _post(self, action: str, body: Any) -> Any:
        path = f"{self.experiment.path}/trials/{urllib.parse.quote(self.name, safe='')}/{action}"
        return self.experiment.client.transport.request("POST", path, body)


def describe_exception(exc: Optional[BaseException]) -> str:
    """``"ValueError: bad input"``: how an exception is told as a trial's failure message."""
    if exc is None:
        return "failed"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _step(step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ValueError(f"step must be a non-negative integer, got {step!r}")
    return int(step)


def _metrics(metrics: Optional[Mapping[str, float]], kw: Mapping[str, float]) -> Dict[str, float]:
    """Merges the two ways of passing metrics; refuses values that are not finite numbers."""
    merged = dict(metrics or {})
    merged.update(kw)
    for name, value in merged.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"metric {name!r} must be a number, got {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(
                f"metric {name!r} is {number}: the server only takes finite values; "
                'to record a diverged trial call trial.fail("...") instead'
            )
        merged[name] = number
    return merged
