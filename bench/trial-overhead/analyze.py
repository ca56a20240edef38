#!/usr/bin/env python3
"""Turn one results directory of bench/trial-overhead/run.sh into markdown tables.

Usage: analyze.py RESULTS_DIR      (prints markdown on stdout; uses the standard library only)

Reads, as run.sh lays them out:
  meta.json                    machine, versions, trial count, parallelism, repeats
  baseline.json                spawn_baseline.py's figures
  tuneflow-<kind>-<n>/         wall.json (exit code, wall seconds of `tuneflow run`),
                               trials.json (`tuneflow trials EXP -o json`)
  optuna-<storage>-<n>.json    optuna_peer.py's output

Per tuneflow trial, from the stored timestamps (RFC 3339, microseconds):
  spawn -> recorded   completedAt - startedAt: the trial is marked Running just before its
                      process is spawned and gets completedAt when its final state is written,
                      so this is launch + run + exit + collection + the final write.
  created -> started  startedAt - createdAt: from the suggestion's row to its launch.
Per Optuna trial, datetime_complete - datetime_start (Optuna stamps the start when it creates
the trial, so this spans the sampler, the objective's spawn and the final write).
"""

from __future__ import annotations

import json
import statistics
import sys
from datetime import datetime
from pathlib import Path


def ts(text: str | None) -> float | None:
    """RFC 3339 timestamp to epoch seconds."""
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.2f}"


def load(path: Path):
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def tuneflow_run(directory: Path, expected: int) -> dict:
    """The figures of one `tuneflow run`."""
    wall = load(directory / "wall.json")
    trials = load(directory / "trials.json")
    states: dict[str, int] = {}
    for trial in trials:
        states[trial["state"]] = states.get(trial["state"], 0) + 1
    created = [ts(t["createdAt"]) for t in trials]
    started = [ts(t.get("startedAt")) for t in trials]
    completed = [ts(t.get("completedAt")) for t in trials]
    run_times = [c - s for s, c in zip(started, completed) if s is not None and c is not None]
    waits = [s - c for c, s in zip(created, started) if s is not None]
    # Sanity checks of what tuneflow stored; printed under the table when they fail.
    problems = []
    if len(trials) != expected:
        problems.append(f"{len(trials)} trials stored, {expected} expected")
    indices = sorted(t["index"] for t in trials)
    if indices != list(range(len(indices))):
        problems.append("trial indices are not 0..n-1 without gaps or duplicates")
    if any(t.get("attempts", 1) != 1 for t in trials):
        problems.append("some trial has attempts != 1")
    if len(run_times) != len(trials):
        problems.append(f"{len(trials) - len(run_times)} trials lack startedAt or completedAt")
    mismatched = [
        t["name"] for t, s, c in zip(trials, started, completed)
        if s is not None and c is not None and t.get("durationSeconds") is not None
        and abs(t["durationSeconds"] - (c - s)) > 0.001
    ]
    if mismatched:
        problems.append(f"durationSeconds differs from completedAt - startedAt for "
                        f"{len(mismatched)} trials (first: {mismatched[0]})")
    span = (max(c for c in completed if c is not None) - min(created)) if run_times else None
    return {
        "wall": wall["wallSeconds"],
        "exit": wall["exitCode"],
        "trials": len(trials),
        "states": states,
        "span": span,
        "run": run_times,
        "wait": waits,
        "problems": problems,
    }


def optuna_run(path: Path) -> dict:
    data = load(path)
    run_times = [t["complete"] - t["start"] for t in data["perTrial"]
                 if t["start"] is not None and t["complete"] is not None]
    return {
        "wall": data["processSeconds"],
        "optimize": data["optimizeSeconds"],
        "exit": 0,
        "trials": data["trials"],
        "states": data["states"],
        "span": data["optimizeSeconds"],
        "run": run_times,
        "wait": [],
        "problems": [],
        "version": data["optunaVersion"],
    }


def median_of(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return statistics.median(values) if values else None


def spread(runs: list[dict], key: str) -> str:
    values = [r[key] for r in runs if r[key] is not None]
    if not values:
        return "n/a"
    text = f"{statistics.median(values):.2f}"
    if len(values) > 1:
        text += f" ({min(values):.2f}–{max(values):.2f})"
    return text


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    results = Path(sys.argv[1])
    meta = load(results / "meta.json")
    expected = meta["trials"]

    # Group the runs: one row per configuration, repeats pooled.
    groups: dict[str, list[dict]] = {}
    labels = {
        "tuneflow-echo": f"tuneflow, `/bin/echo loss=…` (metric reported → Succeeded)",
        "tuneflow-true": f"tuneflow, `true` (no metric → MetricsUnavailable)",
        "optuna-memory": "Optuna, in-memory storage, `subprocess.run([\"true\"])`",
        "optuna-sqlite": "Optuna, SQLite storage, `subprocess.run([\"true\"])`",
    }
    for directory in sorted(results.glob("tuneflow-*-*")):
        if (directory / "trials.json").exists():
            kind = directory.name.rsplit("-", 1)[0]
            groups.setdefault(kind, []).append(tuneflow_run(directory, expected))
    for path in sorted(results.glob("optuna-*-*.json")):
        kind = path.stem.rsplit("-", 1)[0]
        groups.setdefault(kind, []).append(optuna_run(path))

    print(f"### Trial overhead: {expected} trials, parallelism {meta['parallel']}, "
          f"{meta['repeats']} repeat(s)\n")
    print(f"Run {meta['date']} on {meta['machine']}; tuneflow {meta['tuneflowVersion']}"
          f" ({meta['tuneflowRevision']}), {meta['python']}, Optuna {meta['optunaVersion']}.\n")
    print("Wall time and throughput: median over the repeats (min–max in brackets). Wall "
          "time is the whole process (start-up, store creation, all trials, exit). Per-trial "
          "figures pool every trial of every repeat.\n")
    print("| run | trials (states) | wall s | trials/s | spawn→recorded p50 / p90 / p99 / "
          "max ms | created→started p50 / p99 ms |")
    print("|---|---|---|---|---|---|")
    problems = []
    for kind in ["tuneflow-echo", "tuneflow-true", "optuna-memory", "optuna-sqlite"]:
        runs = groups.get(kind)
        if not runs:
            continue
        states = ", ".join(f"{n} {s}" for s, n in sorted(runs[0]["states"].items()))
        run_times = [x for r in runs for x in r["run"]]
        waits = [x for r in runs for x in r["wait"]]
        wall = median_of(runs, "wall")
        rate = runs[0]["trials"] / wall if wall else None
        latency = " / ".join(ms(percentile(run_times, q)) for q in (50, 90, 99, 100)) \
            if run_times else "n/a"
        wait = f"{ms(percentile(waits, 50))} / {ms(percentile(waits, 99))}" if waits else "n/a"
        print(f"| {labels.get(kind, kind)} | {runs[0]['trials']} ({states}) | "
              f"{spread(runs, 'wall')} | {rate:.0f} | {latency} | {wait} |")
        for i, r in enumerate(runs, 1):
            problems += [f"{kind} repeat {i}: {p}" for p in r["problems"]]
            if r["exit"] != 0:
                problems.append(f"{kind} repeat {i}: `tuneflow run` exited {r['exit']}")
    print()

    # Amortised cost per trial, against the raw spawn cost.
    baseline = load(results / "baseline.json")
    if baseline:
        print("### Raw spawn cost of `true` on the same machine\n")
        print("| how | parallel | per spawn ms | spawns/s |")
        print("|---|---|---|---|")
        for name, b in baseline.items():
            print(f"| `{name}` | {b['parallel']} | {b['perSpawnMs']:.3f} | "
                  f"{b['spawnsPerSecond']:.0f} |")
        print()
        parallel_floor = baseline.get(f"xargs -P{meta['parallel']}")
        if parallel_floor and groups.get("tuneflow-echo"):
            runs = groups["tuneflow-echo"]
            amortised = median_of(runs, "wall") / runs[0]["trials"] * 1000
            print(f"tuneflow's wall time per trial (echo): {amortised:.2f} ms, "
                  f"{amortised / parallel_floor['perSpawnMs']:.1f}× the cost of one spawn "
                  f"through `xargs -P{meta['parallel']}` ({parallel_floor['perSpawnMs']:.2f} ms).\n")

    if problems:
        print("**Problems found in the stored results:**\n")
        for p in problems:
            print(f"- {p}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
