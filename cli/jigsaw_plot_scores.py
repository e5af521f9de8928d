#!/usr/bin/python3
"""jigsaw-plot-scores: RMSE and ACC against lead time from `jigsaw-score --json`, one panel per headline
channel (z500, t850, t2m, u10, msl where scored), the model beside persistence and climatology.

  jigsaw-plot-scores scores.json scores.png          (jigsaw-score --plot PNG runs this)

Needs matplotlib (Debian python3-matplotlib, which scripts/setup installs).
"""
import argparse
import json
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("json", help="scores from jigsaw-score --json")
    p.add_argument("out", help="the image to write (.png, .svg or .pdf)")
    a = p.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        sys.exit("jigsaw-plot-scores: matplotlib is missing (%s): apt-get install python3-matplotlib" % e)
    with open(a.json) as f:
        scores = json.load(f)
    names = scores.get("headline") or list(scores["channels"])[:5]
    if not names:
        sys.exit("jigsaw-plot-scores: %s holds no channels" % a.json)
    with_acc = any("acc" in scores["channels"][n] for n in names)
    rows = 2 if with_acc else 1
    fig, axes = plt.subplots(rows, len(names), figsize=(3.6 * len(names), 3.2 * rows), squeeze=False)
    for k, name in enumerate(names):
        c = scores["channels"][name]
        lead = c["lead_hours"]
        days = max(lead) >= 72
        x = [h / 24 for h in lead] if days else lead
        unit = "lead (days)" if days else "lead (hours)"
        ax = axes[0][k]
        ax.plot(x, c["rmse"], "o-", label="model")
        ax.plot(x, c["persistence_rmse"], "s--", label="persistence")
        if "climatology_rmse" in c:
            ax.plot(x, c["climatology_rmse"], ":", label="climatology")
        ax.set_title(name)
        ax.set_xlabel(unit)
        ax.set_ylabel("RMSE" if k == 0 else "")
        ax.grid(alpha=0.3)
        if with_acc:
            ax = axes[1][k]
            if "acc" in c:
                ax.plot(x, c["acc"], "o-", label="model")
                ax.plot(x, c["persistence_acc"], "s--", label="persistence")
            ax.set_xlabel(unit)
            ax.set_ylabel("ACC" if k == 0 else "")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    fig.suptitle("latitude-weighted scores (WeatherBench2 definitions)")
    fig.tight_layout()
    fig.savefig(a.out, dpi=100)


if __name__ == "__main__":
    main()
