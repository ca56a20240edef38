#!/usr/bin/env python3
"""Run one sampler variant over problems x seeds at a fixed step budget and append one JSON line
per run to --out. Runs already in --out (same variant, problem, seed and budget) are skipped,
so an interrupted run.sh resumes where it stopped.

Budget accounting (the same for every variant): the budget is BUDGET full trainings, i.e.
BUDGET x max_step steps. Trials run one at a time; each step of each trial costs one step of
budget. A trial the rule prunes at step s consumed s steps. A configuration counts only when it
was trained to max_step; the trial that is running when the budget runs out stops there and
does not count. Best fully-trained value = the lowest value at max_step among counted trials.
A trial the rule prunes on its max_step observation (ASHA and Hyperband have a rung there when
max_step = min_resource * 3^k, as for max_step 27) was trained to max_step: it counts, with
"pruned": true; analyze.py also gives the strict reading, which leaves such trials out.

Variants:
  tuneflow-tpe, tuneflow-tpe-medianstop, tuneflow-tpe-asha, tuneflow-tpe-hyperband
      `tuneflow serve` (--tuneflow BIN, a fresh store in --scratch), one client-driven
      experiment per (problem, seed): algorithmName tpe, random_state = seed,
      parallelTrialCount 1, no maxTrialCount, objective minimize `value` with metricStrategies
      latest (the objective is the value at the last step), and spec.earlyStopping:
        medianstop  its defaults (min_trials_required 3, start_step 4)
        asha        min_resource 1, reduction_factor 3
        hyperband   min_resource 1, max_resource = the problem's max_step, reduction_factor 3
      (none for tuneflow-tpe). Loop: POST suggestions {"count": 1}; for step 1..max_step POST
      observations {"step": s, "metrics": {"value": v}} and stop on {"decision": "prune"};
      at max_step POST complete {}.
  optuna-tpe-hyperband
      TPESampler(seed=seed) + HyperbandPruner(min_resource=1, max_resource=max_step,
      reduction_factor=3); create_study(study_name=f"{problem}-{seed}") (the name and the trial
      number pick each trial's bracket); trial.report(v, step), trial.should_prune() each step.
  optuna-tpe, optuna-random
      TPESampler(seed=seed) / RandomSampler(seed=seed) with NopPruner (values still reported).
Optuna runs in memory with ask/tell: study.ask(), one suggest_* per parameter
(bench/tpe/problems.suggest), study.tell(trial, value) or study.tell(trial,
state=TrialState.PRUNED).

Output line: {"variant", "problem", "seed", "budget" (full trainings), "maxStep",
"budgetSteps", "trials": [{"steps": s, "final": value at max_step (null when the trial
stopped before it), "pruned": bool, "last": last value, "params": {...}}, ...], "seconds":
wall time of the run, "check": what the server says (tuneflow)}.

Usage: budget.py --variant NAME --out FILE.jsonl [--problems all|a,b] [--seeds 10]
                 [--budget 40] [--tuneflow BIN --scratch DIR]
Seeds are SEED_BASE+1 .. SEED_BASE+SEEDS (SEED_BASE from the environment, default 0).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here))
sys.path.insert(0, str(here.parent / "tpe"))
import mfproblems as M  # noqa: E402
from tuneflow_rest import finished_runs, seeds, start  # noqa: E402

RULES = {
    "tuneflow-tpe": None,
    "tuneflow-tpe-medianstop": ("medianstop", {}),
    "tuneflow-tpe-asha": ("asha", {"min_resource": "1", "reduction_factor": "3"}),
    "tuneflow-tpe-hyperband": ("hyperband", {"min_resource": "1", "max_resource": None,
                                             "reduction_factor": "3"}),
}
SHORT = {"tuneflow-tpe": "none", "tuneflow-tpe-medianstop": "median",
         "tuneflow-tpe-asha": "asha", "tuneflow-tpe-hyperband": "hb"}
OPTUNA = ("optuna-tpe-hyperband", "optuna-tpe", "optuna-random")
VARIANTS = list(RULES) + list(OPTUNA)


class Ledger:
    """Steps consumed and the trials' outcomes, with the budget rule."""

    def __init__(self, budget_steps: int, max_step: int):
        self.budget = budget_steps
        self.max_step = max_step
        self.used = 0
        self.trials: list[dict] = []

    def left(self) -> bool:
        return self.used < self.budget

    def record(self, params, steps, last, pruned):
        # Trained to max_step, even if the rule said prune on that last observation (ASHA and
        # Hyperband have a rung at max_step when it is min_resource * eta^k): the training
        # is done and its value known. analyze.py also reports the strict reading.
        final = last if steps == self.max_step else None
        self.trials.append({"steps": steps, "final": final, "pruned": pruned, "last": last,
                            "params": params})


def experiment_doc(name: str, variant: str, seed: int, problem: M.MFProblem) -> dict:
    spec = {
        "objective": {"type": "minimize", "objectiveMetricName": "value",
                      "metricStrategies": [{"name": "value", "value": "latest"}]},
        "algorithm": {"algorithmName": "tpe",
                      "algorithmSettings": [{"name": "random_state", "value": str(seed)}]},
        "parallelTrialCount": 1,
        "parameters": M.tuneflow_parameters(problem),
    }
    rule = RULES[variant]
    if rule is not None:
        rule_name, settings = rule
        values = {k: (str(problem.max_step) if v is None else v) for k, v in settings.items()}
        spec["earlyStopping"] = {"algorithmName": rule_name, "algorithmSettings": [
            {"name": k, "value": v} for k, v in values.items()]}
    return {"apiVersion": "tuneflow.dev/v1alpha1", "kind": "Experiment",
            "metadata": {"name": name}, "spec": spec}


def run_tuneflow(client, variant, problem: M.MFProblem, seed: int, budget_steps: int):
    name = f"{problem.short}-{SHORT[variant]}-s{seed}"
    client.create(experiment_doc(name, variant, seed, problem))
    base = f"/api/v1/experiments/{name}"
    ledger = Ledger(budget_steps, problem.max_step)
    prunes = completes = 0
    while ledger.left():
        answer = client.ask(name)
        if not answer["trials"]:
            raise RuntimeError(f"{name}: no suggestion: {answer}")
        trial = answer["trials"][0]
        params = trial["parameters"]
        run = problem.start(params)
        steps, last, pruned = 0, None, False
        for step in range(1, problem.max_step + 1):
            if not ledger.left():
                break
            last = run.step()
            ledger.used += 1
            steps = step
            decision = client.call("POST", f"{base}/trials/{trial['name']}/observations",
                                   {"step": step, "metrics": {"value": last}})["decision"]
            if decision == "prune":
                pruned = True
                prunes += 1
                break
        if steps == problem.max_step and not pruned:
            done = client.call("POST", f"{base}/trials/{trial['name']}/complete", {})
            if done["state"] != "Succeeded" or abs(done["objective"] - last) > 1e-12:
                raise RuntimeError(f"{name}: completion of {trial['name']} gave {done}")
            completes += 1
        ledger.record(params, steps, last, pruned)
    exp = client.experiment(name)
    counts = exp["trials"]
    if counts["earlyStopped"] != prunes or counts["succeeded"] != completes:
        raise RuntimeError(f"{name}: the server counts {counts}, the client {prunes} pruned, "
                           f"{completes} completed")
    # The server's best is the best Succeeded trial; a trial pruned at max_step is
    # EarlyStopped.
    finals = [t["final"] for t in ledger.trials if t["final"] is not None and not t["pruned"]]
    best = exp.get("best") or {}
    if finals and abs(best.get("objective", math.nan) - min(finals)) > 1e-12:
        raise RuntimeError(f"{name}: server best {best} != client best {min(finals)}")
    return ledger, {"experiment": name, "trials": counts,
                    "bestObjective": best.get("objective")}


def run_optuna(variant, problem: M.MFProblem, seed: int, budget_steps: int):
    import optuna
    from optuna.trial import TrialState
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if variant == "optuna-random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
    prune = variant == "optuna-tpe-hyperband"
    pruner = (optuna.pruners.HyperbandPruner(min_resource=1, max_resource=problem.max_step,
                                              reduction_factor=3)
              if prune else optuna.pruners.NopPruner())
    study = optuna.create_study(study_name=f"{problem.name}-{seed}", direction="minimize",
                                sampler=sampler, pruner=pruner)
    ledger = Ledger(budget_steps, problem.max_step)
    while ledger.left():
        trial = study.ask()
        params = M.suggest(trial, problem)
        run = problem.start(params)
        steps, last, pruned = 0, None, False
        for step in range(1, problem.max_step + 1):
            if not ledger.left():
                break
            last = run.step()
            ledger.used += 1
            steps = step
            trial.report(last, step)
            if prune and trial.should_prune():
                pruned = True
                study.tell(trial, state=TrialState.PRUNED)
                break
        if steps == problem.max_step and not pruned:
            study.tell(trial, last)
        elif not pruned:
            study.tell(trial, state=TrialState.FAIL)   # cut off by the budget
        ledger.record(params, steps, last, pruned)
    states = {}
    for t in study.get_trials(deepcopy=False):
        states[t.state.name] = states.get(t.state.name, 0) + 1
    return ledger, {"trials": states}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", required=True, choices=VARIANTS)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--problems", default="all")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=40, help="in full trainings")
    ap.add_argument("--tuneflow")
    ap.add_argument("--scratch", type=Path)
    args = ap.parse_args()

    done = finished_runs(args.out, variant=args.variant, budget=args.budget)
    todo = [(p, s) for p in M.select(args.problems) for s in seeds(args.seeds)
            if (p.name, s) not in done]
    if not todo:
        return 0

    server = client = None
    if args.variant in RULES:
        if not args.tuneflow or not args.scratch:
            ap.error("tuneflow variants need --tuneflow and --scratch")
        server, client = start(args.tuneflow, args.scratch,
                               f"{args.variant}-{time.strftime('%H%M%S')}")

    started = time.monotonic()
    try:
        with args.out.open("a", encoding="utf-8") as out:
            for problem, seed in todo:
                budget_steps = args.budget * problem.max_step
                t0 = time.perf_counter()
                if client is not None:
                    ledger, check = run_tuneflow(client, args.variant, problem, seed,
                                                 budget_steps)
                else:
                    ledger, check = run_optuna(args.variant, problem, seed, budget_steps)
                seconds = time.perf_counter() - t0
                if ledger.used != budget_steps:
                    raise RuntimeError(f"{args.variant} {problem.name} {seed}: used "
                                       f"{ledger.used} of {budget_steps} steps")
                out.write(json.dumps({
                    "variant": args.variant, "problem": problem.name, "seed": seed,
                    "budget": args.budget, "maxStep": problem.max_step,
                    "budgetSteps": budget_steps, "trials": ledger.trials,
                    "seconds": seconds, "check": check}) + "\n")
                out.flush()
                n_full = sum(t["final"] is not None for t in ledger.trials)
                best = min((t["final"] for t in ledger.trials if t["final"] is not None),
                           default=math.nan)
                print(f"[early-stopping] {args.variant} {problem.name} seed {seed}: "
                      f"{len(ledger.trials)} trials, {n_full} fully trained, best {best:.4f} "
                      f"({seconds:.1f} s)", file=sys.stderr)
    finally:
        if client is not None:
            client.close()
        if server is not None:
            server.stop()
    print(f"[early-stopping] {args.variant}: {len(todo)} runs in "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
