#!/usr/bin/env python3
"""Inference side by side: jigsaw-rollout against jigsaw.torch.WeatherMixer (the PyTorch module a user gets
from `from_checkpoint`) on the same weights, the same initial states and the same CPU threads. Reports
forecast steps per second (median of --repeats), the ratio, and each one's forward GFLOP/s as a share of
the GEMM ceiling measured at the forward's own shapes (jigsaw-bench gemm --shapes, the backend's sgemm).

jigsaw-rollout is timed twice: as a whole process with --no-write (reading its initial states and loading
the checkpoint included), and its model steps alone (its --json "model_seconds": the forward passes, the
state updates and the conversion back to physical units). The module's rollout call alone (its load and
the states' reading not included), after one warm-up: like for like against jigsaw's model steps. The module runs in Debian's torch
(/usr/bin/python3), which the jigsaw package is built for.

  .venv/bin/python bench/bench_inference.py [--work /tmp/bench-inference] [--repeats 3] [--threads 2]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import time

import numpy as np
import xarray as xr

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("JIGSAW_BIN_DIR", os.path.join(HERE, "..", "build", "cli"))
PYTHONPATH = os.environ.get("JIGSAW_PYTHONPATH", os.path.join(HERE, "..", "build", "python"))
MODEL = {"patch": [4, 4], "dim": 256, "depth": 2, "token_hidden": 256, "channel_hidden": 1024, "seed": 1}
GRID, CHANNELS, INITS, STEPS = (180, 360), 8, 8, 8

TORCH = r"""
import sys, json, time, statistics, numpy as np, torch
sys.path.insert(0, sys.argv[1])
torch.set_num_threads(int(sys.argv[4]))
from jigsaw.torch import WeatherMixer
m = WeatherMixer.from_checkpoint(sys.argv[2]).eval()
x = torch.from_numpy(np.load(sys.argv[3]))
steps, repeats = int(sys.argv[5]), int(sys.argv[6])
best = {}
with torch.no_grad():
    m.rollout(x[:1], 1)  # warm-up
    for together in (len(x), 1):  # every state at once, or one at a time: the module's best counts
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            y = torch.cat([m.rollout(x[i:i + together], steps) for i in range(0, len(x), together)])
            times.append(time.perf_counter() - t0)
        best[together] = statistics.median(times)
np.save(sys.argv[7], y[:, -1].numpy())
print(json.dumps({"seconds": min(best.values()), "by_batch": best, "threads": torch.get_num_threads()}))
"""


def run(*args):
    return subprocess.run([os.path.join(BIN, args[0]), *map(str, args[1:])], check=True, capture_output=True, text=True)


def forward_shapes(batch):
    """The forward's products as MxNxK (C[M,N] = A[M,K] B[K,N]) for `batch` states at once; the ceiling is
    measured at one state's shapes (jigsaw-rollout's own choice for 4050-token states)."""
    ph, pw = MODEL["patch"]
    t, f, d = (GRID[0] // ph) * (GRID[1] // pw), CHANNELS * ph * pw, MODEL["dim"]
    hs, hf = MODEL["token_hidden"], MODEL["channel_hidden"]
    tb, db = t * batch, d * batch
    shapes = [(tb, d, f)]
    for _ in range(MODEL["depth"]):
        shapes += [(hs, db, t), (t, db, hs), (tb, hf, d), (tb, d, hf)]
    shapes.append((tb, f, d))
    return shapes


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/bench-inference")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    w = a.work
    run("jigsaw-shard", "synth", f"{w}/src.zarr", "--grid", f"{GRID[0]}x{GRID[1]}", "--times", "16")
    run("jigsaw-shard", "run", "--source", f"{w}/src.zarr", "--vars", "t2m,msl,z,t,u,v", "--levels", "500,850",
        "--start", "2020-01-01T00", "--end", "2020-01-04T18", "--tiles", "1x1x1", "--out", f"{w}/tiles.zarr")
    with open(f"{w}/model.json", "w") as f:
        json.dump(MODEL, f)
    run("jigsaw-train", "--data", f"{w}/tiles.zarr", "--config", f"{w}/model.json", "--steps", "1", "--ckpt", f"{w}/ck",
        "--blas-threads", a.threads, "--no-gemm-ceiling")
    run("jigsaw-ckpt", "export", f"{w}/ck", "--out", f"{w}/model.safetensors")
    ds = xr.open_zarr(f"{w}/tiles.zarr")
    inits = ds.time.values[:INITS]
    np.save(f"{w}/x0.npy", ds.data.isel(time=slice(0, INITS)).values.astype(np.float32))
    step_h = int((ds.time.values[1] - ds.time.values[0]) / np.timedelta64(1, "h"))

    jig, jig_model = [], []
    for r in range(a.repeats):
        out = f"{w}/f{r}.zarr"
        t0 = time.perf_counter()
        rep = run("jigsaw-rollout", "--ckpt", f"{w}/ck", "--data", f"{w}/tiles.zarr", "--init", str(inits[0])[:13],
                  "--init-end", str(inits[-1])[:13], "--lead", f"{STEPS * step_h}h", "--blas-threads", a.threads,
                  "--out", out, "--json", *(["--no-write"] if r < a.repeats - 1 else []))  # its own batch choice
        jig.append(time.perf_counter() - t0)
        jig_model.append(json.loads(rep.stdout)["model_seconds"])
    p = subprocess.run(["/usr/bin/python3", "-c", TORCH, PYTHONPATH, f"{w}/model.safetensors", f"{w}/x0.npy",
                        str(a.threads), str(STEPS), str(a.repeats), f"{w}/torch_last.npy"],
                       capture_output=True, text=True, check=True)
    mod = json.loads(p.stdout)
    # The same forecasts: the last lead of the written store against the module's.
    ours = xr.open_zarr(f"{w}/f{a.repeats - 1}.zarr").forecast.values[:, -1]
    theirs = np.load(f"{w}/torch_last.npy")
    scale = np.abs(theirs).max(axis=(0, 2, 3), keepdims=True)
    agree = float((np.abs(ours - theirs) / scale).max())

    shapes = forward_shapes(1)  # per state: FLOPs are the same whichever way states are grouped
    g = json.loads(run("jigsaw-bench", "gemm", "--shapes", ",".join(f"{m}x{n}x{k}" for m, n, k in shapes),
                       "--blas-threads", a.threads, "--json").stdout)
    ceiling = g["flop_per_s"]
    flops = INITS * STEPS * sum(2 * m * n * k for m, n, k in shapes)  # all states, all steps
    steps = INITS * STEPS
    tj = statistics.median(jig)
    tjm = statistics.median(jig_model)
    tm = mod["seconds"]
    print(f"inference: {INITS} forecasts x {STEPS} steps, {GRID[0]}x{GRID[1]} grid, {CHANNELS} channels, "
          f"D={MODEL['dim']}, {MODEL['depth']} blocks, {a.threads} threads (median of {a.repeats})")
    print(f"  GEMM ceiling at the forward's shapes: {ceiling / 1e9:.1f} GFLOP/s")
    print(f"  jigsaw-rollout (whole process) {tj:7.3f} s  {steps / tj:7.2f} forecast steps/s  "
          f"{flops / tj / 1e9:6.1f} GFLOP/s  {100 * flops / tj / ceiling:5.1f}% of the ceiling")
    print(f"  jigsaw-rollout (model steps)   {tjm:7.3f} s  {steps / tjm:7.2f} forecast steps/s  "
          f"{flops / tjm / 1e9:6.1f} GFLOP/s  {100 * flops / tjm / ceiling:5.1f}% of the ceiling")
    print(f"  torch module (rollout call)    {tm:7.3f} s  {steps / tm:7.2f} forecast steps/s  "
          f"{flops / tm / 1e9:6.1f} GFLOP/s  {100 * flops / tm / ceiling:5.1f}% of the ceiling  "
          f"({mod['threads']} torch threads; s by states at once: {mod['by_batch']})")
    print(f"  jigsaw / torch: {tm / tj:.2f}x whole process, {tm / tjm:.2f}x model steps against the rollout call "
          f"(target: at least 2x)   forecasts agree to {agree:.1e} of each channel's range")


if __name__ == "__main__":
    main()
