#!/usr/bin/env python3
"""jigsaw-train's loop around the step: how long it waits for data and how much its asynchronous checkpoints
cost, in one run of each kind on the same store and config (issue 14's targets: loader wait < 2% of a step,
checkpoint stall < 10% of a step).

  .venv/bin/python bench/bench_train_loop.py [--ranks 1] [--steps 60] [--ckpt-every 10] [--runs 3]

Per run it reports: the median step; the loader wait as a share of it; per save, the time training is
blocked (Start, plus the wait for the tile copy before the next update) as a share of a step; how much
longer the step after a save takes than the median (the background copy and writer share the cores); and
the whole run's time with checkpoints against the same run without.

With --overlap (on a mesh: --ranks 4) it instead times the step with the Jigsaw products' exchanges overlapped
with their GEMMs (jigsaw-train's default) against the same run waiting for each exchange (--no-overlap), runs
interleaved, and prints both medians and their ratio.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("JIGSAW_BIN_DIR", os.path.join(HERE, "..", "build", "cli"))
MODEL = {"patch": [3, 4], "dim": 256, "depth": 2, "token_hidden": 256, "channel_hidden": 1024}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def train(a, d, store, ckpt, extra=()):
    log = os.path.join(d, "log.jsonl")
    if os.path.exists(log):
        os.remove(log)
    cmd = [os.path.join(BIN, "jigsaw-train"), "--data", store, "--config", os.path.join(d, "model.json"),
           "--steps", str(a.steps), "--batch-size", "2", "--log", log, "--blas-threads", str(a.threads), *extra]
    if ckpt:
        cmd += ["--ckpt", os.path.join(d, "ck-%d" % time.monotonic_ns()), "--ckpt-every", str(a.ckpt_every)]
    if a.ranks > 1:
        cmd = ["mpirun", "-np", str(a.ranks), "--oversubscribe", "--allow-run-as-root"] + cmd + ["--mesh", a.mesh]
    t0 = time.perf_counter()
    run(cmd)
    wall = time.perf_counter() - t0
    lines = [json.loads(x) for x in open(log)]
    return wall, [x for x in lines if "seconds" in x], [x for x in lines if "checkpoint" in x]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--mesh", default="domain=2,tensor=2")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--ckpt-every", type=int, default=10)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--overlap", action="store_true", help="time overlapped exchanges against waited ones instead")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as d:
        json.dump(MODEL, open(os.path.join(d, "model.json"), "w"))
        tiles = "1x2x2" if a.ranks > 1 else "1x1x1"
        run([os.path.join(BIN, "jigsaw-shard"), "synth", os.path.join(d, "src.zarr"), "--grid", "33x64", "--times", "24"])
        run([os.path.join(BIN, "jigsaw-shard"), "run", "--source", os.path.join(d, "src.zarr"), "--vars", "t2m,msl,z,t",
             "--levels", "500,850", "--start", "2020-01-01T00", "--end", "2020-01-06T18", "--tiles", tiles,
             "--out", os.path.join(d, "tiles.zarr")])
        store = os.path.join(d, "tiles.zarr")
        if a.overlap:
            return compare_overlap(a, d, store)
        for r in range(a.runs):
            wall0, steps0, _ = train(a, d, store, False)
            wall1, steps1, saves = train(a, d, store, True)
            saved_at = {s["checkpoint"] for s in saves}
            plain = [s["seconds"] for s in steps1 if s["step"] not in saved_at and s["step"] > 2]
            med = statistics.median(plain)
            wait = statistics.median([s["loader_wait_s"] / s["seconds"] for s in steps1 if s["step"] > 2])
            after = {s["step"]: s["seconds"] - med for s in steps1 if s["step"] in saved_at}
            print("run %d: median step %.1f ms, loader wait %.2f%% of a step" % (r + 1, 1e3 * med, 100 * wait))
            for s in saves:
                print("  checkpoint %3d: blocked %.2f ms = %.1f%% of a step (start %.2f, copy wait %.2f); "
                      "the step after +%.1f ms" % (s["checkpoint"], 1e3 * s["stall_s"], 100 * s["stall_s"] / med,
                                                  1e3 * s["start_s"], 1e3 * s["copy_wait_s"],
                                                  1e3 * after.get(s["checkpoint"], float("nan"))))
            print("  whole run: %.2f s with %d checkpoints, %.2f s without (%+.1f%%; %+.1f%% of a step per save)"
                  % (wall1, len(saves), wall0, 100 * (wall1 / wall0 - 1),
                     100 * (wall1 - wall0) / max(len(saves), 1) / med))


def compare_overlap(a, d, store):
    medians = {"overlapped": [], "waited": []}
    for r in range(a.runs):
        for name, extra in (("overlapped", ()), ("waited", ("--no-overlap",))):
            _, steps, _ = train(a, d, store, False, extra)
            medians[name].append(statistics.median([s["seconds"] for s in steps if s["step"] > 2]))
        print("run %d: median step %.2f ms overlapped, %.2f ms waited" % (r + 1, 1e3 * medians["overlapped"][-1],
                                                                        1e3 * medians["waited"][-1]))
    o, w = statistics.median(medians["overlapped"]), statistics.median(medians["waited"])
    print("median of %d runs: overlapped %.2f ms, waited %.2f ms: %.3fx" % (a.runs, 1e3 * o, 1e3 * w, w / o))


if __name__ == "__main__":
    main()
