#!/usr/bin/env bash
# TPE benchmark: search quality on problems with known optima, and suggestion latency with a
# 1,000-trial history, tuneflow against Optuna 5, Rustuna and random search.
#
# Quality: every problem of problems.py x SEEDS seeds x TRIALS sequential trials, for
#   tuneflow `tpe`, `multivariate-tpe` and `random` (`tuneflow serve`, one client-driven
#   experiment per problem and seed, random_state = seed, driven over REST by quality.py),
#   Optuna TPESampler() (its default), TPESampler(multivariate=False) (and
#   TPESampler(multivariate=True) when the default is not multivariate), Rustuna TPESampler()
#   and Optuna RandomSampler (the baseline of the normalized regret).
# Speed: median / p90 latency of one suggestion after PRELOAD completed trials in a 10-d
#   continuous space (speed.py).
#
# Usage: bench/tpe/run.sh
# Environment:
#   SEEDS (10), TRIALS (100), PROBLEMS (all, or a comma list of problems.py names),
#   SEED_BASE (0): seeds are SEED_BASE+1 .. SEED_BASE+SEEDS (a fresh range for a report),
#   SKIP_PEERS=1     only tuneflow (and Optuna random, which the regret needs)
#   QUICK=1          smoke run: 2 seeds x 20 trials, speed with 200 preloaded trials, 10 asks
#   SKIP_QUALITY=1, SKIP_SPEED=1   leave a part out
#   PRELOAD (1000), ASKS (50)      the speed benchmark's history and number of timed asks
#   TUNEFLOW_ALGOS   tuneflow variants to run (default "tpe tpe-indep random", see VARIANTS in
#                    tuneflow_rest.py; those
#                    this build reports as not available are skipped with a warning)
#   RESULTS          results directory (default bench/tpe/results/<UTC time>); an existing
#                    one is resumed (finished quality runs are kept, speed is measured again)
#   REUSE_BINARY=1   no build: use the tuneflow binary an earlier run kept in RESULTS (e.g. to
#                    measure speed again on an idle machine: SKIP_QUALITY=1 REUSE_BINARY=1
#                    RESULTS=...); meta.json keeps that build's revision
#   CARGO_TARGET_DIR as cargo understands it
# Prints the markdown report of analyze.py (also saved as RESULTS/report.md) and writes the
# best-so-far plot to RESULTS/quality.png (copied to bench/tpe/quality.png by a run with every
# knob at its default).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="$(dirname "$here")"
repo="$(dirname "$bench")"

QUICK="${QUICK:-0}"
if [[ "$QUICK" == 1 ]]; then
    SEEDS="${SEEDS:-2}"; TRIALS="${TRIALS:-20}"; PRELOAD="${PRELOAD:-200}"; ASKS="${ASKS:-10}"
fi
SEEDS="${SEEDS:-10}"
TRIALS="${TRIALS:-100}"
PRELOAD="${PRELOAD:-1000}"
ASKS="${ASKS:-50}"
PROBLEMS="${PROBLEMS:-all}"
SKIP_PEERS="${SKIP_PEERS:-0}"
SKIP_QUALITY="${SKIP_QUALITY:-0}"
SKIP_SPEED="${SKIP_SPEED:-0}"
TUNEFLOW_ALGOS="${TUNEFLOW_ALGOS:-tpe tpe-indep random}"
REUSE_BINARY="${REUSE_BINARY:-0}"
RESULTS="${RESULTS:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}"

log() { printf '[tpe] %s\n' "$*" >&2; }

mkdir -p "$RESULTS/quality" "$RESULTS/speed"
RESULTS="$(cd "$RESULTS" && pwd)"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/tuneflow-tpe.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

# --- 1. Build tuneflow (release) -------------------------------------------------------------
if [[ "$REUSE_BINARY" == 1 ]]; then
    [[ -x "$RESULTS/tuneflow" && -f "$RESULTS/meta.json" ]] ||
        { log "REUSE_BINARY=1 needs $RESULTS/tuneflow and meta.json from an earlier run"; exit 1; }
    log "reusing the tuneflow binary of $RESULTS (no build)"
    cp "$RESULTS/tuneflow" "$scratch/tuneflow"
    tuneflow="$scratch/tuneflow"
    worktree_note=""
else
    log "building tuneflow (cargo build --release)"
    (cd "$repo" && cargo build --release)
    target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    [[ -x "$target_dir/release/tuneflow" ]] || { log "no binary in $target_dir/release"; exit 1; }
    # A copy, so that a rebuild during the run (other work in the same tree) cannot swap it;
    # one is kept in RESULTS for REUSE_BINARY=1.
    cp "$target_dir/release/tuneflow" "$scratch/tuneflow"
    cp "$scratch/tuneflow" "$RESULTS/tuneflow"
    tuneflow="$scratch/tuneflow"
    # Right after the build: the work tree may hold uncommitted changes to tuneflow (work in
    # progress); record which files, a digest of their content, and keep the diff.
    dirty="$(git -C "$repo" status --porcelain -- src algorithms Cargo.toml Cargo.lock 2>/dev/null || true)"
    worktree_note=""
    if [[ -n "$dirty" ]]; then
        printf '%s\n' "$dirty" >"$RESULTS/tuneflow-worktree-status.txt"
        {
            git -C "$repo" diff HEAD -- src algorithms Cargo.toml Cargo.lock
            git -C "$repo" ls-files --others --exclude-standard -- src algorithms |
                while read -r f; do printf '\n=== untracked %s\n' "$f"; cat "$repo/$f"; done
        } >"$RESULTS/tuneflow-worktree.diff"
        digest="$(sha256sum "$RESULTS/tuneflow-worktree.diff" | cut -c1-12)"
        worktree_note=" + uncommitted changes in src/ or algorithms/ (digest $digest)"
    fi
fi

# --- 2. The Python environment for the peers ---------------------------------------------------
venv="$here/.venv"
if [[ ! -x "$venv/bin/python" ]]; then
    log "creating $venv"
    python3 -m venv "$venv"
fi
log "installing bench/tpe/requirements.txt into $venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
py="$venv/bin/python"

# --- 3. Which tuneflow algorithms this build has ----------------------------------------------
algos=()
for algo in $TUNEFLOW_ALGOS; do
    doc="$scratch/validate-$algo.json"
    cat >"$doc" <<EOF
{"apiVersion": "tuneflow.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "probe"},
 "spec": {"objective": {"type": "minimize", "objectiveMetricName": "value"},
          "algorithm": {"algorithmName": "${algo%-indep}",
                        "algorithmSettings": [{"name": "random_state", "value": "1"}]},
          "maxTrialCount": 10, "parallelTrialCount": 1,
          "parameters": [{"name": "x", "parameterType": "double",
                          "feasibleSpace": {"min": "0", "max": "1"}}]}}
EOF
    if "$tuneflow" validate "$doc" >"$scratch/validate-$algo.out" 2>&1; then
        algos+=("$algo")
    else
        log "WARNING: tuneflow algorithm $algo is not usable in this build, skipped:"
        sed 's/^/    /' "$scratch/validate-$algo.out" >&2
    fi
done

# --- 4. What ran where --------------------------------------------------------------------------
default_mv="$("$py" - <<'EOF'
import optuna, warnings
warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.create_study(sampler=optuna.samplers.TPESampler())
# TPESampler._is_multivariate(study) is what the sampler itself consults (Optuna 5).
print(bool(study.sampler._is_multivariate(study)))
EOF
)"
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -n1)"
"$py" - "$RESULTS/meta.json" <<EOF
import importlib.metadata as md, json, os, platform, sys
now = "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
command = ("SEED_BASE=${SEED_BASE:-0} SEEDS=$SEEDS TRIALS=$TRIALS PROBLEMS=$PROBLEMS SKIP_PEERS=$SKIP_PEERS QUICK=$QUICK"
           " SKIP_QUALITY=$SKIP_QUALITY SKIP_SPEED=$SKIP_SPEED PRELOAD=$PRELOAD ASKS=$ASKS"
           + (" REUSE_BINARY=1" if "$REUSE_BINARY" == "1" else "")
           + " RESULTS=" + (os.path.relpath("$RESULTS", "$repo")
                            if "$RESULTS".startswith("$repo/") else "$RESULTS")
           + " bench/tpe/run.sh")
meta = {
    "date": now,
    "machine": "$(nproc) CPUs ($cpu), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r)",
    "tuneflowVersion": "$("$tuneflow" --version 2>/dev/null | awk '{print $NF}' || echo unknown)",
    "tuneflowRevision": "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'no commit')"
                        + "$worktree_note",
    "tuneflowAlgorithms": "${algos[*]:-}",
    "python": "Python " + platform.python_version(),
    "optunaVersion": md.version("optuna"),
    "rustunaVersion": md.version("rustuna"),
    "optunaDefaultMultivariate": "$default_mv" == "True",
    "seeds": $SEEDS,
    "trials": $TRIALS,
    "problems": "$PROBLEMS",
    "preload": $PRELOAD,
    "asks": $ASKS,
    "invocations": [],
}
if "$REUSE_BINARY" == "1" and os.path.exists(sys.argv[1]):
    old = json.load(open(sys.argv[1]))
    # Same binary as the earlier run: its build's revision, and its date, stand.
    for key in ("date", "tuneflowVersion", "tuneflowRevision", "invocations"):
        meta[key] = old.get(key, meta[key])
meta["invocations"].append({"date": now, "command": command})
meta["command"] = "; ".join(i["command"] for i in meta["invocations"])
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF

# --- 5. Quality ---------------------------------------------------------------------------------
samplers=()
for algo in "${algos[@]}"; do samplers+=("tuneflow-$algo"); done
samplers+=(optuna-random)
if [[ "$SKIP_PEERS" != 1 ]]; then
    samplers+=(optuna-tpe optuna-tpe-indep rustuna-tpe)
    # Optuna 5's TPESampler() is multivariate for single-objective studies (multivariate=None
    # resolves to True); should the installed version's default not be, multivariate=True is
    # run as an extra peer.
    [[ "$default_mv" == True ]] || samplers+=(optuna-tpe-mv)
fi
if [[ "$SKIP_QUALITY" != 1 ]]; then
    for s in "${samplers[@]}"; do
        log "quality: $s ($PROBLEMS, $SEEDS seeds x $TRIALS trials)"
        "$py" "$here/quality.py" --sampler "$s" --out "$RESULTS/quality/$s.jsonl" \
            --problems "$PROBLEMS" --seeds "$SEEDS" --trials "$TRIALS" \
            --tuneflow "$tuneflow" --scratch "$scratch"
    done
fi

# --- 6. Speed -----------------------------------------------------------------------------------
if [[ "$SKIP_SPEED" != 1 ]]; then
    speed=()
    for algo in "${algos[@]}"; do speed+=("tuneflow-$algo"); done
    [[ "$SKIP_PEERS" == 1 ]] || speed+=(rustuna-tpe optuna-tpe)
    for s in "${speed[@]}"; do
        log "speed: $s ($PRELOAD trials, then $ASKS timed asks)"
        "$py" "$here/speed.py" --sampler "$s" --out "$RESULTS/speed/$s.json" \
            --preload "$PRELOAD" --asks "$ASKS" --tuneflow "$tuneflow" --scratch "$scratch"
    done
fi

# --- 7. Report ----------------------------------------------------------------------------------
"$py" "$here/analyze.py" "$RESULTS" --plot "$RESULTS/quality.png" | tee "$RESULTS/report.md"
# Only the benchmark as specified (every default knob) replaces the published plot.
if [[ "$QUICK" != 1 && "$SEEDS" == 10 && "$TRIALS" == 100 && "$PROBLEMS" == all &&
      "$SKIP_PEERS" != 1 && "$SKIP_QUALITY" != 1 &&
      "$TUNEFLOW_ALGOS" == "tpe tpe-indep random" && -f "$RESULTS/quality.png" ]]; then
    cp "$RESULTS/quality.png" "$here/quality.png"
    log "plot copied to bench/tpe/quality.png"
fi
log "raw data and report.md in $RESULTS"
