#!/usr/bin/env python3
"""The dashboard benchmark's report: a markdown table from a results directory (meta.json,
seed-SIZE.json, TARGET-SIZE.json, observe-*.json), printed, and optionally written to
RESULTS.md with a bar chart.

Usage: report.py RESULTS_DIR [--results-md FILE] [--plot FILE.png]
       report.py --meta FILE key=value ...     (adds fields to a JSON object file)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TARGETS = [
    ("tuneflow", "tuneflow dashboard", "experiment page: history, learning curves, importance, "
     "parameter pair (contour), slices, timeline, parallel coordinates"),
    ("optuna-top", "optuna-dashboard, study page", "history, importance, intermediate values, "
     "timeline"),
    ("optuna-selection", "optuna-dashboard, Trial Selection page",
     "parallel coordinate, history"),
]


def load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def mib(b) -> str:
    return f"{b / 2**20:,.1f} MiB" if b >= 2**20 else f"{b / 2**10:,.0f} KiB"


def secs(ms) -> str:
    return f"{ms / 1000:.2f}"


def fmt_time(r) -> str:
    if r is None:
        return "not run"
    if r.get("skipped"):
        return f"not run ({r['skipped']})"
    if not r.get("drawn"):
        rep = r["reps"][0] if r.get("reps") else {}
        return f"**not drawn in {rep.get('timeoutS', '?'):.0f} s**"
    w = r["wallMs"]
    return f"**{secs(w['median'])}** ({secs(w['min'])})"


def first_ok(r):
    for rep in (r or {}).get("reps", []):
        if rep.get("drawn"):
            return rep
    return (r or {}).get("reps", [None])[0] if r and r.get("reps") else None


def table(results: Path, sizes: list[int]) -> tuple[str, dict]:
    rows = ["| trials × steps | dashboard (page) | drawn: median (min) s | reps | payload on the "
            "wire / decoded | server CPU s | server peak RSS | browser CPU s | load | tuneflow faster |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    facts = {}
    for size in sizes:
        rs = {t: load(results / f"{t}-{size}.json") for t, _, _ in TARGETS}
        tf = rs["tuneflow"]
        tf_med = tf["wallMs"]["median"] if tf and tf.get("drawn") else None
        facts[size] = {"tuneflow": tf_med}
        for t, label, _ in TARGETS:
            r = rs[t]
            rep = first_ok(r)
            if r is None or r.get("skipped") or rep is None:
                rows.append(f"| {size:,} × 20 | {label} | {fmt_time(r)} | | | | | | | |")
                continue
            n = f"{r['drawn']}/{r['repetitions']}"
            payload = f"{mib(rep['wireBytes'])} / {mib(rep['decodedBytes'])}"
            if r.get("drawn"):
                cpu = f"{r['serverCpuS']['median']:.2f}"
                rss = f"{r['serverPeakRssMiB']['median']:,.0f} MiB"
                bcpu = f"{r['browserCpuS']['median']:.1f}"
            else:
                cpu = f"{rep['serverCpuS']:.2f} (until timeout)"
                rss = f"{rep['serverPeakRssMiB']:,.0f} MiB"
                bcpu = f"{rep['browserCpuS']:.1f}"
            speed = ""
            if t != "tuneflow" and tf_med:
                if r.get("drawn"):
                    x = r["wallMs"]["median"] / tf_med
                    speed = f"**{x:,.1f}×**"
                    facts[size][t] = x
                else:
                    x = rep["timeoutS"] * 1000 / tf_med
                    speed = f"**> {x:,.0f}×**"
                    facts[size][t] = ("more than", x)
            load_avg = "–".join(f"{v:.1f}" for v in r["loadavg"]) if r.get("loadavg") else "?"
            rows.append(f"| {size:,} × 20 | {label} | {fmt_time(r)} | {n} | {payload} | {cpu} | "
                        f"{rss} | {bcpu} | {load_avg} | {speed} |")
    return "\n".join(rows), facts


def detail(results: Path, sizes: list[int]) -> str:
    out = []
    # tuneflow: what each plot drew and the page's own marks.
    rows = ["| trials | " + " | ".join(["plot: points (ms in setOption)"]) + " | page timings "
            "(ms from navigation) |", "|---|---|---|"]
    for size in sizes:
        r = load(results / f"tuneflow-{size}.json")
        rep = first_ok(r)
        if not rep or not rep.get("plots"):
            continue
        plots = ", ".join(f"{p['plot']}: {p['points']:,} ({p['drawMs']:.0f})" if p["points"]
                          is not None and p["drawMs"] is not None else f"{p['plot']}: ?"
                          for p in rep["plots"]["plots"])
        timings = rep["plots"].get("timings") or {}
        tim = ", ".join(f"{k} {v:,.0f}" for k, v in timings.items()
                        if isinstance(v, (int, float)))
        rows.append(f"| {size:,} | {plots} | {tim} |")
    if len(rows) > 2:
        out.append("**tuneflow, per plot** (first repetition; `data-points` and `data-draw-ms` "
                   "of each `[data-plot]`, and `window.tuneflowTimings`):\n\n" + "\n".join(rows))
    rows = ["| trials | page | what was on screen when drawn |", "|---|---|---|"]
    for size in sizes:
        for t in ("optuna-top", "optuna-selection"):
            r = load(results / f"{t}-{size}.json")
            rep = first_ok(r)
            if not rep or not rep.get("plots"):
                continue
            parts = []
            for pid, c in rep["plots"].items():
                if c is None:
                    parts.append(f"{pid}: absent")
                    continue
                bits = [f"{k} {v:,}" for k, v in c.items() if v]
                parts.append(f"`#{pid}`: " + ", ".join(bits))
            rows.append(f"| {size:,} | {t} | {'; '.join(parts)} |")
    if len(rows) > 2:
        out.append("**optuna-dashboard, what was drawn** (first drawn repetition; counts of "
                   "plotly's SVG marks):\n\n" + "\n".join(rows))
    rows = ["| trials | dashboard | largest responses on the wire (first repetition) |",
            "|---|---|---|"]
    for size in sizes:
        for t, label, _ in TARGETS:
            rep = first_ok(load(results / f"{t}-{size}.json"))
            if not rep:
                continue
            by = sorted(rep["wireBytesByUrl"].items(), key=lambda kv: -kv[1])[:4]
            shown = ", ".join(f"`{u.split('//', 1)[-1].split('/', 1)[-1] or '/'}` {mib(b)}"
                              for u, b in by)
            rows.append(f"| {size:,} | {label} | {shown}; {rep['requests']} requests |")
    out.append("**Payload**:\n\n" + "\n".join(rows))
    rows = ["| trials | dashboard | API requests: sent → last byte, ms (first repetition) |",
            "|---|---|---|"]
    for size in sizes:
        for t, label, _ in TARGETS:
            rep = first_ok(load(results / f"{t}-{size}.json"))
            if not rep or not rep.get("apiRequestMs"):
                continue
            shown = ", ".join(f"`{u.split('/api/', 1)[-1]}` {ms:,.0f}"
                              for u, ms in rep["apiRequestMs"].items())
            rows.append(f"| {size:,} | {label} | {shown} |")
    if len(rows) > 2:
        out.append("**Where the time goes, server side** (the page's data requests, as the "
                   "browser saw them):\n\n" + "\n".join(rows))
    return "\n\n".join(out)


def seeding(results: Path, sizes: list[int]) -> str:
    rows = ["| trials | states | observations | tuneflow: seeded in (trials/s, observations/s) "
            "| Optuna: bulk load, read back | seeded at |", "|---|---|---|---|---|---|"]
    for size in sizes:
        s = load(results / f"seed-{size}.json")
        if not s:
            continue
        st = ", ".join(f"{k} {v:,}" for k, v in sorted(s["states"].items(), key=lambda kv: -kv[1]))
        tf = s["tuneflow"]
        op = s["optuna"]
        rows.append(f"| {size:,} | {st} | {s['observations']:,} | {tf['wallSeconds']:.1f} s "
                    f"({tf['trialsPerSecond']:,.0f}, {tf['observationsPerSecond']:,.0f}; "
                    f"search {tf['searchSeconds']:.1f} s) | {op['wallSeconds']:.1f} s, "
                    f"{op['readBackSeconds']:.1f} s | {s['seededAt']} with `{s['tuneflowBinary']}` |")
    text = "\n".join(rows)
    obs = [load(p) for p in sorted(results.glob("observe-*.json"))]
    obs = [o for o in obs if o]
    if obs:
        text += "\n\nObservation routes compared on a scratch store (same client, 4 threads): " + \
            "; ".join(f"`{o['observeVia']}` {o['observationsPerSecond']:,.0f} observations/s "
                      f"({o['trials']} trials, {o['reportRequests']:,} requests)" for o in obs) + "."
    return text


def plot(results: Path, sizes: list[int], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.27
    colors = {"tuneflow": "#2da44e", "optuna-top": "#4c72b0", "optuna-selection": "#8da0cb"}
    for i, (t, label, _) in enumerate(TARGETS):
        for j, size in enumerate(sizes):
            r = load(results / f"{t}-{size}.json")
            x = j + (i - 1) * width
            if r and r.get("drawn"):
                v = r["wallMs"]["median"] / 1000
                ax.bar(x, v, width, color=colors[t], label=label if j == 0 else None)
                ax.text(x, v * 1.08, f"{v:.1f}" if v < 10 else f"{v:.0f}", ha="center",
                        fontsize=8)
            elif r and r.get("reps"):
                v = r["reps"][0].get("timeoutS", 0)
                ax.bar(x, v, width, color="white", edgecolor=colors[t], hatch="//",
                       label=label if j == 0 else None)
                ax.text(x, v * 1.08, f">{v:.0f}", ha="center", fontsize=8)
    ax.axhline(1.0, color="#cf222e", lw=0.8, ls="--")
    ax.text(len(sizes) - 0.5, 1.05, "goal: 1 s", color="#cf222e", fontsize=8, ha="right")
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    top = ax.get_ylim()[1]
    ax.set_ylim(0.1, top * 2.5)
    ax.set_xticks(range(len(sizes)), [f"{s:,} trials × 20" for s in sizes])
    ax.set_ylabel("navigation → every plot drawn, s (median)")
    ax.set_title("Dashboard: time to all plots drawn (headless Chromium, 2 vCPU)")
    ax.legend(fontsize=8, loc="upper left", framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(results: Path) -> str:
    meta = load(results / "meta.json") or {}
    sizes = [int(s) for s in str(meta.get("sizes", "1000 10000 50000")).split()]
    main, facts = table(results, sizes)
    build = meta.get("tuneflowBuild", "?")
    lines = [f"### Figures (run {meta.get('date', '?')}, machine clock)", ""]
    if build != "release":
        lines += [f"**These tuneflow figures are from a {build.upper()} build** "
                  f"(`{meta.get('tuneflowBinary')}`): not the figures to judge the goal by.", ""]
    lines += [
        f"Command: `{meta.get('command', 'bench/dashboard/run.sh')}`. Machine: "
        f"{meta.get('machine', '?')}; load average before {meta.get('loadBefore', '?')}, "
        f"after {meta.get('loadAfter', '?')}. tuneflow {meta.get('tuneflowVersion', '?')} "
        f"({build} build of {meta.get('tuneflowBuilt', '?')}, checkout at revision "
        f"{meta.get('revision', '?')}); optuna "
        f"{meta.get('optuna', '?')}, optuna-dashboard {meta.get('optunaDashboard', '?')} "
        f"(its default server: wsgiref, threaded); Playwright {meta.get('playwright', '?')} "
        f"driving Debian's Chromium {meta.get('chromium', '?')} (headless, "
        f"`--disable-gpu`, viewport 1400×1000); Python {meta.get('python', '?')}.",
        "", main, ""]
    goal = []
    f10 = facts.get(10000, {})
    if f10.get("tuneflow") is not None:
        t = f10["tuneflow"] / 1000
        goal.append(f"- **≤ 1 s at 10,000 trials**: {'met' if t <= 1 else '**missed**'} "
                    f"({t:.2f} s median, {build} build).")
    for size in sizes:
        x = facts.get(size, {}).get("optuna-top")
        if x is None:
            continue
        if isinstance(x, tuple):
            goal.append(f"- **≥ 5× optuna-dashboard at {size:,}**: met (optuna-dashboard did not "
                        f"draw its study page within the timeout: more than {x[1]:,.0f}×).")
        else:
            goal.append(f"- **≥ 5× optuna-dashboard at {size:,}**: "
                        f"{'met' if x >= 5 else '**missed**'} ({x:,.1f}× against its study page).")
    lines += goal + ["", detail(results, sizes), "", "**Seeding** (once; cached in "
                     "`bench/dashboard/.data/`):", "", seeding(results, sizes), ""]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--meta":
        path = Path(sys.argv[2])
        meta = load(path) or {}
        for kv in sys.argv[3:]:
            k, _, v = kv.partition("=")
            meta[k] = v
        path.write_text(json.dumps(meta, indent=1))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("results", type=Path)
    ap.add_argument("--results-md", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()
    text = report(args.results)
    print(text)
    (args.results / "report.md").write_text(text)
    if args.plot:
        meta = load(args.results / "meta.json") or {}
        sizes = [int(s) for s in str(meta.get("sizes", "1000 10000 50000")).split()]
        plot(args.results, sizes, args.plot)
    if args.results_md:
        head = (Path(__file__).with_name("NOTES.md").read_text()
                if Path(__file__).with_name("NOTES.md").exists() else "")
        args.results_md.write_text(head.replace("{{FIGURES}}", text) if "{{FIGURES}}" in head
                                   else head + "\n" + text)


if __name__ == "__main__":
    main()
