#!/usr/bin/env python3
"""jigsaw-rollout's throughput, and what its writer costs: the same forecasts with and without writing the
tiles (median of --repeats each), forecast steps per second, GB/s written, and the model's forward FLOP
rate beside them. Builds its own synthetic 1-degree store and a checkpoint (one training step) first.

  .venv/bin/python bench/bench_rollout.py [--work /tmp/bench-rollout] [--repeats 3] [--threads 2]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("JIGSAW_BIN_DIR", os.path.join(HERE, "..", "build", "cli"))
MODEL = {"patch": [4, 4], "dim": 256, "depth": 2, "token_hidden": 256, "channel_hidden": 1024, "seed": 1}


def run(*args):
    return subprocess.run([os.path.join(BIN, args[0]), *map(str, args[1:])], check=True, capture_output=True, text=True)


def forward_flops(c, h, w):
    ph, pw = MODEL["patch"]
    t, f, d = (h // ph) * (w // pw), c * ph * pw, MODEL["dim"]
    hs, hf = MODEL["token_hidden"], MODEL["channel_hidden"]
    return 2 * (t * f * d * 2 + MODEL["depth"] * (2 * hs * t * d + 2 * t * d * hf))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/bench-rollout")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--batch", type=int, default=0, help="jigsaw-rollout --batch: forecasts through the model at once")
    a = p.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    w = a.work
    run("jigsaw-shard", "synth", f"{w}/src.zarr", "--grid", "180x360", "--times", "16")
    run("jigsaw-shard", "run", "--source", f"{w}/src.zarr", "--vars", "t2m,msl,z,t,u,v", "--levels", "500,850",
        "--start", "2020-01-01T00", "--end", "2020-01-04T18", "--tiles", "1x2x2", "--out", f"{w}/tiles.zarr")
    with open(f"{w}/model.json", "w") as f:
        json.dump(MODEL, f)
    run("jigsaw-train", "--data", f"{w}/tiles.zarr", "--config", f"{w}/model.json", "--steps", "1", "--ckpt", f"{w}/ck",
        "--blas-threads", a.threads)
    common = ["--ckpt", f"{w}/ck", "--data", f"{w}/tiles.zarr", "--init", "2020-01-01T00", "--init-end", "2020-01-02T18",
              "--lead", "2d", "--blas-threads", a.threads, "--batch", a.batch, "--json"]
    times = {"write": [], "no-write": []}
    report = {}
    for r in range(a.repeats):
        for mode in ("no-write", "write"):
            out = f"{w}/f-{mode}-{r}.zarr"
            t0 = time.perf_counter()
            res = run("jigsaw-rollout", *common, "--out", out, *(["--no-write"] if mode == "no-write" else []))
            times[mode].append(time.perf_counter() - t0)
            report[mode] = json.loads(res.stdout)
            shutil.rmtree(out)
    steps = report["write"]["inits"] * report["write"]["leads"]
    tw, tn = statistics.median(times["write"]), statistics.median(times["no-write"])
    gb = report["write"]["gb_written_rank0"]
    flops = forward_flops(8, 180, 360) * steps
    print(f"rollout: {report['write']['inits']} forecasts x {report['write']['leads']} steps, 1-degree grid, 8 channels, "
          f"D={MODEL['dim']}, {a.threads} threads, --batch {a.batch} (median of {a.repeats}, whole process)")
    print(f"  without writing  {tn:7.3f} s  {steps / tn:7.1f} forecast steps/s  {flops / tn / 1e9:7.1f} GFLOP/s forward")
    print(f"  writing          {tw:7.3f} s  {steps / tw:7.1f} forecast steps/s  {gb / tw:7.3f} GB/s written")
    print(f"  the writer costs {100 * (tw - tn) / tn:+.1f}% (target: at most +10%)")


if __name__ == "__main__":
    main()
