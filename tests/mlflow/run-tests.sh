#!/usr/bin/env bash
# Runs the tests against a real MLflow server: builds tuneflow, makes (or reuses) a venv with
# the pinned mlflow and pytest, and runs pytest on this folder. Extra arguments go to pytest.
#
#   tests/mlflow/run-tests.sh [-k export]
#
# TUNEFLOW_MLFLOW_VENV   where the venv lives (default ~/.cache/tuneflow-ci/mlflow-venv); it is
#                        rebuilt when requirements.txt changes.
# TUNEFLOW_BIN           a tuneflow binary to test instead of building one.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${TUNEFLOW_MLFLOW_VENV:-$HOME/.cache/tuneflow-ci/mlflow-venv}"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"

if [[ ! -x "$venv/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "creating the MLflow test venv in $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -r "$here/requirements.txt"
    echo "$want" > "$stamp"
fi

if [[ -z "${TUNEFLOW_BIN:-}" ]]; then
    (cd "$repo" && cargo build --quiet --bin tuneflow)
    target="$(cd "$repo" && realpath -m "${CARGO_TARGET_DIR:-target}")"
    export TUNEFLOW_BIN="$target/debug/tuneflow"
fi
export PATH="$venv/bin:$PATH"
cd "$repo"
exec "$venv/bin/python" -m pytest "$here" "$@"
