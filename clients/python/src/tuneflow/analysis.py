"""Trials as a pandas DataFrame and as a matplotlib plot (both optional dependencies)."""

from __future__ import annotations

import importlib
from typing import Any, Dict, List, Sequence

__all__ = ["trials_dataframe", "plot_history"]

# Columns of the DataFrame besides the parameters; a parameter with one of these names
# gets the column ``params.NAME`` instead.
BASE_COLUMNS = ("name", "state", "objective", "duration_seconds", "message")


def trials_dataframe(trials: Sequence[Dict[str, Any]]) -> Any:
    """One row per trial, indexed by the trial's index.

    Columns: ``name``, ``state``, ``objective`` (NaN while there is none), one column per
    parameter (named after it), ``duration_seconds`` and ``message``.
    """
    pd = _require("pandas", "to_dataframe")
    rows = [_row(trial) for trial in trials]
    names = _parameter_names(trials)
    columns = [*BASE_COLUMNS[:3], *(_column(name) for name in names), *BASE_COLUMNS[3:]]
    index = pd.Index([trial.get("index") for trial in trials], name="index")
    frame = pd.DataFrame(rows, columns=columns, index=index)
    frame["objective"] = frame["objective"].astype(float)
    return frame


def plot_history(
    trials: Sequence[Dict[str, Any]],
    direction: str,
    metric: str,
    title: str,
    ax: Any = None,
) -> Any:
    """Each trial's objective by trial index, with the best-so-far line; returns the Axes."""
    _require("matplotlib", "plot_history")
    if ax is None:
        plt = importlib.import_module("matplotlib.pyplot")
        _, ax = plt.subplots()
    points = [(t["index"], t["objective"]) for t in trials if t.get("objective") is not None]
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    ax.scatter(xs, ys, s=18, alpha=0.7, label=f"{metric} per trial")
    ax.step(xs, _best_so_far(ys, direction), where="post", color="C1", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title(f"{title} ({direction})")
    if points:
        ax.legend()
    return ax


def _best_so_far(values: List[float], direction: str) -> List[float]:
    pick = max if direction == "maximize" else min
    best: List[float] = []
    for value in values:
        best.append(value if not best else pick(best[-1], value))
    return best


def _row(trial: Dict[str, Any]) -> Dict[str, Any]:
    row = {
        "name": trial.get("name"),
        "state": trial.get("state"),
        "objective": trial.get("objective"),
        "duration_seconds": trial.get("durationSeconds"),
        "message": trial.get("message"),
    }
    for name, value in (trial.get("parameters") or {}).items():
        row[_column(name)] = value
    return row


def _parameter_names(trials: Sequence[Dict[str, Any]]) -> List[str]:
    names: Dict[str, None] = {}
    for trial in trials:
        names.update(dict.fromkeys(trial.get("parameters") or {}))
    return list(names)


def _column(parameter: str) -> str:
    return f"params.{parameter}" if parameter in BASE_COLUMNS else parameter


def _require(module: str, feature: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{feature}() needs {module}, which is not installed: pip install {module}"
        ) from err
