"""Search results against MLflow's own in-memory search (``SearchUtils.filter`` and
``SearchUtils.sort``, what MLflow's file store runs) over the same runs: the same runs, in the
same order, for every filter and order_by below."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.search_utils import SearchUtils

FILTERS = [
    "",
    "metrics.loss < 0.5",
    "metrics.loss >= 0.5",
    "metrics.loss != 0.25",
    "metrics.acc = 1",
    "params.opt = 'adam'",
    "params.opt != 'adam'",
    "params.opt LIKE 'a%'",
    "params.opt ILIKE 'A%'",
    "params.opt LIKE '_gd'",
    "params.opt IS NULL",
    "tags.group IS NOT NULL and metrics.loss > 0.1",
    "tags.group = 'g1' and params.opt ILIKE '%a%'",
    "attributes.start_time >= 1700000000010",
    "attributes.run_name LIKE 'run-1%'",
    "attributes.status = 'FINISHED'",
]

ORDERS = [
    [],
    ["metrics.loss"],
    ["metrics.loss DESC"],
    ["params.opt", "metrics.acc DESC"],
    ["tags.group DESC", "metrics.loss"],
    ["attributes.start_time ASC"],
    ["attributes.run_name DESC"],
    ["metrics.acc", "params.opt DESC"],
]


@pytest.fixture(scope="module")
def population(client: Any) -> tuple[str, list[Any]]:
    """Thirty runs with seeded metrics (some NaN, some missing), params and tags."""
    rng = random.Random(11)
    experiment_id = client.create_experiment("semantics-against-mlflow")
    for index in range(30):
        run = client.create_run(
            experiment_id, start_time=1_700_000_000_000 + index // 2, run_name=f"run-{index}"
        )
        metrics = []
        if rng.random() < 0.8:
            loss = rng.choice([0.25, 0.5, math.nan, rng.random()])
            metrics.append(Metric("loss", loss, 1, 0))
        if rng.random() < 0.7:
            metrics.append(Metric("acc", rng.choice([0.0, 1.0, 0.5]), 1, 0))
        params = []
        if rng.random() < 0.8:
            params.append(Param("opt", rng.choice(["adam", "Adam", "sgd", "rmsprop"])))
        tags = []
        if rng.random() < 0.7:
            tags.append(RunTag("group", rng.choice(["g1", "g2"])))
        client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=tags)
        client.set_terminated(run.info.run_id, status=rng.choice(["FINISHED", "FAILED"]))
    runs = client.search_runs([experiment_id], max_results=1000)
    assert len(runs) == 30
    return experiment_id, list(runs)


@pytest.mark.parametrize(
    ("filter_string", "order_by"), list(itertools.product(FILTERS, ORDERS))
)
def test_search_matches_mlflow(
    client: Any, population: tuple[str, list[Any]], filter_string: str, order_by: list[str]
) -> None:
    experiment_id, runs = population
    expected = SearchUtils.sort(SearchUtils.filter(runs, filter_string), order_by)
    found = client.search_runs(
        [experiment_id], filter_string=filter_string, order_by=order_by, max_results=1000
    )
    assert [r.info.run_name for r in found] == [r.info.run_name for r in expected]
