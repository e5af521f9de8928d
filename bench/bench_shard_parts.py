"""jigsaw-shard split into N parts run one after another (as a job array's tasks would run side by side on N
nodes) beside the whole run, in one run: each part's time against the whole run's divided by N, and the
finish step's cost; then what that means for WeatherBench2's 0.25-degree ERA5 on many nodes.

usage: .venv/bin/python bench/bench_shard_parts.py [SRC] [--parts 4] [--repeats 3] [--nodes 64]
SRC defaults to /tmp/bench/wb2.zarr, made by (0.25 deg, 69 channels, 8 time steps):
  /usr/bin/python3 ../shared/peers/make_wb2.py /tmp/bench/wb2.zarr 721 1440 8
"""
import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARD = str(ROOT / "build" / "cli" / "jigsaw-shard")
VARS = ("geopotential,temperature,u_component_of_wind,v_component_of_wind,specific_humidity,2m_temperature,"
        "mean_sea_level_pressure,10m_u_component_of_wind,10m_v_component_of_wind")


def timed(cmd):
    subprocess.run(["sync"], check=True)  # the previous writer's pages reach the disk first, untimed
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src", nargs="?", default="/tmp/bench/wb2.zarr")
    ap.add_argument("--parts", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--tiles", default="1x2x2")
    a = ap.parse_args()
    src = Path(a.src)
    subprocess.run(f"cat {src}/*/* > /dev/null", shell=True)  # a warm page cache for every run alike
    out = Path("/tmp/bench/parts-out")
    args = [SHARD, "run", "--source", str(src), "--vars", VARS, "--tiles", a.tiles]
    whole, parts, finish = [], [[] for _ in range(a.parts)], []
    for r in range(a.repeats):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        whole.append(timed(args + ["--out", str(out / "whole.zarr")]))
        for i in range(a.parts):
            parts[i].append(timed(args + ["--part", f"{i + 1}/{a.parts}", "--no-finish", "--out",
                                          str(out / "parts.zarr")]))
        finish.append(timed([SHARD, "finish", str(out / "parts.zarr")]))
        if subprocess.run([SHARD, "verify", str(out / "parts.zarr")], capture_output=True).returncode != 0:
            sys.exit("the parted store does not verify")
    nbytes = sum(p.stat().st_size for p in (out / "whole.zarr" / "data").rglob("*") if p.is_file())
    info = subprocess.run([SHARD, "plan", "--source", str(src), "--vars", VARS, "--tiles", a.tiles, "--json"],
                          capture_output=True, text=True, check=True).stdout
    plan = json.loads(info)
    raw = plan["total_bytes_uncompressed"]
    w = statistics.median(whole)
    share = w / a.parts
    print(f"source {src}: {plan['num_times']} times, {raw / 1e9:.2f} GB uncompressed "
          f"({nbytes / 1e9:.2f} GB stored); medians of {a.repeats}")
    print(f"whole run: {w:.2f} s = {raw / w / 1e9:.3f} GB/s; whole / {a.parts} = {share:.2f} s")
    print("| part | seconds | vs whole / N |")
    print("|---|---|---|")
    worst = 0
    for i, ts in enumerate(parts):
        m = statistics.median(ts)
        worst = max(worst, m)
        print(f"| {i + 1}/{a.parts} | {m:.2f} | {m / share:.2f}x |")
    f = statistics.median(finish)
    print(f"| finish | {f:.3f} | {f / w:.1%} of the whole run |")
    span = worst + f
    print(f"parts side by side (the slowest part + finish): {span:.2f} s = {w / span:.2f}x faster than one process "
          f"(ideal {a.parts}x)")
    # WeatherBench2's 0.25-degree ERA5, 1959 on, 6-hourly, 69 channels: 93,000 states of 287 MB.
    total = 93_000 * 287e6
    rate_here = raw / w
    print(f"projection for {total / 1e12:.1f} TB on {a.nodes} nodes:")
    print(f"  nodes like this 2-core machine ({rate_here / 1e9:.2f} GB/s each, CPU-bound): "
          f"{total / (a.nodes * rate_here * (w / a.parts / worst)) / 3600:.1f} h")
    for cores_rate, bw in ((rate_here * 32, 2.0e9), (rate_here * 32, 1.0e9)):
        node = min(cores_rate, bw)
        print(f"  64-core nodes (CPU {cores_rate / 1e9:.1f} GB/s, assuming this machine's rate per 2 cores) with "
              f"{bw / 1e9:.0f} GB/s read and write each: {total / (a.nodes * node) / 3600:.2f} h")


if __name__ == "__main__":
    main()
