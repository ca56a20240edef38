#!/usr/bin/env bash
# Early stopping at a fixed budget: tuneflow TPE with each of its early-stopping rules
# (medianstop, asha, hyperband) and without one, against Optuna 5 TPE + HyperbandPruner,
# Optuna TPE without pruning and Optuna random search without pruning, on three multi-fidelity
# problems (mfproblems.py: crossing learning curves, multi-fidelity Hartmann6, scikit-learn's
# MLPClassifier on digits trained epoch by epoch). Every variant gets the same budget of
# BUDGET full trainings (BUDGET x max_step steps) on the same seeds; a configuration counts
# only when trained to max_step. budget.py runs the variants, analyze.py reports.
#
# Usage: bench/early-stopping/run.sh
# Environment:
#   SEEDS (10), SEED_BASE (0): seeds are SEED_BASE+1 .. SEED_BASE+SEEDS
#   BUDGET (40)      the budget in full trainings
#   PROBLEMS (all)   or a comma list of mfproblems.py names
#   QUICK=1          smoke run: 2 seeds, a budget of 10 full trainings
#   SKIP_PEERS=1     only tuneflow's variants (and Optuna random, which the regret needs)
#   RESULTS          results directory (default bench/early-stopping/results/<UTC time>); an
#                    existing one is resumed: finished (variant, problem, seed) runs are kept
#   REUSE_BINARY=1   no build: use the tuneflow binary an earlier run kept in RESULTS
#   CARGO_TARGET_DIR as cargo understands it
# Prints the markdown report (also RESULTS/report.md) and draws RESULTS/curves.png, copied to
# bench/early-stopping/curves.png by a run with SEEDS, BUDGET and PROBLEMS at their defaults
# (any SEED_BASE), all peers and no QUICK.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="$(dirname "$here")"
repo="$(dirname "$bench")"

QUICK="${QUICK:-0}"
if [[ "$QUICK" == 1 ]]; then
    SEEDS="${SEEDS:-2}"; BUDGET="${BUDGET:-10}"
fi
SEEDS="${SEEDS:-10}"
SEED_BASE="${SEED_BASE:-0}"
BUDGET="${BUDGET:-40}"
PROBLEMS="${PROBLEMS:-all}"
SKIP_PEERS="${SKIP_PEERS:-0}"
REUSE_BINARY="${REUSE_BINARY:-0}"
RESULTS="${RESULTS:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}"
export SEED_BASE
# One BLAS thread: the MLP's curves are then the same on every run (and the machine has 2
# cores, shared with the tuneflow server).
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

log() { printf '[early-stopping] %s\n' "$*" >&2; }

mkdir -p "$RESULTS/runs"
RESULTS="$(cd "$RESULTS" && pwd)"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/tuneflow-es.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

# --- 1. Build tuneflow (release) -------------------------------------------------------------
if [[ "$REUSE_BINARY" == 1 ]]; then
    [[ -x "$RESULTS/tuneflow" && -f "$RESULTS/meta.json" ]] ||
        { log "REUSE_BINARY=1 needs $RESULTS/tuneflow and meta.json from an earlier run"; exit 1; }
    log "reusing the tuneflow binary of $RESULTS (no build)"
    worktree_note=""
else
    log "building tuneflow (cargo build --release)"
    (cd "$repo" && cargo build --release)
    target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    [[ -x "$target_dir/release/tuneflow" ]] || { log "no binary in $target_dir/release"; exit 1; }
    # A copy, so that a rebuild during the run (other work in the same tree) cannot swap it.
    cp "$target_dir/release/tuneflow" "$RESULTS/tuneflow"
    # Uncommitted changes to tuneflow at build time: which files, a digest, and the diff.
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
cp "$RESULTS/tuneflow" "$scratch/tuneflow"
tuneflow="$scratch/tuneflow"

# --- 2. The Python environment -------------------------------------------------------------------
venv="$here/.venv"
if [[ ! -x "$venv/bin/python" ]]; then
    log "creating $venv"
    python3 -m venv "$venv"
fi
log "installing bench/early-stopping/requirements.txt into $venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
py="$venv/bin/python"

# --- 3. What ran where ---------------------------------------------------------------------------
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -n1)"
"$py" - "$RESULTS/meta.json" <<EOF
import importlib.metadata as md, json, os, platform, sys
now = "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
command = ("SEED_BASE=$SEED_BASE SEEDS=$SEEDS BUDGET=$BUDGET PROBLEMS=$PROBLEMS"
           " SKIP_PEERS=$SKIP_PEERS QUICK=$QUICK"
           + (" REUSE_BINARY=1" if "$REUSE_BINARY" == "1" else "")
           + " RESULTS=" + (os.path.relpath("$RESULTS", "$repo")
                            if "$RESULTS".startswith("$repo/") else "$RESULTS")
           + " bench/early-stopping/run.sh")
meta = {
    "date": now,
    "machine": "$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) CPUs ($cpu), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r)",
    "tuneflowVersion": "$("$tuneflow" --version 2>/dev/null | awk '{print $NF}' || echo unknown)",
    "tuneflowRevision": "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'no commit')"
                        + "$worktree_note",
    "python": "Python " + platform.python_version(),
    "versions": ", ".join(f"{p} {md.version(p)}" for p in
                          ("optuna", "scikit-learn", "numpy", "scipy")),
    "seeds": $SEEDS,
    "seedRange": f"{$SEED_BASE + 1}..{$SEED_BASE + $SEEDS}",
    "budget": $BUDGET,
    "problems": "$PROBLEMS",
    "invocations": [],
}
if os.path.exists(sys.argv[1]):
    old = json.load(open(sys.argv[1]))
    if "$REUSE_BINARY" == "1":
        for key in ("date", "tuneflowVersion", "tuneflowRevision"):
            meta[key] = old.get(key, meta[key])
    meta["invocations"] = old.get("invocations", [])
meta["invocations"].append({"date": now, "command": command})
meta["command"] = "; ".join(i["command"] for i in meta["invocations"])
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF

# --- 4. The runs ---------------------------------------------------------------------------------
variants=(tuneflow-tpe-medianstop tuneflow-tpe-asha tuneflow-tpe-hyperband tuneflow-tpe)
[[ "$SKIP_PEERS" == 1 ]] || variants+=(optuna-tpe-hyperband optuna-tpe)
variants+=(optuna-random)
for v in "${variants[@]}"; do
    if pgrep -x cargo >/dev/null || pgrep -x rustc >/dev/null; then
        log "note: cargo/rustc is running: wall times of $v share the CPUs (values do not change)"
    fi
    log "$v ($PROBLEMS, seeds $((SEED_BASE + 1))..$((SEED_BASE + SEEDS)), budget $BUDGET full trainings)"
    "$py" "$here/budget.py" --variant "$v" --out "$RESULTS/runs/$v.jsonl" \
        --problems "$PROBLEMS" --seeds "$SEEDS" --budget "$BUDGET" \
        --tuneflow "$tuneflow" --scratch "$scratch"
done

# --- 5. Report -----------------------------------------------------------------------------------
"$py" "$here/analyze.py" "$RESULTS" --plot "$RESULTS/curves.png" | tee "$RESULTS/report.md"
if [[ "$QUICK" != 1 && "$SEEDS" == 10 && "$BUDGET" == 40 && "$PROBLEMS" == all &&
      "$SKIP_PEERS" != 1 && -f "$RESULTS/curves.png" ]]; then
    cp "$RESULTS/curves.png" "$here/curves.png"
    log "plot copied to bench/early-stopping/curves.png"
fi
log "raw data and report.md in $RESULTS"
