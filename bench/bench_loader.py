"""One rank's tile per sample (tiles 1x2x2, rank 0): jigsaw's prefetch loader beside the shared/peers
loaders (the Jigsaw reference xarray isel, zarr-python on the tile-aligned store) and TensorStore, on the
same data in one run, with jigsaw's codec-only ceiling and read amplification.

usage: .venv/bin/python bench/bench_loader.py [--samples N]
Needs /tmp/bench/wb2.zarr (make_wb2.py), /tmp/bench/tiles.zarr (peer_shard_xarray.py) and the jigsaw-shard
store /tmp/bench/shard-out/jigsaw-zarr3-8.zarr (bench_shard.py), all 0.25 deg, 69 channels, 8 steps.
"""
import argparse
import json
import re
import subprocess
import time
from pathlib import Path

import tensorstore as ts

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "peers"
BENCH = Path("/tmp/bench")


def peer(mode, store, n):
    out = subprocess.run(["/usr/bin/python3", str(PEERS / "peer_loader.py"), mode, str(store), "1", "2", "2", "0", str(n)],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"([0-9.]+) samples/s, ([0-9.]+) GB/s", out)
    return float(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=64)
    a = ap.parse_args()
    jig_store = BENCH / "shard-out" / "jigsaw-zarr3-8.zarr"
    for s in (BENCH / "wb2.zarr", BENCH / "tiles.zarr", jig_store):
        subprocess.run(f"find {s} -type f -exec cat {{}} + > /dev/null", shell=True, check=True)
    rows = {}
    out = subprocess.run([str(ROOT / "build/cli/jigsaw-bench"), "loader", str(jig_store), "--rank", "0", "--lead-steps", "0",
                          "--batch-size", "1", "--max-batches", str(a.samples), "--json"], capture_output=True, text=True,
                         check=True).stdout
    j = json.loads(out)
    rows["jigsaw loader (prefetch 4)"] = (j["samples_per_s"], j["gb_per_s"])
    tile_gb = j["batch_bytes"] / 1e9
    # The codec-only ceiling: decoding the same bytes (rank 0's tiles) from memory; and, for comparison, every
    # rank's tiles (other channels compress differently, and decode at another speed).
    for rank, name in (("0", "jigsaw codec-only ceiling, rank 0's tiles (same bytes)"),
                       ("-1", "jigsaw codec-only ceiling, every rank's tiles")):
        ceil = json.loads(subprocess.run([str(ROOT / "build/cli/jigsaw-bench"), "--repeats", "9", "read", str(jig_store),
                                          "--array", "data", "--rank", rank, "--ceiling", "--json"],
                                         capture_output=True, text=True, check=True).stdout)
        rows[name] = (ceil["ceiling_gb_per_s"] / tile_gb, ceil["ceiling_gb_per_s"])
    rows["peer_loader.py zarr (zarr-python 2, tile-aligned)"] = peer("zarr", BENCH / "tiles.zarr", a.samples)
    rows["peer_loader.py ref (xarray isel on WB2 store)"] = peer("ref", BENCH / "wb2.zarr", 4)
    t = ts.open({"driver": "zarr", "kvstore": {"driver": "file", "path": str(BENCH / "tiles.zarr" / "data")}}).result()
    T, C, H, W = t.shape
    box = lambda i: t[i % T, : -(-C // 2), : H, : -(-W // 2)]  # noqa: E731  rank 0's tile
    t0 = time.perf_counter()
    for i in range(a.samples):
        box(i).read().result()
    dt = time.perf_counter() - t0
    rows["TensorStore, one sample after another"] = (a.samples / dt, a.samples * tile_gb / dt)
    t0 = time.perf_counter()
    futures = [box(i).read() for i in range(a.samples)]
    for f in futures:
        f.result()
    dt = time.perf_counter() - t0
    rows["TensorStore, all samples concurrently"] = (a.samples / dt, a.samples * tile_gb / dt)
    base = rows["jigsaw loader (prefetch 4)"][1]
    print(f"rank 0 of 1x2x2, tile {tile_gb * 1e3:.0f} MB, {a.samples} samples; read amplification {j['read_amplification']:.2f}; "
          f"consumer waited {j['consumer_wait_seconds']:.2f} s of {j['seconds']:.2f} s")
    print(f"{'reader':52s} {'samples/s':>10s} {'GB/s':>7s} {'jigsaw is':>10s}")
    for name, (sps, gbs) in rows.items():
        print(f"{name:52s} {sps:10.2f} {gbs:7.3f} {base / gbs:9.2f}x")


if __name__ == "__main__":
    main()
