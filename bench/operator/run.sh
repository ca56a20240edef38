#!/usr/bin/env bash
# Operator benchmark (issue 7): `tuneflow operator` against the fake Kubernetes API server.
#
#   1. launch: 100 Experiment resources x 30 parallel trials (maxTrialCount 30), POSTed one
#      after the other; time until all 3,000 Jobs exist, until all 3,000 pods are Running and
#      until every Experiment is Succeeded; per-trial launch latency; operator CPU and memory.
#      Trials print LINES lines LINE_DELAY_MS apart (default 30 x 1 s, like the ~30 s trials of
#      kubeflow/katib#1328), so every trial of every experiment can be running at once.
#   2. memory: one Experiment of 10,000 trials (1 log line each, 100 parallel) fills the
#      operator's store; the operator is restarted on it: time to its first status write, settled
#      RSS, idle CPU over 30 s.
#
# Usage: bench/operator/run.sh
# Environment: TUNEFLOW_BIN, FAKE_KUBE_BIN (skip the release build when both are given),
#   EXPERIMENTS (100), PARALLEL (30), LINES (30), LINE_DELAY_MS (1000), TRIALS (10000),
#   FILL_PARALLEL (100), SKIP_LAUNCH=1 / SKIP_MEMORY=1, SKIP_PLOT=1, RESULTS (default
#   bench/operator/results/<UTC time>).
# Writes launch.json, memory.json, timelines, operator and fake-kube logs to RESULTS; prints
# the markdown tables; plots Jobs over time (launch-timeline.png) with matplotlib from
# bench/requirements.txt in bench/.venv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="$(dirname "$here")"
repo="$(dirname "$bench")"
RESULTS="${RESULTS:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}"
log() { printf '[operator-bench] %s\n' "$*" >&2; }

if [[ -z "${TUNEFLOW_BIN:-}" || -z "${FAKE_KUBE_BIN:-}" ]]; then
    log "building tuneflow and fake-kube (cargo build --release)"
    (cd "$repo" && cargo build --release -p tuneflow -p tuneflow-fake-kube)
    target="${CARGO_TARGET_DIR:-$repo/target}"
    TUNEFLOW_BIN="${TUNEFLOW_BIN:-$target/release/tuneflow}"
    FAKE_KUBE_BIN="${FAKE_KUBE_BIN:-$target/release/fake-kube}"
fi
mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"
log "results in $RESULTS"
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "revision: $(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "nproc: $(nproc)"
    echo "loadavg: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "tuneflow: $("$TUNEFLOW_BIN" --version 2>/dev/null || echo unknown)"
} > "$RESULTS/machine.txt"

common=(--tuneflow "$TUNEFLOW_BIN" --fake-kube "$FAKE_KUBE_BIN" --out "$RESULTS")
if [[ "${SKIP_LAUNCH:-0}" != 1 ]]; then
    python3 "$here/bench.py" launch "${common[@]}" \
        --experiments "${EXPERIMENTS:-100}" --parallel "${PARALLEL:-30}" \
        --lines "${LINES:-30}" --line-delay-ms "${LINE_DELAY_MS:-1000}" > /dev/null
fi
if [[ "${SKIP_MEMORY:-0}" != 1 ]]; then
    python3 "$here/bench.py" memory "${common[@]}" \
        --trials "${TRIALS:-10000}" --parallel "${FILL_PARALLEL:-100}" > /dev/null
fi
if [[ "${SKIP_PLOT:-0}" != 1 && -f "$RESULTS/launch-timeline.json" ]]; then
    venv="$bench/.venv"
    if [[ ! -x "$venv/bin/python" ]]; then
        log "creating $venv"
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -c 'import matplotlib' 2>/dev/null ||
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$bench/requirements.txt"
    "$venv/bin/python" "$here/plot.py" "$RESULTS" "$RESULTS/launch-timeline.png"
fi
python3 "$here/bench.py" report "$RESULTS" | tee "$RESULTS/report.md"
