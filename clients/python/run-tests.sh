#!/usr/bin/env bash
# Tests of the Python client against a real server, then the notebook example, executed.
#
#   TUNEFLOW_BIN=target/debug/tuneflow clients/python/run-tests.sh [PYTEST ARGS...]
#
# The virtual environment is ${TUNEFLOW_PY_VENV:-clients/python/.venv}; it is created when
# missing, and the client (editable) and requirements-test.txt are installed into it.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [[ -z "${TUNEFLOW_BIN:-}" ]]; then
  echo "run-tests.sh: set TUNEFLOW_BIN to the tuneflow binary (e.g. target/debug/tuneflow)" >&2
  exit 2
fi
if [[ ! -x "$TUNEFLOW_BIN" ]]; then
  echo "run-tests.sh: TUNEFLOW_BIN=$TUNEFLOW_BIN is not an executable file" >&2
  exit 2
fi
TUNEFLOW_BIN="$(cd "$(dirname "$TUNEFLOW_BIN")" && pwd)/$(basename "$TUNEFLOW_BIN")"
export TUNEFLOW_BIN

venv="${TUNEFLOW_PY_VENV:-$here/.venv}"
if [[ ! -x "$venv/bin/python" ]]; then
  echo "== creating $venv"
  python3 -m venv "$venv"
fi
py="$venv/bin/python"

echo "== pip install (client and test requirements)"
"$py" -m pip install --quiet --disable-pip-version-check \
  -r "$here/requirements-test.txt" -e "$here"

echo "== pytest clients/python/tests"
MPLBACKEND=Agg "$py" -m pytest "$here/tests" -p no:cacheprovider -q "$@"

echo "== notebook examples/notebook/sweep.ipynb"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# A kernel spec inside the venv, under a name of its own, so the notebook runs on this
# venv's interpreter whatever other "python3" kernels the machine has.
"$py" -m ipykernel install --sys-prefix --name tuneflow-client-tests \
  --display-name "tuneflow client tests" >/dev/null
"$py" - "$root/examples/notebook/sweep.ipynb" "$out/sweep.ipynb" <<'PY'
import sys
from pathlib import Path

import nbclient
import nbformat

source, target = Path(sys.argv[1]), Path(sys.argv[2])
notebook = nbformat.read(source, as_version=4)
client = nbclient.NotebookClient(
    notebook, timeout=300, kernel_name="tuneflow-client-tests",
    resources={"metadata": {"path": str(source.parent)}},
)
client.execute()
nbformat.write(notebook, target)
cells = sum(cell.cell_type == "code" for cell in notebook.cells)
print(f"notebook: {cells} code cells executed without error")
PY
echo "python client: all tests passed"
