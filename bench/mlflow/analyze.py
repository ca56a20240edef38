#!/usr/bin/env python3
"""Report of the MLflow benchmark: markdown tables and a plot from the JSON of one run.

    analyze.py RESULTS [--plot PNG]        print the report of bench/mlflow/run.sh's RESULTS
    analyze.py --meta FILE KEY=VALUE ...   merge fields into a JSON file (run.sh's notes)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GOAL = 100  # the goal: tuneflow >= 100x MLflow on each figure


def merge_meta(path: Path, pairs: list[str]) -> None:
    data = json.loads(path.read_text()) if path.exists() else {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            data[key] = json.loads(value)
        except json.JSONDecodeError:
            data[key] = value
    path.write_text(json.dumps(data, indent=1))


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def figures(result: dict) -> dict:
    """name -> (value, unit, higher is better) of one server's run."""
    out = {}
    if "logMetric" in result:
        out["log-metric, raw HTTP"] = (result["logMetric"]["raw"]["perSecond"], "calls/s", True)
        out["log-metric, MlflowClient"] = (result["logMetric"]["client"]["perSecond"], "calls/s", True)
    if "logBatch" in result:
        out["log-batch of 1,000"] = (result["logBatch"]["perSecond"], "points/s", True)
    if "search" in result:
        out[f"search over {result['search']['runs']:,} runs"] = (
            result["search"]["latencyMs"]["median"], "ms (median)", False)
    return out


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def report(results: Path, plot: Path | None) -> int:
    meta = load(results / "meta.json")
    mlflow, tuneflow, pg = (load(results / f"{n}.json") for n in ("mlflow", "tuneflow", "pg"))
    print(f"Run {meta.get('date')} on {meta.get('machine')}; load average "
          f"{meta.get('loadAverageBefore')} before, {meta.get('loadAverageAfter')} after. "
          f"tuneflow {meta.get('tuneflowRevision')}, MLflow {meta.get('mlflowVersion')} "
          f"(SQLite backend), Python {meta.get('python')}.\n")
    ours, theirs = figures(tuneflow), figures(mlflow)
    print("| figure | MLflow server | tuneflow serve | tuneflow / MLflow | goal (100x) |")
    print("|---|---|---|---|---|")
    ratios = {}
    for name in dict.fromkeys([*theirs, *ours]):
        t, o = theirs.get(name), ours.get(name)
        unit = (t or o)[1]
        ratio = None
        if t and o:
            ratio = o[0] / t[0] if t[2] else t[0] / o[0]
            ratios[name] = ratio
        cell = lambda f: f"{fmt(f[0])} {unit}" if f else "not run"
        verdict = "" if ratio is None else ("met" if ratio >= GOAL else "**missed**")
        print(f"| {name} | {cell(t)} | {cell(o)} | "
              f"{'' if ratio is None else f'{ratio:,.0f}x'} | {verdict} |")
    if "skipped" in tuneflow:
        print(f"\ntuneflow side skipped: {tuneflow['skipped']}")
    for name, result in (("MLflow", mlflow), ("tuneflow", tuneflow)):
        if "search" in result:
            s = result["search"]
            print(f"\n{name}: search returned {s['returned']} runs (expected "
                  f"{s['expectedMatches']}), {s['repeats']} repeats, min "
                  f"{fmt(s['latencyMs']['min'])} ms, max {fmt(s['latencyMs']['max'])} ms; "
                  f"creating the {s['runs']} runs took {s['setupSeconds']:.1f} s "
                  f"({fmt(s['runsCreatedPerSecond'])} runs/s, 4 connections).")
        if "logMetric" in result:
            r = result["logMetric"]["raw"]["latencyMs"]
            print(f"{name}: log-metric latency p50 {fmt(r['p50'])} ms, p99 {fmt(r['p99'])} ms (raw HTTP).")
    if pg:
        print()
        if "skipped" in pg:
            print(f"ask + complete on PostgreSQL: skipped ({pg['skipped']})")
        else:
            print(f"ask + complete on PostgreSQL: {pg['servers']} servers, {pg['workers']} workers: "
                  f"{fmt(pg['trialsPerSecond'])} trials/s ({pg['trials']} trials in "
                  f"{pg['seconds']:.1f} s; {pg['conflicts']} conflicts retried, "
                  f"{pg['emptyAnswers']} empty answers; verified: {pg['verified']}).")
    failed = [n for n, r in (("mlflow", mlflow), ("tuneflow", tuneflow), ("pg", pg))
              if r and any(isinstance(v, dict) and v.get("verified") is False
                           for v in [r, *r.values(), *(r.get("logMetric") or {}).values()])]
    if failed:
        print(f"\nVERIFICATION FAILED for: {', '.join(failed)}")
    if plot is not None and theirs:
        draw(theirs, ours, pg, meta, plot)
    return 1 if failed else 0


def draw(theirs: dict, ours: dict, pg: dict, meta: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(theirs)
    # Everything as "per second, higher is better": searches per second for the search.
    def per_second(figure):
        value, _, higher = figure
        return value if higher else 1000.0 / value
    fig, ax = plt.subplots(figsize=(8, 4.2))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [per_second(theirs[n]) for n in names], 0.4, label="MLflow server")
    if ours:
        ax.bar([i + 0.2 for i in x], [per_second(ours[n]) if n in ours else 0 for n in names],
               0.4, label="tuneflow serve")
        for i, n in enumerate(names):
            if n in ours:
                ratio = per_second(ours[n]) / per_second(theirs[n])
                ax.annotate(f"{ratio:,.0f}x", (i + 0.2, per_second(ours[n])), ha="center",
                            va="bottom", fontsize=9)
    labels = [n.replace("search over", "searches/s\nover").replace(", ", ",\n")
              for n in names]
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("per second (log scale)")
    title = f"MLflow tracking API, same client code ({meta.get('date', '')[:16]} UTC)"
    if pg and "trialsPerSecond" in pg:
        title += f"\ntuneflow ask+complete on PostgreSQL, {pg['servers']} servers x {pg['workers']} workers: {pg['trialsPerSecond']:,.0f} trials/s"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--meta":
        merge_meta(Path(argv[1]), argv[2:])
        return 0
    results = Path(argv[0])
    plot = Path(argv[argv.index("--plot") + 1]) if "--plot" in argv else None
    return report(results, plot)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
