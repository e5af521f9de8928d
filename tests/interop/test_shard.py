"""jigsaw-shard against independent code: sources written by xarray and netCDF4 in each layout, output read
back with zarr-python 3 and TensorStore, compared tile by tile with a numpy re-arrangement of the source;
statistics against numpy."""
import json
import re
import os
import shutil
import signal
import subprocess
import time

import netCDF4
import numpy as np
import pandas as pd
import pytest
import tensorstore as ts
import xarray as xr
import zarr

LEVELS = np.array([50, 250, 500, 850, 1000])


def make_dataset(nt=6, nlat=19, nlon=24, start="2020-01-01T00", seed=0, lat_asc=False, lon_signed=False,
                 levels_desc=False):
    rng = np.random.default_rng(seed)
    lat = np.linspace(90, -90, nlat)
    if lat_asc:
        lat = lat[::-1]
    lon = np.arange(nlon) * 360.0 / nlon
    if lon_signed:
        lon = lon - 180.0
    lev = LEVELS[::-1] if levels_desc else LEVELS
    times = pd.date_range(start, periods=nt, freq="6h")
    ds = xr.Dataset(
        {"temperature": (("time", "level", "latitude", "longitude"),
                         (250 + 20 * rng.standard_normal((nt, len(lev), nlat, nlon))).astype("float32")),
         "geopotential": (("time", "level", "latitude", "longitude"),
                          (5e4 + 5e3 * rng.standard_normal((nt, len(lev), nlat, nlon))).astype("float32")),
         "2m_temperature": (("time", "latitude", "longitude"),
                            (280 + 10 * rng.standard_normal((nt, nlat, nlon))).astype("float32"))},
        coords={"time": times, "level": lev, "latitude": lat, "longitude": lon})
    return ds


def expected_array(ds, vars_, levels):
    """The canonical [time, channel, lat, lon] array, computed with xarray/numpy only."""
    c = ds.copy()
    c = c.assign_coords(longitude=np.mod(c.longitude.values, 360.0)).sortby("longitude").sortby("latitude", ascending=False)
    chans, names = [], []
    for v in vars_:
        if "level" in c[v].dims:
            for l in levels:
                chans.append(c[v].sel(level=l).values)
                names.append(f"{v}_{l:g}")
        else:
            chans.append(c[v].values)
            names.append(v)
    return np.stack(chans, axis=1).astype("float32"), names


def split(n, p):
    c = -(-n // p)
    return [(q * c, min((q + 1) * c, n)) for q in range(p)]


def check_tiles(store, want, tiles, fmt):
    """Reads the store with zarr-python 3 and TensorStore; compares each tile of each time with `want`."""
    z = zarr.open_array(os.path.join(store, "data"), mode="r", zarr_format=fmt)
    assert z.shape == want.shape
    plat, plon, pch = tiles
    # A chunk (for a sharded v3 array, an inner chunk) is exactly one tile of one time step.
    assert z.chunks == (1, -(-want.shape[1] // pch), -(-want.shape[2] // plat), -(-want.shape[3] // plon)), z.chunks
    t = ts.open({"driver": "zarr3" if fmt == 3 else "zarr",
                 "kvstore": {"driver": "file", "path": os.path.join(store, "data")}}).result()
    got_ts = t.read().result()
    for ti in range(want.shape[0]):
        for c0, c1 in split(want.shape[1], pch):
            for y0, y1 in split(want.shape[2], plat):
                for x0, x1 in split(want.shape[3], plon):
                    np.testing.assert_array_equal(z[ti, c0:c1, y0:y1, x0:x1], want[ti, c0:c1, y0:y1, x0:x1])
    np.testing.assert_array_equal(got_ts, want)


def check_stats(store, want, fmt, rtol=0.0):
    """The store's statistics against NumPy's of `want`, the expected data computed without jigsaw. With
    rtol 0 the data are exact and so must min and max be; else `want` agrees with the store to rtol."""
    g = zarr.open_group(store, mode="r", zarr_format=fmt)
    x = want.astype("float64")
    np.testing.assert_allclose(g["mean"][...], x.mean(axis=(0, 2, 3)), rtol=max(rtol, 1e-10))
    np.testing.assert_allclose(g["std"][...], x.std(axis=(0, 2, 3)), rtol=max(rtol * 10, 1e-8))
    np.testing.assert_allclose(g["min"][...], x.min(axis=(0, 2, 3)), rtol=rtol)
    np.testing.assert_allclose(g["max"][...], x.max(axis=(0, 2, 3)), rtol=rtol)
    d = x[1:] - x[:-1]
    scale = np.abs(x).max(axis=(0, 2, 3))  # tendencies are differences: their error is relative to the values
    np.testing.assert_allclose(g["tendency_mean"][...], d.mean(axis=(0, 2, 3)), rtol=1e-8, atol=1e-9 + rtol * scale.max())
    np.testing.assert_allclose(g["tendency_std"][...], d.std(axis=(0, 2, 3)), rtol=max(rtol * 1e3, 1e-8))


COMMON = ["--vars", "temperature,geopotential,2m_temperature", "--levels", "1000,500,50",
          "--start", "2020-01-01T00", "--end", "2020-01-02T06"]


@pytest.mark.parametrize("layout", ["wb2", "lat_asc_lon_signed_levels_desc", "wb2_regridded_dims", "zarr3_source"])
@pytest.mark.parametrize("out_format,extra", [("zarr3", []), ("zarr2", []), ("zarr3", ["--time-per-shard", "4"])])
def test_zarr_sources(jigsaw, tmp_path, layout, out_format, extra):
    kw = {}
    if layout == "lat_asc_lon_signed_levels_desc":
        kw = dict(lat_asc=True, lon_signed=True, levels_desc=True)
    ds = make_dataset(**kw)
    src = str(tmp_path / "src.zarr")
    if layout == "wb2_regridded_dims":  # WB2 regridded stores are (time, level, longitude, latitude)
        ds.transpose("time", "level", "longitude", "latitude").to_zarr(src, zarr_format=2, consolidated=True)
    else:
        ds.to_zarr(src, zarr_format=3 if layout == "zarr3_source" else 2, consolidated=True)
    out = str(tmp_path / "out.zarr")
    jigsaw.shard("run", "--source", src, *COMMON, "--tiles", "2x3x2", "--format", out_format, "--out", out, *extra)
    want, names = expected_array(ds, ["temperature", "geopotential", "2m_temperature"], [1000, 500, 50])
    fmt = 3 if out_format == "zarr3" else 2
    check_tiles(out, want, (2, 3, 2), fmt)
    check_stats(out, want, fmt)
    g = zarr.open_group(out, mode="r", zarr_format=fmt)
    assert g.attrs["channels"] == names
    assert g.attrs["tile_grid"] == [2, 3, 2]
    assert g.attrs["jigsaw"]["complete"] is True
    opened = xr.open_zarr(out, zarr_format=fmt, chunks=None)
    assert opened["data"].dims == ("time", "channel", "latitude", "longitude")
    assert (np.diff(opened.latitude.values) < 0).all() and (np.diff(opened.longitude.values) > 0).all()
    np.testing.assert_array_equal(opened.time.values, ds.time.values)
    jigsaw.shard("verify", out)


def write_cds_netcdf(path, ds, legacy, scale_seed=0):
    """A CDS-style NetCDF file written with netCDF4: new layout (valid_time, pressure_level, short names,
    number/expver) or legacy (time, level, int16 packed with this file's own scale/offset)."""
    short = {"temperature": "t", "geopotential": "z", "2m_temperature": "t2m"}
    with netCDF4.Dataset(path, "w") as nc:
        tname, lname = ("time", "level") if legacy else ("valid_time", "pressure_level")
        nc.createDimension(tname, ds.sizes["time"])
        nc.createDimension(lname, ds.sizes["level"])
        nc.createDimension("latitude", ds.sizes["latitude"])
        nc.createDimension("longitude", ds.sizes["longitude"])
        tv = nc.createVariable(tname, "i4" if legacy else "i8", (tname,))
        if legacy:
            tv.units = "hours since 1900-01-01 00:00:00.0"
            tv.calendar = "gregorian"
            tv[:] = ((ds.time.values - np.datetime64("1900-01-01")) // np.timedelta64(1, "h")).astype("i4")
        else:
            tv.units = "seconds since 1970-01-01"
            tv.calendar = "proleptic_gregorian"
            tv[:] = (ds.time.values - np.datetime64("1970-01-01")) // np.timedelta64(1, "s")
        nc.createVariable(lname, "f8", (lname,))[:] = ds.level.values
        nc.createVariable("latitude", "f8", ("latitude",))[:] = ds.latitude.values
        nc.createVariable("longitude", "f8", ("longitude",))[:] = ds.longitude.values
        if not legacy:
            nc.createVariable("number", "i8", ())[...] = 0
            ev = nc.createVariable("expver", str, (tname,))
            for i in range(ds.sizes["time"]):
                ev[i] = "0001"
        packed = {}
        for v, s in short.items():
            dims = (tname, lname, "latitude", "longitude") if "level" in ds[v].dims else (tname, "latitude", "longitude")
            data = ds[v].values.astype("float64")
            if legacy:
                lo, hi = data.min(), data.max()
                scale = (hi - lo) / (2 ** 16 - 3) * (1 + 0.1 * scale_seed)
                offset = (hi + lo) / 2
                var = nc.createVariable(s, "i2", dims, fill_value=-32767)
                var.scale_factor = scale
                var.add_offset = offset
                var.set_auto_maskandscale(True)
                var[:] = data
                packed[v] = np.round((data - offset) / scale) * scale + offset
            else:
                var = nc.createVariable(s, "f4", dims, zlib=True)
                var[:] = data.astype("float32")
                packed[v] = data.astype("float32")
    return packed


@pytest.mark.parametrize("legacy", [False, True])
def test_netcdf_monthly_files(jigsaw, tmp_path, legacy):
    """Two files (as one download per period) combined by a glob; legacy files pack with different scales."""
    ds = make_dataset(nt=6)
    a, b = ds.isel(time=slice(0, 3)), ds.isel(time=slice(3, 6))
    pa = write_cds_netcdf(str(tmp_path / "era5_a.nc"), a, legacy, 0)
    pb = write_cds_netcdf(str(tmp_path / "era5_b.nc"), b, legacy, 1)
    # What each file decodes to, independently of jigsaw (netCDF4's own unpacking).
    decoded = ds.copy()
    for v in ["temperature", "geopotential", "2m_temperature"]:
        decoded[v] = (ds[v].dims, np.concatenate([pa[v], pb[v]]).astype("float32"))
    out = str(tmp_path / "out.zarr")
    # Short names work on both kinds of source.
    jigsaw.shard("run", "--source", str(tmp_path / "era5_*.nc"), "--vars", "t,z,t2m", "--levels", "1000,500,50",
                 "--start", "2020-01-01T00", "--end", "2020-01-02T06", "--tiles", "1x2x3", "--out", out)
    want, _ = expected_array(decoded, ["temperature", "geopotential", "2m_temperature"], [1000, 500, 50])
    z = zarr.open_array(os.path.join(out, "data"), mode="r")
    np.testing.assert_allclose(z[...], want, rtol=1e-6)
    check_stats(out, want, 3, rtol=1e-6)  # against the independent decode, not jigsaw's own output


def test_plan_prints_and_writes_nothing(jigsaw, tmp_path):
    src = str(tmp_path / "src.zarr")
    make_dataset().to_zarr(src, zarr_format=2, consolidated=True)
    j = json.loads(jigsaw.shard("plan", "--source", src, *COMMON, "--tiles", "1x2x2", "--json").stdout)
    assert j["channels"][:3] == ["temperature_1000", "temperature_500", "temperature_50"]
    assert j["tile_shape"] == [4, 19, 12] and j["data_objects"] == 6 * 4
    assert j["bytes_per_rank_per_sample"] == 4 * 19 * 12 * 4
    assert sorted(os.listdir(tmp_path)) == ["src.zarr"]


def assert_same_tree(a_root, b_root):
    def files(root):
        return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
    assert files(a_root) == files(b_root)
    for rel in files(a_root):
        with open(os.path.join(a_root, rel), "rb") as fa, open(os.path.join(b_root, rel), "rb") as fb:
            assert fa.read() == fb.read(), rel


def test_resume_after_kill_is_identical(jigsaw, tmp_path):
    """A run killed at random moments and started again ends byte-identical to an uninterrupted run."""
    src = str(tmp_path / "big.zarr")
    jigsaw.shard("synth", src, "--grid", "91x180", "--times", "40")
    args = ["--source", src, "--vars", "geopotential,temperature,u_component_of_wind,2m_temperature",
            "--start", "2020-01-01T00", "--end", "2020-01-10T18", "--tiles", "1x2x2", "--threads", "2"]
    ref = str(tmp_path / "ref.zarr")
    t0 = time.time()
    jigsaw.shard("run", *args, "--out", ref)
    full = time.time() - t0
    out = str(tmp_path / "out.zarr")
    rng = np.random.default_rng(7)
    kills = 0
    for _ in range(15):
        if kills >= 5:
            break
        p = subprocess.Popen([str(jigsaw.bin_dir / "jigsaw-shard"), "run", *args, "--out", out],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.01, max(0.03, 0.8 * full)))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
        # Whatever the moment of the kill, a store that verifies as complete is the finished store; then
        # start over, so that later runs have something left to be killed in.
        if jigsaw.shard("verify", out, check=False).returncode == 0:
            assert_same_tree(ref, out)
            shutil.rmtree(out)
    r = jigsaw.shard("run", *args, "--out", out)
    assert kills > 0, "the run was too quick to be interrupted; enlarge the synthetic source"
    assert_same_tree(ref, out)
    jigsaw.shard("verify", out)
    # The last run accounts for every time step once: written now, or found written by a killed run.
    m = re.search(r"(\d+) time steps written, (\d+) already present", r.stdout)
    assert m, r.stdout
    info = json.loads(jigsaw.shard("info", out, "--json").stdout)
    assert int(m.group(1)) + int(m.group(2)) == info["plan"]["num_times"], (r.stdout, info["plan"]["num_times"])


@pytest.mark.parametrize("fmt", ["zarr3", "zarr2"])
def test_killed_between_complete_and_consolidated(jigsaw, tmp_path, fmt):
    """The last two writes of a run mark the store complete, then consolidate its metadata. A kill between
    them (seen under ASan in the kill test above) leaves a store that verify must refuse and a rerun must
    finish to the uninterrupted bytes."""
    src = str(tmp_path / "src.zarr")
    make_dataset().to_zarr(src, zarr_format=2, consolidated=True)
    ref, out = str(tmp_path / "ref.zarr"), str(tmp_path / "out.zarr")
    jigsaw.shard("run", "--source", src, *COMMON, "--tiles", "1x2x2", "--format", fmt, "--out", ref)
    shutil.copytree(ref, out)
    if fmt == "zarr2":
        os.remove(os.path.join(out, ".zmetadata"))
    else:
        with open(os.path.join(out, "zarr.json")) as f:
            root = json.load(f)
        del root["consolidated_metadata"]
        with open(os.path.join(out, "zarr.json"), "w") as f:
            json.dump(root, f, indent=2)
    r = jigsaw.shard("verify", out, check=False)
    assert r.returncode != 0 and "no consolidated metadata" in r.stdout + r.stderr
    r = jigsaw.shard("run", "--source", src, *COMMON, "--tiles", "1x2x2", "--format", fmt, "--out", out)
    assert "consolidated metadata, now written" in r.stdout + r.stderr
    assert_same_tree(ref, out)
    jigsaw.shard("verify", out)
    # Killed between the consolidated metadata and the checksum record, the last write of all.
    os.remove(os.path.join(out, "jigsaw-checksums.json"))
    r = jigsaw.shard("verify", out, check=False)
    assert r.returncode == 1 and "no checksum record" in r.stdout, r.stdout
    r = jigsaw.shard("run", "--source", src, *COMMON, "--tiles", "1x2x2", "--format", fmt, "--out", out)
    assert "was complete but for its checksum record, now written" in r.stdout + r.stderr
    assert_same_tree(ref, out)
    jigsaw.shard("verify", out)


def test_another_plan_is_refused_naming_the_difference(jigsaw, tmp_path):
    src = str(tmp_path / "src.zarr")
    make_dataset().to_zarr(src, zarr_format=2, consolidated=True)
    out = str(tmp_path / "out.zarr")
    jigsaw.shard("run", "--source", src, *COMMON, "--tiles", "1x2x2", "--out", out)
    r = jigsaw.shard("run", "--source", src, *COMMON, "--tiles", "1x2x1", "--out", out, check=False)
    assert r.returncode != 0 and "another plan" in r.stderr and "tiles" in r.stderr
    again = jigsaw.shard("run", "--source", src, *COMMON, "--tiles", "1x2x2", "--out", out)
    assert "already complete" in again.stderr + again.stdout
    r = jigsaw.shard("run", "--source", src, *COMMON, "--tiles", "1x2x2", "--out", src, check=False)
    assert r.returncode != 0 and "did not write" in r.stderr


def test_missing_times_allowed_become_nan_and_are_excluded(jigsaw, tmp_path):
    ds = make_dataset(nt=6)
    src = str(tmp_path / "src.zarr")
    ds.isel(time=[0, 1, 2, 4, 5]).to_zarr(src, zarr_format=2, consolidated=True)
    out = str(tmp_path / "out.zarr")
    r = jigsaw.shard("run", "--source", src, *COMMON, "--tiles", "1x1x1", "--out", out, check=False)
    assert r.returncode == 2 and "2020-01-01T18:00:00" in r.stderr and "temperature" in r.stderr
    jigsaw.shard("run", "--source", src, *COMMON, "--tiles", "1x1x1", "--out", out, "--allow-missing")
    g = zarr.open_group(out, mode="r")
    assert np.isnan(g["data"][3]).all()
    assert g.attrs["jigsaw"]["plan"]["missing_times"] == ["2020-01-01T18:00:00"]
    want, _ = expected_array(ds.isel(time=[0, 1, 2, 4, 5]), ["temperature", "geopotential", "2m_temperature"], [1000, 500, 50])
    np.testing.assert_allclose(g["mean"][...], want.astype("float64").mean(axis=(0, 2, 3)), rtol=1e-10)
    # Tendencies only over consecutive present times: (0,1), (1,2), (4,5).
    x = want.astype("float64")
    d = np.concatenate([x[1:3] - x[0:2], x[4:5] - x[3:4]])
    np.testing.assert_allclose(g["tendency_mean"][...], d.mean(axis=(0, 2, 3)), rtol=1e-8, atol=1e-9)
    jigsaw.shard("verify", out)


def test_bad_input_names_source_variable_and_time(jigsaw, tmp_path):
    src = str(tmp_path / "src.zarr")
    make_dataset().to_zarr(src, zarr_format=2, consolidated=True, encoding={"geopotential": {"chunks": (1, 5, 19, 24)}})
    out = str(tmp_path / "out.zarr")
    base = ["--start", "2020-01-01T00", "--end", "2020-01-02T06", "--tiles", "1x1x1", "--out", out]
    r = jigsaw.shard("run", "--source", src, "--vars", "vorticity", *base, check=False)
    assert r.returncode == 2 and "vorticity" in r.stderr
    r = jigsaw.shard("run", "--source", src, "--vars", "temperature", "--levels", "700", *base, check=False)
    assert r.returncode == 2 and "700" in r.stderr and "temperature" in r.stderr
    r = jigsaw.shard("run", "--source", src, "--vars", "temperature", "--levels", "500",
                     "--start", "2020-01-01T00", "--end", "2020-01-02T06", "--tiles", "1x1x9", "--out", out, check=False)
    assert r.returncode == 2 and "empty" in r.stderr
    other = str(tmp_path / "other.zarr")
    make_dataset(nlat=10).to_zarr(other, zarr_format=2, consolidated=True)
    r = jigsaw.shard("run", "--source", src, "--source", other, "--vars", "temperature", *base, check=False)
    assert r.returncode == 2 and "mismatched grids" in r.stderr and "other.zarr" in r.stderr
    r = jigsaw.shard("run", "--source", src, "--source", src, "--vars", "temperature", *base, check=False)
    assert r.returncode == 2 and "overlapping times" in r.stderr
    # A corrupt chunk in the source: the error names the source, the variable, the time; nothing complete.
    chunk = os.path.join(src, "geopotential", "3.0.0.0")
    with open(chunk, "r+b") as f:
        f.seek(20)
        f.write(b"\xff" * 16)
    r = jigsaw.shard("run", "--source", src, "--vars", "geopotential", *base, check=False)
    assert r.returncode == 1
    for needle in ("src.zarr", "geopotential", "2020-01-01T18:00:00"):
        assert needle in r.stderr, (needle, r.stderr)
    v = jigsaw.shard("verify", out, check=False)
    assert v.returncode != 0 and "not complete" in v.stdout
    info = jigsaw.shard("info", out)
    assert "INCOMPLETE" in info.stdout


def test_missing_source_data_is_an_error_not_nan(jigsaw, tmp_path):
    """A source chunk that is missing, or coordinates that are missing or NaN, stop the run naming what is
    wrong; before, they became NaN tiles (or a NaN latitude) in a store marked complete."""
    base = ["--vars", "temperature", "--levels", "500", "--start", "2020-01-01T00", "--end", "2020-01-02T06",
            "--tiles", "1x1x1"]
    src = tmp_path / "src.zarr"
    ds = make_dataset()
    one_time = (1,) + ds["temperature"].shape[1:]
    ds.to_zarr(str(src), zarr_format=2, consolidated=True, encoding={"temperature": {"chunks": one_time}})
    pristine = tmp_path / "pristine.zarr"
    shutil.copytree(src, pristine)
    os.remove(src / "temperature" / "3.0.0.0")
    r = jigsaw.shard("run", "--source", src, *base, "--out", tmp_path / "a.zarr", check=False)
    assert r.returncode != 0
    for needle in ("temperature", "2020-01-01T18:00:00", "temperature/3.0.0.0 is missing"):
        assert needle in r.stderr, (needle, r.stderr)
    assert jigsaw.shard("verify", tmp_path / "a.zarr", check=False).returncode != 0
    # The latitude: a chunk missing, or values that are NaN.
    src = tmp_path / "lat.zarr"
    shutil.copytree(pristine, src)
    os.remove(src / "latitude" / "0")
    r = jigsaw.shard("run", "--source", src, *base, "--out", tmp_path / "b.zarr", check=False)
    assert r.returncode != 0 and "latitude/0 is missing" in r.stderr, r.stderr
    src = tmp_path / "nanlat.zarr"
    ds = ds.assign_coords(latitude=np.where(np.arange(ds.latitude.size) == 3, np.nan, ds.latitude.values))
    ds.to_zarr(str(src), zarr_format=2, consolidated=True)
    r = jigsaw.shard("run", "--source", src, *base, "--out", tmp_path / "c.zarr", check=False)
    assert r.returncode != 0 and "latitude[3] is nan" in r.stderr, r.stderr


@pytest.mark.parametrize("extra", [[], ["--time-per-shard", "4"]])
def test_a_changed_byte_in_a_v3_chunk_fails_verify_and_every_reader(jigsaw, tmp_path, extra):
    """Every v3 chunk (inner chunk when sharded) carries a crc32c: one flipped byte is found by both verify
    commands, which name the chunk, and refused by jigsaw's loader, zarr-python and TensorStore alike."""
    src = str(tmp_path / "src.zarr")
    make_dataset().to_zarr(src, zarr_format=2, consolidated=True)
    out = tmp_path / "out.zarr"
    jigsaw.shard("run", "--source", src, *COMMON, "--tiles", "1x2x2", "--out", out, *extra)
    meta = json.loads((out / "data" / "zarr.json").read_text())
    names = [c["name"] for c in meta["codecs"]]
    if extra:
        assert names == ["sharding_indexed"]
        names = [c["name"] for c in meta["codecs"][0]["configuration"]["codecs"]]
    assert names[-1] == "crc32c", names
    key = "c/1/1/0/0" if not extra else "c/0/1/0/0"
    chunk = out / "data" / key
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 3] ^= 0x10
    chunk.write_bytes(bytes(raw))
    for tool in ("jigsaw-shard", "jigsaw-store"):
        r = jigsaw.run(tool, "verify", out, check=False)
        assert r.returncode != 0, (tool, r.stdout, r.stderr)
        assert "data/" + key in r.stdout + r.stderr and "crc32c" in r.stdout + r.stderr, (tool, r.stdout, r.stderr)
    with pytest.raises(Exception):
        zarr.open_array(str(out / "data"), mode="r")[...]
    with pytest.raises(Exception):
        ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(out / "data")}}).result().read().result()


@pytest.mark.parametrize("fmt,damage", [("zarr2", "flip"), ("zarr2", "move"), ("zarr3", "move"), ("zarr2", "delete"),
                                        ("zarr2", "add")])
def test_the_checksum_record_finds_what_the_format_cannot(jigsaw, tmp_path, fmt, damage):
    """v2 codecs carry no checksum, and a v3 chunk's crc32c does not know its key: the store's checksum record
    (every object's size and crc32c, written last) finds a flipped byte, a chunk copied over another one, a
    deleted and an added object; both verify commands name the key, and the loader refuses the chunk."""
    src = str(tmp_path / "src.zarr")
    make_dataset().to_zarr(src, zarr_format=2, consolidated=True)
    out = tmp_path / "out.zarr"
    jigsaw.shard("run", "--source", src, *COMMON, "--tiles", "1x2x2", "--format", fmt, "--codec", "blosc-lz4",
                 "--out", out)
    record = json.loads((out / "jigsaw-checksums.json").read_text())
    assert record["format"] == "jigsaw-checksums" and record["algorithm"] == "crc32c"
    keys = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "jigsaw-checksums.json")
    assert sorted(record["objects"]) == keys  # every object, metadata included
    for tool in ("jigsaw-shard", "jigsaw-store"):
        jigsaw.run(tool, "verify", out)
    key = "data/1.1.0.0" if fmt == "zarr2" else "data/c/1/1/0/0"
    chunk = out / key
    if damage == "flip":
        raw = bytearray(chunk.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        chunk.write_bytes(bytes(raw))
    elif damage == "move":  # a valid chunk of another tile (with other bytes: some tiles of this data are equal)
        other = next(p for p in sorted((out / "data").rglob("*")) if p.is_file() and p.name != "zarr.json"
                     and p.name != ".zarray" and p.name != ".zattrs" and p.read_bytes() != chunk.read_bytes())
        shutil.copyfile(other, chunk)
    elif damage == "delete":
        chunk.unlink()
    else:
        key = "data/stray"
        (out / key).write_bytes(b"x")
    said = {"flip": "changed, truncated or moved", "move": "changed, truncated or moved", "delete": "missing",
            "add": "not in the checksum record"}[damage]
    for tool in ("jigsaw-shard", "jigsaw-store"):
        r = jigsaw.run(tool, "verify", out, check=False)
        assert r.returncode == 1, (tool, r.stdout, r.stderr)
        assert f"{key}: " in r.stdout and said in r.stdout, (tool, r.stdout)
    if damage in ("flip", "move"):
        # The loader for the rank whose tile it is (time 1, channel group 1, latitude part 0, longitude part 0).
        failed = []
        for rank in range(4):
            p = jigsaw.run("jigsaw-bench", "loader", out, "--rank", str(rank), "--max-batches", "6", check=False)
            if p.returncode != 0:
                failed.append(rank)
                assert key in p.stderr and "checksum record" in p.stderr, p.stderr
        assert len(failed) == 1, failed


def test_a_variable_with_an_extra_dimension_is_refused_by_name(jigsaw, tmp_path):
    """A Zarr variable with a dimension jigsaw does not know is not "unknown": the refusal names it and the
    dimension, as for NetCDF; a member dimension needs --member; the store's other variables stay readable."""
    ds = make_dataset()
    ds["lead_t2m"] = ds["2m_temperature"].expand_dims(lead=2).transpose("time", "lead", ...)
    ds["ens_t2m"] = (ds["2m_temperature"].expand_dims(member=2).transpose("time", "member", ...) +
                     xr.DataArray(np.array([0, 1], np.float32), dims="member"))
    ds = ds.assign_coords(member=[4, 9])
    src = str(tmp_path / "src.zarr")
    ds.to_zarr(src, zarr_format=2, consolidated=True)
    base = ["--start", "2020-01-01T00", "--end", "2020-01-02T06", "--tiles", "1x1x1"]
    r = jigsaw.shard("run", "--source", src, "--vars", "lead_t2m", *base, "--out", tmp_path / "a.zarr", check=False)
    assert r.returncode == 1 and 'variable "lead_t2m" has the dimension "lead" (2)' in r.stderr, r.stderr
    r = jigsaw.shard("run", "--source", src, "--vars", "ens_t2m", *base, "--out", tmp_path / "a.zarr", check=False)
    assert r.returncode == 2 and '"member" has 2 members (4, 9)' in r.stderr and "--member N" in r.stderr, r.stderr
    jigsaw.shard("run", "--source", src, "--vars", "2m_temperature", *base, "--out", tmp_path / "b.zarr")
    jigsaw.shard("run", "--source", src, "--vars", "ens_t2m", "--member", "9", *base, "--out", tmp_path / "c.zarr")
    np.testing.assert_array_equal(xr.open_zarr(tmp_path / "c.zarr").data.values,
                                  xr.open_zarr(tmp_path / "b.zarr").data.values + 1)


def test_a_resume_rewrites_a_chunk_that_no_longer_decodes(jigsaw, tmp_path):
    """An unfinished store with a truncated chunk: the resume writes that block again from the sources (and
    says so) instead of failing on it, this time and every time after; the result equals a clean run."""
    src = str(tmp_path / "src.zarr")
    make_dataset().to_zarr(src, zarr_format=2, consolidated=True)
    ref, out = str(tmp_path / "ref.zarr"), tmp_path / "out.zarr"
    jigsaw.shard("run", "--source", src, *COMMON, "--tiles", "1x2x2", "--out", ref)
    shutil.copytree(ref, out)
    root = json.loads((out / "zarr.json").read_text())
    root["attributes"]["jigsaw"]["complete"] = False  # as a run killed before its end leaves it
    (out / "zarr.json").write_text(json.dumps(root, indent=2))
    chunk = out / "data" / "c" / "1" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:7])
    r = jigsaw.shard("run", "--source", src, *COMMON, "--tiles", "1x2x2", "--out", out)
    assert "rewriting 2020-01-01T06:00:00" in r.stdout + r.stderr, r.stdout + r.stderr
    jigsaw.shard("verify", out)
    assert_same_tree(ref, str(out))


def test_dtype_lat_crop_statistics_window_codec_and_info_json(jigsaw, tmp_path):
    """--dtype float16, --lat-crop, --stats-start/--stats-end and --codec, each against NumPy, and what
    info --json says of them."""
    ds = make_dataset()
    src = str(tmp_path / "src.zarr")
    ds.to_zarr(src, zarr_format=2, consolidated=True)
    out = str(tmp_path / "out.zarr")
    # Geopotential (~5e4 and more) does not fit float16: refused, naming channel and time, before any data.
    bad = jigsaw.shard("run", "--source", src, *COMMON, "--tiles", "1x1x1", "--dtype", "float16", "--out",
                       str(tmp_path / "bad.zarr"), check=False)
    assert bad.returncode == 2 and "does not fit float16" in bad.stderr and "geopotential_" in bad.stderr, bad.stderr
    assert "2020-01-01T00" in bad.stderr
    common = ["--vars", "temperature,2m_temperature", "--levels", "1000,500,50", "--start", "2020-01-01T00",
              "--end", "2020-01-02T06"]
    jigsaw.shard("run", "--source", src, *common, "--tiles", "1x2x2", "--dtype", "float16", "--lat-crop", "1",
                 "--stats-start", "2020-01-01T06", "--stats-end", "2020-01-01T18", "--codec", "zstd", "--out", out)
    want, names = expected_array(ds, ["temperature", "2m_temperature"], [1000, 500, 50])
    want = want[:, :, :18, :]  # the southernmost of 19 rows dropped
    z = zarr.open_group(out, mode="r", zarr_format=3)
    assert z["data"].dtype == np.float16
    np.testing.assert_array_equal(z["data"][...], want.astype(np.float16))
    np.testing.assert_array_equal(z["latitude"][...], np.linspace(90, -90, 19)[:18])
    # Statistics over 06, 12 and 18 UTC of the first day only (time indices 1..3); tolerance for the float16 values.
    x = want[1:4].astype("float64")
    np.testing.assert_allclose(z["mean"][...], x.mean(axis=(0, 2, 3)), rtol=1e-3)
    np.testing.assert_allclose(z["std"][...], x.std(axis=(0, 2, 3)), rtol=1e-2)
    np.testing.assert_allclose(z["min"][...], x.min(axis=(0, 2, 3)), rtol=1e-3)
    np.testing.assert_allclose(z["max"][...], x.max(axis=(0, 2, 3)), rtol=1e-3)
    full = want.astype("float64")
    assert not np.allclose(z["mean"][...], full.mean(axis=(0, 2, 3)), rtol=1e-3)  # the window mattered
    info = json.loads(jigsaw.shard("info", out, "--json").stdout)
    assert info["plan"]["dtype"] == "float16" and info["plan"]["codec"] == "zstd"
    assert info["plan"]["lat_crop"] == 1 and info["plan"]["grid"] == [18, 24]
    assert info["data_shape"] == [6, 4, 18, 24] and info["complete"] is True
    assert "zstd" in info["data_codecs"]
    assert info["plan"]["channels"] == names
    jigsaw.shard("verify", out)


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF4"])
def test_a_truncated_netcdf_file_is_refused_naming_it(jigsaw, tmp_path, fmt):
    """Classic-format files keep no checksum and libnetcdf reads past a truncated end as zeros: jigsaw-shard
    compares the file with its header and refuses it (NetCDF-4 files libnetcdf refuses itself)."""
    import netCDF4
    path = tmp_path / "era5.nc"
    ds = netCDF4.Dataset(str(path), "w", format=fmt)
    ds.createDimension("time", None)
    ds.createDimension("latitude", 9)
    ds.createDimension("longitude", 12)
    t = ds.createVariable("time", "i4", ("time",))
    t.units, t.calendar = "hours since 2020-01-01 00:00:00", "proleptic_gregorian"
    ds.createVariable("latitude", "f8", ("latitude",))[:] = np.linspace(90, -90, 9)
    ds.createVariable("longitude", "f8", ("longitude",))[:] = np.arange(12) * 30.0
    values = np.random.default_rng(0).standard_normal((4, 9, 12)).astype("f4") + 280
    ds.createVariable("t2m", "f4", ("time", "latitude", "longitude"))[:] = values
    t[:] = np.arange(4) * 6
    ds.close()
    args = ["--vars", "t2m", "--start", "2020-01-01T00", "--end", "2020-01-01T18", "--tiles", "1x1x1"]
    jigsaw.shard("run", "--source", path, *args, "--out", tmp_path / "whole.zarr")
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "whole.zarr" / "data"), mode="r")[:, 0], values)
    cut = tmp_path / "cut.nc"
    cut.write_bytes(path.read_bytes()[:-300])
    r = jigsaw.shard("run", "--source", cut, *args, "--out", tmp_path / "cut.zarr", check=False)
    assert r.returncode == 1 and "cut.nc" in r.stderr, r.stderr
    if fmt != "NETCDF4":
        assert "truncated" in r.stderr, r.stderr
    assert not (tmp_path / "cut.zarr" / "jigsaw-checksums.json").exists()


@pytest.mark.parametrize("edit,said", [
    (lambda plan: plan.update(tiles="1x1x2"), "data chunks are not the plan's tiles"),
    (lambda plan: plan.update(num_times=7), "data shape differs from the recorded plan"),
    (lambda plan: plan.update(channels=plan["channels"][:-1]), "data shape differs from the recorded plan"),
])
def test_verify_finds_metadata_that_disagrees_with_the_plan(jigsaw, tmp_path, edit, said):
    src = str(tmp_path / "src.zarr")
    make_dataset().to_zarr(src, zarr_format=2, consolidated=True)
    out = tmp_path / "out.zarr"
    jigsaw.shard("run", "--source", src, *COMMON, "--tiles", "1x2x2", "--out", out)
    root = json.loads((out / "zarr.json").read_text())
    edit(root["attributes"]["jigsaw"]["plan"])
    (out / "zarr.json").write_text(json.dumps(root))
    r = jigsaw.shard("verify", out, check=False)
    assert r.returncode == 1 and said in r.stdout, r.stdout + r.stderr
    assert "zarr.json" in r.stdout  # and the checksum record names the changed document
