#!/usr/bin/env python3
"""Plots the launch run of bench.py: Jobs created / existing and pods Running over time, and the
operator's CPU and memory.   plot.py RESULTS_DIR OUT.png"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    results, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(results, "launch-timeline.json")) as f:
        tl = json.load(f)
    with open(os.path.join(results, "launch.json")) as f:
        r = json.load(f)
    t = [x[0] for x in tl["timeline"]]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 7), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 2]})
    ax.step(t, [x[1] for x in tl["timeline"]], where="post", label="Jobs created (cumulative)")
    ax.step(t, [x[2] for x in tl["timeline"]], where="post", label="Jobs existing")
    ax.step(t, [x[3] for x in tl["timeline"]], where="post", label="pods Running")
    ax.axhline(160, color="grey", linestyle=":", linewidth=1)
    ax.text(0.99, 160, "kubeflow/katib#1328: at most 160 pods running (120 × 30 on a real cluster)",
            transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=8, color="grey")
    if r.get("t_all_jobs_s"):
        ax.axvline(r["t_all_jobs_s"], color="black", linestyle="--", linewidth=0.8)
        ax.text(r["t_all_jobs_s"], r["trials"] * 0.5,
                f" all {r['trials']} Jobs\n exist at {r['t_all_jobs_s']:.1f} s",
                fontsize=8)
    ax.set_ylabel("count")
    ax.set_title(f"tuneflow operator vs fake API server: {r['experiments']} Experiments × "
                 f"{r['parallel']} parallel trials ({r['lines']} log lines × "
                 f"{r['line_delay_ms']} ms per trial)", fontsize=10)
    ax.legend(loc="center right", fontsize=8)
    ax.grid(alpha=0.3)

    s = tl["operator_samples"]
    st = [x[0] for x in s]
    ax2.plot(st, [x[2] / 1024 for x in s], color="tab:red", label="operator RSS (MiB)")
    ax2.set_ylabel("RSS MiB", color="tab:red")
    ax2.set_xlabel("seconds since the first POST")
    ax2.grid(alpha=0.3)
    ax3 = ax2.twinx()
    cpu = []
    for a, b in zip(s, s[1:]):
        dt = b[0] - a[0]
        cpu.append(((a[0] + b[0]) / 2, 100 * (b[1] - a[1]) / dt if dt > 0 else 0))
    # smooth over ~1 s: /proc ticks are 10 ms
    w = 4
    sm = [(cpu[i][0], sum(c for _, c in cpu[max(0, i - w + 1):i + 1]) / len(cpu[max(0, i - w + 1):i + 1]))
          for i in range(len(cpu))]
    ax3.plot([x[0] for x in sm], [x[1] for x in sm], color="tab:blue", linewidth=0.8,
             label="operator CPU % (1 s mean)")
    ax3.set_ylabel("CPU % (100 = one core)", color="tab:blue")
    lines = ax2.get_legend_handles_labels()
    lines3 = ax3.get_legend_handles_labels()
    ax2.legend(lines[0] + lines3[0], lines[1] + lines3[1], loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
