"""jigsaw-shard beside the peer (../shared/peers/peer_shard_xarray.py: xarray + dask + zarr-python rechunk)
on the same WB2-layout source, in one run: throughput of uncompressed output, ratio, peak memory.

usage: .venv/bin/python bench/bench_shard.py [SRC] [--tiles 1x2x2]
SRC defaults to /tmp/bench/wb2.zarr, made by (0.25 deg, 69 channels, 8 time steps):
  /usr/bin/python3 ../shared/peers/make_wb2.py /tmp/bench/wb2.zarr 721 1440 8
"""
import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import zarr

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "peers"
VARS = ("geopotential,temperature,u_component_of_wind,v_component_of_wind,specific_humidity,2m_temperature,"
        "mean_sea_level_pressure,10m_u_component_of_wind,10m_v_component_of_wind")


def timed(cmd):
    """Runs cmd under /usr/bin/time; returns (wall seconds, peak RSS MB, stdout). Every run starts with no dirty
    pages: the previous writer's data reach the disk first (untimed), not during the next writer's run."""
    subprocess.run(["sync"], check=True)
    p = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M", *cmd], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed:\n{p.stderr}")
    m = re.search(r"TIME ([0-9.]+) ([0-9]+)", p.stderr)
    return float(m.group(1)), int(m.group(2)) / 1024, p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src", nargs="?", default="/tmp/bench/wb2.zarr")
    ap.add_argument("--tiles", default="1x2x2")
    a = ap.parse_args()
    src = Path(a.src)
    g = zarr.open_group(str(src), mode="r")
    times = g["time"].shape[0]
    nbytes = 69 * g["latitude"].shape[0] * g["longitude"].shape[0] * 4 * times
    subprocess.run(f"cat {src}/*/* > /dev/null", shell=True)  # warm the page cache for both
    out = Path("/tmp/bench/shard-out")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    plat, plon, pch = a.tiles.split("x")
    # Each writer starts as the first did, from an empty output directory: an output left in the page cache
    # makes the next writer take fresh memory for its own pages, which this VM pays for on first touch.
    # The last store is kept: bench_loader.py reads it.
    peer_s, peer_mb, _ = timed(["/usr/bin/python3", str(PEERS / "peer_shard_xarray.py"), str(src), str(out / "peer.zarr"),
                               plat, plon, pch])
    shutil.rmtree(out / "peer.zarr")
    end = {8: "2020-01-02T18", 4: "2020-01-01T18"}
    results = []
    runs = (("zarr2", times), ("zarr3", times // 2), ("zarr3", times))
    for n, (fmt, steps) in enumerate(runs):
        store = out / f"jigsaw-{fmt}-{steps}.zarr"
        args = [str(ROOT / "build/cli/jigsaw-shard"), "run", "--source", str(src), "--vars", VARS, "--start",
                "2020-01-01T00", "--end", end.get(steps, "2020-01-02T18"), "--tiles", a.tiles, "--format", fmt,
                "--codec", "blosc-lz4", "--out", str(store)]
        s, mb, stdout = timed(args)
        results.append((fmt, steps, s, mb, stdout.strip()))
        if n + 1 < len(runs):
            shutil.rmtree(store)
    print(f"source {src}: {times} time steps, 69 channels, {nbytes / 1e9:.2f} GB uncompressed; tiles {a.tiles}")
    print(f"{'writer':46s} {'seconds':>8s} {'GB/s':>6s} {'vs peer':>8s} {'peak RSS':>9s}")
    print(f"{'peer_shard_xarray.py (xarray+dask+zarr 2)':46s} {peer_s:8.2f} {nbytes / peer_s / 1e9:6.3f} {1.0:7.2f}x "
          f"{peer_mb:7.0f} MB")
    for fmt, steps, s, mb, stdout in results:
        b = nbytes * steps / times
        print(f"{'jigsaw-shard ' + fmt + f', {steps} steps':46s} {s:8.2f} {b / s / 1e9:6.3f} "
              f"{(b / s) / (nbytes / peer_s):7.2f}x {mb:7.0f} MB")
    print("\njigsaw phases (last lines of each run):")
    for *_, stdout in results:
        print("  " + stdout.splitlines()[-1])


if __name__ == "__main__":
    main()
