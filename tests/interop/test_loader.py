"""The prefetch loader through its Python module: values against zarr-python reads of the same tile and
times, determinism across runs and thread counts, exact resume, data-parallel splits, bad input."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

sys.path.insert(0, os.environ.get("JIGSAW_PYTHONPATH", str(Path(__file__).resolve().parents[2] / "build" / "python")))
import jigsaw  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A jigsaw-shard store (uneven tiles 2x2x3 over 16 channels) and a sharded bfloat16 one."""
    from conftest import BIN_DIR
    d = tmp_path_factory.mktemp("loader")
    shard = str(BIN_DIR / "jigsaw-shard")
    subprocess.run([shard, "synth", str(d / "src.zarr"), "--grid", "19x36", "--times", "16"], check=True,
                   capture_output=True)
    common = ["--source", str(d / "src.zarr"), "--vars", "z,t,t2m,msl", "--levels", "1000,850,500,250,100,50,925",
              "--start", "2020-01-01T00", "--end", "2020-01-04T18"]
    subprocess.run([shard, "run", *common, "--tiles", "2x2x3", "--out", str(d / "tiles.zarr")], check=True,
                   capture_output=True)
    subprocess.run([shard, "run", *common, "--tiles", "1x2x2", "--time-per-shard", "4", "--dtype", "bfloat16",
                    "--out", str(d / "bf16.zarr")], check=True, capture_output=True)
    return d


def tile_of(g, rank, grid):
    plat, plon, pch = grid
    i, rest = divmod(rank, plon * pch)
    j, k = divmod(rest, pch)
    T, C, H, W = g["data"].shape
    cs, hs, ws = -(-C // pch), -(-H // plat), -(-W // plon)
    return (slice(k * cs, min((k + 1) * cs, C)), slice(i * hs, min((i + 1) * hs, H)), slice(j * ws, min((j + 1) * ws, W)))


@pytest.mark.parametrize("rank", [0, 5, 11])
def test_values_equal_zarr_python(stores, rank):
    path = str(stores / "tiles.zarr")
    g = zarr.open_group(path, mode="r")
    c, y, x = tile_of(g, rank, (2, 2, 3))
    times = g["time"][...]
    for normalize in (False, True):
        loader = jigsaw.Loader(path, rank=rank, batch_size=3, lead_steps=2, normalize=normalize, seed=4)
        assert loader.channels == g.attrs["channels"][c]
        for _ in range(loader.batches_per_epoch + 1):  # into the second epoch
            b = loader.next_batch()
            assert b["data"].shape == (3, 3, c.stop - c.start, y.stop - y.start, x.stop - x.start)
            for s, t in enumerate(b["times"]):
                ti = int(np.searchsorted(times, t))
                want = g["data"][ti:ti + 3, c, y, x]
                if normalize:
                    want = ((want.astype("float64") - g["mean"][c][None, :, None, None])
                            / g["std"][c][None, :, None, None]).astype("float32")
                    np.testing.assert_allclose(b["data"][s], want, rtol=1e-5, atol=1e-5)
                else:
                    np.testing.assert_array_equal(b["data"][s], want)


def test_bfloat16_output_from_a_sharded_bfloat16_store(stores):
    import tensorstore as ts  # zarr-python has no bfloat16; TensorStore reads it
    path = str(stores / "bf16.zarr")
    data = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": path + "/data"}}).result()
    loader = jigsaw.Loader(path, rank=2, batch_size=2, lead_steps=1, dtype="bfloat16", seed=1, normalize=False)
    b = loader.next_batch()
    assert b["data"].dtype == np.uint16
    as_f32 = (b["data"].astype(np.uint32) << 16).view(np.float32)
    times = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": path + "/time"}}).result().read().result()
    plat, plon, pch = 1, 2, 2
    C, H, W = data.shape[1:]
    i, rest = divmod(2, plon * pch)
    j, k = divmod(rest, pch)
    cs, hs, ws = -(-C // pch), -(-H // plat), -(-W // plon)
    ti = int(np.searchsorted(times, b["times"][0]))
    want = data[ti:ti + 2, k * cs:(k + 1) * cs, i * hs:(i + 1) * hs, j * ws:(j + 1) * ws].read().result()
    np.testing.assert_array_equal(as_f32[0], want.astype("float32"))
    stats = loader.stats()
    assert stats["read_amplification"] == pytest.approx(1.0)


def epoch_of(path, **kw):
    loader = jigsaw.Loader(path, **kw)
    out = []
    for _ in range(loader.batches_per_epoch):
        b = loader.next_batch()
        out.append((list(b["times"]), b["data"].copy()))
    return out


def test_deterministic_across_runs_and_thread_counts(stores):
    path = str(stores / "tiles.zarr")
    a = epoch_of(path, rank=4, batch_size=2, seed=9, threads=1, prefetch=1)
    b = epoch_of(path, rank=4, batch_size=2, seed=9, threads=2, prefetch=6)
    assert [t for t, _ in a] == [t for t, _ in b]
    for (_, x), (_, y) in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = epoch_of(path, rank=4, batch_size=2, seed=10)
    assert [t for t, _ in a] != [t for t, _ in c]


def test_resume_equals_uninterrupted(stores):
    path = str(stores / "tiles.zarr")
    full = jigsaw.Loader(path, rank=1, batch_size=2, seed=3)
    n = full.batches_per_epoch
    seq = [full.next_batch() for _ in range(n + 3)]
    first = jigsaw.Loader(path, rank=1, batch_size=2, seed=3, threads=1)
    for _ in range(n - 1):
        first.next_batch()
    state = first.state()
    assert state == {"epoch": 0, "batch": n - 1}
    resumed = jigsaw.Loader(path, rank=1, batch_size=2, seed=3, threads=2)
    resumed.restore(state)
    for want in seq[n - 1:]:
        got = resumed.next_batch()
        assert got["times"] == want["times"] and (got["epoch"], got["index"]) == (want["epoch"], want["index"])
        np.testing.assert_array_equal(got["data"], want["data"])


def test_data_parallel_lists_are_disjoint_equal_and_shared_by_the_group(stores):
    path = str(stores / "tiles.zarr")
    per_replica = []
    for dp in range(3):
        times = [t for ts, _ in epoch_of(path, rank=0, batch_size=1, seed=2, dp_rank=dp, dp_size=3) for t in ts]
        # Another model-parallel rank of the same replica reads the same times.
        other = [t for ts, _ in epoch_of(path, rank=7, batch_size=1, seed=2, dp_rank=dp, dp_size=3) for t in ts]
        assert times == other
        per_replica.append(times)
    assert len({len(t) for t in per_replica}) == 1
    flat = [t for ts in per_replica for t in ts]
    assert len(flat) == len(set(flat))
    usable = 16 - 1  # lead 1
    assert len(flat) == (usable // 3) * 3


def test_time_window(stores):
    path = str(stores / "tiles.zarr")
    loader = jigsaw.Loader(path, rank=0, batch_size=1, lead_steps=1, shuffle=False, start="2020-01-02T00",
                           end="2020-01-02T18")
    assert loader.batches_per_epoch == 3  # inputs 00, 06, 12; each with its target inside the window
    got = [loader.next_batch()["times"][0] for _ in range(3)]
    assert got == [1577923200, 1577944800, 1577966400]


def test_bad_input_is_a_clear_error_and_never_hangs(stores, tmp_path):
    path = str(stores / "tiles.zarr")
    with pytest.raises(ValueError, match="rank 12 is outside the store's tile grid 2x2x3"):
        jigsaw.Loader(path, rank=12)
    with pytest.raises(ValueError, match="fewer than one batch"):
        jigsaw.Loader(path, batch_size=100)
    with pytest.raises(ValueError, match="dp_rank"):
        jigsaw.Loader(path, dp_rank=3, dp_size=3)
    # Incomplete store.
    broken = tmp_path / "incomplete.zarr"
    shutil.copytree(path, broken)
    meta = broken / "zarr.json"
    meta.write_text(meta.read_text().replace('"complete": true', '"complete": false'))
    (broken / "jigsaw-checksums.json").unlink()  # written last: an incomplete store has none
    with pytest.raises(RuntimeError, match="not complete"):
        jigsaw.Loader(str(broken))
    # A corrupt chunk surfaces as an error on the batch that needs it, naming the chunk; no hang.
    corrupt = tmp_path / "corrupt.zarr"
    shutil.copytree(path, corrupt)
    for f in (corrupt / "data" / "c").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    # A time bound of its own: a hang ends the process with a traceback after 60 s, and the whole takes < 30 s.
    import faulthandler
    import time
    start = time.monotonic()
    faulthandler.dump_traceback_later(60, exit=True)
    try:
        loader = jigsaw.Loader(str(corrupt), rank=0, batch_size=1)
        with pytest.raises(RuntimeError, match="data/c/"):
            loader.next_batch()
        with pytest.raises(RuntimeError):
            loader.next_batch()  # stays failed, does not block
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert time.monotonic() - start < 30


def test_bench_reads_exactly_the_chunks_the_loader_reads_for_a_rank(stores):
    """`jigsaw-bench read --rank R` (the loader benchmark's codec-only ceiling) decodes that rank's tiles alone:
    as many chunks as time steps, as many bytes per chunk as the loader's tile."""
    from conftest import BIN_DIR
    import json
    bench = str(BIN_DIR / "jigsaw-bench")
    path = str(stores / "tiles.zarr")
    for rank in (0, 7, 11):
        out = subprocess.run([bench, "--repeats", "1", "read", path, "--array", "data", "--rank", str(rank), "--ceiling",
                              "--json"], check=True, capture_output=True, text=True).stdout
        j = json.loads(out)
        chunk_bytes = int(np.prod(zarr.open_array(path + "/data", mode="r").chunks)) * 4  # edge tiles are padded
        assert j["chunks"] == 16 and j["decoded_bytes"] == 16 * chunk_bytes, (rank, j)
        i, rest = divmod(rank, 2 * 3)
        jj, k = divmod(rest, 3)
        mine = sum((stores / "tiles.zarr" / "data" / "c" / str(t) / str(k) / str(i) / str(jj)).stat().st_size for t in range(16))
        assert j["stored_bytes"] == mine, (rank, j["stored_bytes"], mine)
        if rank == 0:
            loader = jigsaw.Loader(path, rank=rank, batch_size=1, lead_steps=0)
            assert chunk_bytes == int(np.prod(loader.tile_shape)) * 4
    every = json.loads(subprocess.run([bench, "--repeats", "1", "read", path, "--array", "data", "--json"], check=True,
                                      capture_output=True, text=True).stdout)
    assert every["chunks"] == 16 * 12
    p = subprocess.run([bench, "read", path, "--array", "data", "--rank", "12"], capture_output=True, text=True)
    assert p.returncode == 2 and "rank 12 is outside the 2x2x3 tile grid" in p.stderr


def test_torch_example_trains_with_four_ranks(stores):
    """examples/train_torch.py under Debian's python3 with python3-torch: 4 ranks of 1x2x2 as 4 processes."""
    env = dict(os.environ, PYTHONPATH=os.environ.get("JIGSAW_PYTHONPATH", str(ROOT / "build" / "python")))
    r = subprocess.run(["/usr/bin/python3", str(ROOT / "examples" / "train_torch.py"), str(stores / "bf16.zarr"),
                        "--steps", "12"], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.startswith("rank")]
    assert len(lines) == 4
    for line in lines:
        first, last = map(float, line.split("loss ")[1].split(" after")[0].split(" -> "))
        assert last < first, line


TORCH_DATASET = r"""
import sys, torch
from jigsaw.torch import TileDataset
path = sys.argv[1]
opts = dict(rank=1, batch_size=2, lead_steps=1, seed=3, normalize=False)
ds = TileDataset(path, dtype="bfloat16", **opts)
assert len(ds) == ds.loader.batches_per_epoch > 2
assert ds.tile_shape == list(ds.loader.tile_shape) and ds.channels == list(ds.loader.channels) and ds.channels
it = iter(ds)
a, b = next(it), next(it)
assert a.dtype == torch.bfloat16 and a.dim() == 5 and a.shape[:2] == (2, 2), (a.dtype, a.shape)
# The store holds bfloat16: the float32 loader widens the same values exactly.
f = next(iter(TileDataset(path, **opts)))
assert f.dtype == torch.float32 and torch.equal(a.float(), f)
# Resume: a new dataset restored from the state after two batches yields the third.
state = ds.state_dict()
c = next(it)
again = TileDataset(path, dtype="bfloat16", **opts)
again.load_state_dict(state)
assert torch.equal(next(iter(again)), c)
# Through a DataLoader, as the module's docstring says (batch_size=None: batches come whole).
batches = list(torch.utils.data.DataLoader(TileDataset(path, dtype="bfloat16", **opts), batch_size=None))
assert len(batches) == len(ds) and torch.equal(batches[0], a)
# Worker processes would each read every sample: refused with the reason, under both start methods.
for method in ("fork", "spawn"):
    try:
        list(torch.utils.data.DataLoader(TileDataset(path, **opts), batch_size=None, num_workers=2,
                                         multiprocessing_context=method))
        raise SystemExit(f"num_workers=2 ({method}) was not refused")
    except RuntimeError as e:
        assert "num_workers=0" in str(e), (method, str(e))
print("torch dataset ok")
"""


def test_torch_dataset_bfloat16_batches_and_resume(stores):
    """jigsaw.torch under Debian's python3-torch: bfloat16 batches equal the float32 ones, resume continues at
    the next batch, and a DataLoader yields whole batches."""
    env = dict(os.environ, PYTHONPATH=os.environ.get("JIGSAW_PYTHONPATH", str(ROOT / "build" / "python")))
    r = subprocess.run(["/usr/bin/python3", "-c", TORCH_DATASET, str(stores / "bf16.zarr")], capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 0 and "torch dataset ok" in r.stdout, r.stderr
