#!/bin/sh
# The Branin function, a classic optimisation test problem, as a tuneflow objective.
# Usage: branin.sh X Y   (x in [-5, 10], y in [0, 15])
# Prints "loss=VALUE" in Katib's metrics format; tuneflow reads it from stdout.
# Global minimum 0.397887 at (-pi, 12.275), (pi, 2.275) and (9.42478, 2.475).
awk -v x="$1" -v y="$2" 'BEGIN {
    pi = atan2(0, -1)
    a = 1; b = 5.1 / (4 * pi * pi); c = 5 / pi; r = 6; s = 10; t = 1 / (8 * pi)
    loss = a * (y - b * x * x + c * x - r) ^ 2 + s * (1 - t) * cos(x) + s
    printf "loss=%.6f\n", loss
}'
