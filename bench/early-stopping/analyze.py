#!/usr/bin/env python3
"""Turn one results directory of bench/early-stopping/run.sh into markdown tables (stdout) and
the best-so-far plot (--plot FILE, needs matplotlib).

Reads meta.json and runs/<variant>.jsonl (budget.py's lines: one run per problem and seed).

Definitions:
  best(v, p, s)    the lowest value at max_step among the trials that variant v trained to
                   max_step on problem p with seed s within the budget (BUDGET x max_step steps).
  f*(p)            the known optimum (crossing-curves, mf-hartmann6); for mlp-digits, which has
                   none, the lowest validation error any variant reached on any seed of this
                   results directory.
  normalized regret NR(v, p) = (mean_s best(v, p, s) - f*(p)) / (mean_s best(optuna-random, p, s)
                   - f*(p)): 0 = the optimum on every seed, 1 = random search without pruning.
  target           a fixed final value per problem (mfproblems.py); budget-to-target of a run =
                   the steps consumed (in full trainings, steps / max_step) when the first trial
                   reaching the target finished; a run that never reached it does not enter the
                   mean, its share of seeds is given beside it.
Goal (stated by the issue; checked, not tuned for):
  (A) tuneflow's best rule -- the early-stopping rule with the lowest NR averaged over the
      problems -- has a lower NR than Optuna TPE + HyperbandPruner on every problem;
  (B) on crossing-curves it never loses to no pruning (tuneflow TPE without early stopping,
      same seeds) by more than noise: mean paired difference of best(., s) at most 2 standard
      errors of that mean above 0.

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

ORDER = ["tuneflow-tpe-medianstop", "tuneflow-tpe-asha", "tuneflow-tpe-hyperband",
         "tuneflow-tpe", "optuna-tpe-hyperband", "optuna-tpe", "optuna-random"]
LABELS = {
    "tuneflow-tpe-medianstop": "tuneflow TPE + medianstop",
    "tuneflow-tpe-asha": "tuneflow TPE + asha",
    "tuneflow-tpe-hyperband": "tuneflow TPE + hyperband",
    "tuneflow-tpe": "tuneflow TPE, no stopping",
    "optuna-tpe-hyperband": "Optuna TPE + HyperbandPruner",
    "optuna-tpe": "Optuna TPE, no pruning",
    "optuna-random": "Optuna random, no pruning",
}
RULES = ["tuneflow-tpe-medianstop", "tuneflow-tpe-asha", "tuneflow-tpe-hyperband"]
PEER = "optuna-tpe-hyperband"
NO_PRUNING = "tuneflow-tpe"
BASELINE = "optuna-random"
CROSSING = "crossing-curves"
SLOW_LR = 1.1143e-3   # crossing-curves: no configuration with a larger lr reaches the target


def problem_info():
    """name -> (max_step, optimum or None, target, target note), without importing sklearn."""
    import mfproblems as M
    return {p.name: (p.max_step, p.optimum, p.target, p.target_note)
            for p in M.PROBLEMS.values()}


def fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
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


def se(xs: list[float]) -> float:
    return statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else float("nan")


def load(results: Path):
    """variant -> problem -> seed -> record."""
    runs: dict = {}
    for path in sorted((results / "runs").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                runs.setdefault(r["variant"], {}).setdefault(r["problem"], {})[r["seed"]] = r
    return runs


def final(t: dict, max_step: int, strict: bool = False) -> float | None:
    """A trial's value at max_step, or None if it did not get there. Strict: a trial that the
    rule pruned on its max_step observation does not count either."""
    if t["steps"] != max_step or (strict and t["pruned"]):
        return None
    return t["last"]


def trajectory(record, strict: bool = False) -> list[tuple[int, float]]:
    """(steps consumed when the trial finished, best fully-trained value so far), at each
    fully-trained trial."""
    used, best, out = 0, math.inf, []
    for t in record["trials"]:
        used += t["steps"]
        f = final(t, record["maxStep"], strict)
        if f is not None:
            best = min(best, f)
            out.append((used, best))
    return out


def best_of(record, strict: bool = False) -> float:
    finals = [f for f in (final(t, record["maxStep"], strict) for t in record["trials"])
              if f is not None]
    return min(finals) if finals else math.nan


def steps_to(record, target: float) -> float | None:
    """Full trainings consumed when the target was first reached, or None."""
    for used, best in trajectory(record):
        if best <= target:
            return used / record["maxStep"]
    return None


def analyse(results: Path, meta: dict, lines: list[str]) -> dict:
    runs = load(results)
    if not runs:
        lines.append("(no results)")
        return {}
    info = problem_info()
    variants = [v for v in ORDER if v in runs] + sorted(set(runs) - set(ORDER))
    problems = [p for p in info if any(p in runs[v] for v in variants)]
    budget = meta.get("budget")

    best: dict = {v: {p: [best_of(r) for _, r in sorted(runs[v].get(p, {}).items())]
                      for p in problems} for v in variants}
    strict: dict = {v: {p: [best_of(r, True) for _, r in sorted(runs[v].get(p, {}).items())]
                        for p in problems} for v in variants}
    seeds_of = {v: {p: sorted(runs[v].get(p, {})) for p in problems} for v in variants}
    fstar = {}
    for p in problems:
        _, opt, _, _ = info[p]
        if opt is not None:
            fstar[p] = opt
        else:
            fstar[p] = min(x for v in variants for x in best[v][p] if not math.isnan(x))
    missing = [(v, p, sum(math.isnan(x) for x in best[v][p])) for v in variants
               for p in problems if any(math.isnan(x) for x in best[v][p])]

    lines.append(f"### Best fully-trained value at the budget ({budget} full trainings; mean "
                 "over seeds ± standard error)\n")
    lines.append("| problem | max step | f* | target | " + " | ".join(
        LABELS.get(v, v) for v in variants) + " |")
    lines.append("|---|---|---|---|" + "---|" * len(variants))
    for p in problems:
        T, opt, target, _ = info[p]
        cells = []
        for v in variants:
            b = [x for x in best[v][p] if not math.isnan(x)]
            cells.append("n/a" if not b else f"{fmt(statistics.mean(b))} ±{fmt(se(b))}")
        star = fmt(fstar[p]) + ("" if opt is not None else " (best seen)")
        lines.append(f"| {p} | {T} | {star} | {fmt(target)} | " + " | ".join(cells) + " |")
    lines.append("")

    nr = regrets(best, fstar, variants, problems)
    if BASELINE in variants:
        lines.append("### Normalized regret `(mean best − f*) / (Optuna random's mean best − f*)` "
                     "(lower is better; 1 = random search without pruning)\n")
        lines.append("| problem | " + " | ".join(LABELS.get(v, v) for v in variants) + " |")
        lines.append("|---|" + "---|" * len(variants))
        for p in problems:
            lines.append(f"| {p} | " + " | ".join(
                fmt(nr.get(v, {}).get(p, float("nan"))) for v in variants) + " |")
        # Only over problems where every variant has a finite NR (a problem whose random
        # baseline equals f* has none), so that the means compare like with like.
        means, usable = mean_regrets(nr, variants, problems)
        lines.append("| **mean over problems** | " + " | ".join(
            f"**{means[v]:.3f}**" if v in means else "n/a" for v in variants) + " |")
        lines.append("")
        if usable != problems:
            lines.append("(mean over " + ", ".join(usable) + " only: the others have no "
                         "finite normalized regret for every variant)\n")
    else:
        means = {}

    lines.append("### Budget to target: share of seeds that reached the target, and the mean "
                 "full trainings consumed when they did\n")
    lines.append("| problem (target) | " + " | ".join(LABELS.get(v, v) for v in variants) + " |")
    lines.append("|---|" + "---|" * len(variants))
    for p in problems:
        _, _, target, _ = info[p]
        cells = []
        for v in variants:
            rs = [r for _, r in sorted(runs[v].get(p, {}).items())]
            if not rs:
                cells.append("n/a")
                continue
            hits = [x for x in (steps_to(r, target) for r in rs) if x is not None]
            cells.append(f"{len(hits)}/{len(rs)}" + (f", {statistics.mean(hits):.1f}"
                                                      if hits else ""))
        lines.append(f"| {p} (≤ {fmt(target)}) | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Targets: " + "; ".join(f"{p}: {info[p][3]}" for p in problems) + ".\n")

    lines.append("### What the budget bought (means per run)\n")
    lines.append("| problem | variant | trials started | fully trained | pruned | of which at "
                 "the last step | mean step at prune | steps in trials not fully trained |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for p in problems:
        for v in variants:
            rs = [r for _, r in sorted(runs[v].get(p, {}).items())]
            if not rs:
                continue
            started = statistics.mean(len(r["trials"]) for r in rs)
            T = rs[0]["maxStep"]
            full = statistics.mean(sum(final(t, T) is not None for t in r["trials"]) for r in rs)
            pruned = statistics.mean(sum(t["pruned"] for t in r["trials"]) for r in rs)
            at_last = statistics.mean(sum(t["pruned"] and t["steps"] == T for t in r["trials"])
                                      for r in rs)
            at = [t["steps"] for r in rs for t in r["trials"] if t["pruned"]]
            waste = statistics.mean(
                sum(t["steps"] for t in r["trials"] if final(t, T) is None) / r["budgetSteps"]
                for r in rs)
            lines.append(f"| {p} | {LABELS.get(v, v)} | {started:.1f} | {full:.1f} | "
                         f"{pruned:.1f} | {at_last:.1f} | "
                         f"{f'{statistics.mean(at):.1f}' if at else '–'} | {waste:.0%} |")
    lines.append("")

    if CROSSING in problems:
        lines.append(f"### crossing-curves: slow learners (lr ≤ {SLOW_LR:.2g}, the only "
                     "configurations that can reach the target)\n")
        lines.append("| variant | slow among trials started | slow among fully trained | "
                     "slow trials pruned | pruned slow trials: mean step |")
        lines.append("|---|---|---|---|---|")
        for v in variants:
            rs = [r for _, r in sorted(runs[v].get(CROSSING, {}).items())]
            ts = [t for r in rs for t in r["trials"]]
            if not ts:
                continue
            slow = [t for t in ts if t["params"]["lr"] <= SLOW_LR]
            full = [t for t in ts if final(t, rs[0]["maxStep"]) is not None]
            slow_full = [t for t in full if t["params"]["lr"] <= SLOW_LR]
            slow_pruned = [t for t in slow if t["pruned"]]
            lines.append(
                f"| {LABELS.get(v, v)} | {len(slow) / len(ts):.0%} ({len(slow)}/{len(ts)}) | "
                f"{len(slow_full) / max(1, len(full)):.0%} ({len(slow_full)}/{len(full)}) | "
                f"{len(slow_pruned) / max(1, len(slow)):.0%} | "
                + (f"{statistics.mean(t['steps'] for t in slow_pruned):.1f}"
                   if slow_pruned else "–") + " |")
        lines.append("")

    goal = check_goal(best, seeds_of, nr, means, problems, variants, lines)

    # The strict reading: trials pruned on their max_step observation do not count.
    pruned_at_last = sum(t["pruned"] and t["steps"] == r["maxStep"] for v in variants
                         for p in problems for r in runs[v].get(p, {}).values()
                         for t in r["trials"])
    if pruned_at_last and BASELINE in variants:
        nr_s = regrets(strict, fstar, variants, problems)
        means_s, _ = mean_regrets(nr_s, variants, problems)
        lines.append("### Strict reading: trials pruned on their last step do not count\n")
        lines.append(f"{pruned_at_last} trials in all were pruned on their max_step "
                     "observation (a rung of ASHA / Hyperband sits at max_step when it is "
                     "min_resource × 3^k: step 27 here); the tables above count them as fully "
                     "trained (their training is done and their final value known). Left out, "
                     "the normalized regret becomes:\n")
        changed = [v for v in variants
                   if any(not (math.isnan(a) and math.isnan(b)) and a != b
                          for p in problems for a, b in zip(best[v][p], strict[v][p]))]
        def curve_moves(r) -> bool:
            """Whether the best-so-far step function differs between the two readings."""
            strict_traj = trajectory(r, True)
            for used, b in trajectory(r):
                sb = min((x for u, x in strict_traj if u <= used), default=math.inf)
                if sb != b:
                    return True
            return False
        moved = [v for v in variants
                 if any(curve_moves(r) for p in problems for r in runs[v].get(p, {}).values())]
        if not changed:
            lines[-1] = lines[-1].replace("Left out, the normalized regret becomes:",
                                          "Left out, **no best value changes** (none of "
                                          "them was the best so far of its run)" + (", though some best-so-far curves "
                                          "do: " + ", ".join(moved) if moved else "")
                                          + "; the tables and the goal stand as they are.")
    if pruned_at_last and BASELINE in variants and changed:
        lines.append("| problem | " + " | ".join(LABELS.get(v, v) for v in changed) + " |")
        lines.append("|---|" + "---|" * len(changed))
        for p in problems:
            lines.append(f"| {p} | " + " | ".join(
                fmt(nr_s.get(v, {}).get(p, float("nan"))) for v in changed) + " |")
        lines.append("| **mean over problems** | " + " | ".join(
            f"**{means_s[v]:.3f}**" if v in means_s else "n/a" for v in changed) + " |")
        lines.append("")
        quiet: list[str] = []
        g = check_goal(strict, seeds_of, nr_s, means_s, problems, variants, quiet)
        if g:
            lines.append(f"Goal under the strict reading: best rule {LABELS[g['best_rule']]}; "
                         f"(A) {'holds' if g['A'] else 'does not hold'}, (B) "
                         f"{'holds' if g['B'] else 'does not hold'} → **"
                         f"{'holds' if g['holds'] else 'does not hold'}**.\n")

    lines.append("### Wall time per run (seconds; sampler + curve + transport)\n")
    lines.append("| variant | " + " | ".join(problems) + " |")
    lines.append("|---|" + "---|" * len(problems))
    for v in variants:
        cells = []
        for p in problems:
            rs = list(runs[v].get(p, {}).values())
            cells.append(f"{statistics.mean(r['seconds'] for r in rs):.2f}" if rs else "n/a")
        lines.append(f"| {LABELS.get(v, v)} | " + " | ".join(cells) + " |")
    lines.append("")
    expected = meta.get("seeds")
    short = [(v, p, len(seeds_of[v][p])) for v in variants for p in problems
             if expected and len(seeds_of[v][p]) != expected]
    if short:
        lines.append("Incomplete (variant, problem, seeds found): " + ", ".join(
            f"{v}/{p}/{n}" for v, p, n in short) + "\n")
    if missing:
        lines.append("Runs with no fully-trained trial (left out of the means): " + ", ".join(
            f"{v}/{p}/{n}" for v, p, n in missing) + "\n")
    return {"runs": runs, "variants": variants, "problems": problems, "fstar": fstar,
            "info": info, "goal": goal}


def regrets(best, fstar, variants, problems) -> dict:
    """variant -> problem -> normalized regret."""
    nr: dict = {}
    if BASELINE not in variants:
        return nr
    for v in variants:
        for p in problems:
            b = [x for x in best[v][p] if not math.isnan(x)]
            r = [x for x in best[BASELINE][p] if not math.isnan(x)]
            if not b or not r:
                continue
            denom = statistics.mean(r) - fstar[p]
            nr.setdefault(v, {})[p] = ((statistics.mean(b) - fstar[p]) / denom
                                       if denom > 0 else float("nan"))
    return nr


def mean_regrets(nr, variants, problems) -> tuple[dict, list]:
    usable = [p for p in problems
              if all(math.isfinite(nr.get(v, {}).get(p, math.nan)) for v in variants)]
    means = {v: statistics.mean(nr[v][p] for p in usable)
             for v in variants if v in nr and usable}
    return means, usable


def paired(best, seeds_of, a: str, b: str, p: str) -> tuple[float, float, int]:
    """Mean and standard error of best(a, s) − best(b, s) over the seeds both ran."""
    da = dict(zip(seeds_of[a][p], best[a][p]))
    db = dict(zip(seeds_of[b][p], best[b][p]))
    d = [da[s] - db[s] for s in sorted(set(da) & set(db))
         if not math.isnan(da[s]) and not math.isnan(db[s])]
    if not d:
        return float("nan"), float("nan"), 0
    return statistics.mean(d), se(d), len(d)


def check_goal(best, seeds_of, nr, means, problems, variants, lines) -> dict:
    rules = [r for r in RULES if r in means]
    if not rules or PEER not in nr:
        lines.append("(goal not checked: it needs the tuneflow rules, Optuna TPE + "
                     "HyperbandPruner and the random baseline)\n")
        return {}
    lines.append("### The goal\n")
    top = min(rules, key=means.get)
    lines.append("Mean normalized regret over the problems: " + ", ".join(
        f"{LABELS[r]} {means[r]:.3f}" for r in rules) + f"; Optuna TPE + HyperbandPruner "
        f"{means.get(PEER, float('nan')):.3f}. tuneflow's best rule: **{LABELS[top]}**.\n")
    lines.append("| problem | NR " + LABELS[top] + " | NR Optuna TPE + HyperbandPruner | "
                 "difference of mean best (± s.e., unpaired) | lower regret? | rules with a "
                 "lower NR than Optuna + Hyperband |")
    lines.append("|---|---|---|---|---|---|")
    a_ok = True
    for p in problems:
        x, y = nr[top].get(p, float("nan")), nr[PEER].get(p, float("nan"))
        bt = [v for v in best[top][p] if not math.isnan(v)]
        bp = [v for v in best[PEER][p] if not math.isnan(v)]
        if not bt or not bp:
            a_ok = False
            lines.append(f"| {p} | n/a | n/a | n/a | **no data** | |")
            continue
        diff = statistics.mean(bt) - statistics.mean(bp)
        s = math.sqrt(se(bt) ** 2 + se(bp) ** 2)
        ok = x < y
        a_ok &= ok
        better = [LABELS[r].replace("tuneflow TPE + ", "") for r in rules
                  if nr[r].get(p, math.inf) < y]
        lines.append(f"| {p} | {fmt(x)} | {fmt(y)} | {fmt(diff)} ± {fmt(s)} | "
                     f"{'yes' if ok else '**no**'} | {', '.join(better) or 'none'} |")
    lines.append("")
    b_ok = None
    if CROSSING in problems and NO_PRUNING in best:
        rows = []
        for ref in (NO_PRUNING, "optuna-tpe"):
            if ref not in best:
                continue
            m, s, n = paired(best, seeds_of, top, ref, CROSSING)
            loses = m > 2 * s
            if ref == NO_PRUNING:
                b_ok = not loses
            rows.append(f"| {LABELS[top]} − {LABELS[ref]} | {n} | {fmt(m)} ± {fmt(s)} | "
                        f"{'**yes**' if loses else 'no'} |")
        for r in rules:
            if r == top:
                continue
            m, s, n = paired(best, seeds_of, r, NO_PRUNING, CROSSING)
            rows.append(f"| {LABELS[r]} − {LABELS[NO_PRUNING]} | {n} | {fmt(m)} ± {fmt(s)} | "
                        f"{'**yes**' if m > 2 * s else 'no'} |")
        lines.append("crossing-curves, paired by seed (best(a, s) − best(b, s); positive = "
                     "the first is worse):\n")
        lines.append("| a − b | seeds | mean difference ± s.e. | loses by more than noise "
                     "(> 2 s.e.)? |")
        lines.append("|---|---|---|---|")
        lines.extend(rows)
        lines.append("")
    verdict_a = "**holds**" if a_ok else "**does not hold**"
    verdict_b = ("n/a" if b_ok is None else "**holds**" if b_ok else "**does not hold**")
    lines.append(f"- (A) {LABELS[top]} has lower regret than Optuna TPE + HyperbandPruner on "
                 f"every problem: {verdict_a}.")
    lines.append(f"- (B) on crossing-curves it does not lose to no pruning by more than noise: "
                 f"{verdict_b}.")
    overall = a_ok and bool(b_ok)
    lines.append(f"- **Goal: {'holds' if overall else 'does not hold'}.**\n")
    return {"best_rule": top, "A": a_ok, "B": b_ok, "holds": overall}


def plot(q: dict, out: Path, meta: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, variants, problems, fstar, info = (q["runs"], q["variants"], q["problems"],
                                             q["fstar"], q["info"])
    styles = {"tuneflow-tpe-medianstop": ("C1", "-"), "tuneflow-tpe-asha": ("C2", "-"),
              "tuneflow-tpe-hyperband": ("C4", "-"), "tuneflow-tpe": ("C3", ":"),
              "optuna-tpe-hyperband": ("C0", "-"), "optuna-tpe": ("C0", ":"),
              "optuna-random": ("k", "--")}
    fig, axes = plt.subplots(1, len(problems), figsize=(5.2 * len(problems), 4.2),
                             squeeze=False)
    floor = 1e-4
    for ax, p in zip(axes.flat, problems):
        T = info[p][0]
        for v in variants:
            rs = list(runs[v].get(p, {}).values())
            if not rs:
                continue
            budget_steps = rs[0]["budgetSteps"]
            xs, ys = [], []
            trajs = [trajectory(r) for r in rs]
            for k in range(1, budget_steps + 1):
                vals = []
                for tr in trajs:
                    cur = None
                    for used, b in tr:
                        if used > k:
                            break
                        cur = b
                    vals.append(cur)
                if any(x is None for x in vals):
                    continue
                xs.append(k / T)
                ys.append(max(statistics.mean(vals) - fstar[p], floor))
            color, ls = styles.get(v, (None, "-"))
            ax.plot(xs, ys, label=LABELS.get(v, v), color=color, linestyle=ls, linewidth=1.5)
        target_regret = info[p][2] - fstar[p]
        if target_regret > 0:
            ax.axhline(target_regret, color="0.6", linewidth=0.8, linestyle="-.")
            ax.text(0.5, target_regret, " target", fontsize=7, color="0.4", va="bottom")
        ax.set_yscale("log")
        ax.set_title(p + ("" if info[p][1] is not None else " (f* = best seen)"), fontsize=10)
        ax.set_xlabel("steps consumed, in full trainings", fontsize=8)
        ax.set_ylabel("mean best fully-trained value − f*", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", fontsize=8, ncol=4, frameon=False)
    fig.suptitle(f"Best fully-trained value so far vs budget consumed, mean over "
                 f"{meta.get('seeds')} seeds; tuneflow {meta.get('tuneflowRevision')}",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    fig.savefig(out, dpi=90)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()
    meta_path = args.results / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    lines = [f"## Early stopping at a fixed budget: {meta.get('date', '?')}", ""]
    for key in ("command", "tuneflowRevision", "machine", "python", "versions", "seeds",
                "seedRange", "budget", "problems"):
        if key in meta:
            lines.append(f"- {key}: {meta[key]}")
    lines.append("")
    q = analyse(args.results, meta, lines)
    print("\n".join(lines))
    if args.plot and q:
        try:
            plot(q, args.plot, meta)
            print(f"(plot written to {args.plot})", file=sys.stderr)
        except ImportError:
            print("(matplotlib not installed: no plot)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
