"""bench/bench_io_scaling.py runs where the suite runs (moto, a capped proxy per rank, jigsaw's loader and
xarray + zarr in a PyTorch DataLoader under Debian's Python), and its accounting holds: what each rank reads
per sample, counted at its proxy, is its tile for jigsaw and the whole sample for the peer, and the proxies
held every rank to its cap."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_io_scaling_benchmark_runs_and_counts_what_each_rank_reads(tmp_path):
    out = tmp_path / "run.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "bench_io_scaling.py"), "--grid", "73x144", "--times", "4",
                    "--samples", "8", "--meshes", "1,2", "--cap-mb-s", "8", "--no-ceiling", "--step-s", "0.02",
                    "--json", str(out)], check=True, timeout=600, capture_output=True, text=True)
    run = json.loads(out.read_text())
    by = {(r["contender"], r["mesh"]): r for r in run["rows"]}
    assert set(by) == {(c, s) for c in ("jigsaw", "jigsaw-reads", "whole", "crop", "rotate") for s in (1, 2)}
    whole = by[("whole", 1)]["bytes_per_sample"]
    for (c, s), r in by.items():
        # The proxies' count: every byte the rank's samples need, plus metadata; jigsaw's loader also reads
        # ahead its 4 prefetched samples (of 8), the peer's DataLoader stops at the 8th.
        ratio = r["measured_bytes_per_sample"] / r["bytes_per_sample"]
        assert 0.99 <= ratio <= ((8 + 4 + 1) / 8 if c.startswith("jigsaw") else 1.05), (c, s, r)
        assert r["cap_share_min"] > 0 and r["cap_share_median"] <= 1.1, (c, s, r)  # the token bucket held
    # What the proxies counted, per rank and group sample: a quarter of the sample for jigsaw's 2x2 tiles and
    # for loaders taking turns, the whole sample for every rank that reads it, the touched chunks' for crops.
    measured = {k: r["measured_bytes_per_sample"] for k, r in by.items()}
    assert 0.22 < measured[("jigsaw-reads", 2)] / measured[("jigsaw-reads", 1)] < 0.3
    assert 0.98 < measured[("whole", 2)] / whole < 1.05
    assert 0.24 < measured[("rotate", 2)] / whole < 0.27
    assert 0.26 < measured[("crop", 2)] / whole < 0.98
    assert abs(by[("whole", 2)]["read_amplification"] - 4) < 0.05  # the static fields are not a sample's
