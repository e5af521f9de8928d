#!/usr/bin/python3
"""jigsaw-plot-train: a training run's curves from its log (`jigsaw-train --log metrics.jsonl`): the training
loss against step, the validation loss beside persistence's, and below them the learning rate and the
throughput (samples/s); runs resumed into the same log continue the same curves.

  jigsaw-plot-train metrics.jsonl --out train.png [--title TEXT]

Needs matplotlib (Debian python3-matplotlib, which scripts/setup installs).
"""
import argparse
import json
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("log", help="the JSON lines jigsaw-train --log wrote")
    p.add_argument("--out", required=True, help="the image to write (.png, .svg or .pdf)")
    p.add_argument("--title", help="the figure's title (default: the log's path)")
    a = p.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        sys.exit("jigsaw-plot-train: matplotlib is missing (%s): apt-get install python3-matplotlib" % e)
    steps, val = {}, {}
    with open(a.log) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"jigsaw-plot-train: {a.log}:{n}: not a JSON line ({e})")
            kind = r.get("kind") or ("validation" if "val_loss" in r else "step" if "loss" in r else "")
            if kind == "step":
                steps[r["step"]] = r  # a resumed run's repeated step: the later record
            elif kind == "validation":
                val[r["step"]] = r
    if not steps:
        sys.exit(f"jigsaw-plot-train: {a.log} holds no training steps")
    s = sorted(steps)
    fig, (top, mid, low) = plt.subplots(3, 1, figsize=(7.2, 8.0), sharex=True,
                                        gridspec_kw={"height_ratios": [3, 1, 1]})
    top.plot([k + 1 for k in s], [steps[k]["loss"] for k in s], lw=1, label="training loss")
    if val:
        v = sorted(val)
        top.plot(v, [val[k]["val_loss"] for k in v], "o-", label="validation loss")
        top.plot(v, [val[k]["persistence_loss"] for k in v], "s--", label="persistence (validation)")
    top.set_yscale("log")
    top.set_ylabel("loss (normalised, weighted MSE)")
    top.grid(alpha=0.3, which="both")
    top.legend(fontsize="small")
    mid.plot([k + 1 for k in s], [steps[k]["lr"] for k in s])
    mid.set_ylabel("learning rate")
    mid.grid(alpha=0.3)
    low.plot([k + 1 for k in s], [steps[k]["samples_per_s"] for k in s], lw=1)
    low.set_ylabel("samples/s")
    low.set_xlabel("step")
    low.grid(alpha=0.3)
    top.set_title(a.title or a.log, fontsize="medium")
    fig.tight_layout()
    fig.savefig(a.out, dpi=100)
    print(f"jigsaw-plot-train: {len(s)} steps, {len(val)} validations: {a.out}")


if __name__ == "__main__":
    main()
