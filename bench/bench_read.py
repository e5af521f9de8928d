"""Reading every chunk of a tile-aligned store: jigsaw beside zarr-python 3, TensorStore and the
shared/peers zarr loader, in one run on the same data, with jigsaw's codec-only ceiling.

usage: .venv/bin/python bench/bench_read.py [STORE] [--repeats N]
STORE defaults to /tmp/bench/tiles.zarr, made by (0.25 deg, 69 channels, 8 steps, tiles 1x2x2):
  /usr/bin/python3 ../shared/peers/make_wb2.py /tmp/bench/wb2.zarr 721 1440 8
  /usr/bin/python3 ../shared/peers/peer_shard_xarray.py /tmp/bench/wb2.zarr /tmp/bench/tiles.zarr 1 2 2
"""
import argparse
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import tensorstore as ts
import zarr

from timing import median_seconds

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "peers"


def chunk_boxes(shape, chunks):
    grids = [range(0, s, c) for s, c in zip(shape, chunks)]
    for origin in itertools.product(*grids):
        yield tuple(slice(o, min(o + c, s)) for o, c, s in zip(origin, chunks, shape))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("store", nargs="?", default="/tmp/bench/tiles.zarr")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    store = Path(a.store)
    if not (store / "data").exists():
        sys.exit(f"{store}/data not found; make it as the docstring says")
    # Warm the page cache so that every contender reads from memory alike.
    subprocess.run(f"cat {store}/data/* > /dev/null", shell=True, check=True)
    z = zarr.open_array(str(store / "data"), mode="r")
    nbytes = z.nbytes
    shape, chunks = z.shape, z.chunks
    print(f"store {store}: data {shape} float32 chunks {chunks}, {nbytes / 1e9:.2f} GB decoded, "
          f"{len(list(chunk_boxes(shape, chunks)))} chunks, {os.cpu_count()} cores")
    results = {}

    for mode, flags in (("reused output buffer, as a loader", []), ("fresh output buffer, as the peers", ["--fresh-output"])):
        out = subprocess.run([str(ROOT / "build/cli/jigsaw-bench"), "read", str(store), "--array", "data", "--ceiling",
                              "--json", "--repeats", str(a.repeats), *flags], check=True, capture_output=True,
                             text=True).stdout
        j = json.loads(out)
        results[f"jigsaw, {mode}"] = j["seconds"]
        results[f"jigsaw codec-only ceiling, {mode}"] = j["ceiling_seconds"]

    boxes = list(chunk_boxes(shape, chunks))
    results["zarr-python 3, whole array"] = median_seconds(lambda: z[...], a.repeats)
    results["zarr-python 3, chunk by chunk"] = median_seconds(lambda: [z[b] for b in boxes], a.repeats)

    t = ts.open({"driver": "zarr", "kvstore": {"driver": "file", "path": str(store / "data")}}, read=True).result()

    def ts_chunks():
        futures = [t[b].read() for b in boxes]
        for f in futures:
            f.result()
    results["TensorStore, all chunks concurrently"] = median_seconds(ts_chunks, a.repeats)
    results["TensorStore, whole array"] = median_seconds(lambda: t.read().result(), a.repeats)

    # shared/peers: Debian's zarr 2 reading rank 0's tile of every time step (one chunk per sample).
    peer = subprocess.run(["/usr/bin/python3", str(PEERS / "peer_loader.py"), "zarr", str(store), "1", "2", "2", "0",
                           str(shape[0])], capture_output=True, text=True)
    m = re.search(r"([0-9.]+) GB/s", peer.stdout)
    peer_gbs = float(m.group(1)) if m else None

    ref = "jigsaw, reused output buffer, as a loader"
    fresh = "jigsaw, fresh output buffer, as the peers"
    print(f"\n{'reader':58s} {'seconds':>8s} {'GB/s':>7s} {'jigsaw is':>10s} {'jigsaw (fresh) is':>18s}")
    for name, sec in results.items():
        print(f"{name:58s} {sec:8.3f} {nbytes / sec / 1e9:7.2f} {sec / results[ref]:9.2f}x {sec / results[fresh]:17.2f}x")
    if peer_gbs:
        print(f"{'peer_loader.py zarr (Debian zarr 2, rank 0, per sample)':58s} {'':8s} {peer_gbs:7.2f} "
              f"{nbytes / results[ref] / 1e9 / peer_gbs:9.2f}x {nbytes / results[fresh] / 1e9 / peer_gbs:17.2f}x")
    best_zarr = min(v for k, v in results.items() if k.startswith("zarr"))
    best_ts = min(v for k, v in results.items() if k.startswith("TensorStore"))
    for mode, key in (("reused", ref), ("fresh", fresh)):
        ceiling = results[key.replace("jigsaw,", "jigsaw codec-only ceiling,")]
        print(f"jigsaw ({mode} buffer): {100 * ceiling / results[key]:.0f}% of its codec-only ceiling; "
              f"{best_zarr / results[key]:.2f}x the best zarr-python; {best_ts / results[key]:.2f}x the best TensorStore")


if __name__ == "__main__":
    main()
