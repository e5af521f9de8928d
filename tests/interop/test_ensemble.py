"""Ensemble members, `jigsaw-shard run --members all|LIST`: every member of cfgrib's ERA5 ensemble sample
(GRIB, and its NetCDF sibling) becomes a sample of its own at every time, data [time, member, channel, lat,
lon] as cfgrib reads it, statistics over all of them (tendencies within a member); jigsaw-train on them (1
rank and 2x2 alike); tools that read states by time refuse them (the loader's (time, member) samples:
test_loader_static_members.py)."""
import json

import numpy as np
import pytest
import xarray as xr
import zarr

from test_grib import cfgrib, cfgrib_samples  # noqa: F401  (the fixture, and cfgrib's reading)

ARGS = ["--vars", "z,t", "--start", "2017-01-01T00", "--end", "2017-01-02T12", "--step", "12h", "--tiles", "1x2x2"]
CHANNELS = [("z", 850), ("z", 500), ("t", 850), ("t", 500)]


@pytest.fixture
def members_store(jigsaw, cfgrib_samples, tmp_path):
    out = tmp_path / "ens.zarr"
    jigsaw.shard("run", "--source", cfgrib_samples / "era5-levels-members.grib", "--members", "all", *ARGS, "--out", out)
    return out


def reference(grib):
    """[time, member, channel, lat, lon] as cfgrib reads the file."""
    g = cfgrib(grib)
    return np.stack([g[v].sel(isobaricInhPa=l).values for v, l in CHANNELS], axis=2).transpose(1, 0, 2, 3, 4)


def test_every_member_is_sharded_as_cfgrib_reads_it(jigsaw, cfgrib_samples, members_store, tmp_path):
    grib = cfgrib_samples / "era5-levels-members.grib"
    ours = xr.open_zarr(members_store)
    assert ours.data.dims == ("time", "member", "channel", "latitude", "longitude")
    assert list(ours.member.values) == list(range(10))
    want = reference(grib)
    np.testing.assert_array_equal(ours.data.values, want)
    assert zarr.open_group(str(members_store), mode="r")["data"].chunks == (1, 1, 2, 61, 60)  # one member's tile
    assert jigsaw.shard("verify", members_store).returncode == 0
    assert "10 member" in jigsaw.shard("info", members_store).stdout
    # Statistics over every (time, member); tendencies within a member, between consecutive times.
    x = want.astype(np.float64)
    np.testing.assert_allclose(ours["mean"].values, x.mean(axis=(0, 1, 3, 4)), rtol=1e-10)
    np.testing.assert_allclose(ours["std"].values, x.std(axis=(0, 1, 3, 4)), rtol=1e-8)
    d = np.diff(x, axis=0)
    np.testing.assert_allclose(ours["tendency_mean"].values, d.mean(axis=(0, 1, 3, 4)), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(ours["tendency_std"].values, d.std(axis=(0, 1, 3, 4)), rtol=1e-8)
    # The NetCDF sibling (its `number` dimension) gives the same members, to its int16 packing.
    jigsaw.shard("run", "--source", cfgrib_samples / "era5-levels-members.nc", "--members", "all", *ARGS,
                 "--out", tmp_path / "nc.zarr")
    np.testing.assert_allclose(xr.open_zarr(tmp_path / "nc.zarr").data.values, want, rtol=2e-4)
    # A list of members: those, in that order.
    jigsaw.shard("run", "--source", grib, "--members", "7,2", *ARGS, "--out", tmp_path / "two.zarr")
    two = xr.open_zarr(tmp_path / "two.zarr")
    assert list(two.member.values) == [7, 2]
    np.testing.assert_array_equal(two.data.values, want[:, [7, 2]])
    # A second run of the same plan has nothing to do.
    r = jigsaw.shard("run", "--source", grib, "--members", "all", *ARGS, "--out", members_store)
    assert "already complete" in r.stderr + r.stdout


def test_a_resumed_ensemble_run_rewrites_what_is_missing(jigsaw, cfgrib_samples, members_store, tmp_path):
    grib = cfgrib_samples / "era5-levels-members.grib"
    copy = tmp_path / "resumed.zarr"
    import shutil
    shutil.copytree(members_store, copy)
    root = json.loads((copy / "zarr.json").read_text())
    root["attributes"]["jigsaw"]["complete"] = False  # as a run killed before its end leaves it
    (copy / "zarr.json").write_text(json.dumps(root))
    (copy / "jigsaw-checksums.json").unlink()
    lost = copy / "data" / "c" / "2" / "6" / "1" / "0" / "1"  # time 2, member 6, rank 3's tile
    assert lost.exists()
    lost.unlink()
    # verify names the lost chunk of a complete store (another copy, still marked complete).
    damaged = tmp_path / "damaged.zarr"
    shutil.copytree(members_store, damaged)
    (damaged / "data" / "c" / "2" / "6" / "1" / "0" / "1").unlink()
    r = jigsaw.shard("verify", damaged, check=False)
    assert r.returncode == 1 and "data/c/2/6/1/0/1" in r.stdout, r.stdout
    r = jigsaw.shard("run", "--source", grib, "--members", "all", *ARGS, "--out", copy)
    assert "1 time steps written, 3 already present" in r.stdout, r.stdout
    assert jigsaw.shard("verify", copy).returncode == 0
    np.testing.assert_array_equal(xr.open_zarr(copy).data.values, xr.open_zarr(members_store).data.values)


def test_members_refusals(jigsaw, cfgrib_samples, members_store, tmp_path):
    grib = cfgrib_samples / "era5-levels-members.grib"
    r = jigsaw.shard("plan", "--source", grib, "--members", "all", "--member", "3", *ARGS, check=False)
    assert r.returncode == 2 and "excludes" in r.stderr, r.stderr
    r = jigsaw.shard("plan", "--source", grib, "--members", "3,42", *ARGS, check=False)
    assert r.returncode == 2 and "no member 42" in r.stderr
    r = jigsaw.shard("plan", "--source", grib, "--members", "3,3", *ARGS, check=False)
    assert r.returncode == 2 and "names 3 twice" in r.stderr
    r = jigsaw.shard("plan", "--source", cfgrib_samples / "regular_ll_sfc.grib", "--members", "all", "--vars", "skt",
                     "--start", "2017-10-18T12", "--end", "2017-10-18T12", "--tiles", "1x1x1", check=False)
    assert r.returncode == 2 and "no source has a member dimension" in r.stderr
    r = jigsaw.shard("climatology", members_store, "--out", tmp_path / "clim.zarr", check=False)
    assert r.returncode == 1 and "ensemble members" in r.stderr


def test_jigsaw_train_draws_time_and_member_alike_on_one_rank_and_a_2x2_mesh(jigsaw, cfgrib_samples, tmp_path):
    """Training on an ensemble store: every (time, member) a sample; 1 rank and a 2x2 mesh agree step for step;
    a rollout from the checkpoint refuses the ensemble store by name (it reads states by time)."""
    from conftest import BIN_DIR, run_ranks
    store = tmp_path / "ens.zarr"
    jigsaw.shard("run", "--source", cfgrib_samples / "era5-levels-members.grib", "--members", "all", *ARGS,
                 "--lat-crop", "1", "--out", store)  # 60 rows: whole patches
    (tmp_path / "model.json").write_text(json.dumps({"patch": [3, 4], "dim": 8, "depth": 1, "token_hidden": 8,
                                                     "channel_hidden": 8, "lr": 1e-3, "seed": 1}))
    records = {}
    for ranks, mesh in ((1, "domain=1,tensor=1"), (4, "domain=2,tensor=2")):
        log = tmp_path / f"log-{ranks}.jsonl"
        cmd = [BIN_DIR / "jigsaw-train", "--data", store, "--mesh", mesh, "--config", tmp_path / "model.json",
               "--steps", "4", "--batch-size", "3", "--log", log, "--blas-threads", "1",
               *(["--ckpt", tmp_path / "ck"] if ranks == 1 else [])]
        run_ranks(cmd, ranks)
        records[ranks] = {r["step"]: r["loss"] for r in map(json.loads, log.read_text().splitlines()) if "loss" in r}
    assert sorted(records[1]) == [0, 1, 2, 3]
    for step, loss in records[1].items():
        assert np.isfinite(loss) and abs(loss - records[4][step]) <= 1e-4 * loss, (step, loss, records[4][step])
    r = jigsaw.run("jigsaw-rollout", "--ckpt", tmp_path / "ck", "--data", store, "--init", "2017-01-01T00",
                   "--lead", "12h", "--out", tmp_path / "f.zarr", check=False)
    assert r.returncode == 1 and "10 ensemble members" in r.stderr and "jigsaw-rollout" in r.stderr, r.stderr

