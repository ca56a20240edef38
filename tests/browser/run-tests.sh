#!/usr/bin/env bash
# The dashboard in a real browser: pytest + Playwright driving the system Chromium against
# the real binary on fresh stores (and PostgreSQL too when TUNEFLOW_TEST_POSTGRES is set).
#
#   TUNEFLOW_BIN=target/debug/tuneflow tests/browser/run-tests.sh [PYTEST ARGS...]
#
# The virtual environment is ${TUNEFLOW_BROWSER_VENV:-tests/browser/.venv}; it is created when
# missing and requirements.txt is installed into it. Playwright's own browser download is
# never used: Chromium comes from the system (apt-get install chromium).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"

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

chromium="${TUNEFLOW_CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
  echo "run-tests.sh: $chromium is missing; install it with: apt-get install -y chromium" >&2
  exit 2
fi
export TUNEFLOW_CHROMIUM="$chromium"

venv="${TUNEFLOW_BROWSER_VENV:-$here/.venv}"
if [[ ! -x "$venv/bin/python" ]]; then
  echo "== creating $venv"
  python3 -m venv "$venv"
fi
py="$venv/bin/python"

echo "== pip install (browser test requirements)"
"$py" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"

echo "== pytest tests/browser ($("$chromium" --version 2>/dev/null || echo chromium))"
cd "$here"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$py" -m pytest "$here" -p no:cacheprovider -q "$@"
