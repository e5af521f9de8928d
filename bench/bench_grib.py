"""GRIB sources: jigsaw-shard beside the peer (cfgrib + xarray + zarr-python: open each level type, load,
stack into [time, channel, lat, lon], write tile chunks) on the same GRIB 2 file, in one run; and the ceiling
of jigsaw's "reading sources" stage: ecCodes (Debian's 2.28, the library jigsaw links) decoding every message
on one thread (`jigsaw-bench grib`; jigsaw decodes one message at a time, ecCodes not being safe on TBB
threads), with the PyPI ecCodes 2.50 wheel's Python decode beside it. Also the index: a first open scans the
file, later opens read the cached index.

usage: .venv/bin/python bench/bench_grib.py [--grid 361x720] [--times 4] [--repeats 3]
The source (69 channels: z t u v q on 13 levels, 2t msl 10u 10v) is written by the ecCodes Python binding
into /tmp/bench/grib/era5.grib, 16-bit simple packing as ERA5 GRIB files from the CDS come.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LEVELS = [50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000]
PRESSURE = ["z", "t", "u", "v", "q"]
SURFACE = [("2t", "heightAboveGround", 2), ("msl", "meanSea", 0), ("10u", "heightAboveGround", 10),
           ("10v", "heightAboveGround", 10)]
PEER = r'''
import sys, numpy as np, xarray as xr
src, out, lat_parts, lon_parts, ch_parts = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
kw = {"indexpath": ""}
pl = xr.open_dataset(src, engine="cfgrib", backend_kwargs={**kw, "filter_by_keys": {"typeOfLevel": "isobaricInhPa"}})
planes = []
for v in ["z", "t", "u", "v", "q"]:
    a = pl[v].sortby("isobaricInhPa", ascending=False).values  # [time, level, lat, lon]
    planes += [a[:, i] for i in range(a.shape[1])]
for v, tl in [("t2m", "heightAboveGround"), ("msl", "meanSea"), ("u10", "heightAboveGround"), ("v10", "heightAboveGround")]:
    ds = xr.open_dataset(src, engine="cfgrib", backend_kwargs={**kw, "filter_by_keys": {"typeOfLevel": tl, "cfVarName": v}})
    planes.append(ds[v].values)
data = np.stack(planes, axis=1).astype(np.float32)
T, C, H, W = data.shape
chunks = (1, -(-C // ch_parts), -(-H // lat_parts), -(-W // lon_parts))
out_ds = xr.Dataset({"data": (("time", "channel", "latitude", "longitude"), data)})
out_ds.to_zarr(out, zarr_format=3, encoding={"data": {"chunks": chunks}})
print(data.shape)
'''


def write_source(path, nlat, nlon, times):
    """ERA5-like fields via the ecCodes Python binding (a writer independent of jigsaw)."""
    import eccodes
    rng = np.random.default_rng(0)
    lat = np.linspace(90, -90, nlat)[:, None]
    lon = np.linspace(0, 360, nlon, endpoint=False)[None, :]
    base = np.cos(np.deg2rad(lat)) * np.sin(np.deg2rad(2 * lon))
    with open(path, "wb") as f:
        for t in range(times):
            fields = [(v, "isobaricInhPa", l) for v in PRESSURE for l in LEVELS] + SURFACE
            for short, level_type, level in fields:
                h = eccodes.codes_grib_new_from_samples("regular_ll_pl_grib2")
                for k, v in [("Ni", nlon), ("Nj", nlat), ("latitudeOfFirstGridPointInDegrees", 90.0),
                             ("latitudeOfLastGridPointInDegrees", -90.0), ("longitudeOfFirstGridPointInDegrees", 0.0),
                             ("longitudeOfLastGridPointInDegrees", 360.0 - 360.0 / nlon),
                             ("iDirectionIncrementInDegrees", 360.0 / nlon),
                             ("jDirectionIncrementInDegrees", 180.0 / (nlat - 1))]:
                    eccodes.codes_set(h, k, v)
                eccodes.codes_set(h, "shortName", short)
                eccodes.codes_set(h, "typeOfLevel", level_type)
                eccodes.codes_set(h, "level", level)
                eccodes.codes_set(h, "dataDate", 20200101)
                eccodes.codes_set(h, "dataTime", 600 * t)
                eccodes.codes_set(h, "bitsPerValue", 16)
                values = 250 + 30 * base * np.cos(0.3 * t + level / 300) + rng.standard_normal((nlat, nlon))
                eccodes.codes_set_values(h, values.ravel())
                eccodes.codes_write(h, f)
                eccodes.codes_release(h)


def decode_all(path):
    """Seconds for ecCodes (the Python binding's library) to decode every message, and the bytes decoded."""
    import eccodes
    t0 = time.perf_counter()
    n = 0
    with open(path, "rb") as f:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            n += eccodes.codes_get_values(h).astype(np.float32).nbytes
            eccodes.codes_release(h)
    return time.perf_counter() - t0, n


def timed(cmd, env=None):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed:\n{p.stderr}")
    return time.perf_counter() - t0, p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", default="361x720")
    ap.add_argument("--times", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    nlat, nlon = map(int, a.grid.split("x"))
    work = Path("/tmp/bench/grib")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    src = work / "era5.grib"
    write_source(src, nlat, nlon, a.times)
    subprocess.run(["cat", str(src)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    nbytes = 69 * nlat * nlon * 4 * a.times
    cache = work / "cache"
    env = {"JIGSAW_CACHE_DIR": str(cache)}
    end = f"2020-01-01T{6 * (a.times - 1):02d}"
    args = ["run", "--source", str(src), "--vars", "z,t,u,v,q,2t,msl,10u,10v", "--start", "2020-01-01T00", "--end", end,
            "--tiles", "1x2x2", "--format", "zarr3", "--codec", "blosc-lz4"]
    rows = {"peer": [], "jigsaw": [], "jigsaw_first": [], "ceiling": [], "python_decode": [], "read_stage": []}
    for r in range(a.repeats):
        shutil.rmtree(cache, ignore_errors=True)
        for name in ("first", "cached"):
            out = work / f"jigsaw-{name}.zarr"
            shutil.rmtree(out, ignore_errors=True)
            s, stdout = timed([str(ROOT / "build/cli/jigsaw-shard"), *args, "--out", str(out)], env)
            rows["jigsaw_first" if name == "first" else "jigsaw"].append(s)
            if name == "cached":
                rows["read_stage"].append(float(re.search(r"reading sources ([0-9.e+-]+) s", stdout).group(1)))
        shutil.rmtree(work / "peer.zarr", ignore_errors=True)
        s, _ = timed([sys.executable, "-c", PEER, str(src), str(work / "peer.zarr"), "1", "2", "2"])
        rows["peer"].append(s)
        s, n = decode_all(src)
        rows["python_decode"].append(s)
        _, out = timed([str(ROOT / "build/cli/jigsaw-bench"), "grib", str(src), "--json", "--repeats", "1"])
        rows["ceiling"].append(json.loads(out)["seconds"])
    med = {k: statistics.median(v) for k, v in rows.items()}
    gb = nbytes / 1e9
    print(f"source {src}: {src.stat().st_size / 1e6:.0f} MB GRIB 2 (16-bit packing), {69 * a.times} messages of "
          f"{nlat}x{nlon}, {gb:.3f} GB as float32; medians of {a.repeats}; {os.cpu_count()} cores")
    print(f"{'':52s} {'seconds':>8s} {'GB/s':>7s} {'jigsaw is':>10s}")
    print(f"{'peer: cfgrib + xarray + zarr-python 3 (load, stack, write)':52s} {med['peer']:8.2f} "
          f"{gb / med['peer']:7.3f} {med['peer'] / med['jigsaw']:9.2f}x")
    print(f"{'jigsaw-shard run, index cached':52s} {med['jigsaw']:8.2f} {gb / med['jigsaw']:7.3f} {1.0:9.2f}x")
    print(f"{'jigsaw-shard run, first open (scans the file)':52s} {med['jigsaw_first']:8.2f} "
          f"{gb / med['jigsaw_first']:7.3f}")
    print(f"{'ceiling: ecCodes 2.28 decodes every message, 1 thread':52s} {med['ceiling']:8.2f} "
          f"{gb / med['ceiling']:7.3f}")
    print(f"{'ecCodes 2.50 wheel from Python (codes_get_values)':52s} {med['python_decode']:8.2f} "
          f"{gb / med['python_decode']:7.3f}")
    print(f"{'jigsaw reading-sources stage (read, decode, orient)':52s} {med['read_stage']:8.2f} "
          f"{gb / med['read_stage']:7.3f}   = {med['ceiling'] / med['read_stage']:.2f} of the ceiling")
    print("runs:", {k: [round(x, 2) for x in v] for k, v in rows.items()})


if __name__ == "__main__":
    main()
