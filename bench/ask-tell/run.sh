#!/usr/bin/env bash
# Ask/tell benchmark: durable ask + tell round trips through `tuneflow serve`'s REST API,
# side by side with Optuna's ask-and-tell on a shared SQLite study.
#
# Measures, in one run:
#   1. throughput: WORKERS worker processes (default 4), each with one keep-alive
#      http.client connection, doing TF_ROUNDS (default 2500) round trips of
#      POST suggestions {"count":1} -> trivial objective -> POST complete {"metrics":...}
#      against a client-driven random-search experiment; the same with Optuna 5
#      (RandomSampler, RDBStorage sqlite:///..., the study shared by load_study), OPTUNA_ROUNDS
#      (default 100) each. Both verified afterwards from the store (succeeded / COMPLETE).
#   2. latency: one sequential client, LAT_ASKS (default 5000) asks each followed by a
#      complete, with http.client and with a raw-socket client; p50/p90/p99 per ask.
# Every phase of tuneflow starts its own `tuneflow serve --addr 127.0.0.1:0` on a fresh store
# in a scratch directory that is removed at the end.
#
# Usage: bench/ask-tell/run.sh
# Environment: TF_ROUNDS, OPTUNA_ROUNDS, WORKERS, LAT_ASKS, SKIP_OPTUNA=1 to leave out the
#   peer, RESULTS (default bench/ask-tell/results/<UTC time>), CARGO_TARGET_DIR as cargo
#   understands it.
# Prints the markdown tables of analyze.py (also saved as RESULTS/report.md), keeps the raw
# JSON in RESULTS and writes bench/ask-tell/throughput.png and latency.png.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="$(dirname "$here")"
repo="$(dirname "$bench")"

TF_ROUNDS="${TF_ROUNDS:-2500}"
OPTUNA_ROUNDS="${OPTUNA_ROUNDS:-100}"
WORKERS="${WORKERS:-4}"
LAT_ASKS="${LAT_ASKS:-5000}"
SKIP_OPTUNA="${SKIP_OPTUNA:-0}"
RESULTS="${RESULTS:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}"

log() { printf '[ask-tell] %s\n' "$*" >&2; }

mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/tuneflow-asktell.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

# --- 1. Build tuneflow (release) -------------------------------------------------------------
log "building tuneflow (cargo build --release)"
(cd "$repo" && cargo build --release)
target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
tuneflow="$target_dir/release/tuneflow"
[[ -x "$tuneflow" ]] || { log "no binary at $tuneflow"; exit 1; }

# --- 2. The Python environment (Optuna for the peer, matplotlib for the plots) ----------------
venv="$bench/.venv"
if [[ ! -x "$venv/bin/python" ]]; then
    log "creating $venv"
    python3 -m venv "$venv"
fi
log "installing bench/requirements.txt into $venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$bench/requirements.txt"
py="$venv/bin/python"
optuna_version="not run"
[[ "$SKIP_OPTUNA" == 1 ]] || optuna_version="$("$py" -c 'import optuna; print(optuna.__version__)')"

# --- 3. What ran where --------------------------------------------------------------------------
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -n1)"
revision="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'no commit')"
# The build includes uncommitted changes to the Rust sources, if any: say so.
dirty="$(git -C "$repo" status --porcelain -- src algorithms migrations Cargo.toml Cargo.lock \
    2>/dev/null | wc -l)"
[[ "$dirty" == 0 ]] || revision="$revision + uncommitted changes in $dirty Rust source file(s)"
python3 - "$RESULTS/meta.json" <<EOF
import json, sys
json.dump({
    "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
    "machine": "$(nproc) CPUs ($cpu), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r)",
    "loadAverageBefore": "$(cut -d' ' -f1-3 /proc/loadavg)",
    "tuneflowVersion": "$("$tuneflow" --version 2>/dev/null | awk '{print $NF}' || echo unknown)",
    "tuneflowRevision": "$revision",
    "python": "Python $("$py" -c 'import platform; print(platform.python_version())')",
    "optunaVersion": "$optuna_version",
    "workers": $WORKERS,
    "tuneflowRounds": $TF_ROUNDS,
    "optunaRounds": $OPTUNA_ROUNDS,
    "latencyAsks": $LAT_ASKS,
}, open(sys.argv[1], "w"), indent=1)
EOF

# --- 4. The measurements --------------------------------------------------------------------------
status=0
log "tuneflow throughput: $WORKERS workers x $TF_ROUNDS round trips"
"$py" "$here/tuneflow_bench.py" --tuneflow "$tuneflow" --scratch "$scratch" --phase throughput \
    --workers "$WORKERS" --rounds "$TF_ROUNDS" --out "$RESULTS/tuneflow-throughput.json" ||
    { status=1; log "tuneflow throughput FAILED (see above)"; }

if [[ "$SKIP_OPTUNA" != 1 ]]; then
    log "Optuna throughput: $WORKERS workers x $OPTUNA_ROUNDS round trips (SQLite)"
    "$py" "$here/optuna_bench.py" --db "$scratch/optuna.db" --workers "$WORKERS" \
        --rounds "$OPTUNA_ROUNDS" --out "$RESULTS/optuna-throughput.json" ||
        { status=1; log "Optuna throughput FAILED (see above)"; }
fi

log "tuneflow latency: 1 sequential client x $LAT_ASKS asks (http.client, then raw socket)"
"$py" "$here/tuneflow_bench.py" --tuneflow "$tuneflow" --scratch "$scratch" --phase latency \
    --asks "$LAT_ASKS" --out "$RESULTS/tuneflow-latency.json" ||
    { status=1; log "tuneflow latency FAILED (see above)"; }

# --- 5. Report ----------------------------------------------------------------------------------
"$py" "$here/analyze.py" "$RESULTS" | tee "$RESULTS/report.md" || status=1
log "raw data and report.md in $RESULTS"
[[ "$status" == 0 ]] || log "FAILED: some phase did not verify; see the problems above"
exit "$status"
