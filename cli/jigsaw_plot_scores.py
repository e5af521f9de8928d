#!/usr/bin/python3
"""jigsaw-plot-scores: RMSE and ACC against lead time from `jigsaw-score --json`: a column per scored
channel, two rows (RMSE, ACC) per region, every forecast beside its own persistence and the climatology;
units on the y-axes, the forecast's leads on the x-axes, one legend for the figure, and a title naming
the forecasts and their checkpoint steps.

  jigsaw-plot-scores scores.json scores.png          (jigsaw-score --plot PNG runs this)

Needs matplotlib (Debian python3-matplotlib, which scripts/setup installs).
"""
import argparse
import json
import re
import sys
import textwrap

# Units of WeatherBench2's variables (ERA5's), by name without the pressure level.
UNITS = {
    "geopotential": "m² s⁻²", "temperature": "K", "2m_temperature": "K", "skin_temperature": "K",
    "sea_surface_temperature": "K", "u_component_of_wind": "m s⁻¹", "v_component_of_wind": "m s⁻¹",
    "10m_u_component_of_wind": "m s⁻¹", "10m_v_component_of_wind": "m s⁻¹", "specific_humidity": "kg kg⁻¹",
    "relative_humidity": "%", "vertical_velocity": "Pa s⁻¹", "mean_sea_level_pressure": "Pa",
    "surface_pressure": "Pa", "total_precipitation": "m", "total_column_water_vapour": "kg m⁻²",
}


def units(channel):
    return UNITS.get(re.sub(r"_\d+$", "", channel), "")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("json", help="scores from jigsaw-score --json-out")
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
    forecasts = scores.get("forecasts") or []
    if not forecasts:
        sys.exit("jigsaw-plot-scores: %s holds no forecasts" % a.json)
    first = forecasts[0]
    regions = scores.get("regions") or list(first["regions"])  # in the order scored
    names = scores.get("channel_names") or list(first["regions"][regions[0]]["channels"])
    if not names:
        sys.exit("jigsaw-plot-scores: %s holds no channels" % a.json)
    with_acc = "acc" in first["regions"][regions[0]]["channels"][names[0]]
    per_region = 2 if with_acc else 1
    rows = per_region * len(regions)
    # 3.6 x 3.2 inches a panel, and 0.8 inch more for the title above and the legend below.
    height = 3.2 * rows + 0.8
    fig, axes = plt.subplots(rows, len(names), figsize=(3.6 * len(names), height), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lead = first["regions"][regions[0]]["channels"][names[0]]["lead_hours"]
    days = max(lead) >= 72
    x = [h / 24 for h in lead] if days else lead
    ticks = x if len(x) <= 10 else x[:: -(-len(x) // 10)]
    for r, region in enumerate(regions):
        for k, name in enumerate(names):
            for row in range(per_region):
                ax = axes[r * per_region + row][k]
                metric = "rmse" if row == 0 else "acc"
                for n, fc in enumerate(forecasts):
                    c = fc["regions"][region]["channels"][name]
                    colour = colours[n % len(colours)]
                    ax.plot(x, c[metric], "o-", color=colour, label=fc["label"])
                    ax.plot(x, c["persistence_" + metric], "s--", color=colour, alpha=0.5,
                            label=f"persistence ({fc['label']})" if len(forecasts) > 1 else "persistence")
                if row == 0 and "climatology_rmse" in first["regions"][region]["channels"][name]:
                    ax.plot(x, first["regions"][region]["channels"][name]["climatology_rmse"], ":", color="black",
                            label="climatology")
                ax.set_xticks(ticks)
                ax.set_xlabel("lead (days)" if days else "lead (hours)")
                ax.set_ylabel(f"RMSE ({units(name)})" if row == 0 and units(name) else ("RMSE" if row == 0 else "ACC"))
                ax.set_title(f"{name}, {region}", fontsize="medium")
                ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize="small")
    steps = ", ".join(f"{fc['label']} (checkpoint step {fc['checkpoint_step']})" for fc in forecasts)
    title = f"{steps}: latitude-weighted scores (WeatherBench2 definitions)"
    fig.suptitle("\n".join(textwrap.wrap(title, width=45 * len(names))[:3]), fontsize="medium")
    fig.tight_layout(rect=(0, 0.45 / height, 1, 1 - 0.35 / height))
    fig.savefig(a.out, dpi=100)


if __name__ == "__main__":
    main()
