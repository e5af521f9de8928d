"""Static (time-independent) fields, `jigsaw-shard run --static`: from a WB2-layout Zarr store's 2-D arrays,
a CDS-like NetCDF file's single time and a GRIB file's surface messages; values, tiling and statistics
against xarray/NumPy; refusals (the loader's static tile: test_loader_static_members.py)."""
import json

import numpy as np
import pytest
import xarray as xr
import zarr

from test_grib import LATS, LONS, NLAT, NLON, cfgrib, write_grib  # GRIB files written by grib_filter

STATICS = ["land_sea_mask", "geopotential_at_surface", "soil_type"]
BASE = ["--vars", "t2m,msl", "--start", "2020-01-01T00", "--end", "2020-01-01T18"]


@pytest.fixture
def synth(jigsaw, tmp_path):
    src = tmp_path / "src.zarr"
    jigsaw.shard("synth", src, "--grid", "9x16", "--times", "4", "--lat-ascending", "--lon-signed")
    return src


def test_static_fields_from_a_wb2_store(jigsaw, synth, tmp_path):
    out = tmp_path / "out.zarr"
    plan = json.loads(jigsaw.shard("plan", "--source", synth, *BASE, "--tiles", "3x2x2", "--static", "lsm,z,slt",
                                   "--json").stdout)
    assert plan["static_channels"] == STATICS
    jigsaw.shard("run", "--source", synth, *BASE, "--tiles", "3x2x2", "--static", "lsm,z,slt", "--out", out)
    assert jigsaw.shard("verify", out).returncode == 0
    # Canonical orientation (the source is south to north, longitudes from -180), as xarray sorts it.
    src = xr.open_zarr(synth).sortby("latitude", ascending=False)
    src = src.assign_coords(longitude=src.longitude % 360).sortby("longitude")
    want = np.stack([src[name].values for name in STATICS])
    ours = xr.open_zarr(out)
    assert list(ours.static_channel.values) == STATICS
    np.testing.assert_array_equal(ours["static"].values, want)
    assert set(np.unique(want[0])) == {0.0, 1.0} and want[1].max() > 0  # a real mask and orography
    # Tiled like data: channel groups by the split rule (3 fields in 2 groups: 2 + 1), lat and lon as data.
    g = zarr.open_group(str(out), mode="r")
    assert g["static"].chunks == (2, 3, 8) and g["data"].chunks[2:] == (3, 8)
    for i, name in enumerate(["static_mean", "static_std", "static_min", "static_max"]):
        ref = [np.mean, np.std, np.min, np.max][i](want.reshape(3, -1).astype(np.float64), axis=1)
        np.testing.assert_allclose(ours[name].values, ref, rtol=1e-12)
    info = json.loads(jigsaw.shard("info", out, "--json").stdout)
    assert len(info["statistics_values"]["static_std"]) == 3
    assert "(static)" in jigsaw.shard("info", out).stdout


def test_static_fields_from_netcdf_single_time_and_grib(jigsaw, tmp_path):
    """A CDS single-level file carries the mask and orography with a time (NetCDF: `lsm`, `z`); a GRIB file as
    surface messages (`lsm`, `z` on surface): both give what the file holds, at its first time."""
    rng = np.random.default_rng(0)
    lsm = (rng.random((NLAT, NLON)) > 0.6).astype(np.float32)
    orography = (rng.random((NLAT, NLON)) * 2e4).astype(np.float32)
    t = np.array(["2020-01-01T00"], dtype="datetime64[ns]")
    ds = xr.Dataset({"lsm": (("valid_time", "latitude", "longitude"), lsm[None]),
                     "z": (("valid_time", "latitude", "longitude"), orography[None])},
                    coords={"valid_time": t, "latitude": LATS, "longitude": LONS})
    ds.to_netcdf(tmp_path / "static.nc")
    fields = [("lsm", "surface", 0, "20200101", 0, lsm), ("z", "surface", 0, "20200101", 0, orography)]
    grib = write_grib(tmp_path / "static.grib", 2, fields)
    dynamic = write_grib(tmp_path / "dynamic.grib", 2, [
        ("2t", "heightAboveGround", 2, "20200101", h, 280 + rng.random((NLAT, NLON))) for h in (0, 600)])
    args = ["--vars", "t2m", "--start", "2020-01-01T00", "--end", "2020-01-01T06", "--tiles", "1x2x1"]
    jigsaw.shard("run", "--source", dynamic, "--source", tmp_path / "static.nc", *args, "--static", "lsm,z",
                 "--out", tmp_path / "nc.zarr")
    jigsaw.shard("run", "--source", dynamic, "--source", grib, *args, "--static", "land_sea_mask,z",
                 "--out", tmp_path / "grib.zarr")
    from_nc = xr.open_zarr(tmp_path / "nc.zarr")
    np.testing.assert_array_equal(from_nc["static"].values, np.stack([lsm, orography]))
    assert list(from_nc.static_channel.values) == ["land_sea_mask", "geopotential_at_surface"]
    from_grib = xr.open_zarr(tmp_path / "grib.zarr")["static"].values
    np.testing.assert_array_equal(from_grib[0], lsm)  # 0 and 1 survive the packing exactly
    np.testing.assert_array_equal(from_grib[1], cfgrib(grib, shortName="z").z.values)  # as cfgrib decodes it
    np.testing.assert_allclose(from_grib[1], orography, atol=2e4 / 2**23)  # 24-bit packing of [0, 2e4)


def test_static_refusals(jigsaw, synth, tmp_path):
    def plan(*extra):
        return jigsaw.shard("plan", "--source", synth, *BASE, *extra, check=False)

    r = plan("--tiles", "1x1x1", "--static", "orography_of_mars")
    assert r.returncode == 2 and 'no source has the static field "orography_of_mars"' in r.stderr
    assert "land_sea_mask" in r.stderr  # what the source has
    r = plan("--tiles", "1x1x1", "--static", "temperature")
    assert r.returncode == 2 and "temperature is on pressure levels" in r.stderr, r.stderr
    r = plan("--tiles", "1x1x1", "--static", "lsm,land_sea_mask")
    assert r.returncode == 2 and "--static names land_sea_mask twice" in r.stderr
    r = plan("--tiles", "1x1x4", "--vars", "z", "--levels", "500,850,250,100", "--static", "lsm,z,slt")
    assert r.returncode == 2 and "static fields" in r.stderr, r.stderr
    # A single-level variable serves as a static field (its first time).
    jigsaw.shard("run", "--source", synth, *BASE, "--tiles", "1x1x1", "--static", "msl", "--out", tmp_path / "m.zarr")
    ours = xr.open_zarr(tmp_path / "m.zarr")
    np.testing.assert_array_equal(ours["static"].values[0], ours.data.values[0, 1])
