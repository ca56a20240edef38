"""The examples in examples/custom-loop run against the session's server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "custom-loop"


def _run(command: list, tf, **env: str) -> str:
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TUNEFLOW_URL": tf.url, **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_train_py(tf, name) -> None:
    out = _run([sys.executable, str(EXAMPLE / "train.py"), "--name", name, "--trials", "4"], tf)
    assert out.splitlines()[-1].startswith(f"best: {name}-")
    assert len(tf.experiment(name).trials()) == 4


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_sh(tf, name) -> None:
    # python3 is this interpreter (it starts faster than a version manager's shim)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    out = _run(["bash", str(EXAMPLE / "curl.sh"), name], tf, PATH=path, MAX_TRIALS="3")
    assert f'"trial": "{name}-' in out.splitlines()[-1]
    status = tf.experiment(name).status()
    assert status["state"] == "Succeeded" and status["trials"]["succeeded"] == 3
