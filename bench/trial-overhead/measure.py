#!/usr/bin/env python3
"""Run one command and record its wall time and the CPU time of its whole process tree.

Usage: measure.py OUT.json [--stdout FILE] [--stderr FILE] -- COMMAND [ARG...]

Writes {"exitCode", "wallSeconds", "cpuSeconds"} to OUT.json and exits 0 whatever the
command's status (the caller reads exitCode). cpuSeconds is user + system time of the command
and of every descendant it waited for (every trial process), from getrusage(RUSAGE_CHILDREN):
on a machine shared with other work it moves much less than the wall time does.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def main() -> int:
    args = sys.argv[1:]
    if "--" not in args or args.index("--") < 1:
        print(__doc__, file=sys.stderr)
        return 2
    split = args.index("--")
    options, command = args[:split], args[split + 1:]
    out, redirects = options[0], dict(zip(options[1::2], options[2::2]))

    stdout = open(redirects["--stdout"], "wb") if "--stdout" in redirects else None
    stderr = open(redirects["--stderr"], "wb") if "--stderr" in redirects else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    status = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    with open(out, "w", encoding="utf-8") as f:
        json.dump({"exitCode": status.returncode, "wallSeconds": wall, "cpuSeconds": cpu}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
