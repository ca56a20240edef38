"""Fixtures: one real ``tuneflow serve`` for the session, started through tuneflow.serve."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path
from typing import Callable, Iterator

import pytest

import tuneflow

os.environ.setdefault("MPLBACKEND", "Agg")  # plots render without a display

_names = itertools.count()


@pytest.fixture(scope="session")
def binary() -> str:
    """The tuneflow binary under test, from TUNEFLOW_BIN (the tests fail without it)."""
    path = os.environ.get("TUNEFLOW_BIN")
    if not path:
        pytest.fail("set TUNEFLOW_BIN to the tuneflow binary (e.g. target/debug/tuneflow)")
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"TUNEFLOW_BIN={path}: no such executable file")
    return str(Path(path).resolve())


@pytest.fixture(scope="session")
def tf(binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuneflow.Client]:
    """A client of a server started for the whole session, on a temporary store."""
    with tuneflow.serve(
        store_dir=tmp_path_factory.mktemp("store"), binary=binary, token=""
    ) as client:
        yield client


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A fresh experiment name derived from the test's name."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_")).strip("-")
    return f"{base[:30].strip('-')}-{next(_names)}"  # names have at most 40 characters


@pytest.fixture
def make(tf: tuneflow.Client, name: str) -> Callable[..., tuneflow.Experiment]:
    """Creates a client-driven experiment over two parameters; keyword arguments override."""

    def create(**overrides: object) -> tuneflow.Experiment:
        arguments = dict(
            name=name,
            objective="minimize",
            metric="loss",
            parameters={"x": tuneflow.uniform(-1.0, 1.0), "k": tuneflow.intrange(1, 4)},
            seed=7,
        )
        arguments.update(overrides)
        return tf.create_experiment(**arguments)

    return create
