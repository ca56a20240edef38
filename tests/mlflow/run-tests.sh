#!/usr/bin/env bash
# Tests of tuneflow's MLflow tracking API with the official MLflow Python client.
#
#   TUNEFLOW_BIN=target/debug/tuneflow tests/mlflow/run-tests.sh [PYTEST ARGS...]
#
# The virtual environment is ${TUNEFLOW_MLFLOW_VENV:-$HOME/.cache/tuneflow-ci/mlflow-venv}; it
# is created when missing, and requirements.txt is installed into it (a no-op when it is).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

TUNEFLOW_BIN="${TUNEFLOW_BIN:-$root/target/debug/tuneflow}"
if [[ ! -x "$TUNEFLOW_BIN" ]]; then
  echo "run-tests.sh: TUNEFLOW_BIN=$TUNEFLOW_BIN is not an executable file (run cargo build first)" >&2
  exit 2
fi
TUNEFLOW_BIN="$(cd "$(dirname "$TUNEFLOW_BIN")" && pwd)/$(basename "$TUNEFLOW_BIN")"
export TUNEFLOW_BIN

venv="${TUNEFLOW_MLFLOW_VENV:-${HOME:-/root}/.cache/tuneflow-ci/mlflow-venv}"
if [[ ! -x "$venv/bin/python" ]]; then
  echo "== creating $venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
fi
py="$venv/bin/python"

echo "== pip install (tests/mlflow/requirements.txt)"
"$py" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"

echo "== pytest tests/mlflow (mlflow $("$py" -c 'import mlflow; print(mlflow.__version__)'))"
cd "$here"
# No telemetry, no git lookups, no prompts: the client only talks to the server under test.
MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true GIT_PYTHON_REFRESH=quiet \
  "$py" -m pytest "$here" -p no:cacheprovider -q "$@"
echo "mlflow client: all tests passed"
