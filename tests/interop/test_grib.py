"""GRIB sources: files written by ecCodes' own tools (grib_filter, grib_copy) in both editions and every
scanning direction, and the sample files cfgrib ships (fetched from PyPI's source distribution), sharded by
jigsaw-shard and compared with what cfgrib/xarray read from the same files; the same data as GRIB, NetCDF
and Zarr sharded to identical stores; ensemble members; the refusals (reduced Gaussian grid, a grid that
changes, a missing message, an unknown dimension); the file index cache."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from test_data import cfgrib_sample_data  # noqa: E402
SAMPLES = Path(os.environ.get("ECCODES_SAMPLES_PATH", "/usr/share/eccodes/samples"))

# The test grid: 9 x 16, 20 x 22.5 degrees.
NLAT, NLON = 9, 16
LATS = np.linspace(80, -80, NLAT)
LONS = np.arange(NLON) * 22.5


@pytest.fixture(scope="session")
def cfgrib_samples():
    """cfgrib's tests/sample-data, from its source distribution on PyPI, cached in .cache/test-data."""
    return cfgrib_sample_data()


def cfgrib(path, **filter_by_keys):
    return xr.open_dataset(path, engine="cfgrib",
                           backend_kwargs={"indexpath": "", "filter_by_keys": filter_by_keys})


def fields(seed=0):
    """(shortName, typeOfLevel, level, validity 'YYYYMMDD', hhmm, values[lat][lon] north to south)."""
    rng = np.random.default_rng(seed)
    out = []
    for date, hhmm in [("20200101", 0), ("20200101", 600), ("20200101", 1200)]:
        for level in (850, 500):
            out.append(("t", "isobaricInhPa", level, date, hhmm, 250 + 30 * rng.random((NLAT, NLON))))
            out.append(("z", "isobaricInhPa", level, date, hhmm, 1e4 * level / 100 + 500 * rng.random((NLAT, NLON))))
        out.append(("2t", "heightAboveGround", 2, date, hhmm, 270 + 40 * rng.random((NLAT, NLON))))
        out.append(("msl", "meanSea", 0, date, hhmm, 1e5 + 3e3 * rng.random((NLAT, NLON))))
    return out


def write_grib(path, edition, fields, scan="ns"):
    """Writes `fields` with grib_filter from ecCodes' regular_ll template of `edition`, scanning north to
    south ("ns"), south to north ("sn"), east to west ("ew"), or north to south with the points of a column
    consecutive ("col", jPointsAreConsecutive)."""
    lat_first, lat_last, jpos = (-80, 80, 1) if scan == "sn" else (80, -80, 0)
    lon_first, lon_last, ineg = (337.5, 0, 1) if scan == "ew" else (0, 337.5, 0)
    jcon = 1 if scan == "col" else 0
    rules = [f"set Ni = {NLON}; set Nj = {NLAT}; set jScansPositively = {jpos}; set iScansNegatively = {ineg};",
             f"set jPointsAreConsecutive = {jcon};",
             f"set latitudeOfFirstGridPointInDegrees = {lat_first}; set latitudeOfLastGridPointInDegrees = {lat_last};",
             f"set longitudeOfFirstGridPointInDegrees = {lon_first}; set longitudeOfLastGridPointInDegrees = {lon_last};",
             "set iDirectionIncrementInDegrees = 22.5; set jDirectionIncrementInDegrees = 20;"]
    for short, level_type, level, date, hhmm, v in fields:
        if scan == "sn":
            v = v[::-1]
        if scan == "ew":
            v = v[:, ::-1]
        if scan == "col":
            v = v.T
        values = ",".join(f"{x:.6f}" for x in v.ravel())
        rules.append(f'set shortName = "{short}"; set typeOfLevel = "{level_type}"; set level = {level};')
        rules.append(f"set dataDate = {date}; set dataTime = {hhmm}; set bitsPerValue = 24;")
        rules.append(f"set values = {{{values}}};")
        rules.append(f'write "{path}";')
    rules_file = Path(str(path) + ".filter")
    rules_file.write_text("\n".join(rules) + "\n")
    Path(path).unlink(missing_ok=True)
    template = SAMPLES / f"regular_ll_pl_grib{edition}.tmpl"
    subprocess.run(["grib_filter", str(rules_file), str(template)], check=True, capture_output=True)
    return Path(path)


SHARD_ARGS = ["--vars", "t,z,2t,msl", "--levels", "850,500", "--start", "2020-01-01T00", "--end", "2020-01-01T12",
              "--tiles", "1x2x2"]
CHANNELS = [("t", 850), ("t", 500), ("z", 850), ("z", 500), ("t2m", None), ("msl", None)]


def reference(path):
    """[time, channel, lat, lon] for SHARD_ARGS as cfgrib reads the file, north to south, 0 to 360 east."""
    per_level = cfgrib(path, typeOfLevel="isobaricInhPa")
    surface = {"t2m": cfgrib(path, typeOfLevel="heightAboveGround").t2m, "msl": cfgrib(path, typeOfLevel="meanSea").msl}
    planes = []
    for name, level in CHANNELS:
        a = per_level[name].sel(isobaricInhPa=level) if level else surface[name]
        planes.append(a.sortby("latitude", ascending=False).sortby("longitude").values)
    return np.stack(planes, axis=1)


def grib_get_data(path, where):
    """The field of the one message matching `where` as ecCodes' grib_get_data lists it (latitude, longitude,
    value per point), placed on the canonical grid."""
    out = subprocess.run(["grib_get_data", "-F", "%.17g", "-w", where, str(path)], capture_output=True, text=True,
                         check=True).stdout.splitlines()[1:]
    grid = np.full((NLAT, NLON), np.nan, np.float32)
    for line in out:
        lat, lon, value = map(float, line.split())
        grid[list(LATS).index(lat), list(LONS).index(lon % 360)] = np.float32(value)
    assert len(out) == NLAT * NLON and not np.isnan(grid).any()
    return grid


def chunk_bytes(store):
    """{key: bytes} of every data chunk of a jigsaw-shard store."""
    root = Path(store) / "data"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith((".z", "zarr.json"))}


@pytest.mark.parametrize("edition", [1, 2])
def test_every_scanning_direction_shards_to_what_cfgrib_reads(jigsaw, tmp_path, edition):
    stores = {}
    for scan in ("ns", "sn", "ew", "col"):
        grib = write_grib(tmp_path / f"{scan}.grib", edition, fields(), scan)
        # The file really is scanned as asked.
        keys = subprocess.run(["grib_get", "-p", "jScansPositively,iScansNegatively,jPointsAreConsecutive,edition",
                               "-w", "count=1", str(grib)], capture_output=True, text=True, check=True).stdout.split()
        assert keys == {"ns": ["0", "0", "0"], "sn": ["1", "0", "0"], "ew": ["0", "1", "0"],
                        "col": ["0", "0", "1"]}[scan] + [str(edition)]
        out = tmp_path / f"{scan}.zarr"
        jigsaw.shard("run", "--source", grib, *SHARD_ARGS, "--out", out)
        ours = xr.open_zarr(out)
        assert list(ours.channel.values) == ["temperature_850", "temperature_500", "geopotential_850",
                                             "geopotential_500", "2m_temperature", "mean_sea_level_pressure"]
        np.testing.assert_array_equal(ours.latitude.values, LATS)
        np.testing.assert_array_equal(ours.longitude.values, LONS)
        # ecCodes' own grib_get_data: each value with its latitude and longitude.
        np.testing.assert_array_equal(ours.data.values[1, 1], grib_get_data(grib, "shortName=t,level=500,dataTime=600"))
        # cfgrib ignores iScansNegatively and jPointsAreConsecutive (ecmwf/cfgrib issue 236, open): its reads
        # of those two files are wrong; grib_get_data above is the reference there.
        if scan in ("ns", "sn"):
            want = reference(grib)
            assert want.shape == (3, 6, NLAT, NLON)
            np.testing.assert_array_equal(ours.data.values, want)  # float32 of the same decode: exact
        # and close to what was written (24-bit packing)
        written = np.stack([np.stack([f[5] for f in fields()][i * 6:(i + 1) * 6]) for i in range(3)])
        np.testing.assert_allclose(ours.data.values, written[:, [0, 2, 1, 3, 4, 5]], rtol=1e-5)
        stores[scan] = out
    assert jigsaw.shard("verify", stores["sn"]).returncode == 0
    # One decode, four orders: the same store, chunk for chunk.
    assert chunk_bytes(stores["sn"]) == chunk_bytes(stores["ns"]) == chunk_bytes(stores["ew"]) == \
        chunk_bytes(stores["col"])


def test_the_same_data_as_grib_netcdf_and_zarr_shards_to_identical_stores(jigsaw, tmp_path):
    grib = write_grib(tmp_path / "f.grib", 2, fields(seed=1))
    # The NetCDF file and the Zarr store hold what cfgrib decodes from the GRIB file, in the layouts users
    # have (cfgrib's names and dimensions: t2m, isobaricInhPa, time).
    ds = xr.merge([cfgrib(grib, typeOfLevel="isobaricInhPa").drop_vars(["step", "valid_time"]),
                   cfgrib(grib, typeOfLevel="heightAboveGround").drop_vars(["step", "valid_time", "heightAboveGround"]),
                   cfgrib(grib, typeOfLevel="meanSea").drop_vars(["step", "valid_time", "meanSea"])],
                  compat="override")
    ds = ds.drop_vars([v for v in ("number", "surface") if v in ds])
    ds.to_netcdf(tmp_path / "f.nc")
    ds.to_zarr(tmp_path / "f_src.zarr", zarr_format=2, consolidated=True)
    fingerprints, stores = [], []
    for name, src in [("grib", grib), ("nc", tmp_path / "f.nc"), ("zarr", tmp_path / "f_src.zarr")]:
        plan = json.loads(jigsaw.shard("plan", "--source", src, *SHARD_ARGS, "--json").stdout)
        fingerprints.append(plan["fingerprint"])
        jigsaw.shard("run", "--source", src, *SHARD_ARGS, "--out", tmp_path / f"{name}.zarr")
        stores.append(tmp_path / f"{name}.zarr")
    assert fingerprints[0] == fingerprints[1] == fingerprints[2]
    chunks = [chunk_bytes(s) for s in stores]
    assert len(chunks[0]) == 3 * 4 and chunks[0] == chunks[1] == chunks[2]
    stats = [xr.open_zarr(s) for s in stores]
    for a in ("mean", "std", "min", "max"):
        np.testing.assert_array_equal(stats[0][a].values, stats[1][a].values)
        np.testing.assert_array_equal(stats[0][a].values, stats[2][a].values)


def test_an_edition_1_file_and_its_edition_2_conversion_shard_alike(jigsaw, tmp_path):
    """ecCodes' grib_set converts GRIB 1 to GRIB 2 keeping the packed values: both editions give one store."""
    one = write_grib(tmp_path / "one.grib", 1, fields(seed=6))
    two = tmp_path / "two.grib"
    subprocess.run(["grib_set", "-s", "edition=2", str(one), str(two)], check=True, capture_output=True)
    editions = subprocess.run(["grib_get", "-p", "edition", str(two)], capture_output=True, text=True,
                              check=True).stdout.split()
    assert set(editions) == {"2"} and len(editions) == 18
    for name, src in (("one", one), ("two", two)):
        jigsaw.shard("run", "--source", src, *SHARD_ARGS, "--out", tmp_path / f"{name}.zarr")
    assert chunk_bytes(tmp_path / "one.zarr") == chunk_bytes(tmp_path / "two.zarr")


def test_bench_grib_decodes_every_message(jigsaw, tmp_path):
    """jigsaw-bench grib (the ceiling bench_grib.py measures GRIB reads against) decodes every value."""
    grib = write_grib(tmp_path / "f.grib", 2, fields(seed=7))
    out = json.loads(jigsaw.run("jigsaw-bench", "grib", grib, "--json", "--repeats", "1").stdout)
    assert out["bytes_float32"] == 18 * NLAT * NLON * 4 and out["seconds"] > 0
    r = jigsaw.run("jigsaw-bench", "grib", tmp_path / "absent.grib", check=False)
    assert r.returncode == 2 and "absent.grib" in r.stderr


def test_a_value_equal_to_eccodes_default_missing_value_is_kept(jigsaw, tmp_path):
    """A field with a bitmap whose real values include 9999 (ecCodes' default missingValue, a plausible
    geopotential): the point the bitmap marks is NaN, the 9999 stays 9999."""
    values = [9999.0, -1.0] + [10000.0 + i for i in range(NLAT * NLON - 2)]
    rules = tmp_path / "m.filter"
    rules.write_text(
        f"set Ni = {NLON}; set Nj = {NLAT}; set latitudeOfFirstGridPointInDegrees = 80; "
        "set latitudeOfLastGridPointInDegrees = -80; set longitudeOfFirstGridPointInDegrees = 0; "
        "set longitudeOfLastGridPointInDegrees = 337.5; set iDirectionIncrementInDegrees = 22.5; "
        "set jDirectionIncrementInDegrees = 20;\n"
        'set shortName = "z"; set typeOfLevel = "isobaricInhPa"; set level = 850; set dataDate = 20200101; '
        "set dataTime = 0; set bitsPerValue = 24;\n"
        "set bitmapPresent = 1; set missingValue = -1;\n"  # -1 marks the missing point when encoding
        f"set values = {{{','.join(str(v) for v in values)}}};\n"
        f'write "{tmp_path / "m.grib"}";\n')
    subprocess.run(["grib_filter", str(rules), str(SAMPLES / "regular_ll_pl_grib2.tmpl")], check=True)
    assert subprocess.run(["grib_get", "-p", "numberOfMissing", str(tmp_path / "m.grib")], capture_output=True,
                          text=True, check=True).stdout.split() == ["1"]
    jigsaw.shard("run", "--source", tmp_path / "m.grib", "--vars", "z", "--levels", "850", "--start",
                 "2020-01-01T00", "--end", "2020-01-01T00", "--tiles", "1x1x1", "--allow-missing",
                 "--out", tmp_path / "m.zarr")
    got = xr.open_zarr(tmp_path / "m.zarr").data.values[0, 0]
    assert got[0, 0] == 9999.0 and np.isnan(got[0, 1]) and np.isnan(got).sum() == 1
    np.testing.assert_array_equal(got.ravel()[2:], values[2:])


def test_files_of_a_glob_are_combined(jigsaw, tmp_path):
    """One file per time, as CDS requests often are: a glob reads them together."""
    all_fields = fields(seed=2)
    for i, date_time in enumerate(["0000", "0600", "1200"]):
        write_grib(tmp_path / f"era5_{date_time}.grib", 2, all_fields[i * 6:(i + 1) * 6])
    write_grib(tmp_path / "whole.grib", 2, all_fields)
    jigsaw.shard("run", "--source", tmp_path / "era5_*.grib", *SHARD_ARGS, "--out", tmp_path / "glob.zarr")
    jigsaw.shard("run", "--source", tmp_path / "whole.grib", *SHARD_ARGS, "--out", tmp_path / "whole.zarr")
    assert chunk_bytes(tmp_path / "glob.zarr") == chunk_bytes(tmp_path / "whole.zarr")


def test_a_missing_message_is_named_or_filled(jigsaw, tmp_path):
    full = write_grib(tmp_path / "full.grib", 1, fields(seed=3))
    holed = tmp_path / "holed.grib"
    # ecCodes' grib_filter copies every message but t at 500 hPa at 06 UTC.
    keep = tmp_path / "keep.filter"
    keep.write_text('if (shortName is "t" && level == 500 && dataTime == 600) { print "dropped [shortName]"; }\n'
                    'else { write "' + str(holed) + '"; }\n')
    dropped = subprocess.run(["grib_filter", str(keep), str(full)], check=True, capture_output=True, text=True)
    assert dropped.stdout.split() == ["dropped", "t"]
    r = jigsaw.shard("plan", "--source", holed, *SHARD_ARGS, check=False)
    assert r.returncode == 2, r.stderr
    assert str(holed) in r.stderr and "no message for t (temperature) at 500 hPa at 2020-01-01T06:00:00" in r.stderr
    assert "--allow-missing" in r.stderr
    jigsaw.shard("run", "--source", holed, *SHARD_ARGS, "--allow-missing", "--out", tmp_path / "filled.zarr")
    filled = xr.open_zarr(tmp_path / "filled.zarr")
    assert filled.attrs["jigsaw"]["plan"]["missing_times"] == ["2020-01-01T06:00:00"]
    want = reference(full)
    assert np.isnan(filled.data.values[1, :2]).all()  # both temperature channels: a variable is read whole
    np.testing.assert_array_equal(filled.data.values[1, 2:], want[1, 2:])
    np.testing.assert_array_equal(filled.data.values[[0, 2]], want[[0, 2]])


def test_grids_jigsaw_does_not_read_are_refused_naming_the_message(jigsaw, cfgrib_samples, tmp_path):
    r = jigsaw.shard("plan", "--source", cfgrib_samples / "reduced_gg.grib", "--vars", "t", "--start",
                     "2017-10-18T00", "--end", "2017-10-18T00", "--tiles", "1x1x1", check=False)
    assert r.returncode == 1 and "reduced_gg grid" in r.stderr and "message 1 (10u on surface" in r.stderr
    r = jigsaw.shard("plan", "--source", cfgrib_samples / "tp_on_different_grid_resolutions.grib", "--vars", "tp",
                     "--start", "2017-10-18T00", "--end", "2017-10-18T00", "--tiles", "1x1x1", check=False)
    assert r.returncode == 2 and "message 2 (tp on surface" in r.stderr and "message 1 (tp) on regular_ll" in r.stderr


def test_cfgrib_ensemble_sample_needs_a_member(jigsaw, cfgrib_samples, tmp_path):
    grib, nc = cfgrib_samples / "era5-levels-members.grib", cfgrib_samples / "era5-levels-members.nc"
    args = ["--vars", "z,t", "--start", "2017-01-01T00", "--end", "2017-01-02T12", "--step", "12h", "--tiles", "1x2x2"]
    for src in (grib, nc):
        r = jigsaw.shard("plan", "--source", src, *args, check=False)
        assert r.returncode == 2 and '"number"' in r.stderr and "--member N" in r.stderr, r.stderr
        r = jigsaw.shard("plan", "--source", src, *args, "--member", "42", check=False)
        assert r.returncode == 2 and "no member 42" in r.stderr and "0, 1, 2" in r.stderr, r.stderr
    jigsaw.shard("run", "--source", grib, *args, "--member", "3", "--out", tmp_path / "g.zarr")
    jigsaw.shard("run", "--source", nc, *args, "--member", "3", "--out", tmp_path / "n.zarr")
    ref = cfgrib(grib).sel(number=3)
    want = np.stack([ref[v].sel(isobaricInhPa=l).values for v, l in [("z", 850), ("z", 500), ("t", 850), ("t", 500)]],
                    axis=1)
    ours = xr.open_zarr(tmp_path / "g.zarr")
    np.testing.assert_array_equal(ours.data.values, want)
    # The NetCDF sibling holds the same fields, packed as int16 by its writer.
    from_nc = xr.open_zarr(tmp_path / "n.zarr").data.values
    np.testing.assert_allclose(from_nc, want, rtol=2e-4)
    # The member chosen is the member read: member 0 differs.
    jigsaw.shard("run", "--source", grib, *args, "--member", "0", "--out", tmp_path / "g0.zarr")
    member0 = xr.open_zarr(tmp_path / "g0.zarr").data.values
    ref0 = cfgrib(grib).sel(number=0)
    np.testing.assert_array_equal(member0, np.stack([ref0[v].sel(isobaricInhPa=l).values
                                                     for v, l in [("z", 850), ("z", 500), ("t", 850), ("t", 500)]],
                                                    axis=1))
    assert not np.array_equal(member0, ours.data.values)
    # The member is part of the plan: member 1 into member 0's store is another plan, refused, not "complete".
    r = jigsaw.shard("run", "--source", grib, *args, "--member", "1", "--out", tmp_path / "g0.zarr", check=False)
    assert r.returncode != 0 and "member" in r.stderr and "nothing to do" not in r.stdout, r.stdout + r.stderr
    assert json.loads(jigsaw.shard("info", tmp_path / "g0.zarr", "--json").stdout)["plan"]["member"] == 0


def test_cfgrib_samples_levels_in_pa_and_missing_values(jigsaw, cfgrib_samples, tmp_path):
    hpa = cfgrib_samples / "hpa_and_pa.grib"
    # A forecast (2017-09-26T12 + 12 h): the validity time is the sample's time.
    plan = json.loads(jigsaw.shard("plan", "--source", hpa, "--vars", "t", "--start", "2017-09-27T00", "--end",
                                   "2017-09-27T00", "--tiles", "1x1x1", "--json").stdout)
    assert plan["channels"] == ["temperature_1", "temperature_0.1", "temperature_0.01"]
    # Its 1 Pa field is wholly masked (NaN in cfgrib too): kept as missing values only when asked.
    jigsaw.shard("run", "--source", hpa, "--vars", "t", "--start", "2017-09-27T00", "--end", "2017-09-27T00",
                 "--tiles", "1x1x1", "--allow-missing", "--out", tmp_path / "hpa.zarr")
    ours = xr.open_zarr(tmp_path / "hpa.zarr").data.values[0]
    np.testing.assert_array_equal(ours[0], cfgrib(hpa, typeOfLevel="isobaricInhPa").t.values)
    pa = cfgrib(hpa, typeOfLevel="isobaricInPa").t
    np.testing.assert_array_equal(ours[1], pa.sel(isobaricInPa=10).values)
    np.testing.assert_array_equal(ours[2], pa.sel(isobaricInPa=1).values)

    miss = cfgrib_samples / "fields_with_missing_values.grib"
    # Points a field's bitmap masks are missing values: refused unless --allow-missing keeps them as NaN.
    r = jigsaw.shard("run", "--source", miss, "--vars", "2t", "--start", "2017-10-18T00", "--end", "2017-10-18T12",
                     "--step", "12h", "--tiles", "1x1x1", "--out", tmp_path / "refused.zarr", check=False)
    assert r.returncode == 2 and "2m_temperature at 2017-10-18T00" in r.stderr and "not finite" in r.stderr, r.stderr
    jigsaw.shard("run", "--source", miss, "--vars", "2t", "--start", "2017-10-18T00", "--end", "2017-10-18T12",
                 "--step", "12h", "--tiles", "1x1x1", "--allow-missing", "--out", tmp_path / "miss.zarr")
    ours = xr.open_zarr(tmp_path / "miss.zarr").data.values[:, 0]
    want = cfgrib(miss).t2m.values
    assert np.isnan(want).any()
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(want))
    np.testing.assert_array_equal(ours[~np.isnan(ours)], want[~np.isnan(want)])


def test_the_index_is_read_from_the_cache_until_the_file_changes(jigsaw, tmp_path, index_cache):
    grib = write_grib(tmp_path / "f.grib", 2, fields(seed=4))
    args = ["--start", "2020-01-01T00", "--end", "2020-01-01T12", "--tiles", "1x1x1", "--json"]
    jigsaw.shard("plan", "--source", grib, "--vars", "msl", *args)
    (entry,) = index_cache.glob("grib-index/*-f.grib.json")
    # Proof that a second open reads the cache and not the file: an index that calls msl "sp".
    index = json.loads(entry.read_text())
    assert sum(m[3] == "msl" for m in index["messages"]) == 3
    for m in index["messages"]:
        if m[3] == "msl":
            m[3] = "sp"
    entry.write_text(json.dumps(index))
    plan = json.loads(jigsaw.shard("plan", "--source", grib, "--vars", "sp", *args).stdout)
    assert plan["channels"] == ["surface_pressure"]
    # The file changes (its modification time): the index is rebuilt from it.
    os.utime(grib, ns=(entry.stat().st_mtime_ns, entry.stat().st_mtime_ns + 1))
    r = jigsaw.shard("plan", "--source", grib, "--vars", "sp", *args, check=False)
    assert r.returncode == 2 and 'unknown variable "sp"' in r.stderr
    assert json.loads(entry.read_text())["messages"][0][3] in ("t", "z")
    # A damaged cache entry is rebuilt, never an error.
    entry.write_text("{not json")
    jigsaw.shard("plan", "--source", grib, "--vars", "msl", *args)


def test_a_cached_index_is_never_trusted_blindly(jigsaw, tmp_path, index_cache):
    """A cached index with a message past the end of the file is rebuilt (no allocation of what it says); a
    file rewritten with the same size and modification time, its messages in another order, stops the run
    naming the mismatch (never another field's values), its cache entry goes, and the next run is right."""
    grib = write_grib(tmp_path / "f.grib", 2, fields(seed=5))
    args = ["--vars", "msl,t2m", "--start", "2020-01-01T00", "--end", "2020-01-01T12", "--tiles", "1x1x1"]
    jigsaw.shard("run", "--source", grib, *args, "--out", tmp_path / "a.zarr")
    want = xr.open_zarr(tmp_path / "a.zarr").data.values
    (entry,) = index_cache.glob("grib-index/*-f.grib.json")
    index = json.loads(entry.read_text())
    index["messages"][0][2] = 10 ** 15
    entry.write_text(json.dumps(index))
    jigsaw.shard("run", "--source", grib, *args, "--out", tmp_path / "b.zarr")
    np.testing.assert_array_equal(xr.open_zarr(tmp_path / "b.zarr").data.values, want)
    # Messages of one size in another order: the same bytes, size and modification time.
    index = json.loads(entry.read_text())
    raw = grib.read_bytes()
    pieces = [raw[m[1]:m[1] + m[2]] for m in index["messages"]]
    assert len({len(p) for p in pieces}) == 1 and sum(map(len, pieces)) == len(raw)
    stat = grib.stat()
    grib.write_bytes(b"".join(reversed(pieces)))
    os.utime(grib, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    r = jigsaw.shard("run", "--source", grib, *args, "--out", tmp_path / "c.zarr", check=False)
    assert r.returncode != 0 and "the file changed since it was indexed" in r.stderr, r.stderr
    assert not entry.exists()
    jigsaw.shard("run", "--source", grib, *args, "--out", tmp_path / "d.zarr")
    np.testing.assert_array_equal(xr.open_zarr(tmp_path / "d.zarr").data.values, want)


def test_unknown_dimensions_are_refused_by_name(jigsaw, tmp_path):
    t = np.array(["2020-01-01T00", "2020-01-01T06"], dtype="datetime64[ns]")
    data = np.zeros((2, 3, NLAT, NLON), np.float32)
    ds = xr.Dataset({"t2m": (("time", "expver", "latitude", "longitude"), data)},
                    coords={"time": t, "expver": [1, 5, 7], "latitude": LATS, "longitude": LONS})
    ds.to_netcdf(tmp_path / "x.nc")
    ds.to_zarr(tmp_path / "x.zarr", zarr_format=2, consolidated=True)
    for src in (tmp_path / "x.nc", tmp_path / "x.zarr"):
        r = jigsaw.shard("plan", "--source", src, "--vars", "t2m", "--start", "2020-01-01T00", "--end",
                         "2020-01-01T06", "--tiles", "1x1x1", check=False)
        assert r.returncode == 1 and '"expver" (3)' in r.stderr and "does not know" in r.stderr, r.stderr
    # A member dimension is known: realization (WB2/CMIP naming) takes --member by its coordinate value.
    ds = ds.rename({"expver": "realization"})
    ds["t2m"][:] = np.arange(3, dtype=np.float32)[None, :, None, None]
    ds.to_zarr(tmp_path / "m.zarr", zarr_format=3, consolidated=False)
    r = jigsaw.shard("plan", "--source", tmp_path / "m.zarr", "--vars", "t2m", "--start", "2020-01-01T00", "--end",
                     "2020-01-01T06", "--tiles", "1x1x1", check=False)
    assert r.returncode == 2 and '"realization"' in r.stderr
    jigsaw.shard("run", "--source", tmp_path / "m.zarr", "--member", "7", "--vars", "t2m", "--start",
                 "2020-01-01T00", "--end", "2020-01-01T06", "--tiles", "1x1x1", "--out", tmp_path / "m7.zarr")
    assert (xr.open_zarr(tmp_path / "m7.zarr").data.values == 2).all()


def test_describe_says_what_cfgrib_and_xarray_read(jigsaw, cfgrib_samples, tmp_path):
    """jigsaw-shard describe on the GRIB sample, its NetCDF sibling and a Zarr store with a gap, checked against
    what cfgrib and xarray read from the same files (names, levels, units, times, grid, members)."""
    grib, nc = cfgrib_samples / "era5-levels-members.grib", cfgrib_samples / "era5-levels-members.nc"
    described = json.loads(jigsaw.shard("describe", grib, nc, "--json").stdout)["sources"]
    for d, ref in zip(described, (cfgrib(grib), xr.open_dataset(nc))):
        assert [v["name"] for v in d["variables"]] == ["geopotential", "temperature"]
        for v, short in zip(d["variables"], ("z", "t")):
            assert v["short_names"] == [short]
            level_dim = "isobaricInhPa" if "isobaricInhPa" in ref.dims else "level"
            assert v["levels"] == sorted(ref[level_dim].values.tolist(), reverse=True)
            assert v["units"] == ref[short].attrs["units"]
        times = ref["time"].values
        assert d["times"]["count"] == len(times) == 4 and d["times"]["step"] == "12h" and d["times"]["gaps"] == []
        assert d["times"]["first"] == str(times[0])[:19] and d["times"]["last"] == str(times[-1])[:19]
        assert [d["grid"]["latitude"], d["grid"]["longitude"]] == [ref.sizes["latitude"], ref.sizes["longitude"]]
        assert d["grid"]["latitude_range"] == [float(ref.latitude[0]), float(ref.latitude[-1])]
        assert d["grid"]["resolution"] == [3.0, 3.0]
        assert d["members"] == ref["number"].values.tolist()
    text = jigsaw.shard("describe", grib).stdout
    assert "geopotential (z), 2 levels: 850, 500 hPa  [m**2 s**-2]" in text
    assert "times: 4 from 2017-01-01T00:00:00 to 2017-01-02T12:00:00, every 12h, no gaps" in text
    assert "members: 10 (0, 1, 2" in text and "--member N" in text

    # A Zarr store with two times taken out (after writing; xarray drops them), stored south to north from -180.
    src = tmp_path / "src.zarr"
    jigsaw.shard("synth", src, "--grid", "19x36", "--times", "12", "--lat-ascending", "--lon-signed")
    gappy = xr.open_zarr(src).isel(time=[0, 1, 2, 3, 6, 7, 8, 9, 10, 11])
    gappy.to_zarr(tmp_path / "gappy.zarr", zarr_format=2)
    d = json.loads(jigsaw.shard("describe", tmp_path / "gappy.zarr", "--json").stdout)["sources"][0]
    assert d["times"]["step"] == "6h" and d["times"]["count"] == 10
    assert d["times"]["gaps"] == [{"after": "2020-01-01T18:00:00", "before": "2020-01-02T12:00:00",
                                   "missing_steps": 2}]
    assert d["grid"]["as_stored"] == "latitude -90 to 90, longitude -180 to 170"
    assert d["grid"]["latitude_range"] == [90.0, -90.0] and d["static"] == sorted(d["static"]) != []
    for v in d["variables"]:
        assert v["units"] == gappy[v["name"]].attrs.get("units", ""), v
    assert "1 gap:\n    after 2020-01-01T18:00:00 the next is 2020-01-02T12:00:00 (2 missing)" in \
        jigsaw.shard("describe", tmp_path / "gappy.zarr").stdout
    # A source that is not there is named.
    r = jigsaw.shard("describe", tmp_path / "absent.zarr", check=False)
    assert r.returncode != 0 and "absent.zarr" in r.stderr


def test_run_defaults_to_the_sources_span_and_step(jigsaw, cfgrib_samples, tmp_path):
    """Without --start, --end and --step, a run takes the whole file at its own (12-hourly) step: the store an
    explicit run makes; a step that does not fit is refused naming the file's."""
    grib = cfgrib_samples / "era5-levels-members.grib"
    base = ["--source", grib, "--vars", "z,t", "--member", "0", "--tiles", "1x1x1"]
    jigsaw.shard("run", *base, "--out", tmp_path / "implicit.zarr")
    jigsaw.shard("run", *base, "--start", "2017-01-01T00", "--end", "2017-01-02T12", "--step", "12h",
                 "--out", tmp_path / "explicit.zarr")
    assert chunk_bytes(tmp_path / "implicit.zarr") == chunk_bytes(tmp_path / "explicit.zarr")
    r = jigsaw.shard("plan", *base, "--step", "6h", check=False)
    assert r.returncode == 2 and "--step 6h does not fit the sources' 12h step" in r.stderr, r.stderr
