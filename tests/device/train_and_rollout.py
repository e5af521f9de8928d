#!/usr/bin/env python3
"""The paths users run on a GPU, end to end, with the jigsaw tools themselves (scripts/device-check runs it
with the tools it unpacked from .device/bundle.tar.xz):

  1. jigsaw-shard writes a store on local disk;
  2. jigsaw-train on --backend (one GPU): batches through page-locked host memory and the backend's uploader,
     asynchronous checkpoints every 10 steps; a run stopped at step 20 and resumed must give the losses of
     an uninterrupted run (to --resume-tol relative); the loader's wait and the checkpoints' stall are shown;
  3. jigsaw-rollout from that checkpoint on the CPU and on each GPU precision: the forecasts (4 leads)
     against the CPU's, as a share of each channel's range, within float32 / TF32 / bf16 tolerances.

Prints one PASS or FAIL line per check and exits 1 if any failed. Reads the forecasts with TensorStore.
Here, without a GPU, `--backend cpu --gpu-backends cpu:bf16` runs the same logic on the CPU.

  python3 tests/device/train_and_rollout.py --bin DIR [--work DIR] [--backend cuda]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

# Tolerances of a forecast against the CPU's float32 one, relative to each channel's range: float32 products
# in another order; TF32 (10-bit mantissas); bf16 (8-bit), over 4 autoregressive steps.
FORECAST_TOL = {"cuda": 1e-4, "cuda:tf32": 3e-3, "cuda:bf16": 3e-2, "cpu:bf16": 3e-2}
MODEL = {"patch": [4, 4], "dim": 256, "depth": 2, "token_hidden": 256, "channel_hidden": 1024, "seed": 1,
         "warmup_steps": 5}
failed = []


def check(ok, what):
    print(f"{'PASS' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        failed.append(what)


def tool(bin_dir, name, *args, log=None):
    t0 = time.perf_counter()
    p = subprocess.run([os.path.join(bin_dir, name), *map(str, args)], capture_output=True, text=True)
    if p.returncode != 0:
        print(f"FAIL {name} {' '.join(map(str, args))}: exit {p.returncode}\n{p.stderr[-2000:]}", flush=True)
        sys.exit(1)
    return p, time.perf_counter() - t0


def steps_of(log):
    with open(log) as f:
        lines = [json.loads(line) for line in f]
    return {r["step"]: r for r in lines if "loss" in r and "step" in r}, [r for r in lines if "checkpoint" in r]


def forecast(path):
    import tensorstore as ts
    fmt = "zarr3" if os.path.exists(os.path.join(path, "zarr.json")) else "zarr"
    return ts.open({"driver": fmt, "kvstore": {"driver": "file", "path": os.path.join(path, "forecast")}}).result().read().result()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", required=True, help="folder of jigsaw-shard, jigsaw-train and jigsaw-rollout")
    p.add_argument("--work", default="/tmp/jigsaw-device-run")
    p.add_argument("--backend", default="cuda")
    p.add_argument("--gpu-backends", default="cuda,cuda:tf32,cuda:bf16", help="rollouts compared with the CPU's")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--resume-tol", type=float, default=1e-4)
    a = p.parse_args()
    b, w = a.bin, a.work
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)

    _, t = tool(b, "jigsaw-shard", "synth", f"{w}/src.zarr", "--grid", "128x256", "--times", "16")
    _, t2 = tool(b, "jigsaw-shard", "run", "--source", f"{w}/src.zarr", "--vars", "t2m,msl,z,t,u,v", "--levels", "500,850",
                 "--start", "2020-01-01T00", "--end", "2020-01-04T18", "--tiles", "1x1x1", "--out", f"{w}/tiles.zarr")
    print(f"store: 16 times of 10 channels on 128x256, local disk ({t + t2:.1f} s)", flush=True)
    with open(f"{w}/model.json", "w") as f:
        json.dump(MODEL, f)

    common = ["--data", f"{w}/tiles.zarr", "--config", f"{w}/model.json", "--steps", a.steps, "--batch-size", "4",
              "--backend", a.backend, "--ckpt-every", "10", "--no-gemm-ceiling", "--json"]
    whole, tw = tool(b, "jigsaw-train", *common, "--ckpt", f"{w}/ck_whole", "--log", f"{w}/whole.jsonl")
    stop = a.steps // 2
    tool(b, "jigsaw-train", *common, "--ckpt", f"{w}/ck", "--log", f"{w}/first.jsonl", "--stop-at", stop)
    resumed, _ = tool(b, "jigsaw-train", *common, "--ckpt", f"{w}/ck", "--log", f"{w}/second.jsonl", "--resume")
    ref, saves = steps_of(f"{w}/whole.jsonl")
    second, _ = steps_of(f"{w}/second.jsonl")
    summary = json.loads(whole.stdout)
    check(sorted(ref) == list(range(a.steps)) and np.isfinite(summary["loss"]),
          f"jigsaw-train --backend {a.backend}: {a.steps} steps, loss {ref[0]['loss']:.4f} -> {summary['loss']:.4f} "
          f"({tw:.1f} s with start-up)")
    worst = max(abs(second[s]["loss"] - ref[s]["loss"]) / abs(ref[s]["loss"]) for s in range(stop, a.steps))
    check(sorted(second) == list(range(stop, a.steps)) and worst <= a.resume_tol and json.loads(resumed.stdout)["first_step"] == stop,
          f"stopped at step {stop} and resumed: steps {stop}-{a.steps - 1} equal the uninterrupted run's to {worst:.1e} "
          f"relative (tolerance {a.resume_tol:g})")
    late = [ref[s] for s in range(3, a.steps)]  # after the first steps' warm-up
    wait = sum(r["loader_wait_s"] for r in late) / sum(r["seconds"] for r in late)
    print(f"     loader wait {100 * wait:.2f}% of the steps' time (target below 1%); "
          f"median step {np.median([r['seconds'] for r in late]) * 1e3:.1f} ms, "
          f"{np.median([r['gflop_per_s_per_rank'] for r in late]):.0f} GFLOP/s")
    stalls = ", ".join(f"{100 * s.get('stall_share_of_step', 0):.0f}%" for s in saves)
    check(len(saves) >= a.steps // 10 - 1, f"asynchronous checkpoints: {len(saves)} saves, each stalling its step by {stalls}")

    init = ["--init", "2020-01-01T00", "--init-end", "2020-01-01T18", "--lead", "24h"]
    roll = {}
    for be in ["cpu", *[x for x in a.gpu_backends.split(",") if x]]:
        out = f"{w}/f_{be.replace(':', '_')}.zarr"
        r, t = tool(b, "jigsaw-rollout", "--ckpt", f"{w}/ck_whole", "--data", f"{w}/tiles.zarr", *init, "--backend", be,
                    "--out", out, "--json")
        rep = json.loads(r.stdout)
        roll[be] = forecast(out)
        print(f"     jigsaw-rollout --backend {be}: {rep['forecast_steps_per_s']:.1f} forecast steps/s "
              f"({rep['model_seconds']:.2f} s in the model, {t:.1f} s with start-up)", flush=True)
    cpu = roll["cpu"]
    scale = cpu.max(axis=(0, 1, 3, 4), keepdims=True) - cpu.min(axis=(0, 1, 3, 4), keepdims=True)
    check(np.isfinite(cpu).all() and cpu.shape[1] == 5, f"the CPU forecast: {cpu.shape} (init, lead, channel, lat, lon), finite")
    for be, f in roll.items():
        if be == "cpu":
            continue
        err = float((np.abs(f - cpu) / scale).max())
        tol = FORECAST_TOL.get(be, 3e-2)
        check(f.shape == cpu.shape and err <= tol,
              f"jigsaw-rollout --backend {be} equals the CPU's forecast to {err:.1e} of each channel's range "
              f"(tolerance {tol:g})")
    print(f"train_and_rollout: {'all passed' if not failed else f'{len(failed)} FAILED'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
