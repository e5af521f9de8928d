"""The I/O claim, measured: s x s ranks (1, 2x2, 3x3) of one model-parallel group, each behind its own
bandwidth-capped link to an S3 server (moto), reading a fixed number of samples with a fixed stand-in compute
step after each. Side by side, in one run, on the same data:

  jigsaw  each rank's prefetch loader (jigsaw-bench loader, the loader jigsaw-train uses) reading its tile from
          a tile-aligned store that jigsaw-shard wrote for that mesh (tiles 1 x s x s); jigsaw-reads: the
          same with no stand-in step, for the rate the links alone allow
  whole   the loader users run today: every rank reads whole samples of the WeatherBench2-layout store with
          xarray + zarr-python over HTTP, in a PyTorch DataLoader with 2 workers, as a model-parallel rank
          whose input is the whole sample does (bench/peer_io_torch.py whole)
  crop    the Jigsaw reference pattern: the same, but each rank crops its tile with xarray (isel): it fetches
          every chunk its tile touches (bench/peer_io_torch.py crop)
  rotate  load, then scatter, the loading taken in turns: rank r reads whole samples r, r + s^2, ..., one
          every s^2 steps. Its links carry what jigsaw's do; its loaders would also send (s^2 - 1) / s^2 of each
          sample to the other ranks over the interconnect, which is not simulated here (reported as bytes)

Each rank is a process with its own proxy (tests/tools/fault_proxy.py --cap-mb-s R: a token bucket over all of
that rank's connections) standing in for its node's link, and counting what it sends. Reported per contender
and mesh, per sample of the group: the stored bytes each rank needs (from the bucket's listing; the proxies'
counts beside them include metadata and jigsaw's read-ahead past the last sample) and read amplification
(against the store's own sample / s^2); samples/s of the group, the minimum over its ranks (the ranks run
unsynchronised, so for a group in lock step this is an upper bound); that rate's share of what the links
allow (the cap over the bytes of the rank with the most to read); each proxy's bytes over the time from its
first byte to its last, against the cap; and the share of the steady state each rank spent waiting. Rates
and waiting are the steady state, from the arrival of the sample that fills the pipeline (4 asked for at
once, by both kinds of loader) to the last's, as a long training run sees them; the first sample's latency
(opening the store, the pipeline filling) is beside them, and the whole run's rate is in --json.

Is the machine I/O-bound at the cap? Two checks, printed: the contenders at the largest mesh with the caps
lifted (the machine's own aggregate ceiling, jigsaw's read-ahead included; the capped aggregate must stay
under half of the slowest one's), and the CPU's busy share (/proc/stat) during each capped run.

The stand-in step, the same at every mesh: the paper's C1 model's step as bench/perf_model.py builds it (2x2
mesh, batch 1), slowed by the factor this bench slows I/O by: the cap stands for --stands-for-gbs per GPU on a
0.25-degree sample, so time here runs (stands-for / cap) x (this grid's points / 0.25 degree's) times slower.

usage: .venv/bin/python bench/bench_io_scaling.py [--grid 361x720] [--times 8] [--samples 16] [--cap-mb-s 8]
                                                  [--meshes 1,2,3] [--stands-for-gbs 2] [--json FILE]
       .venv/bin/python bench/bench_io_scaling.py --from-json FILE   (the report of a saved run)
Needs /usr/bin/python3 with python3-torch, python3-xarray, python3-zarr, python3-aiohttp (scripts/setup).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "tools"))
sys.path.insert(0, str(ROOT / "bench"))
import perf_model  # noqa: E402
from servers import FaultProxy, Moto  # noqa: E402

BIN = Path(os.environ.get("JIGSAW_BIN_DIR") or ROOT / "build" / "cli")  # the tests point it at their build
BUCKET = "era5"
VARS = "z,t,q,u,v,t2m,msl,u10,v10"


def run(*args, env=None):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}).stdout


def cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]  # all, idle + iowait


class Sizes:
    """Stored bytes per sample (one time step) from the bucket's listing: the WeatherBench2 store's chunks per
    variable, and each jigsaw store's tile chunks per rank."""

    def __init__(self, client):
        self.wb2 = {}    # variable -> mean bytes of its chunk at one time
        self.tiles = {}  # s -> [mean bytes of rank r's chunk at one time]
        per = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for o in page.get("Contents", []):
                k = o["Key"]
                # time-dependent variables only: [time, level, lat, lon] or [time, lat, lon] chunks (the static
                # fields' are [lat, lon], the coordinates' one index)
                m = re.match(r"wb2\.zarr/([^/]+)/(\d+)(\.\d+){2,}$", k)
                if m:
                    per.setdefault(("wb2", m.group(1)), []).append(o["Size"])
                m = re.match(r"jigsaw-(\d)\.zarr/data/c/\d+/(\d+)/(\d+)/(\d+)$", k)
                if m:
                    s = int(m.group(1))
                    k_, i, j = map(int, m.group(2, 3, 4))
                    per.setdefault(("tile", s, (i * s + j) * s + k_), []).append(o["Size"])
        for key, sizes in per.items():
            mean = statistics.mean(sizes)
            if key[0] == "wb2":
                self.wb2[key[1]] = mean
            else:
                self.tiles.setdefault(key[1], {})[key[2]] = mean
        self.tiles = {s: [d[r] for r in sorted(d)] for s, d in self.tiles.items()}
        self.wb2_sample = sum(self.wb2.values())


def per_rank_samples(contender, s):
    """Group samples per sample a rank reads: s^2 where the ranks take turns loading (rotate), else 1."""
    return s * s if contender == "rotate" else 1


def run_group(moto, contender, s, cap, samples, step_s, workers):
    """s^2 ranks side by side, each behind its own proxy and each reading `samples` samples (with `step_s`
    after each, times s^2 where the ranks take turns); the per-rank reports, proxy counts and CPU share."""
    ranks = s * s
    with ExitStack() as stack:
        proxies = [stack.enter_context(FaultProxy(moto.endpoint, rate=0, cap_mb_s=cap)) for _ in range(ranks)]
        procs = []
        c0 = cpu_times()
        for r, proxy in enumerate(proxies):
            if contender.startswith("jigsaw"):
                cmd = [BIN / "jigsaw-bench", "--json", "loader", f"s3://{BUCKET}/jigsaw-{s}.zarr", "--rank", r,
                       "--lead-steps", 0, "--batch-size", 1, "--max-batches", samples, "--step-seconds", step_s, "--prefetch", 4]
            else:
                cmd = ["/usr/bin/python3", ROOT / "bench" / "peer_io_torch.py", contender,
                       f"{proxy.url}/{BUCKET}/wb2.zarr", "--mesh", s, "--rank", r, "--samples", samples,
                       "--workers", workers, "--step-s", step_s * per_rank_samples(contender, s)]
            procs.append(subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, env={**os.environ, **moto.env(proxy.url)}))
        reports = []
        for r, p in enumerate(procs):
            out, err = p.communicate(timeout=3600)
            if p.returncode:
                raise RuntimeError(f"{contender} rank {r} of {s}x{s} failed: {err.strip()[-2000:]}")
            reports.append(json.loads(out))
        c1 = cpu_times()
        stats = [p.stats() for p in proxies]
    busy = 1 - (c1[1] - c0[1]) / max(1, c1[0] - c0[0])
    return reports, stats, busy


def summarise(contender, s, cap, samples, reports, stats, busy, sizes):
    ranks, g = s * s, per_rank_samples(contender, s)
    per_rank_read = []  # per group sample
    for r in range(ranks):
        if contender.startswith("jigsaw"):
            per_rank_read.append(sizes.tiles[s][r])
        else:  # every chunk of the variables the rank's samples touch (crop: those of its channel group)
            per_rank_read.append(sum(sizes.wb2[v] for v in reports[r]["variables"]) / g)
    need = (sum(sizes.tiles[s]) if contender.startswith("jigsaw") else sizes.wb2_sample) / ranks
    shares = []
    for st in stats:
        window = (st["t_last_out"] or 0) - (st["t_first_out"] or 0)
        shares.append(st["bytes_out"] / window / (cap * 1e6) if cap and window > 0 else float("nan"))
    seconds = max(rep["seconds"] for rep in reports)
    group = g * min(rep["steady_samples_per_s"] for rep in reports)
    return {"contender": contender, "mesh": s, "ranks": ranks, "cap_mb_s": cap, "samples": samples,
            # the ceiling the links set: the group moves at the pace of its rank with the most to read
            "link_bound_samples_per_s": cap * 1e6 / max(per_rank_read) if cap else float("nan"),
            "share_of_link_bound": group * max(per_rank_read) / (cap * 1e6) if cap else float("nan"),
            "bytes_per_sample": statistics.mean(per_rank_read),
            "measured_bytes_per_sample": statistics.mean(st["bytes_out"] for st in stats) / samples / g,
            "read_amplification": statistics.mean(per_rank_read) / need,
            "group_samples_per_s": group,
            "run_samples_per_s": g * samples / seconds,
            "first_batch_seconds": max(rep["first_batch_seconds"] for rep in reports),
            "cap_share_min": min(shares), "cap_share_median": statistics.median(shares),
            "wait_share": statistics.mean(rep["steady_wait_share"] for rep in reports),
            "aggregate_mb_s": sum(st["bytes_out"] for st in stats) / seconds / 1e6,
            # what a rotating loader sends the other ranks over the interconnect, per group sample
            "scatter_bytes_per_sample": sizes.wb2_sample * (ranks - 1) / ranks if contender == "rotate" else 0,
            "cpu_busy": busy}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", default="361x720")
    p.add_argument("--times", type=int, default=8)
    p.add_argument("--samples", type=int, default=16,
                   help="samples each rank reads per run (more than 4: the rates are counted from the 4th "
                        "sample's arrival, when the pipelines are full)")
    p.add_argument("--cap-mb-s", type=float, default=8.0, help="each rank's link, MB/s")
    p.add_argument("--meshes", default="1,2,3")
    p.add_argument("--contenders", default="jigsaw,jigsaw-reads,whole,crop,rotate",
                   help="jigsaw-reads: jigsaw's loader with no stand-in step, reading as fast as its link allows")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers per peer rank")
    p.add_argument("--stands-for-gbs", type=float, default=2.0,
                   help="the per-GPU read bandwidth the cap stands for at 0.25 degree (sets the stand-in step)")
    p.add_argument("--step-s", type=float, help="the stand-in compute step (default: derived, see above)")
    p.add_argument("--no-ceiling", action="store_true", help="skip the uncapped runs")
    p.add_argument("--json", help="write the run here (every row, as measured)")
    p.add_argument("--from-json", help="print the report of a run --json wrote, and run nothing")
    a = p.parse_args()
    if a.from_json:
        return report(json.loads(Path(a.from_json).read_text()))
    if a.samples <= max(4, 2 * a.workers):
        p.error(f"--samples must be more than {max(4, 2 * a.workers)}: the steady state starts once the "
                f"pipelines are full (jigsaw's 4 batches, the DataLoader's workers x 2)")
    meshes = [int(m) for m in a.meshes.split(",")]
    contenders = a.contenders.split(",")
    h, w = map(int, a.grid.split("x"))
    built = perf_model.model(perf_model.parser().parse_args([]))["rows"][0]["built"]
    dilation = a.stands_for_gbs * 1e3 / a.cap_mb_s * (h * w) / (721 * 1440)
    step_s = a.step_s if a.step_s is not None else built * dilation
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Moto() as moto:
        env = moto.env()
        moto.create_public_bucket(BUCKET)  # the peers read it as WeatherBench2's public bucket, unsigned over HTTP
        t_end = 6 * (a.times - 1)
        end = f"2020-01-{1 + t_end // 24:02d}T{t_end % 24:02d}"
        src = Path(tmp) / "wb2.zarr"
        run(BIN / "jigsaw-shard", "synth", src, "--grid", a.grid, "--times", a.times)
        client = moto.client()
        files = [f for f in src.rglob("*") if f.is_file()]
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda f: client.put_object(Bucket=BUCKET, Key=f"wb2.zarr/{f.relative_to(src)}",
                                                    Body=f.read_bytes()), files))
        for s in meshes:
            run(BIN / "jigsaw-shard", "run", "--source", src, "--vars", VARS, "--start", "2020-01-01T00", "--end",
                end, "--tiles", f"1x{s}x{s}", "--out", f"s3://{BUCKET}/jigsaw-{s}.zarr", env=env)
        sizes = Sizes(client)
        raw = 69 * h * w * 4
        print(f"data: {a.grid} grid, 69 channels, {a.times} times; a sample is {raw / 1e6:.1f} MB as float32, "
              f"{sizes.wb2_sample / 1e6:.1f} MB stored in the WeatherBench2 layout (blosc lz4, one chunk per "
              f"variable and time), " + ", ".join(f"{sum(sizes.tiles[s]) / 1e6:.1f} MB in jigsaw's 1x{s}x{s} store"
                                                for s in meshes))
        print(f"each rank's link: {a.cap_mb_s:g} MB/s; stand-in step {step_s:.3f} s (perf_model's C1 step "
              f"{built * 1e3:.1f} ms x {dilation:.0f}: the cap stands for {a.stands_for_gbs:g} GB/s per GPU at 0.25 "
              f"degree); {a.samples} samples per group per run", flush=True)

        if not a.no_ceiling:
            s = max(meshes)
            for c in (c for c in contenders if c != "jigsaw-reads"):  # jigsaw with no caps reads only anyway
                reps, stats, busy = run_group(moto, c, s, 0, a.samples, 0.0, a.workers)
                row = summarise(c, s, 0, a.samples, reps, stats, busy, sizes)
                rows.append(row)
                print(f"ceiling, {c} at {s}x{s} with no caps: {row['aggregate_mb_s']:.0f} MB/s over all ranks, "
                      f"CPU {100 * busy:.0f}% busy", flush=True)
        for s in meshes:
            for c in contenders:
                step = 0.0 if c == "jigsaw-reads" else step_s
                reps, stats, busy = run_group(moto, c, s, a.cap_mb_s, a.samples, step, a.workers)
                row = summarise(c, s, a.cap_mb_s, a.samples, reps, stats, busy, sizes)
                rows.append(row)
                print(f"  {c} {s}x{s}: {row['group_samples_per_s']:.3f} samples/s, cap share "
                      f"{100 * row['cap_share_min']:.0f}-{100 * row['cap_share_median']:.0f}%, CPU "
                      f"{100 * busy:.0f}%", flush=True)

    run_ = {"grid": a.grid, "cap_mb_s": a.cap_mb_s, "step_s": step_s, "samples": a.samples, "rows": rows}
    if a.json:
        Path(a.json).write_text(json.dumps(run_, indent=1))
    report(run_)


def report(run):
    """The table and the targets of a run: {grid, cap_mb_s, step_s, rows} (what --json writes)."""
    rows, step_s, cap = run["rows"], run["step_s"], run["cap_mb_s"]
    capped = [r for r in rows if r["cap_mb_s"]]
    by = {(r["contender"], r["mesh"]): r for r in capped}
    meshes = sorted({r["mesh"] for r in capped})
    print(f"\n{'contender':<13}{'mesh':>5}{'MB/rank/sample':>16}{'proxy MB':>10}{'amplif.':>9}{'samples/s/group':>17}"
          f"{'vs 1 rank':>10}{'of links':>9}{'cap share (min-med)':>21}{'waiting':>9}{'1st sample s':>13}"
          f"{'CPU busy':>10}")
    for r in capped:
        one = by.get((r["contender"], 1))
        print(f"{r['contender']:<13}{r['mesh']:>3}x{r['mesh']:<1}{r['bytes_per_sample'] / 1e6:>16.2f}"
              f"{r['measured_bytes_per_sample'] / 1e6:>10.2f}"
              f"{r['read_amplification']:>9.2f}{r['group_samples_per_s']:>17.3f}"
              f"{r['group_samples_per_s'] / one['group_samples_per_s'] if one else float('nan'):>9.2f}x"
              f"{100 * r['share_of_link_bound']:>8.0f}%"
              f"{100 * r['cap_share_min']:>14.0f}-{100 * r['cap_share_median']:<5.0f}%{100 * r['wait_share']:>8.0f}%"
              f"{r['first_batch_seconds']:>13.1f}{100 * r['cpu_busy']:>9.0f}%")
    print()
    for s in meshes:
        for c in ("jigsaw-reads", "jigsaw"):
            if s > 1 and (c, 1) in by and (c, s) in by:
                print(f"{c} {s}x{s} / 1 rank = {by[(c, s)]['group_samples_per_s'] / by[(c, 1)]['group_samples_per_s']:.2f}x"
                      + (f"  (target: close to {s * s}; {100 * by[(c, s)]['share_of_link_bound']:.0f}% of what "
                         f"the links allow: the largest tile is {cap / by[(c, s)]['link_bound_samples_per_s']:.2f} "
                         f"MB, the mean {by[(c, s)]['bytes_per_sample'] / 1e6:.2f} MB)" if c == "jigsaw-reads" else
                         f"  (with the {step_s:.3f} s step, which bounds a group at {1 / step_s:.2f} samples/s)"))
        j = by.get(("jigsaw", s))
        for c in ("whole", "crop", "rotate"):
            if j and (c, s) in by:
                print(f"jigsaw / {c} at {s}x{s} = {j['group_samples_per_s'] / by[(c, s)]['group_samples_per_s']:.2f}x"
                      + ("  (target >= 3 for whole at 2x2)" if (c, s) == ("whole", 2) else "")
                      + (f"  (rotate's loaders would also scatter "
                         f"{by[(c, s)].get('scatter_bytes_per_sample', 0) / 1e6:.1f} MB a sample over the interconnect)"
                         if c == "rotate" and s > 1 else ""))
    for c in ("jigsaw-reads", "jigsaw"):
        mine = [r for r in capped if r["contender"] == c]
        if mine:
            print(f"{c}: every rank used {100 * min(r['cap_share_min'] for r in mine):.0f}% of its cap or more "
                  f"(target: within 10%)" + ("; where the step bounds the group, the link need not be full"
                                              if c == "jigsaw" else ""))
    ceil = [r for r in rows if not r["cap_mb_s"]]
    if ceil:
        top = min(r["aggregate_mb_s"] for r in ceil)
        load = max(meshes) ** 2 * cap
        print(f"I/O-bound check: capped aggregate at {max(meshes)}x{max(meshes)} = {load:.0f} MB/s against the "
              f"machine's uncapped ceiling of {top:.0f} MB/s (the slowest contender's) = {100 * load / top:.0f}% "
              f"(wants <= 50%); CPU busy at most {100 * max(r['cpu_busy'] for r in capped):.0f}% while capped")
    h, w = map(int, run["grid"].split("x"))
    big = by.get(("jigsaw", max(meshes))) or by.get(("jigsaw-reads", max(meshes)))
    shares = lambda name: statistics.median(r["cap_share_median"] for r in capped if r["contender"] == name)  # noqa: E731
    if big:
        print(f"perf_model.py inputs: --stored-ratio {big['bytes_per_sample'] * big['ranks'] / (69 * h * w * 4):.2f}"
              f" --io-share-tiles {shares('jigsaw-reads' if ('jigsaw-reads', 1) in by else 'jigsaw'):.2f}"
              + (f" --io-share-whole {shares('whole'):.2f}" if ("whole", 1) in by else ""))


if __name__ == "__main__":
    main()
