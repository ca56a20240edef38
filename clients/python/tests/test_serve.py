"""tuneflow.serve: starting and stopping the server process; token authentication."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tuneflow


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_server_stops_when_the_with_block_ends(binary, tmp_path: Path) -> None:
    with tuneflow.serve(store_dir=tmp_path / "runs", binary=binary, token="") as tf:
        pid = tf.server.pid
        assert tf.url.startswith("http://127.0.0.1:")
        assert tf.health() == {"status": "ok"}
        assert tf.server.running()
    assert not tf.server.running() and _gone(pid)
    assert (tmp_path / "runs" / "tuneflow.db").exists()
    with pytest.raises(tuneflow.ServerUnavailable):
        tf.experiments()


def test_the_server_stops_at_interpreter_exit(binary, tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import tuneflow
        tf = tuneflow.serve(store_dir={str(tmp_path)!r}, binary={binary!r}, token="")
        print(tf.server.pid, flush=True)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout.strip())
    if not _gone(pid):
        os.kill(pid, 9)
        pytest.fail("the server outlived the interpreter that started it")


def test_token_auth(binary, tmp_path: Path) -> None:
    with tuneflow.serve(store_dir=tmp_path, binary=binary, token="s3cret") as tf:
        assert tf.experiments() == []
        anonymous = tuneflow.connect(tf.url, token="")
        with pytest.raises(tuneflow.Unauthorized) as caught:
            anonymous.experiments()
        assert (caught.value.status, caught.value.code) == (401, "unauthorized")
        assert caught.value.message
        with pytest.raises(tuneflow.Unauthorized):
            tuneflow.connect(tf.url, token="wrong").experiment("anything")
        assert anonymous.health() == {"status": "ok"}  # the one route without a token
        assert tuneflow.connect(tf.url, token="s3cret").experiments() == []


def test_a_missing_binary_is_a_clear_error(monkeypatch, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no-such-tuneflow"):
        tuneflow.serve(store_dir=tmp_path, binary=str(tmp_path / "no-such-tuneflow"))
    monkeypatch.delenv("TUNEFLOW_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="TUNEFLOW_BIN"):
        tuneflow.serve(store_dir=tmp_path)


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-tuneflow"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_a_server_that_dies_at_start_shows_its_stderr(tmp_path: Path) -> None:
    fake = _script(tmp_path, 'echo "error: cannot open store: disk full" >&2; exit 3')
    with pytest.raises(tuneflow.ServerUnavailable) as caught:
        tuneflow.serve(store_dir=tmp_path, binary=fake)
    assert "status 3" in caught.value.message
    assert "cannot open store: disk full" in caught.value.message


def test_a_server_that_prints_no_address_is_stopped(tmp_path: Path) -> None:
    fake = _script(tmp_path, f"echo $$ > {tmp_path}/pid; exec sleep 30")
    with pytest.raises(tuneflow.ServerUnavailable, match="printed no address"):
        tuneflow.serve(store_dir=tmp_path, binary=fake, startup_timeout=0.5)
    assert _gone(int((tmp_path / "pid").read_text()))
