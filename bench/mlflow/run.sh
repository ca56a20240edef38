#!/usr/bin/env bash
# MLflow tracking benchmark: the same client code against `mlflow server` and against
# `tuneflow serve`'s MLflow-compatible API, side by side, plus tuneflow's ask + complete
# throughput on a PostgreSQL store shared by two servers.
#
# Measures, in one run (see tracking_bench.py and pg_throughput.py for the exact loops):
#   1. sequential runs/log-metric calls per second (raw keep-alive HTTP, and MlflowClient);
#   2. metric points per second with runs/log-batch of 1,000 points;
#   3. runs/search latency over 1,000 runs (filter + order_by, max_results 1000);
#   4. tuneflow ask + complete throughput: 2 `tuneflow serve` on one PostgreSQL database,
#      8 worker processes.
# Each server gets a fresh store in a scratch directory (MLflow: SQLite backend, its default
# workers; tuneflow: SQLite store, release build). A part the tuneflow binary does not support
# (no MLflow API routes, no PostgreSQL store) is skipped and reported as such.
#
# Usage: bench/mlflow/run.sh
# Environment: SECONDS_PER_PHASE (default 10), SEARCH_RUNS (1000), PG_URL (default
#   postgres://postgres@127.0.0.1:5432; a fresh database is created in it and dropped after),
#   PG_WORKERS (8), PG_SERVERS (2), PG_ROUNDS (250 per worker), SKIP_PG=1, SKIP_MLFLOW=1,
#   RESULTS (default bench/mlflow/results/<UTC time>), TUNEFLOW_BIN (a release binary to use
#   instead of building; the revision noted is then the checkout's), CARGO_TARGET_DIR as cargo
#   understands it.
# Prints analyze.py's markdown (also RESULTS/report.md) and writes bench/mlflow/throughput.png.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="$(dirname "$here")"
repo="$(dirname "$bench")"

SECONDS_PER_PHASE="${SECONDS_PER_PHASE:-10}"
SEARCH_RUNS="${SEARCH_RUNS:-1000}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
PG_WORKERS="${PG_WORKERS:-8}"
PG_SERVERS="${PG_SERVERS:-2}"
PG_ROUNDS="${PG_ROUNDS:-250}"
SKIP_PG="${SKIP_PG:-0}"
SKIP_MLFLOW="${SKIP_MLFLOW:-0}"
RESULTS="${RESULTS:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}"

log() { printf '[mlflow-bench] %s\n' "$*" >&2; }

# The MLflow client's usage telemetry would try to reach the internet on every process start
# (and wait for it where there is none): off, for both servers alike.
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true GIT_PYTHON_REFRESH=quiet

mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/tuneflow-mlflow-bench.XXXXXX")"
mlflow_pid=""
tf_pid=""
pg_db=""
stop_mlflow() {
    if [[ -n "$mlflow_pid" ]]; then
        # setsid made the server its own process group: stop its workers with it.
        kill -TERM -- "-$mlflow_pid" 2>/dev/null || true
        wait "$mlflow_pid" 2>/dev/null || true
        # Its job consumers (huey) may outlive the server process.
        sleep 1
        kill -KILL -- "-$mlflow_pid" 2>/dev/null || true
        mlflow_pid=""
    fi
}
stop_tuneflow() {
    if [[ -n "$tf_pid" ]]; then
        kill -TERM "$tf_pid" 2>/dev/null || true
        wait "$tf_pid" 2>/dev/null || true
        tf_pid=""
    fi
}
cleanup() {
    stop_mlflow
    stop_tuneflow
    if [[ -n "$pg_db" ]]; then
        psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true
    fi
    rm -rf "$scratch"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_http() { # URL SECONDS
    local deadline=$((SECONDS + $2))
    until curl -sf -o /dev/null "$1"; do
        ((SECONDS < deadline)) || { log "no answer from $1 after $2 s"; return 1; }
        sleep 0.5
    done
}

# --- 1. Build tuneflow (release), unless TUNEFLOW_BIN names a built one -----------------------
if [[ -n "${TUNEFLOW_BIN:-}" ]]; then
    tuneflow="$(realpath "$TUNEFLOW_BIN")"
    log "using $tuneflow (TUNEFLOW_BIN)"
else
    log "building tuneflow (cargo build --release)"
    (cd "$repo" && cargo build --release --bin tuneflow)
    target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    tuneflow="$target_dir/release/tuneflow"
fi
[[ -x "$tuneflow" ]] || { log "no binary at $tuneflow"; exit 1; }

# --- 2. The Python environment: mlflow (server and client), matplotlib ------------------------
venv="$bench/.venv-mlflow"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    log "creating $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    echo "$want" > "$stamp"
fi
py="$venv/bin/python"

# --- 3. What ran where --------------------------------------------------------------------------
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -n1)"
revision="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'no commit')"
dirty="$(git -C "$repo" status --porcelain -- src algorithms migrations Cargo.toml Cargo.lock \
    2>/dev/null | wc -l)"
[[ "$dirty" == 0 ]] || revision="$revision + uncommitted changes in $dirty Rust source file(s)"
"$py" "$here/analyze.py" --meta "$RESULTS/meta.json" \
    date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    machine="$(nproc) CPUs ($cpu), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r)" \
    loadAverageBefore="$(cut -d' ' -f1-3 /proc/loadavg)" \
    tuneflowRevision="$revision" \
    mlflowVersion="$("$py" -c 'import mlflow; print(mlflow.__version__)')" \
    python="$("$py" -c 'import platform; print(platform.python_version())')" \
    secondsPerPhase="$SECONDS_PER_PHASE" searchRuns="$SEARCH_RUNS"

status=0
phase_args=(--seconds "$SECONDS_PER_PHASE" --search-runs "$SEARCH_RUNS")

# --- 4. MLflow's own server ----------------------------------------------------------------------
if [[ "$SKIP_MLFLOW" != 1 ]]; then
    port="$(free_port)"
    log "starting mlflow server (SQLite backend) on port $port"
    setsid "$venv/bin/mlflow" server --backend-store-uri "sqlite:///$scratch/mlflow.db" \
        --default-artifact-root "$scratch/mlflow-artifacts" --host 127.0.0.1 --port "$port" \
        > "$RESULTS/mlflow-server.log" 2>&1 &
    mlflow_pid=$!
    wait_http "http://127.0.0.1:$port/health" 300
    log "measuring mlflow server"
    "$py" "$here/tracking_bench.py" --uri "http://127.0.0.1:$port" --name mlflow \
        --out "$RESULTS/mlflow.json" "${phase_args[@]}" ||
        { status=1; log "mlflow phases FAILED (see above)"; }
    stop_mlflow
fi

# --- 5. tuneflow's MLflow-compatible API -------------------------------------------------------
"$tuneflow" serve --addr 127.0.0.1:0 --store "$scratch/tuneflow.db" \
    > "$scratch/tuneflow-serve.out" 2> "$RESULTS/tuneflow-serve.log" &
tf_pid=$!
for _ in $(seq 100); do
    [[ -s "$scratch/tuneflow-serve.out" ]] && break
    sleep 0.1
done
tf_url="$(sed -n 's/^tuneflow serving on //p' "$scratch/tuneflow-serve.out" | head -n1)"
[[ -n "$tf_url" ]] || { log "tuneflow serve did not start: $(cat "$RESULTS/tuneflow-serve.log")"; exit 1; }
code="$(curl -s -o /dev/null -w '%{http_code}' "$tf_url/api/2.0/mlflow/experiments/search?max_results=1")"
if [[ "$code" == 200 ]]; then
    log "measuring tuneflow serve at $tf_url"
    "$py" "$here/tracking_bench.py" --uri "$tf_url" --name tuneflow \
        --out "$RESULTS/tuneflow.json" "${phase_args[@]}" ||
        { status=1; log "tuneflow phases FAILED (see above)"; }
else
    log "this tuneflow build has no MLflow API (GET /api/2.0/mlflow/experiments/search -> $code): skipped"
    "$py" "$here/analyze.py" --meta "$RESULTS/tuneflow.json" server=tuneflow \
        skipped="no MLflow API in revision $revision (HTTP $code)"
fi
stop_tuneflow

# --- 6. ask + complete on PostgreSQL -------------------------------------------------------------
if [[ "$SKIP_PG" != 1 ]]; then
    pg_db="tuneflow_bench_$(date -u +%Y%m%d%H%M%S)_$$"
    if psql "$PG_URL/postgres" -qc "CREATE DATABASE $pg_db" > /dev/null 2> "$scratch/pg.err"; then
        if "$tuneflow" --store "$PG_URL/$pg_db" experiments > /dev/null 2> "$scratch/probe.err"; then
            log "ask + complete: $PG_SERVERS servers, $PG_WORKERS workers on PostgreSQL ($pg_db)"
            "$py" "$here/pg_throughput.py" --tuneflow "$tuneflow" --store "$PG_URL/$pg_db" \
                --scratch "$scratch/pg" --out "$RESULTS/pg.json" --servers "$PG_SERVERS" \
                --workers "$PG_WORKERS" --rounds "$PG_ROUNDS" ||
                { status=1; log "PostgreSQL throughput FAILED (see above)"; }
            cp "$scratch"/pg/serve-*.log "$RESULTS/" 2>/dev/null || true
        else
            probe="$(head -c 300 "$scratch/probe.err")"
            log "this tuneflow build cannot use PostgreSQL: $probe"
            "$py" "$here/analyze.py" --meta "$RESULTS/pg.json" skipped="$probe"
        fi
    else
        log "cannot create a database in $PG_URL: $(cat "$scratch/pg.err")"
        pg_db=""
    fi
fi
"$py" "$here/analyze.py" --meta "$RESULTS/meta.json" loadAverageAfter="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- 7. Report ----------------------------------------------------------------------------------
"$py" "$here/analyze.py" "$RESULTS" --plot "$here/throughput.png" | tee "$RESULTS/report.md" || status=1
log "raw data and report.md in $RESULTS"
[[ "$status" == 0 ]] || log "FAILED: some phase did not verify; see the problems above"
exit "$status"
