"""Per-codec encode/decode throughput: jigsaw beside numcodecs on the same bytes, one thread each.

usage: .venv/bin/python bench/bench_codecs.py [STORE] [--repeats N]
The bytes are 4 channels of one tile of the tile-aligned benchmark store (see bench_read.py), or, without
a store, a synthetic smooth field with noise of the same size.
"""
import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numcodecs
import numpy as np
import zarr

ROOT = Path(__file__).resolve().parents[1]
numcodecs.blosc.use_threads = False


def peer(name):
    if name.startswith("blosc-"):
        cname = name[6:]
        return numcodecs.Blosc(cname=cname, clevel=3 if cname in ("zstd", "zlib") else 5, shuffle=numcodecs.Blosc.SHUFFLE)
    return {"zstd": numcodecs.Zstd(level=3), "gzip": numcodecs.GZip(level=5), "zlib": numcodecs.Zlib(level=5)}[name]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("store", nargs="?", default="/tmp/bench/tiles.zarr")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    if (Path(a.store) / "data").exists():
        z = zarr.open_array(str(Path(a.store) / "data"), mode="r")
        data = np.ascontiguousarray(z[0, :4, :, : z.chunks[3]])
    else:
        lat, lon = np.meshgrid(np.linspace(-1.5, 1.5, 721), np.linspace(0, 6.28, 720), indexing="ij")
        data = np.stack([250 + 30 * np.cos(lat) * np.sin(2 * lon + k) for k in range(4)]).astype("float32")
        data += np.random.default_rng(0).standard_normal(data.shape).astype("float32") * 0.6
    raw = data.tobytes()
    with tempfile.NamedTemporaryFile(suffix=".raw") as f:
        f.write(raw)
        f.flush()
        out = subprocess.run([str(ROOT / "build/cli/jigsaw-bench"), "codecs", f.name, "--json", "--repeats",
                              str(a.repeats)], check=True, capture_output=True, text=True).stdout
    ours = {r["codec"]: r for r in json.loads(out)}
    print(f"{len(raw) / 1e6:.1f} MB float32, one thread; MB/s of decoded data (medians of {a.repeats})")
    print(f"{'codec':14s} {'jigsaw enc':>10s} {'numcodecs':>10s} {'ratio':>6s}   {'jigsaw dec':>10s} "
          f"{'numcodecs':>10s} {'ratio':>6s}   {'compression':>13s}")
    for name, r in ours.items():
        c = peer(name)
        # numcodecs takes the element size for blosc's shuffle from the array it is given: pass the array.
        enc = statistics.median([timed(lambda: c.encode(data)) for _ in range(a.repeats)])
        buf = c.encode(data)
        out = np.empty(len(raw), dtype="u1")
        dec = statistics.median([timed(lambda: c.decode(buf, out=out)) for _ in range(a.repeats)])
        pe, pd = len(raw) / enc / 1e6, len(raw) / dec / 1e6
        print(f"{name:14s} {r['encode_mb_s']:10.0f} {pe:10.0f} {r['encode_mb_s'] / pe:6.2f}   {r['decode_mb_s']:10.0f} "
              f"{pd:10.0f} {r['decode_mb_s'] / pd:6.2f}   {r['ratio']:6.2f} {len(raw) / len(buf):6.2f}")


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
