#!/usr/bin/env python3
"""Turn one results directory of bench/tpe/run.sh into markdown tables (stdout) and the
best-so-far plot (--plot FILE, needs matplotlib).

Reads, as run.sh lays them out:
  meta.json             machine, versions, revision, seeds, trials, command
  quality/<sampler>.jsonl   quality.py's lines: one run of TRIALS trials per (problem, seed)
  speed/<sampler>.json      speed.py's result

Definitions (quality):
  best(a, p, s)     the lowest objective value among the TRIALS trials of sampler a on problem
                    p with seed s.
  mean best(a, p)   the mean of best(a, p, s) over the seeds.
  normalized regret NR(a, p) = (mean best(a, p) - f*(p)) / (mean best(optuna-random, p) - f*(p))
                    where f*(p) is the problem's known global minimum. 0 = every seed found the
                    optimum, 1 = as good as Optuna's RandomSampler on average, > 1 = worse.
  mean NR(a)        the plain mean of NR(a, p) over the problems.
Goal checks (stated by the issue; reported, not tuned for): for each tuneflow TPE variant,
  mean NR <= 0.9 x min over the peers' mean NR (peers: the Optuna and Rustuna TPE samplers),
  and NR(p) <= 1 for every problem (never worse than random).
Seed noise: a 95% bootstrap interval of each mean NR (seeds resampled with replacement,
  independently per sampler and problem, the random baseline included; 2000 resamples, fixed
  RNG seed), and the share of resamples in which the first goal holds.

Speed: median and p90 (nearest rank) of the timed asks' latencies, in milliseconds.

Usage: analyze.py RESULTS_DIR [--plot FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import problems as P  # noqa: E402

ORDER = ["tuneflow-tpe", "tuneflow-tpe-indep", "tuneflow-multivariate-tpe", "tuneflow-random", "optuna-tpe",
         "optuna-tpe-mv", "optuna-tpe-indep", "rustuna-tpe", "optuna-random"]
LABELS = {
    "tuneflow-tpe": "tuneflow `tpe`",
    "tuneflow-tpe-indep": "tuneflow `tpe` multivariate=false",
    "tuneflow-multivariate-tpe": "tuneflow `multivariate-tpe`",
    "tuneflow-random": "tuneflow `random`",
    "optuna-tpe": "Optuna TPE (default)",
    "optuna-tpe-mv": "Optuna TPE multivariate=True",
    "optuna-tpe-indep": "Optuna TPE multivariate=False",
    "rustuna-tpe": "Rustuna TPE (default)",
    "optuna-random": "Optuna random",
}
PEERS = ["optuna-tpe", "optuna-tpe-mv", "optuna-tpe-indep", "rustuna-tpe"]
TUNEFLOW_TPE = ["tuneflow-tpe", "tuneflow-tpe-indep", "tuneflow-multivariate-tpe"]
BASELINE = "optuna-random"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000 or a < 1e-3:
        return f"{v:.3g}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 10:
        return f"{v:.2f}"
    return f"{v:.3f}" if a >= 0.1 else f"{v:.4f}"


def load_quality(results: Path) -> dict[str, dict[str, dict[int, list[float]]]]:
    """sampler -> problem -> seed -> values."""
    runs: dict[str, dict[str, dict[int, list[float]]]] = {}
    for path in sorted((results / "quality").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                runs.setdefault(r["sampler"], {}).setdefault(r["problem"], {})[r["seed"]] = (
                    r["values"])
    return runs


def seconds(results: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for path in sorted((results / "quality").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                out.setdefault(r["sampler"], []).append(r["seconds"])
    return out


BOOT = 2000


def bootstrap(best, samplers, problems) -> dict[str, list[float]]:
    """Per sampler, BOOT resampled values of its mean normalized regret."""
    import random
    rng = random.Random(12345)
    if BASELINE not in samplers:
        return {}
    out: dict[str, list[float]] = {s: [] for s in samplers}
    for _ in range(BOOT):
        denom = {}
        for p in problems:
            b = best[BASELINE][p]
            denom[p] = statistics.mean(rng.choice(b) for _ in b) - P.PROBLEMS[p].optimum
        for s in samplers:
            vals = []
            for p in problems:
                b = best[s][p]
                if not b or denom[p] <= 0:
                    break
                vals.append((statistics.mean(rng.choice(b) for _ in b)
                             - P.PROBLEMS[p].optimum) / denom[p])
            else:
                out[s].append(statistics.mean(vals))
    return {s: v for s, v in out.items() if v}


def goal_share(boot, s) -> float:
    """Share of resamples in which s's mean NR <= 0.9 x the best peer's (same resample)."""
    peers = [p for p in PEERS if p in boot]
    n = min(len(boot[s]), *(len(boot[p]) for p in peers)) if peers else 0
    if not n:
        return float("nan")
    return sum(boot[s][i] <= 0.9 * min(boot[p][i] for p in peers) for i in range(n)) / n


def quality_report(results: Path, meta: dict, lines: list[str]) -> dict:
    runs = load_quality(results)
    if not runs:
        lines.append("(no quality results)")
        return {}
    samplers = [s for s in ORDER if s in runs] + sorted(set(runs) - set(ORDER))
    problems = [p for p in P.PROBLEMS if any(p in runs[s] for s in samplers)]
    trials = meta.get("trials")
    seeds_expected = meta.get("seeds")

    best: dict[str, dict[str, list[float]]] = {}
    for s in samplers:
        for p in problems:
            per_seed = runs[s].get(p, {})
            best.setdefault(s, {})[p] = [min(v) for _, v in sorted(per_seed.items())]

    incomplete = [(s, p, len(best[s][p])) for s in samplers for p in problems
                  if seeds_expected and len(best[s][p]) != seeds_expected]

    lines.append(f"### Mean best value after {trials} trials (mean over seeds ± standard "
                 "error)\n")
    lines.append("| problem | optimum | " + " | ".join(LABELS.get(s, s) for s in samplers) + " |")
    lines.append("|---|---|" + "---|" * len(samplers))
    for p in problems:
        cells = []
        for s in samplers:
            b = best[s][p]
            if not b:
                cells.append("n/a")
                continue
            se = statistics.stdev(b) / math.sqrt(len(b)) if len(b) > 1 else 0.0
            cells.append(f"{fmt(statistics.mean(b))} ±{fmt(se)}")
        lines.append(f"| {p} | {fmt(P.PROBLEMS[p].optimum)} | " + " | ".join(cells) + " |")
    lines.append("")

    nr: dict[str, dict[str, float]] = {}
    if BASELINE in samplers:
        for s in samplers:
            for p in problems:
                opt = P.PROBLEMS[p].optimum
                if not best[s][p] or not best[BASELINE][p]:
                    continue
                denom = statistics.mean(best[BASELINE][p]) - opt
                nr.setdefault(s, {})[p] = (statistics.mean(best[s][p]) - opt) / denom \
                    if denom > 0 else float("nan")
        lines.append("### Normalized regret `(mean best − optimum) / (Optuna random's mean best "
                     "− optimum)` (lower is better; 1 = random)\n")
        lines.append("| problem | " + " | ".join(LABELS.get(s, s) for s in samplers) + " |")
        lines.append("|---|" + "---|" * len(samplers))
        for p in problems:
            row = []
            for s in samplers:
                v = nr.get(s, {}).get(p)
                row.append("n/a" if v is None else f"{v:.3f}")
            lines.append(f"| {p} | " + " | ".join(row) + " |")
        means = {s: statistics.mean(nr[s].values()) for s in samplers if s in nr and nr[s]}
        lines.append("| **mean over problems** | " + " | ".join(
            f"**{means[s]:.3f}**" if s in means else "n/a" for s in samplers) + " |")
        lines.append("")

        # Seed-to-seed noise: resample the seeds (with replacement, independently per sampler
        # and problem, the random baseline included) and recompute every mean NR.
        boot = bootstrap(best, samplers, problems)
        lines.append("Mean normalized regret with a 95% bootstrap interval over seeds "
                     f"({BOOT} resamples):\n")
        lines.append("| sampler | mean NR | 95% interval |")
        lines.append("|---|---|---|")
        for s in samplers:
            if s in means and s in boot:
                lo, hi = percentile(boot[s], 2.5), percentile(boot[s], 97.5)
                lines.append(f"| {LABELS.get(s, s)} | {means[s]:.3f} | {lo:.3f} – {hi:.3f} |")
        lines.append("")

        peers = {s: means[s] for s in PEERS if s in means}
        if peers:
            best_peer = min(peers, key=peers.get)
            lines.append(f"Best peer by mean normalized regret: {LABELS[best_peer]} "
                         f"({peers[best_peer]:.3f}); the goal is at most 0.9 × that = "
                         f"{0.9 * peers[best_peer]:.3f}.\n")
            for s in TUNEFLOW_TPE + ["tuneflow-random"]:
                if s not in means:
                    continue
                ok = means[s] <= 0.9 * peers[best_peer]
                worse = [(p, nr[s][p]) for p in problems if p in nr[s] and nr[s][p] > 1]
                lines.append(
                    f"- {LABELS[s]}: mean normalized regret {means[s]:.3f} → "
                    f"{'**holds**' if ok else '**does not hold**'} "
                    f"(ratio to best peer {means[s] / peers[best_peer]:.2f}); worse than random "
                    f"on {len(worse)} problem(s)"
                    + (": " + ", ".join(f"{p} ({v:.2f})" for p, v in worse) if worse else "")
                    + f"; lower normalized regret than {LABELS[best_peer]} on "
                    + f"{sum(nr[s][p] < nr[best_peer][p] for p in problems)} of "
                    + f"{len(problems)} problems"
                    + (f"; the goal holds in {goal_share(boot, s):.0%} of the bootstrap "
                       "resamples" if s in boot else "") + ".")
            lines.append("")
    secs = seconds(results)
    lines.append("### Wall time per run (mean seconds per run of "
                 f"{trials} trials, sampler + objective + transport)\n")
    lines.append("| sampler | runs | mean s/run | total s |")
    lines.append("|---|---|---|---|")
    for s in samplers:
        v = secs.get(s, [])
        if v:
            lines.append(f"| {LABELS.get(s, s)} | {len(v)} | {statistics.mean(v):.3f} | "
                         f"{sum(v):.1f} |")
    lines.append("")
    if incomplete:
        lines.append("Incomplete (sampler, problem, seeds found): " + ", ".join(
            f"{s}/{p}/{n}" for s, p, n in incomplete) + "\n")
    return {"runs": runs, "samplers": samplers, "problems": problems, "nr": nr}


def speed_report(results: Path, lines: list[str]) -> None:
    files = sorted((results / "speed").glob("*.json")) if (results / "speed").exists() else []
    if not files:
        return
    data = {json.loads(f.read_text())["sampler"]: json.loads(f.read_text()) for f in files}
    order = [s for s in ORDER if s in data] + sorted(set(data) - set(ORDER))
    any_r = next(iter(data.values()))
    lines.append(f"### Suggestion latency after {any_r['preload']} completed trials "
                 f"({any_r['dimensions']}-d continuous space)\n")
    lines.append("| sampler | how | timed asks | median ms | p90 ms | min ms | max ms |")
    lines.append("|---|---|---|---|---|---|---|")
    med = {}
    for s in order:
        r = data[s]
        lat = r["latenciesMs"]
        med[s] = statistics.median(lat)
        where = "REST, loopback, `tuneflow serve`" if s.startswith("tuneflow") else "in process"
        lines.append(f"| {LABELS.get(s, s)} | {where} | {len(lat)} | {med[s]:.2f} | "
                     f"{percentile(lat, 90):.2f} | {min(lat):.2f} | {max(lat):.2f} |")
    lines.append("")
    for s in order:
        pre = data[s].get("preloadLatenciesMs")
        if pre:
            n = len(pre)
            marks = [k for k in (100, 250, 500, 1000) if k <= n]
            parts = []
            for k in marks:
                window = pre[max(0, k - 50):k]
                parts.append(f"trials {k - len(window)}–{k - 1}: {statistics.median(window):.2f} ms")
            lines.append(f"- {LABELS.get(s, s)} while preloading (median ask latency by history "
                         f"size): " + "; ".join(parts) + f"; preload took "
                         f"{data[s]['preloadSeconds']:.1f} s.")
    if any(data[s].get("preloadLatenciesMs") for s in order):
        lines.append("")
    if "rustuna-tpe" in med:
        for s in TUNEFLOW_TPE:
            if s in med:
                ok = med[s] <= med["rustuna-tpe"]
                lines.append(f"- Goal (tuneflow median ≤ Rustuna's): {LABELS[s]} "
                             f"{med[s]:.2f} ms vs Rustuna {med['rustuna-tpe']:.2f} ms → "
                             f"{'**holds**' if ok else '**does not hold**'}.")
        lines.append("")


def plot(results: Path, q: dict, out: Path, meta: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, samplers, problems = q["runs"], q["samplers"], q["problems"]
    cols = 4
    rows = math.ceil(len(problems) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    styles = {"tuneflow-tpe": ("C3", "-"), "tuneflow-tpe-indep": ("C5", "--"),
              "tuneflow-multivariate-tpe": ("C1", "-"),
              "tuneflow-random": ("C7", ":"), "optuna-tpe": ("C0", "-"),
              "optuna-tpe-mv": ("C9", "--"), "optuna-tpe-indep": ("C2", "--"),
              "rustuna-tpe": ("C4", "-."), "optuna-random": ("k", ":")}
    for ax, p in zip(axes.flat, problems):
        opt = P.PROBLEMS[p].optimum
        for s in samplers:
            per_seed = list(runs[s].get(p, {}).values())
            if not per_seed:
                continue
            n = min(len(v) for v in per_seed)
            curves = []
            for v in per_seed:
                cur, acc = math.inf, []
                for x in v[:n]:
                    cur = min(cur, x)
                    acc.append(cur)
                curves.append(acc)
            mean = [statistics.mean(c[i] for c in curves) - opt for i in range(n)]
            mean = [max(m, 1e-12) for m in mean]
            color, ls = styles.get(s, (None, "-"))
            ax.plot(range(1, n + 1), mean, label=LABELS.get(s, s), color=color, linestyle=ls,
                    linewidth=1.4)
        ax.set_yscale("log")
        ax.set_title(p, fontsize=10)
        ax.set_xlabel("trial", fontsize=8)
        ax.set_ylabel("mean best − optimum", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="major", alpha=0.3)
    spare = list(axes.flat)[len(problems):]
    for ax in spare:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if spare:  # the legend in the first empty panel
        spare[0].legend(handles, labels, loc="center", fontsize=9, frameon=False)
    else:
        fig.legend(handles, labels, loc="lower center", fontsize=9, ncol=4, frameon=False)
    fig.suptitle(f"Best-so-far, mean over {meta.get('seeds')} seeds (log scale: mean best − "
                 f"known optimum); tuneflow {meta.get('tuneflowRevision')}", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(out, dpi=90)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()
    meta_path = args.results / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    lines = [f"## TPE benchmark: {meta.get('date', '?')}", ""]
    for key in ("command", "tuneflowRevision", "machine", "python", "optunaVersion",
                "rustunaVersion", "optunaDefaultMultivariate", "seeds", "trials", "problems"):
        if key in meta:
            lines.append(f"- {key}: {meta[key]}")
    lines.append("")
    q = quality_report(args.results, meta, lines)
    speed_report(args.results, lines)
    print("\n".join(lines))
    if args.plot and q:
        try:
            plot(args.results, q, args.plot, meta)
            print(f"(plot written to {args.plot})", file=sys.stderr)
        except ImportError:
            print("(matplotlib not installed: no plot)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
