#!/usr/bin/env bash
# Dashboard benchmark: time from navigation to every plot drawn, in headless Chromium, for
# tuneflow's dashboard and optuna-dashboard over the same trials (1,000, 10,000 and 50,000
# trials x 20 steps), with server CPU, server peak RSS and payload bytes.
#
#   1. a venv (${BENCH_VENV:-bench/dashboard/.venv}) with requirements.txt: optuna,
#      optuna-dashboard, playwright (the Python package only; it drives Debian's
#      /usr/bin/chromium, no browser is downloaded), psutil, requests, matplotlib;
#   2. per size, seed.py (once; cached in ${DATA_DIR:-bench/dashboard/.data}/SIZE, reseeded
#      when data.py, seed.py or the store's migrations change): the experiment goes into a
#      tuneflow store through `tuneflow serve`'s REST and MLflow APIs, then the same trials
#      into an Optuna RDB study (SQLite);
#   3. per size, measure.py: tuneflow's experiment page ($REPEATS times), optuna-dashboard's
#      study page and its Trial Selection page (parallel coordinate) ($REPEATS times, fewer
#      once $OPTUNA_BUDGET seconds are spent on one page and size; each load gives up after
#      $OPTUNA_TIMEOUT s). A fresh server and a fresh browser context for every load;
#   4. report.py: the markdown table (also RESULTS/report.md), bench/dashboard/RESULTS.md
#      (NOTES.md with the figures in it) and bench/dashboard/dashboard.png (with RESULTS_MD=
#      empty: neither, the chart goes to RESULTS/dashboard.png).
#
# Usage: bench/dashboard/run.sh
# Environment: TUNEFLOW_BIN (a built binary; without it `cargo build --release` runs),
#   SIZES ("1000 10000 50000"), REPEATS (5), OPTUNA_BUDGET (150 s), OPTUNA_TIMEOUT (300 s),
#   SKIP_OPTUNA=1, SEED_THREADS (4), DATA_DIR, BENCH_VENV, RESULTS (bench/dashboard/results/
#   <UTC time>), RESULTS_MD (bench/dashboard/RESULTS.md; empty: not written), CHROMIUM
#   (/usr/bin/chromium).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

SIZES="${SIZES:-1000 10000 50000}"
REPEATS="${REPEATS:-5}"
OPTUNA_BUDGET="${OPTUNA_BUDGET:-150}"
OPTUNA_TIMEOUT="${OPTUNA_TIMEOUT:-300}"
SKIP_OPTUNA="${SKIP_OPTUNA:-0}"
SEED_THREADS="${SEED_THREADS:-4}"
DATA_DIR="${DATA_DIR:-$here/.data}"
BENCH_VENV="${BENCH_VENV:-$here/.venv}"
RESULTS="${RESULTS:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}"
RESULTS_MD="${RESULTS_MD-$here/RESULTS.md}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

log() { printf '[dashboard-bench] %s\n' "$*" >&2; }
started=$SECONDS

# --- 1. tuneflow ------------------------------------------------------------------------------
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
"$tuneflow" dashboard --help > /dev/null 2>&1 ||
    { log "$tuneflow has no \`dashboard\` command"; exit 1; }
[[ -x "$CHROMIUM" ]] || { log "no Chromium at $CHROMIUM (apt-get install chromium)"; exit 1; }
case "$tuneflow" in
    */release/*) build=release ;;
    */debug/*) build=debug ;;
    *) build="${TUNEFLOW_BUILD:-unknown}" ;;
esac

# --- 2. the Python environment -------------------------------------------------------------------
stamp="$BENCH_VENV/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ ! -x "$BENCH_VENV/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    log "creating $BENCH_VENV"
    rm -rf "$BENCH_VENV"
    python3 -m venv "$BENCH_VENV"
    "$BENCH_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    echo "$want" > "$stamp"
fi
py="$BENCH_VENV/bin/python"

mkdir -p "$RESULTS" "$DATA_DIR"
RESULTS="$(cd "$RESULTS" && pwd)"
DATA_DIR="$(cd "$DATA_DIR" && pwd)"

# --- 3. what ran where ---------------------------------------------------------------------------
revision="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'no commit')"
dirty="$(git -C "$repo" status --porcelain -- src algorithms migrations web Cargo.toml Cargo.lock \
    2>/dev/null | wc -l)"
[[ "$dirty" == 0 ]] || revision="$revision + uncommitted changes in $dirty file(s) of src/ web/ ..."
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -n1)"
"$py" "$here/report.py" --meta "$RESULTS/meta.json" \
    date="$(date -u +'%Y-%m-%d %H:%M UTC')" \
    command="${BENCH_COMMAND:-TUNEFLOW_BIN=$tuneflow bench/dashboard/run.sh}" \
    machine="$(nproc) vCPUs ($cpu), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r)" \
    loadBefore="$(cut -d' ' -f1-3 /proc/loadavg)" \
    tuneflowBinary="$tuneflow" tuneflowBuild="$build" \
    tuneflowBuilt="$(date -u -r "$tuneflow" +'%Y-%m-%d %H:%M UTC')" \
    tuneflowVersion="$("$tuneflow" --version | awk '{print $2}')" revision="$revision" \
    optuna="$("$py" -c 'import optuna; print(optuna.__version__)')" \
    optunaDashboard="$("$py" -c 'import importlib.metadata as m; print(m.version("optuna-dashboard"))')" \
    playwright="$("$py" -c 'import importlib.metadata as m; print(m.version("playwright"))')" \
    chromium="$("$CHROMIUM" --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -n1)" \
    python="$("$py" -c 'import platform; print(platform.python_version())')" \
    sizes="$SIZES" repeats="$REPEATS" optunaBudget="$OPTUNA_BUDGET" optunaTimeout="$OPTUNA_TIMEOUT"

# --- 4. seed (cached) ------------------------------------------------------------------------------
key="$(cat "$here/data.py" "$here/seed.py" "$repo"/migrations/sqlite/* 2>/dev/null | sha256sum | cut -c1-16)"
for size in $SIZES; do
    (cd "$here" && "$py" seed.py --tuneflow "$tuneflow" --size "$size" --data "$DATA_DIR" \
        --threads "$SEED_THREADS" --key "$key")
    cp "$DATA_DIR/$size/seed.json" "$RESULTS/seed-$size.json"
done
# The two ways of reporting observations, on a scratch store: per step (tuneflow's REST
# route) and a whole curve per MLflow log-batch call (what seeding uses).
for via in observations log-batch; do
    (cd "$here" && "$py" seed.py --tuneflow "$tuneflow" --size 1000 --data "$DATA_DIR" \
        --threads "$SEED_THREADS" --observe-via "$via" --only-measure 200) > "$RESULTS/observe-$via.json"
done

# --- 5. measure ----------------------------------------------------------------------------------
measure() { # TARGET SIZE EXTRA...
    local target="$1" size="$2"
    shift 2
    (cd "$here" && "$py" measure.py --target "$target" --size "$size" --data "$DATA_DIR" \
        --out "$RESULTS/$target-$size.json" --tuneflow "$tuneflow" \
        --optuna-dashboard "$BENCH_VENV/bin/optuna-dashboard" \
        --screenshot "$RESULTS/$target-$size.png" "$@")
}
status=0
for size in $SIZES; do
    log "tuneflow, $size trials"
    measure tuneflow "$size" --repeats "$REPEATS" --timeout 120 || status=1
    if [[ "$SKIP_OPTUNA" != 1 ]]; then
        log "optuna-dashboard study page, $size trials"
        measure optuna-top "$size" --repeats "$REPEATS" --budget "$OPTUNA_BUDGET" \
            --timeout "$OPTUNA_TIMEOUT" || status=1
        if "$py" -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["drawn"] else 1)' \
            "$RESULTS/optuna-top-$size.json" 2>/dev/null; then
            log "optuna-dashboard Trial Selection page, $size trials"
            measure optuna-selection "$size" --repeats "$REPEATS" --budget "$OPTUNA_BUDGET" \
                --timeout "$OPTUNA_TIMEOUT" || status=1
        else
            # The same 50,000-trial study load that timed out above: not spent again.
            echo '{"skipped": "the study page was not drawn in time", "reps": []}' \
                > "$RESULTS/optuna-selection-$size.json"
        fi
    fi
done
"$py" "$here/report.py" --meta "$RESULTS/meta.json" loadAfter="$(cut -d' ' -f1-3 /proc/loadavg)" \
    totalSeconds="$((SECONDS - started))"

# --- 6. report -----------------------------------------------------------------------------------
# The committed chart and RESULTS.md change together; a run that writes no RESULTS.md keeps
# its chart beside its raw data.
if [[ -n "$RESULTS_MD" ]]; then
    args=("$RESULTS" --plot "$here/dashboard.png" --results-md "$RESULTS_MD")
else
    args=("$RESULTS" --plot "$RESULTS/dashboard.png")
fi
"$py" "$here/report.py" "${args[@]}"
log "raw data, screenshots and report.md in $RESULTS ($((SECONDS - started)) s in all)"
exit "$status"
