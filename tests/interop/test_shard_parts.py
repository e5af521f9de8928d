"""jigsaw-shard across processes (--part I/N and mpirun): the same data chunks, byte for byte, as one process,
statistics equal to float64 rounding (and bit-identical across reruns of one split), a killed part resumed, a
second claimant refused, the refusals, and parts written to S3 (moto) through the fault-injecting proxy."""
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from servers import FaultProxy, Moto  # noqa: E402

from conftest import BIN_DIR, run_ranks  # noqa: E402
from test_grib import cfgrib_sample_data  # noqa: E402

STATS = ["mean", "std", "min", "max", "tendency_mean", "tendency_std"]


@pytest.fixture(scope="module")
def source(jigsaw, tmp_path_factory):
    d = tmp_path_factory.mktemp("parts-src")
    jigsaw.shard("synth", d / "src.zarr", "--grid", "19x36", "--times", "13")
    return d / "src.zarr"


def data_chunks(store):
    root = Path(store) / "data"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in ("zarr.json", ".zarray", ".zattrs")}


def statistics(store):
    """{name: float64 values} read by zarr-python (v2 or v3 alike)."""
    import zarr
    g = zarr.open_group(str(store), mode="r")
    return {n: g[n][...] for n in STATS}


def assert_same_store(jigsaw, parted, whole, exact_stats=False):
    assert jigsaw.shard("verify", parted).returncode == 0
    chunks = data_chunks(parted)
    assert chunks and chunks == data_chunks(whole)
    mine, theirs = statistics(parted), statistics(whole)
    for n in STATS:
        if exact_stats:
            assert mine[n].tobytes() == theirs[n].tobytes(), n
        else:
            np.testing.assert_allclose(mine[n], theirs[n], rtol=1e-12, atol=1e-12, err_msg=n)


@pytest.mark.parametrize("layout", [["--time-per-shard", "2"], ["--format", "zarr2"]], ids=["v3-shards", "v2"])
def test_parts_one_after_another_equal_one_process(jigsaw, source, tmp_path, layout):
    args = ["--source", source, "--vars", "z,t2m,msl", "--levels", "500,850", "--tiles", "1x2x2", *layout]
    jigsaw.shard("run", *args, "--out", tmp_path / "whole.zarr")
    for n in (1, 2, 3):
        out = tmp_path / f"parts{n}.zarr"
        for i in reversed(range(1, n + 1)):  # any order: the last to end finishes
            r = jigsaw.shard("run", *args, "--part", f"{i}/{n}", "--out", out)
            assert n == 1 or f"part {i}/{n}" in r.stdout  # 1/1 is the whole run
        assert_same_store(jigsaw, out, tmp_path / "whole.zarr")
        info = json.loads(jigsaw.shard("info", out, "--json").stdout)
        if n > 1:
            assert info["parts"] == {"count": n, "done": list(range(1, n + 1)), "to_do": []}
    # One split rerun: the same bits.
    for i in (2, 1, 3):
        jigsaw.shard("run", *args, "--part", f"{i}/3", "--out", tmp_path / "again.zarr")
    assert_same_store(jigsaw, tmp_path / "again.zarr", tmp_path / "parts3.zarr", exact_stats=True)


def test_mpirun_ranks_split_the_times(jigsaw, source, tmp_path):
    args = ["--source", str(source), "--vars", "z,t", "--levels", "500", "--tiles", "1x1x2", "--time-per-shard", "3"]
    jigsaw.shard("run", *args, "--out", tmp_path / "whole.zarr")
    for ranks in (2, 3):
        out = tmp_path / f"mpi{ranks}.zarr"
        p = run_ranks([BIN_DIR / "jigsaw-shard", "run", *args, "--out", out], ranks)
        assert "parts merged" in p.stderr and p.stdout.count(" time steps written") == ranks, p.stdout + p.stderr
        assert_same_store(jigsaw, out, tmp_path / "whole.zarr")


def test_ensemble_members_in_parts(jigsaw, tmp_path):
    grib = cfgrib_sample_data() / "era5-levels-members.grib"
    args = ["--source", grib, "--vars", "z,t", "--members", "all", "--tiles", "1x2x2"]
    jigsaw.shard("run", *args, "--out", tmp_path / "whole.zarr")
    for i in (1, 2):
        jigsaw.shard("run", *args, "--part", f"{i}/2", "--out", tmp_path / "parts.zarr")
    assert_same_store(jigsaw, tmp_path / "parts.zarr", tmp_path / "whole.zarr")


def test_a_killed_part_resumes_and_a_second_claimant_is_refused(jigsaw, source, tmp_path):
    args = ["--source", source, "--vars", "z,t2m", "--levels", "500", "--tiles", "1x2x1"]
    jigsaw.shard("run", *args, "--out", tmp_path / "whole.zarr")
    out = tmp_path / "parts.zarr"
    jigsaw.shard("run", *args, "--part", "1/2", "--out", out)
    jigsaw.shard("run", *args, "--part", "2/2", "--out", out)
    done = data_chunks(out)
    # Part 2 as a SIGKILL leaves it: half its chunks written, no manifest, its claim with the lease it held.
    store = json.loads((out / "zarr.json").read_text())
    store["attributes"]["jigsaw"]["complete"] = False
    (out / "zarr.json").write_text(json.dumps(store))
    for f in ("jigsaw-checksums.json", "jigsaw-parts/part-0002-of-0002.json"):
        (out / f).unlink()
    for key in sorted(k for k in done if k.startswith("c/9/") or k.startswith("c/10/")):
        (out / "data" / key).unlink()
    claim = {"fingerprint": "x", "part": "2/2", "host": "node17", "pid": 4242, "token": "t", "expires": time.time() + 300}
    (out / "jigsaw-parts" / "part-0002-of-0002.claim").write_text(json.dumps(claim))
    r = jigsaw.shard("run", *args, "--part", "2/2", "--out", out, check=False)
    assert r.returncode == 1 and "part 2/2 is being written by node17 (pid 4242)" in r.stderr, r.stderr
    v = jigsaw.shard("verify", out, check=False)
    assert v.returncode == 1 and "not done: part 2 of 2 (2020-01-02T12:00:00 to 2020-01-04T00:00:00)" in v.stdout, v.stdout
    r = jigsaw.shard("finish", out, check=False)
    assert r.returncode == 1 and "1 of 2 parts are not done" in r.stderr and "claimed by node17" in r.stderr, r.stderr
    # The lease lapses (the process is gone): the rerun takes the claim over, writes what is missing, finishes.
    claim["expires"] = time.time() - 1
    (out / "jigsaw-parts" / "part-0002-of-0002.claim").write_text(json.dumps(claim))
    r = jigsaw.shard("run", *args, "--part", "2/2", "--out", out)
    assert "2 time steps written" in r.stdout and "parts merged" in r.stderr, r.stdout + r.stderr
    assert not (out / "jigsaw-parts" / "part-0002-of-0002.claim").exists()
    assert_same_store(jigsaw, out, tmp_path / "whole.zarr")


def test_refusals(jigsaw, source, tmp_path):
    args = ["--source", source, "--vars", "t2m", "--tiles", "1x1x1"]
    r = jigsaw.shard("run", *args, "--part", "3/2", "--out", tmp_path / "a.zarr", check=False)
    assert r.returncode == 2 and "part 3 of 2 does not exist" in r.stderr
    r = jigsaw.shard("run", *args, "--part", "1/14", "--out", tmp_path / "a.zarr", check=False)
    assert r.returncode == 2 and "14 parts of 13 times" in r.stderr and "at most 13 parts" in r.stderr
    jigsaw.shard("run", *args, "--part", "1/3", "--out", tmp_path / "a.zarr")
    r = jigsaw.shard("run", *args, "--part", "2/2", "--out", tmp_path / "a.zarr", check=False)
    assert r.returncode == 1 and "being written in 3 parts; --part 2/2 is a split into 2" in r.stderr
    r = jigsaw.shard("run", "--source", source, "--vars", "msl", "--tiles", "1x1x1", "--part", "2/3",
                     "--out", tmp_path / "a.zarr", check=False)
    assert r.returncode == 1 and "holds another plan" in r.stderr
    r = jigsaw.shard("finish", tmp_path / "a.zarr", check=False)
    assert r.returncode == 1 and "part 2 of 3" in r.stderr and "part 3 of 3" in r.stderr
    r = jigsaw.shard("run", *args, "--out", tmp_path / "a.zarr", check=False)
    assert r.returncode == 1 and "being written in 3 parts" in r.stderr


def test_parts_on_s3_through_faults(jigsaw, source, tmp_path):
    """Claims are conditional writes (If-None-Match: *) on S3, where no file lock exists; with 10% of
    requests failing, the parts finish and the store verifies, its chunks those of a local run."""
    args = ["--source", source, "--vars", "z,t2m", "--levels", "500,850", "--tiles", "1x2x2"]
    jigsaw.shard("run", *args, "--out", tmp_path / "whole.zarr")
    fast = {"JIGSAW_HTTP_STALL_TIMEOUT": "1"}
    with Moto() as moto:
        moto.create_bucket("bkt")
        with FaultProxy(moto.endpoint, rate=0.1, seed=11, stall_s=2) as proxy:
            env = {**moto.env(proxy.url), **fast}
            for i in (2, 3, 1):
                jigsaw.shard("run", *args, "--part", f"{i}/3", "--out", "s3://bkt/parts.zarr", env=env, timeout=600)
            faults = proxy.stats()
        assert jigsaw.shard("verify", "s3://bkt/parts.zarr", env=moto.env()).returncode == 0
        jigsaw.store("copy", "s3://bkt/parts.zarr", tmp_path / "copied.zarr", env=moto.env())
        # A second claim on S3 is refused while the first is held.
        s3 = moto.client()
        claim = {"fingerprint": "x", "part": "1/3", "host": "node3", "pid": 1, "token": "t", "expires": time.time() + 300}
        jigsaw.shard("run", *args, "--part", "2/3", "--out", "s3://bkt/race.zarr", env=moto.env())
        s3.put_object(Bucket="bkt", Key="race.zarr/jigsaw-parts/part-0001-of-0003.claim", Body=json.dumps(claim))
        r = jigsaw.shard("run", *args, "--part", "1/3", "--out", "s3://bkt/race.zarr", env=moto.env(), check=False)
        assert r.returncode == 1 and "being written by node3" in r.stderr, r.stderr
    assert sum(faults[k] for k in ("503", "reset", "truncate", "stall")) >= 3, faults
    assert_same_store(jigsaw, tmp_path / "copied.zarr", tmp_path / "whole.zarr")


def test_a_part_killed_by_sigkill_reruns_alone_to_the_same_store(jigsaw, tmp_path):
    """SIGKILL a part while it writes (its claim left behind, its process gone): rerun on this host, it takes
    the claim over at once, writes what is missing, and the store equals one process's byte for byte."""
    import signal
    import subprocess
    jigsaw.shard("synth", tmp_path / "src.zarr", "--grid", "91x180", "--times", "40")
    args = ["--source", tmp_path / "src.zarr", "--vars", "z,t,u,v,q", "--tiles", "1x1x1"]
    jigsaw.shard("run", *args, "--out", tmp_path / "whole.zarr")
    out = tmp_path / "parts.zarr"
    jigsaw.shard("run", *args, "--part", "1/2", "--out", out)
    cmd = [str(BIN_DIR / "jigsaw-shard"), "run", *map(str, args), "--part", "2/2", "--threads", "1", "--out", str(out)]
    for attempt in range(5):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline and p.poll() is None and not (out / "data" / "c" / "21").exists():
            time.sleep(0.005)
        p.send_signal(signal.SIGKILL)
        p.wait()
        if not (out / "jigsaw-parts" / "part-0002-of-0002.json").exists():
            break  # killed mid-way
    assert (out / "jigsaw-parts" / "part-0002-of-0002.claim").exists()
    assert not (out / "jigsaw-parts" / "part-0002-of-0002.json").exists()
    written = len(list((out / "data" / "c").iterdir()))
    assert 20 <= written < 40, written
    r = jigsaw.shard("run", *args, "--part", "2/2", "--out", out)
    assert "parts merged" in r.stderr, r.stderr
    assert_same_store(jigsaw, out, tmp_path / "whole.zarr")
