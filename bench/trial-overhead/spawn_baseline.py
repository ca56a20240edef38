#!/usr/bin/env python3
"""The floor under every per-trial figure: what starting `true` costs on this machine.

Measures, each as the median of --repeats runs of --count spawns:
  xargs      `xargs -n1 -P1 true` and `xargs -n1 -P{jobs} true`: fork + exec + wait from a
             small C program, one at a time and {jobs} at a time.
  python     `subprocess.run(["true"])` in a loop and from {jobs} threads: the same floor as
             seen from Python, which is what the Optuna peer pays per trial.
  hyperfine  `hyperfine -N --runs {count} true` (mean latency of one spawn), when hyperfine is
             on PATH (Debian: apt-get install hyperfine); skipped otherwise.

Writes one JSON document to --out: {name: {"seconds": wall for all spawns, "perSpawnMs",
"spawnsPerSecond", "cpuPerSpawnMs" (user + system time of everything involved, per spawn),
"parallel"}}.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def cpu_seconds() -> float:
    """User + system time of this process and of every child it has waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


# CPU seconds of the last timed() call, for the cases that report it.
last_cpu = 0.0


def timed(run) -> float:
    global last_cpu
    cpu = cpu_seconds()
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    last_cpu = cpu_seconds() - cpu
    return elapsed


def xargs(count: int, parallel: int) -> float:
    items = "\n".join(["x"] * count) + "\n"
    return timed(lambda: subprocess.run(
        ["xargs", "-n1", f"-P{parallel}", "true"], input=items.encode(), check=True))


def python_spawns(count: int, parallel: int) -> float:
    def spawn(_: int) -> None:
        subprocess.run(["true"], check=True)

    if parallel == 1:
        return timed(lambda: [spawn(i) for i in range(count)])
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        return timed(lambda: list(pool.map(spawn, range(count))))


def hyperfine(count: int) -> float | None:
    """Total seconds for `count` spawns, from hyperfine's mean; None without hyperfine."""
    if shutil.which("hyperfine") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        export = os.path.join(tmp, "hyperfine.json")
        subprocess.run(
            ["hyperfine", "-N", "--warmup", "20", "--runs", str(count), "--style", "none",
             "--export-json", export, "true"],
            # Its outlier warning goes to stderr; on a shared machine it is expected noise.
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        with open(export, encoding="utf-8") as f:
            return json.load(f)["results"][0]["mean"] * count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    cases = {
        "xargs -P1": (1, lambda: xargs(args.count, 1)),
        f"xargs -P{args.jobs}": (args.jobs, lambda: xargs(args.count, args.jobs)),
        "python subprocess.run, 1 thread": (1, lambda: python_spawns(args.count, 1)),
        f"python subprocess.run, {args.jobs} threads":
            (args.jobs, lambda: python_spawns(args.count, args.jobs)),
        "hyperfine -N true": (1, lambda: hyperfine(args.count)),
    }
    results = {}
    for name, (parallel, run) in cases.items():
        samples, cpu = [], []
        for _ in range(args.repeats):
            samples.append(run())
            cpu.append(last_cpu)
        if any(s is None for s in samples):
            print(f"baseline: {name}: skipped (hyperfine not installed)", file=sys.stderr)
            continue
        seconds = statistics.median(samples)
        results[name] = {
            "parallel": parallel,
            "count": args.count,
            "seconds": seconds,
            "samples": samples,
            "perSpawnMs": seconds / args.count * 1000,
            # hyperfine's own CPU time is not a spawn's; leave it out.
            "cpuPerSpawnMs": None if name.startswith("hyperfine")
            else statistics.median(cpu) / args.count * 1000,
            "spawnsPerSecond": args.count / seconds,
        }
        print(f"baseline: {name}: {seconds / args.count * 1000:.3f} ms per spawn "
              f"({args.count / seconds:.0f}/s)", file=sys.stderr)
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(results, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
