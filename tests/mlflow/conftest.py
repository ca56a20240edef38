"""Fixtures: a real ``tuneflow serve`` on a temporary store, and the MLflow client aimed at it."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

_names = itertools.count()


@pytest.fixture(scope="session")
def binary() -> str:
    """The tuneflow binary under test, from TUNEFLOW_BIN."""
    path = os.environ.get("TUNEFLOW_BIN")
    if not path:
        pytest.fail("set TUNEFLOW_BIN to the tuneflow binary (e.g. target/debug/tuneflow)")
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"TUNEFLOW_BIN={path}: no such executable file")
    return str(Path(path).resolve())


class Server:
    """A running ``tuneflow serve``: its URL and a little JSON helper for tuneflow's own API."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
                return response.status, json.loads(text) if text else None
        except urllib.error.HTTPError as error:
            text = error.read().decode()
            return error.code, json.loads(text) if text else None


@pytest.fixture(scope="session")
def server(binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``tuneflow serve --addr 127.0.0.1:0`` on a fresh store, for the whole session."""
    store = tmp_path_factory.mktemp("store") / "tuneflow.db"
    env = {k: v for k, v in os.environ.items() if k not in ("TUNEFLOW_TOKEN", "TUNEFLOW_STORE")}
    process = subprocess.Popen(
        [binary, "serve", "--addr", "127.0.0.1:0", "--store", str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    prefix = "tuneflow serving on "
    if not line.startswith(prefix):
        process.kill()
        pytest.fail(f"unexpected first line from tuneflow serve: {line!r}")
    try:
        yield Server(process, line[len(prefix) :])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def mlflow(server: Server) -> Iterator[Any]:
    """The ``mlflow`` module with its tracking URI set to the server under test."""
    os.environ["MLFLOW_TRACKING_URI"] = server.url
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    import mlflow as module

    module.set_tracking_uri(server.url)
    yield module
    while module.active_run() is not None:
        module.end_run()


@pytest.fixture(scope="session")
def client(mlflow: Any) -> Any:
    """An ``MlflowClient`` of the server under test."""
    return mlflow.tracking.MlflowClient()


@pytest.fixture
def experiment_name(request: pytest.FixtureRequest) -> str:
    """A fresh experiment name derived from the test's name."""
    return f"{request.node.name}-{next(_names)}"


@pytest.fixture(autouse=True)
def _no_active_run(request: pytest.FixtureRequest) -> Iterator[None]:
    """Ends runs a failed test left open, so the next test starts clean."""
    yield
    if "mlflow" in request.fixturenames:
        module = request.getfixturevalue("mlflow")
        while module.active_run() is not None:
            module.end_run()
