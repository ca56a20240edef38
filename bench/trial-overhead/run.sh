#!/usr/bin/env bash
# Trial-overhead benchmark: what does tuneflow add on top of starting a process?
#
# Runs an experiment of TRIALS trials (default 1000) whose command does nothing, with
# parallelTrialCount PARALLEL (default 8), on a fresh SQLite store each time, and measures:
#   - the wall time of `tuneflow run` and the throughput (trials/s);
#   - per trial, from the store: completedAt - startedAt (spawn -> recorded) and
#     startedAt - createdAt (suggested -> launched);
#   - the raw cost of spawning `true` on this machine (xargs, Python, hyperfine if installed);
#   - the peer: Optuna running the same number of trials, each spawning `true`, with n_jobs
#     PARALLEL, on in-memory and on SQLite storage.
# Three tuneflow variants run: `true` itself (it prints no metric, so every trial ends
# MetricsUnavailable; maxFailedTrialCount is raised so the experiment still runs them all),
# `/bin/echo loss=X` (the objective is reported, trials end Succeeded: the realistic path), and
# the echo one again with parallelTrialCount 1 (per-trial latency without CPU contention).
#
# Usage: bench/trial-overhead/run.sh
# Environment: TRIALS, PARALLEL, REPEATS (default 3), RESULTS (default
#   bench/trial-overhead/results/<UTC time>), SKIP_OPTUNA=1 to leave out the peer,
#   CARGO_TARGET_DIR as cargo understands it.
# Prints the markdown tables of analyze.py and keeps the raw data in RESULTS.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="$(dirname "$here")"
repo="$(dirname "$bench")"

TRIALS="${TRIALS:-1000}"
PARALLEL="${PARALLEL:-8}"
REPEATS="${REPEATS:-3}"
SKIP_OPTUNA="${SKIP_OPTUNA:-0}"
RESULTS="${RESULTS:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}"

log() { printf '[trial-overhead] %s\n' "$*" >&2; }

mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"
# Stores and Optuna databases live in a scratch directory that is removed at the end; only
# the JSON exports are kept in RESULTS.
scratch="$(mktemp -d "${TMPDIR:-/tmp}/tuneflow-bench.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

# measure OUT.json [--stdout F] [--stderr F] -- CMD...: wall and CPU time of CMD's process tree.
measure() { python3 "$here/measure.py" "$@"; }
# field FILE KEY: one value of a JSON object, for the progress lines.
field() { python3 -c 'import json, sys; print(round(json.load(open(sys.argv[1]))[sys.argv[2]], 3))' "$1" "$2"; }

# --- 1. Build tuneflow (release) -------------------------------------------------------------
log "building tuneflow (cargo build --release)"
(cd "$repo" && cargo build --release)
# Ask cargo where the target directory is (honours CARGO_TARGET_DIR and .cargo/config).
target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
tuneflow="$target_dir/release/tuneflow"
[[ -x "$tuneflow" ]] || { log "no binary at $tuneflow"; exit 1; }

# --- 2. The Python environment for the peer ----------------------------------------------------
venv="$bench/.venv"
optuna_version="not run"
if [[ "$SKIP_OPTUNA" != 1 ]]; then
    if [[ ! -x "$venv/bin/python" ]]; then
        log "creating $venv"
        python3 -m venv "$venv"
    fi
    log "installing bench/requirements.txt into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$bench/requirements.txt"
    optuna_version="$("$venv/bin/python" -c 'import optuna; print(optuna.__version__)')"
fi

# --- 3. What ran where --------------------------------------------------------------------------
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -n1)"
python3 - "$RESULTS/meta.json" <<EOF
import json, sys
json.dump({
    "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
    "machine": "$(nproc) CPUs ($cpu), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r)",
    "tuneflowVersion": "$("$tuneflow" --version 2>/dev/null | awk '{print $NF}' || echo unknown)",
    "tuneflowRevision": "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'no commit')",
    "python": "Python $(python3 -c 'import platform; print(platform.python_version())')",
    "optunaVersion": "$optuna_version",
    "trials": $TRIALS,
    "parallel": $PARALLEL,
    "repeats": $REPEATS,
}, open(sys.argv[1], "w"), indent=1)
EOF

# --- 4. The experiments -------------------------------------------------------------------------
# write_spec KIND PARALLELISM FILE: an experiment of TRIALS trials running `true` or
# `/bin/echo loss=X`, PARALLELISM at a time.
write_spec() {
    local kind="$1" parallel="$2" file="$3" command max_failed
    case "$kind" in
        true) command='["true"]'; max_failed="$TRIALS" ;;
        echo)
            # ${parameters.x} is tuneflow's placeholder, kept literal by the single quotes.
            # shellcheck disable=SC2016
            command='["/bin/echo", "loss=${parameters.x}"]'
            max_failed=0 ;;
    esac
    cat >"$file" <<EOF
apiVersion: tuneflow.dev/v1alpha1
kind: Experiment
metadata:
  name: overhead-$kind
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
  algorithm:
    algorithmName: random
    algorithmSettings:
      - name: random_state
        value: "7"
  parallelTrialCount: $parallel
  maxTrialCount: $TRIALS
  maxFailedTrialCount: $max_failed
  parameters:
    - name: x
      parameterType: double
      feasibleSpace: {min: 0, max: 1}
  trialTemplate:
    command: $command
    timeout: 60s
EOF
}

# run_tuneflow KIND PARALLELISM N: one timed `tuneflow run` on a fresh store, then export
# its trials and experiment as JSON.
run_tuneflow() {
    local kind="$1" parallel="$2" n="$3" variant="tuneflow-$1-p$2" out store
    out="$RESULTS/$variant-$n"
    store="$scratch/$variant-$n/tuneflow.db"
    mkdir -p "$out" "$(dirname "$store")"
    write_spec "$kind" "$parallel" "$out/experiment.yaml"
    measure "$out/wall.json" --stdout "$out/run.json" --stderr "$out/run.stderr" -- \
        "$tuneflow" --store "$store" run "$out/experiment.yaml" -o json
    "$tuneflow" --store "$store" trials "overhead-$kind" -o json >"$out/trials.json"
    "$tuneflow" --store "$store" experiments -o json >"$out/experiments.json"
    log "$variant #$n: exit $(field "$out/wall.json" exitCode)," \
        "$(field "$out/wall.json" wallSeconds) s"
}

# run_optuna STORAGE N: one Optuna study of TRIALS trials, each spawning `true`.
run_optuna() {
    local storage="$1" n="$2" out="$RESULTS/optuna-$1-$2"
    mkdir -p "$out"
    measure "$out/wall.json" --stderr "$out/run.stderr" -- \
        "$venv/bin/python" "$here/optuna_peer.py" --storage "$storage" \
        --db "$scratch/optuna-$storage-$n.db" --trials "$TRIALS" --jobs "$PARALLEL" \
        --out "$out/result.json"
    log "optuna-$storage #$n: exit $(field "$out/wall.json" exitCode)," \
        "$(field "$out/wall.json" wallSeconds) s"
}

log "spawn baseline"
python3 "$here/spawn_baseline.py" --count "$TRIALS" --jobs "$PARALLEL" --repeats "$REPEATS" \
    --out "$RESULTS/baseline.json"

# Repeats are interleaved so that a slow spell of the machine hits every variant alike.
for n in $(seq 1 "$REPEATS"); do
    run_tuneflow echo "$PARALLEL" "$n"
    run_tuneflow true "$PARALLEL" "$n"
    # One at a time: launch -> recorded without waiting for a CPU, the latency of one trial.
    run_tuneflow echo 1 "$n"
    if [[ "$SKIP_OPTUNA" != 1 ]]; then
        run_optuna memory "$n"
        run_optuna sqlite "$n"
    fi
done

# --- 5. Report ----------------------------------------------------------------------------------
python3 "$here/analyze.py" "$RESULTS" | tee "$RESULTS/report.md"
log "raw data and report.md in $RESULTS"
