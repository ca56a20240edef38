"""to_dataframe and plot_history (pandas and matplotlib are installed for the tests)."""

from __future__ import annotations

import sys

import pytest

import tuneflow


@pytest.fixture
def finished(make) -> tuneflow.Experiment:
    exp = make(
        max_trials=6,
        parameters={
            "x": tuneflow.uniform(-1.0, 1.0),
            "opt": tuneflow.choice(["adam", "sgd"]),
            "state": tuneflow.intrange(1, 3),  # clashes with a fixed column
        },
    )
    exp.optimize(lambda trial: (trial.params["x"] - 0.2) ** 2)
    return exp


def test_to_dataframe_has_a_row_per_trial(finished) -> None:
    frame = finished.to_dataframe()
    assert len(frame) == 6
    assert list(frame.columns) == [
        "name",
        "state",
        "objective",
        "x",
        "opt",
        "params.state",
        "duration_seconds",
        "message",
    ]
    assert list(frame.index) == [t["index"] for t in finished.trials()]
    assert set(frame["state"]) == {"Succeeded"}
    best = frame.sort_values("objective").iloc[0]
    assert best["name"] == finished.best()["trial"]


def test_plot_history_draws_points_and_the_best_so_far(finished) -> None:
    import matplotlib.pyplot as plt

    ax = finished.plot_history()
    assert ax.get_ylabel() == "loss" and ax.get_xlabel() == "trial"
    (points,) = ax.collections
    assert len(points.get_offsets()) == 6
    (best_line,) = ax.lines
    ys = list(best_line.get_ydata())
    assert ys == sorted(ys, reverse=True)  # minimizing: never goes up
    assert ys[-1] == pytest.approx(finished.best()["objective"])
    _, given = plt.subplots()
    assert finished.plot_history(ax=given) is given
    plt.close("all")


def test_a_missing_pandas_is_a_clear_import_error(finished, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        finished.to_dataframe()
