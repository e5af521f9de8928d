"""Checkpoint save/load/reshard: jigsaw beside torch.save/torch.load (../shared/peers/peer_ckpt_torch.py) and
a dd write with fsync of the same byte count, in one run.

usage: .venv/bin/python bench/bench_ckpt.py [--gb 2] [--dir /tmp/bench/ckpt]
"""
import argparse
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "peers"


def timed(cmd):
    """Runs cmd under /usr/bin/time; returns (stdout, peak RSS in MB)."""
    p = subprocess.run(["/usr/bin/time", "-f", "PEAK_KB %M", *cmd], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{p.stderr}")
    return p.stdout, int(re.search(r"PEAK_KB ([0-9]+)", p.stderr).group(1)) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--dir", default="/tmp/bench/ckpt")
    a = ap.parse_args()
    d = Path(a.dir)
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    peer, peer_mb = timed(["/usr/bin/python3", str(PEERS / "peer_ckpt_torch.py"), str(d / "torch"), str(a.gb)])
    m = re.search(r"= ([0-9.]+) GB/s; torch.load \(cold\): ([0-9.]+) GB/s", peer)
    peer_save, peer_load = float(m.group(1)), float(m.group(2))
    pt = d / "torch" / "model.pt"
    # The disk's ceiling for a cold load: dd reading the peer's file after the page cache is dropped.
    subprocess.run("sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null", shell=True)
    t0 = time.perf_counter()
    subprocess.run(["dd", f"if={pt}", "of=/dev/null", "bs=16M"], capture_output=True, check=True)
    dd_read_gbs = pt.stat().st_size / (time.perf_counter() - t0) / 1e9
    # The peer's torch.load again with the file in the page cache (a load soon after a save, or a second one).
    warm = subprocess.run(["/usr/bin/python3", "-c", "import sys, time, torch\n"
                           "torch.load(sys.argv[1]); t = time.perf_counter(); sd = torch.load(sys.argv[1])\n"
                           "print(sum(v.numel() * 4 for v in sd.values()) / (time.perf_counter() - t) / 1e9)", str(pt)],
                          capture_output=True, text=True, check=True)
    peer_warm_load = float(warm.stdout)
    shutil.rmtree(d / "torch")
    nbytes = int(a.gb * 1e9)
    subprocess.run(["dd", "if=/dev/urandom", f"of={d}/rnd", "bs=4M", f"count={nbytes // (4 << 20)}"], capture_output=True,
                   check=True)
    t0 = time.perf_counter()
    subprocess.run(["dd", f"if={d}/rnd", f"of={d}/dd.out", "bs=4M", "conv=fsync"], capture_output=True, check=True)
    dd_s = time.perf_counter() - t0
    dd_gbs = (d / "rnd").stat().st_size / dd_s / 1e9
    for f in ("rnd", "dd.out"):
        (d / f).unlink()
    j = json.loads(subprocess.run([str(ROOT / "build/cli/jigsaw-bench"), "ckpt", str(d / "jigsaw"), "--gb", str(a.gb)],
                                  capture_output=True, text=True, check=True).stdout)
    print(f"{j['bytes'] / 1e9:.2f} GB of float32 tensors, mesh domain=2,tensor=2 (16 tensors, 4 tiles each)")
    print(f"{'':40s} {'GB/s':>7s}")
    print(f"{'torch.save + fsync (peer)':40s} {peer_save:7.2f}")
    print(f"{'dd write + fsync':40s} {dd_gbs:7.2f}")
    print(f"{'jigsaw save (fsync, manifest, LATEST)':40s} {j['save_gb_per_s']:7.2f}   "
          f"{j['save_gb_per_s'] / peer_save:.2f}x torch.save, {j['save_gb_per_s'] / dd_gbs:.0%} of dd")
    print(f"{'dd read, cold (the disk)':40s} {dd_read_gbs:7.2f}")
    print(f"{'torch.load (peer, cold if allowed)':40s} {peer_load:7.2f}")
    print(f"{'jigsaw load, 4 ranks in parallel, cold':40s} {j['load_gb_per_s']:7.2f}   {j['load_gb_per_s'] / peer_load:.2f}x torch.load, "
          f"{j['load_gb_per_s'] / dd_read_gbs:.0%} of dd")
    print(f"{'  the same, copying (read, no mapping)':40s} {j['read_load_gb_per_s']:7.2f}")
    print(f"{'torch.load, warm page cache':40s} {peer_warm_load:7.2f}")
    print(f"{'jigsaw load, warm page cache':40s} {j['warm_load_gb_per_s']:7.2f}   {j['warm_load_gb_per_s'] / peer_warm_load:.2f}x torch.load")
    print(f"{'  the same, copying (read, no mapping)':40s} {j['warm_read_load_gb_per_s']:7.2f}")
    print(f"reshard 2x2 -> 4x2: {j['reshard_seconds']:.2f} s; plain copy of the files (cp -r + sync): "
          f"{j['copy_seconds']:.2f} s; ratio {j['reshard_seconds'] / j['copy_seconds']:.2f}")
    # Peak memory. The peer holds the state dict and, loading, a second copy. jigsaw's save needs the tensors
    # plus its buffers; `jigsaw-ckpt reshard`, a process of its own here, streams tile intersections.
    _, reshard_mb = timed([str(ROOT / "build/cli/jigsaw-ckpt"), "reshard", str(d / "jigsaw" / "a"), "--mesh",
                           "domain=4,tensor=2", "--out", str(d / "jigsaw" / "r")])
    print(f"peak RSS: peer (torch.save then torch.load) {peer_mb:.0f} MB; jigsaw-bench's {j['peak_rss_tensors_mb']:.0f} MB "
          f"of tensors + {j['peak_rss_after_save_mb'] - j['peak_rss_tensors_mb']:.0f} MB while saving; "
          f"jigsaw-ckpt reshard 2x2 -> 4x2 of {j['bytes'] / 1e9:.1f} GB: {reshard_mb:.0f} MB")


if __name__ == "__main__":
    main()
