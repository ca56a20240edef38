"""tuneflow's filter and order_by grammar against MLflow's own parser: for each string, both
accept it or both refuse it (refusals are INVALID_PARAMETER_VALUE)."""

from __future__ import annotations

from typing import Any

import pytest
from mlflow.utils.search_utils import SearchUtils

FILTERS = [
    "metrics.acc > 0.5 and params.lr = '0.1'", "metrics.acc>0.5", "metrics.acc > .5",
    "metrics.acc > 5.", "metrics.acc > 1e5", "metrics.acc > -1.5e-3",
    "params.lr = '0.1' AND", "AND params.lr = '0.1'", "params.lr = '0.1' and and params.x = 'y'",
    "params.lr == '0.1'", "params.lr <> '0.1'", "params.lr = 'it''s'", "params.`my key` = 'a'",
    "params.\"my key\" = 'a'", "`params`.`my key` = 'a'", "params.'my key' = 'a'",
    "tags.mlflow.runName = 'x'", "tags.\"mlflow.runName\" = 'x'", "attributes.status IN ('FINISHED')",
    "attributes.run_id IN ('a')", "run_id IN ('a', 'b')", "attributes.run_id IN ()",
    "attributes.run_id IN ('a',)", "attributes.run_id NOT IN ('a')", "attributes.run_id not in ('a')",
    "attributes.run_id in ('a')", "metrics.x like 1", "params.x like 'a%'", "params.x LIKE 'a%'",
    "params.x ilike 'a%'", "attributes.created > 1", "attributes.Created > 1",
    "attributes.end_time < 5", "attributes.start_time = '5'", "attributes.user_id = 'me'",
    "attributes.artifact_uri LIKE 's3%'", "attributes.lifecycle_stage = 'active'",
    "attributes.experiment_id = '1'", "metrics.x = NaN", "metrics.x > 1 OR metrics.y < 2",
    "(metrics.x > 1)", "metrics.x > 1;", "metrics.x > 1; metrics.y < 2", "params.x IS NULL",
    "params.x IS NOT NULL", "tags.x is null", "metrics.x IS NULL", "attributes.status IS NULL",
    "dataset.name = 'x'", "datasets.digest = 'x'", "datasets.foo = 'x'",
    "datasets.context IN ('train')", "param.x = 'a'", "parameter.x = 'a'", "parameters.x = 'a'",
    "metric.x > 1", "tag.x = 'a'", "attr.status = 'x'", "run.status = 'x'", "params.x = \"a\"",
    "params.x = a",
    "params.x = 'a' and metrics.y >= 2 and tags.z != 'q' and attributes.run_name LIKE '%a%'",
    "metrics.\"a b\" > 1", "metrics.`a b` > 1", "metrics.a.b > 1", "metrics.a-b > 1",
    "metrics.a/b > 1", "params.x != ''", "", "status = 'FINISHED'", "run_name = 'x'",
    "\"run name\" = 'x'", "`Run name` = 'x'", "foo = 'x'", "metrics.1x > 1", "metrics.x > 1 and",
    "params.x = ('a')", "metrics.x IN (1, 2)", "attributes.run_id IN (\"a\")",
]

ORDERS = [
    "metrics.loss", "metrics.loss DESC", "metrics.loss desc", "metrics.`a b` ASC", "params.x",
    "tags.t DESC", "attributes.start_time", "start_time", "created DESC", "run_name", "status ASC",
    "metrics.loss ASC DESC", "metrics.loss UP", "loss", "foo.loss", "metrics.\"a b\"", "",
    "attributes.run_id", "end_time desc",
]


def mlflow_accepts_filter(filter_string: str) -> bool:
    try:
        for clause in SearchUtils.parse_search_filter(filter_string):
            kind, comparator = clause["type"], clause["comparator"].upper()
            key = SearchUtils.translate_key_alias(clause["key"])
            # The comparator checks MLflow's stores make per entity.
            SearchUtils.is_metric(kind, comparator) or SearchUtils.is_param(
                kind, comparator
            ) or SearchUtils.is_tag(kind, comparator) or SearchUtils.is_attribute(
                kind, key, comparator
            ) or SearchUtils.is_dataset(kind, comparator)
        return True
    except Exception:
        return False


def mlflow_accepts_order(order_by: str) -> bool:
    try:
        SearchUtils.parse_order_by_for_search_runs(order_by)
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def experiment_id(client: Any) -> str:
    return client.create_experiment("grammar-against-mlflow")


@pytest.mark.parametrize("filter_string", FILTERS)
def test_filters_accepted_and_refused_like_mlflow(
    server: Any, experiment_id: str, filter_string: str
) -> None:
    status, body = server.call(
        "POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id], "filter": filter_string}
    )
    assert (status == 200) == mlflow_accepts_filter(filter_string), body
    if status != 200:
        assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize("order_by", ORDERS)
def test_order_by_accepted_and_refused_like_mlflow(
    server: Any, experiment_id: str, order_by: str
) -> None:
    status, body = server.call(
        "POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id], "order_by": [order_by]}
    )
    assert (status == 200) == mlflow_accepts_order(order_by), body
