"""Servers for the MLflow tests: a real `mlflow server` (SQLite backend) and `tuneflow serve`,
each started in a temporary directory and stopped when the test is done.

Import the fixtures into a test module: `from mlflow_server import mlflow_server, ...`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tuneflow_bin() -> str:
    """The binary under test: $TUNEFLOW_BIN, else the debug build of this repository."""
    binary = os.environ.get("TUNEFLOW_BIN") or str(REPO / "target" / "debug" / "tuneflow")
    if not os.access(binary, os.X_OK):
        pytest.fail(f"no tuneflow binary at {binary}: run tests/mlflow/run-tests.sh or set TUNEFLOW_BIN")
    return binary


def mlflow_executable() -> str:
    """`mlflow` beside the running Python (the test venv), else on PATH."""
    beside = Path(sys.executable).parent / "mlflow"
    return str(beside) if beside.exists() else (shutil.which("mlflow") or "mlflow")


class MlflowServer:
    """`mlflow server` with a SQLite backend in `directory`, on `port`."""

    def __init__(self, directory: Path, port: int | None = None):
        self.directory = directory
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        self.log = open(directory / "mlflow-server.log", "wb")
        self.proc = subprocess.Popen(
            [mlflow_executable(), "server",
             "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}",
             "--default-artifact-root", str(directory / "artifacts"),
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.wait_healthy()
        self.warm_up()

    def warm_up(self) -> None:
        """One call of each kind tuneflow makes: a fresh server imports and initialises lazily,
        which on a loaded machine can take longer than `tuneflow run` waits at its end."""
        client = self.client()
        experiment = client.create_experiment("warm-up")
        run = client.create_run(experiment, tags={"warm": "up"})
        client.log_metric(run.info.run_id, "m", 1.0, step=0)
        client.log_param(run.info.run_id, "p", "1")
        client.set_terminated(run.info.run_id)
        client.search_runs([experiment], filter_string="tags.`warm` = 'up'")
        client.get_metric_history(run.info.run_id, "m")

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server not healthy after {START_TIMEOUT}s: {self.log_text()[-2000:]}")

    def log_text(self) -> str:
        return (self.directory / "mlflow-server.log").read_text(errors="replace")

    def client(self):
        from mlflow import MlflowClient
        return MlflowClient(tracking_uri=self.uri)

    def stop(self) -> None:
        if self.proc.poll() is None:
            # The server forks workers: stop the whole process group.
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        # Its job consumers (huey) may outlive the server: nothing of the group stays behind.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()


class TuneflowServe:
    """`tuneflow serve` on a free port with its store in `directory`, and a JSON client."""

    def __init__(self, directory: Path, *args: str):
        directory.mkdir(parents=True, exist_ok=True)
        self.log = open(directory / "tuneflow-serve.log", "ab")
        self.proc = subprocess.Popen(
            [tuneflow_bin(), "serve", "--addr", "127.0.0.1:0",
             "--store", str(directory / "tuneflow.db"), *args],
            cwd=directory, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log,
            env={**os.environ, "TUNEFLOW_LOG": "tuneflow=info"})
        line = self.proc.stdout.readline().decode().strip()
        match = re.fullmatch(r"tuneflow serving on (http://\S+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"unexpected first line from tuneflow serve: {line!r}")
        self.url = match.group(1)

    def call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Content-Type": "application/json"} if data else {})
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw = answer.read()
            return json.loads(raw) if raw else None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """One MLflow server for the tests of a module."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    yield server
    server.stop()


@pytest.fixture
def start_mlflow(tmp_path):
    """Starts an MLflow server on a given port later in a test: `start_mlflow(port)`."""
    servers = []

    def start(port: int) -> MlflowServer:
        server = MlflowServer(tmp_path / f"mlflow-{port}", port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def start_serve(tmp_path):
    """Starts `tuneflow serve ARGS...` with its store in the test's directory."""
    servers = []

    def start(*args: str) -> TuneflowServe:
        server = TuneflowServe(tmp_path / "serve", *args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
