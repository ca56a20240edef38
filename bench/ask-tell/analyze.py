#!/usr/bin/env python3
"""Turn one results directory of bench/ask-tell/run.sh into markdown tables and two plots.

Usage: analyze.py RESULTS_DIR [--plots DIR | --no-plots]

Prints markdown on stdout. The plots (matplotlib, from bench/.venv; skipped with a note when
it cannot be imported) go to DIR, by default this script's folder:
  throughput.png   round trips per second of each peer, log scale
  latency.png      CDF of the per-call latencies (ask and tell, every measured run)

Reads, as run.sh lays them out:
  meta.json                  machine, versions, revision, knobs
  tuneflow-throughput.json   tuneflow_bench.py --phase throughput
  tuneflow-latency.json      tuneflow_bench.py --phase latency
  optuna-throughput.json     optuna_bench.py (absent with SKIP_OPTUNA=1)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(path: Path):
    if not path.exists():
        return None
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms(values_ns: list[int], q: float) -> str:
    if not values_ns:
        return "n/a"
    return f"{percentile(values_ns, q) / 1e6:.3f}" if percentile(values_ns, q) < 1e8 \
        else f"{percentile(values_ns, q) / 1e6:.0f}"


def fmt_ms(x_ns: float) -> str:
    x = x_ns / 1e6
    return f"{x:.3f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:.0f}"


def pooled(run: dict, key: str) -> list[int]:
    return [x for w in run["perWorker"] for x in w.get(key, [])]


def hist_quantile(buckets: list[list[float]], q: float) -> float | None:
    """Upper bound (s) of the histogram bucket holding the q-quantile."""
    if not buckets:
        return None
    total = buckets[-1][1] if buckets[-1][0] == float("inf") else max(c for _, c in buckets)
    for le, cumulative in buckets:
        if cumulative >= q * total:
            return le
    return None


def server_side(hist: dict, suffix: str) -> str:
    """'mean / p50≤ / p99≤ ms' of the server's own request-duration histogram for a route."""
    for route, h in hist.items():
        if route.endswith(suffix):
            mean = h["sumSeconds"] / h["count"] * 1000
            p50, p99 = hist_quantile(h["buckets"], 0.5), hist_quantile(h["buckets"], 0.99)
            bound = lambda s: "n/a" if s is None else f"≤{s * 1000:.2f}"  # noqa: E731
            return f"{mean:.3f} / {bound(p50)} / {bound(p99)}"
    return "n/a"


def drift(run: dict) -> str:
    """Median round trip (ask + tell) in the first and last tenth of each worker's calls."""
    first, last = [], []
    for w in run["perWorker"]:
        rt = [a + t for a, t in zip(w.get("asksNs", []), w.get("tellsNs", []))]
        k = max(1, len(rt) // 10)
        first += rt[:k]
        last += rt[-k:]
    if not first:
        return "n/a"
    return f"{statistics.median(first) / 1e6:.3f} → {statistics.median(last) / 1e6:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--plots", default=str(HERE))
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args()
    results = Path(args.results)
    meta = load(results / "meta.json")
    tf = load(results / "tuneflow-throughput.json")
    op = load(results / "optuna-throughput.json")
    lat = load(results / "tuneflow-latency.json")

    print("### Ask/tell: durable ask + complete round trips, "
          f"{meta['workers']} concurrent worker processes\n")
    print(f"Run {meta['date']} on {meta['machine']}; tuneflow {meta['tuneflowVersion']} at "
          f"{meta['tuneflowRevision']}, release build; {meta['python']}; "
          f"Optuna {meta['optunaVersion']}"
          + (f" (SQLAlchemy {op['sqlalchemyVersion']}, SQLite {op['sqliteVersion']})" if op else "")
          + ".\n")

    rows, problems = [], []
    for label, run, server in (("tuneflow serve (REST, SQLite store)", tf, True),
                               ("Optuna RDBStorage (`sqlite:///…`)", op, False)):
        if run is None:
            continue
        problems += [f"{label}: {p}" for p in run.get("problems", [])]
        asks, tells = pooled(run, "asksNs"), pooled(run, "tellsNs")
        attempted = run["workers"] * run["roundsPerWorker"]
        failures = run.get("failures", 0)
        wall = run["wallSeconds"]
        rate = run["roundTrips"] / wall if wall else None
        client_cpu = sum(w.get("cpuSeconds", 0) for w in run["perWorker"])
        cpu = (f"{client_cpu / run['roundTrips'] * 1000:.2f}"
               + (f" / {run['serverCpuSeconds'] / run['roundTrips'] * 1000:.2f}" if server
                  else " / (in the workers)"))
        worker_walls = [(w["endNs"] - w["startNs"]) / 1e9 for w in run["perWorker"]
                        if "endNs" in w]
        rows.append((label, run, rate))
        print_row = (
            f"| {label} | {run['workers']} | {run['roundTrips']} / {attempted} | {failures} | "
            f"{wall:.2f} ({min(worker_walls):.2f}–{max(worker_walls):.2f}) | "
            f"{rate:,.0f} | {ms(asks, 50)} / {ms(asks, 99)} | {ms(tells, 50)} / {ms(tells, 99)} | "
            f"{cpu} | {drift(run)} |" if rate else f"| {label} | failed: see problems |")
        if len(rows) == 1:
            print("| peer | workers | round trips ok / attempted | failed calls | wall s "
                  "(per worker min–max) | round trips/s | ask p50 / p99 ms | tell p50 / p99 ms "
                  "| CPU ms per round trip: workers / server | round trip p50, first → last "
                  "10% ms |")
            print("|---|---|---|---|---|---|---|---|---|---|")
        print(print_row)
    print()
    if len(rows) == 2 and rows[0][2] and rows[1][2]:
        ratio = rows[0][2] / rows[1][2]
        print(f"**tuneflow / Optuna: {ratio:,.0f}×** ({rows[0][2]:,.0f} vs {rows[1][2]:,.1f} "
              f"round trips/s); the goal is ≥ 100×: {'met' if ratio >= 100 else 'NOT met'}.\n")
    if op and op.get("failureKinds"):
        print("Optuna's failed calls (counted, not retried):\n")
        for kind, n in op["failureKinds"].items():
            print(f"- {n} × {kind}")
        failed_ns = [f["ns"] for w in op["perWorker"] for f in w.get("failures", [])]
        print(f"- time spent in failed calls: p50 {fmt_ms(percentile(failed_ns, 50))} ms, "
              f"max {fmt_ms(max(failed_ns))} ms\n")
    if tf:
        print("Server's own view of the throughput phase (`tuneflow_http_request_duration_"
              "seconds`, handler time without the socket, from /metrics; histogram buckets "
              "double from 0.05 ms, so p50/p99 are bucket upper bounds): "
              f"suggestions mean / p50 / p99 ms = "
              f"{server_side(tf['serverHistogram'], '/suggestions')}, complete = "
              f"{server_side(tf['serverHistogram'], '/complete')}.\n")

    print("round trip = ask (POST suggestions {\"count\":1}, or `study.ask`) + objective + tell "
          "(POST …/complete, or `study.tell`), each durable before it returns. wall s: first "
          "worker's start after a barrier → last worker's end; round trips/s = successful round "
          "trips ÷ wall. Latencies are client-side (`time.perf_counter_ns`) and pool every "
          "worker's calls; for tuneflow they include Python's http.client (request formatting, "
          "response parsing) and loopback TCP, not JSON decoding. CPU: user + system time of "
          "the worker processes (all four summed) and of the server process, per round trip. "
          "All processes share the machine's CPUs.\n")

    if lat:
        print(f"### Latency of one suggestion: one sequential client, parallelTrialCount 1\n")
        print("| client | asks | ask p50 / p90 / p99 / max ms | ask mean ms | "
              "complete p50 / p99 ms | server-side ask mean / p50 / p99 ms | "
              "server CPU ms per round trip |")
        print("|---|---|---|---|---|---|---|")
        for v in lat["variants"]:
            a, t = v["asksNs"], v["tellsNs"]
            print(f"| {v['client']} | {v['asks']} (+{v['warmup']} warm-up) | "
                  f"{ms(a, 50)} / {ms(a, 90)} / {ms(a, 99)} / {fmt_ms(max(a))} | "
                  f"{statistics.mean(a) / 1e6:.3f} | {ms(t, 50)} / {ms(t, 99)} | "
                  f"{server_side(v['serverHistogram'], '/suggestions')} | "
                  f"{v['serverCpuSeconds'] / v['asks'] * 1000:.3f} |")
        print()
        problems += [f"latency: {p}" for p in lat.get("problems", [])]
        first = lat["variants"][0]
        p50 = percentile(first["asksNs"], 50) / 1e6
        print(f"- **Target (under 1 ms at p50)**: {p50:.3f} ms with http.client — "
              f"{'met' if p50 < 1 else 'NOT met'}.")
        print("- ask = writing `POST /api/v1/experiments/NAME/suggestions {\"count\":1}` → the "
              "whole response read (client-side, loopback, keep-alive); the raw-socket client "
              "sends pre-encoded bytes and reads by Content-Length, so the difference between "
              "the two rows is roughly http.client's own cost.\n")

    if problems:
        print("**Problems found:**\n")
        for p in problems:
            print(f"- {p}")
        print()

    if not args.no_plots:
        plot(Path(args.plots), rows, op, tf, lat)
    return 1 if problems else 0


def plot(directory: Path, rows, op, tf, lat) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not importable: no plots; run with bench/.venv/bin/python)",
              file=sys.stderr)
        return
    directory.mkdir(parents=True, exist_ok=True)

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    labels = [label.split(" (")[0].replace(" RDBStorage", "\nRDBStorage (SQLite)")
              .replace("tuneflow serve", "tuneflow serve\n(REST, SQLite)") for label, _, _ in rows]
    rates = [rate or 0 for _, _, rate in rows]
    bars = ax.bar(labels, rates, color=["#1f77b4", "#ff7f0e"][:len(rates)])
    ax.set_yscale("log")
    ax.set_ylabel("round trips / s (log scale)")
    workers = rows[0][1]["workers"] if rows else "?"
    title = f"Durable ask + tell, {workers} worker processes"
    if len(rates) == 2 and rates[1]:
        title += f": {rates[0] / rates[1]:,.0f}×"
    ax.set_title(title)
    for bar, rate in zip(bars, rates):
        ax.annotate(f"{rate:,.0f}/s" if rate >= 100 else f"{rate:,.1f}/s",
                    (bar.get_x() + bar.get_width() / 2, rate), ha="center", va="bottom")
    ax.set_ylim(bottom=1, top=max(rates + [1]) * 4)
    fig.tight_layout()
    fig.savefig(directory / "throughput.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    series = []
    if lat:
        for v in lat["variants"]:
            series.append((f"tuneflow ask, 1 client, {v['client']}", v["asksNs"], "-"))
    if tf:
        series.append((f"tuneflow ask, {tf['workers']} workers", pooled(tf, "asksNs"), "--"))
        series.append((f"tuneflow complete, {tf['workers']} workers", pooled(tf, "tellsNs"), ":"))
    if op:
        series.append((f"Optuna ask, {op['workers']} workers", pooled(op, "asksNs"), "--"))
        series.append((f"Optuna tell, {op['workers']} workers", pooled(op, "tellsNs"), ":"))
    for label, values, style in series:
        if not values:
            continue
        xs = sorted(v / 1e6 for v in values)
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        ax.plot(xs, ys, style, label=f"{label} (n={len(xs)})")
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (log scale; client-side)")
    ax.set_ylabel("fraction of calls ≤ x")
    ax.axvline(1.0, color="grey", linewidth=0.8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Latency CDF of ask and tell calls")
    fig.tight_layout()
    fig.savefig(directory / "latency.png", dpi=110)
    plt.close(fig)
    print(f"(plots: {directory / 'throughput.png'}, {directory / 'latency.png'})",
          file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
