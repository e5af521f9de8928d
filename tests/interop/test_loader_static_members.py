"""The loader (Python module) on stores with static fields and with ensemble members: each rank's static tile
against zarr-python (normalised and not; a store without them loads as before), and (time, member) samples
whose inputs and targets are the same member's tiles. Needs the Python module (not built under sanitizers)."""
import os
import sys
from pathlib import Path

import numpy as np
import zarr

sys.path.insert(0, os.environ.get("JIGSAW_PYTHONPATH", str(Path(__file__).resolve().parents[2] / "build" / "python")))
# jigsaw's module before cfgrib's ecCodes wheel: that wheel bundles its own libldap (in eckitlib), which, loaded
# first, takes the place of Debian's under libcurl and crashes the process at exit (README, "Python").
import jigsaw as jg  # noqa: E402

from test_ensemble import members_store  # noqa: E402,F401  (fixture)
from test_grib import cfgrib_samples  # noqa: E402,F401  (fixture)
from test_static import BASE, STATICS, synth  # noqa: E402,F401  (and a fixture)


def test_the_loader_delivers_each_ranks_static_tile(jigsaw, synth, tmp_path):
    out = tmp_path / "out.zarr"
    jigsaw.shard("run", "--source", synth, *BASE, "--tiles", "3x2x2", "--static", "lsm,z,slt", "--out", out)
    g = zarr.open_group(str(out), mode="r")
    static = g["static"][...]
    mean, std = g["static_mean"][...], g["static_std"][...]
    seen = 0
    for rank in range(12):
        i, j, k = rank // 4, rank // 2 % 2, rank % 2
        groups = [slice(0, 2), slice(2, 3)][k]
        rows, cols = slice(3 * i, 3 * i + 3), slice(8 * j, 8 * j + 8)
        loader = jg.Loader(str(out), rank=rank, batch_size=1, normalize=False)
        assert loader.static_channels == STATICS[groups]
        np.testing.assert_array_equal(loader.static_tile, static[groups, rows, cols])
        seen += loader.static_tile.size
        normalised = jg.Loader(str(out), rank=rank, batch_size=1, normalize=True).static_tile
        want = ((static[groups, rows, cols] - mean[groups, None, None]) / std[groups, None, None]).astype(np.float32)
        np.testing.assert_allclose(normalised, want, rtol=1e-5, atol=1e-6)
    assert seen == static.size
    # A store without static fields loads as before; its static tile is empty.
    jigsaw.shard("run", "--source", synth, *BASE, "--tiles", "3x2x2", "--out", tmp_path / "plain.zarr")
    plain = jg.Loader(str(tmp_path / "plain.zarr"), rank=5, batch_size=1)
    assert plain.static_tile.shape == (0, 3, 8) and plain.static_channels == []
    assert plain.next_batch()["data"].shape == (1, 2, 1, 3, 8)


def test_the_loader_draws_time_and_member(members_store):
    data = zarr.open_group(str(members_store), mode="r")["data"][...]
    times = zarr.open_group(str(members_store), mode="r")["time"][...]
    loader = jg.Loader(str(members_store), rank=3, batch_size=5, lead_steps=1, seed=2, normalize=False)
    assert loader.batches_per_epoch == 6  # inputs at 3 times (the 4th has no target) x 10 members
    seen = set()
    for _ in range(loader.batches_per_epoch):
        b = loader.next_batch()
        assert len(b["members"]) == 5
        for s, (t, m) in enumerate(zip(b["times"], b["members"])):
            ti = int(np.searchsorted(times, t))
            np.testing.assert_array_equal(b["data"][s, 0], data[ti, m, 2:4, :, 60:120])
            np.testing.assert_array_equal(b["data"][s, 1], data[ti + 1, m, 2:4, :, 60:120])  # the same member
            seen.add((ti, m))
    assert seen == {(t, m) for t in range(3) for m in range(10)}
