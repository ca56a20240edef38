#!/usr/bin/env python3
"""Turn one results directory of bench/trial-overhead/run.sh into markdown tables.

Usage: analyze.py RESULTS_DIR      (prints markdown on stdout; standard library only)

Reads, as run.sh lays them out:
  meta.json                      machine, versions, trial count, parallelism, repeats
  baseline.json                  spawn_baseline.py's figures
  tuneflow-<kind>-p<P>-<n>/      wall.json (measure.py: exit code, wall and CPU seconds of
                                 `tuneflow run`), trials.json (`tuneflow trials EXP -o json`)
  optuna-<storage>-<n>/          wall.json (measure.py), result.json (optuna_peer.py)

Per tuneflow trial, from the stored timestamps (RFC 3339, microseconds):
  spawn -> recorded   completedAt - startedAt. The trial is marked Running (startedAt) just
                      before its process is spawned, and completedAt is stamped when its final
                      state is written: launch + run + exit + metric collection + final write.
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

LABELS = {
    "tuneflow-echo": "tuneflow, `/bin/echo loss=…` (→ Succeeded)",
    "tuneflow-true": "tuneflow, `true` (no metric → MetricsUnavailable)",
    "optuna-memory": "Optuna, in-memory storage",
    "optuna-sqlite": "Optuna, SQLite storage",
}


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


def load(path: Path):
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def tuneflow_run(directory: Path, expected: int) -> dict:
    """The figures of one `tuneflow run`, and what looked wrong in what it stored."""
    wall = load(directory / "wall.json")
    trials = load(directory / "trials.json")
    states: dict[str, int] = {}
    for trial in trials:
        states[trial["state"]] = states.get(trial["state"], 0) + 1
    created = [ts(t["createdAt"]) for t in trials]
    started = [ts(t.get("startedAt")) for t in trials]
    completed = [ts(t.get("completedAt")) for t in trials]
    both = [(s, c) for s, c in zip(started, completed) if s is not None and c is not None]

    problems = []
    if len(trials) != expected:
        problems.append(f"{len(trials)} trials stored, {expected} expected")
    if sorted(t["index"] for t in trials) != list(range(len(trials))):
        problems.append("trial indices are not 0..n-1 without gaps or duplicates")
    if any(t.get("attempts", 1) != 1 for t in trials):
        problems.append("some trial has attempts != 1")
    if len(both) != len(trials):
        problems.append(f"{len(trials) - len(both)} trials lack startedAt or completedAt")
    mismatched = [
        t["name"] for t, s, c in zip(trials, started, completed)
        if s is not None and c is not None and t.get("durationSeconds") is not None
        and abs(t["durationSeconds"] - (c - s)) > 0.001
    ]
    if mismatched:
        problems.append(f"durationSeconds differs from completedAt - startedAt for "
                        f"{len(mismatched)} trials (first: {mismatched[0]})")
    if wall["exitCode"] != 0:
        problems.append(f"`tuneflow run` exited {wall['exitCode']}")
    return {
        "trials": len(trials),
        "states": states,
        "wall": wall["wallSeconds"],
        "cpu": wall["cpuSeconds"],
        "inside": max(c for _, c in both) - min(created) if both else None,
        "latency": [c - s for s, c in both],
        "wait": [s - c for c, s in zip(created, started) if s is not None],
        "problems": problems,
    }


def optuna_run(directory: Path, expected: int) -> dict:
    wall = load(directory / "wall.json")
    data = load(directory / "result.json")
    problems = []
    if data["trials"] != expected:
        problems.append(f"{data['trials']} trials, {expected} expected")
    return {
        "trials": data["trials"],
        "states": data["states"],
        "wall": wall["wallSeconds"],
        "cpu": wall["cpuSeconds"],
        "inside": data["optimizeSeconds"],
        "latency": [t["complete"] - t["start"] for t in data["perTrial"]
                    if t["start"] is not None and t["complete"] is not None],
        "wait": [],
        "problems": problems,
    }


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def spread(runs: list[dict], key: str, scale: float = 1.0, digits: int = 2) -> str:
    """Median over the repeats, with min–max when there are several."""
    values = [r[key] * scale for r in runs if r[key] is not None]
    if not values:
        return "n/a"
    text = f"{statistics.median(values):.{digits}f}"
    if len(values) > 1:
        text += f" ({min(values):.{digits}f}–{max(values):.{digits}f})"
    return text


def quantiles(values: list[float], qs: tuple[int, ...]) -> str:
    if not values:
        return "n/a"
    return " / ".join(f"{percentile(values, q) * 1000:.2f}" for q in qs)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    results = Path(sys.argv[1])
    meta = load(results / "meta.json")
    expected, parallel = meta["trials"], meta["parallel"]

    # One row per configuration, the repeats pooled: "tuneflow-echo-p8", "optuna-sqlite", ...
    groups: dict[str, list[dict]] = {}
    for directory in sorted(results.iterdir()):
        if not directory.is_dir() or not (directory / "wall.json").exists():
            continue
        variant = directory.name.rsplit("-", 1)[0]
        if variant.startswith("tuneflow-") and (directory / "trials.json").exists():
            groups.setdefault(variant, []).append(tuneflow_run(directory, expected))
        elif variant.startswith("optuna-") and (directory / "result.json").exists():
            groups.setdefault(variant + f"-p{parallel}", []).append(
                optuna_run(directory, expected))

    print(f"### Trial overhead: {expected} trials of a do-nothing command, "
          f"{meta['repeats']} repeat(s)\n")
    print(f"Run {meta['date']} on {meta['machine']}; tuneflow {meta['tuneflowVersion']} "
          f"({meta['tuneflowRevision']}), {meta['python']}, Optuna {meta['optunaVersion']}.\n")
    print("| run | parallel | trials (states) | wall s | trials/s | CPU ms per trial | "
          "in-run s | spawn→recorded p50 / p90 / p99 / max ms | created→started p50 / p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    order = [f"tuneflow-echo-p{parallel}", f"tuneflow-true-p{parallel}", "tuneflow-echo-p1",
             f"optuna-memory-p{parallel}", f"optuna-sqlite-p{parallel}"]
    problems = []
    for variant in order + sorted(set(groups) - set(order)):
        runs = groups.get(variant)
        if not runs:
            continue
        base, p = variant.rsplit("-p", 1)
        states = ", ".join(f"{n} {s}" for s, n in sorted(runs[0]["states"].items()))
        for r in runs:
            r["cpuPerTrial"] = r["cpu"] / r["trials"]
        latency = [x for r in runs for x in r["latency"]]
        wait = [x for r in runs for x in r["wait"]]
        print(f"| {LABELS.get(base, base)} | {p} | {runs[0]['trials']} ({states}) | "
              f"{spread(runs, 'wall')} | {runs[0]['trials'] / median(runs, 'wall'):.0f} | "
              f"{spread(runs, 'cpuPerTrial', 1000)} | {spread(runs, 'inside')} | "
              f"{quantiles(latency, (50, 90, 99, 100))} | {quantiles(wait, (50, 99))} |")
        problems += [f"{variant} repeat {i}: {p}" for i, r in enumerate(runs, 1)
                     for p in r["problems"]]
    print()
    print("wall s: the whole process (start-up, store creation, every trial, exit), median "
          "over the repeats (min–max); trials/s: trials ÷ median wall. CPU: user + system "
          "time of the process and all its trial processes. in-run s: first trial created → "
          "last trial recorded (tuneflow, from the store) or `study.optimize` alone (Optuna). "
          "Per-trial latencies pool every trial of every repeat.\n")

    baseline = load(results / "baseline.json")
    if baseline:
        print("### Raw cost of spawning `true` on the same machine\n")
        print("| how | parallel | wall ms per spawn | spawns/s | CPU ms per spawn |")
        print("|---|---|---|---|---|")
        for name, b in baseline.items():
            cpu = "n/a" if b.get("cpuPerSpawnMs") is None else f"{b['cpuPerSpawnMs']:.3f}"
            print(f"| `{name}` | {b['parallel']} | {b['perSpawnMs']:.3f} | "
                  f"{b['spawnsPerSecond']:.0f} | {cpu} |")
        print()

        # The two comparisons the benchmark is about.
        floor = baseline.get(f"xargs -P{parallel}")
        busy = groups.get(f"tuneflow-echo-p{parallel}")
        if floor and busy:
            per_trial = median(busy, "wall") / busy[0]["trials"] * 1000
            cpu = statistics.median(r["cpuPerTrial"] for r in busy) * 1000
            print(f"- **Throughput**: at parallel {parallel}, tuneflow spends {per_trial:.2f} ms "
                  f"of wall time and {cpu:.2f} ms of CPU per trial (echo), against "
                  f"{floor['perSpawnMs']:.2f} ms and {floor['cpuPerSpawnMs']:.2f} ms per spawn "
                  f"of `xargs -P{parallel} true`: {per_trial / floor['perSpawnMs']:.1f}× and "
                  f"{cpu / floor['cpuPerSpawnMs']:.1f}×.")
        single = "hyperfine -N true" if "hyperfine -N true" in baseline else "xargs -P1"
        serial = groups.get("tuneflow-echo-p1")
        if single in baseline and serial:
            spawn = baseline[single]["perSpawnMs"]
            latency = statistics.median(x for r in serial for x in r["latency"]) * 1000
            print(f"- **Latency**: one trial at a time, launch → recorded takes {latency:.2f} ms "
                  f"(median) against {spawn:.2f} ms for one spawn of `true` (`{single}`): "
                  f"{latency - spawn:.2f} ms added, {latency / spawn:.1f}× the spawn.")
        print()

    if problems:
        print("**Problems found in the stored results:**\n")
        for p in problems:
            print(f"- {p}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
