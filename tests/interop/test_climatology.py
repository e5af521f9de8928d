"""jigsaw-shard climatology against WeatherBench2's hourly climatology, re-derived in NumPy from its
definition (wb2_climatology.py), on two years of 6-hourly data: 2019 (a common year, whose day 366 WB2 fills
with its 31 December) and 2020 (a leap year)."""
import json

import numpy as np
import pytest
import xarray as xr

from wb2_climatology import hourly_climatology


@pytest.fixture(scope="module")
def two_years(jigsaw, tmp_path_factory):
    d = tmp_path_factory.mktemp("climatology")
    jigsaw.shard("synth", d / "src.zarr", "--grid", "6x12", "--times", "2924", "--start", "2019-01-01T00")
    # A bare --end date is the whole day: up to 2020-12-31T18.
    jigsaw.shard("run", "--source", d / "src.zarr", "--vars", "t2m,msl", "--start", "2019", "--end", "2020-12-31",
                 "--tiles", "1x1x2", "--out", d / "tiles.zarr")
    return d


def check_against_wb2(jigsaw, store, clim_path, tmp_path, **kw):
    data = jigsaw.get(store, "data", tmp_path).astype(np.float64)
    times = jigsaw.get(store, "time", tmp_path).astype("datetime64[s]")
    want = hourly_climatology(times, data, **kw)
    got = xr.open_zarr(clim_path).climatology.values  # [dayofyear, hour, channel, lat, lon]
    hours = list(xr.open_zarr(clim_path).hour.values)
    worst = 0.0
    for (d, h), w in want.items():
        g = got[d - 1, hours.index(h)]
        scale = np.abs(w).max(axis=(1, 2), keepdims=True)
        worst = max(worst, float((np.abs(g - w) / scale).max()))
    assert len(want) == 366 * 4
    return worst, want


def test_the_climatology_is_weatherbench2s_to_float_rounding(jigsaw, two_years, tmp_path):
    store = two_years / "tiles.zarr"
    p = jigsaw.shard("climatology", store, "--start", "2019", "--end", "2020-12-31", "--out", tmp_path / "c.zarr")
    assert "climatology of 2924 samples" in p.stdout and "61-day triangular window" in p.stdout, p.stdout
    worst, want = check_against_wb2(jigsaw, store, tmp_path / "c.zarr", tmp_path)
    assert worst < 3e-7, worst  # float32 rounding of a mean computed in double
    # What the definition changes, so that this test can fail: the uniform window of before differs.
    u = hourly_climatology(jigsaw.get(store, "time", tmp_path).astype("datetime64[s]"),
                           jigsaw.get(store, "data", tmp_path).astype(np.float64), uniform=True)
    assert max(float(np.abs(u[k] - want[k]).max() / np.abs(want[k]).max()) for k in want) > 1e-4
    # WB2's integer hours: no units that xarray would decode into a timedelta.
    ds = xr.open_zarr(tmp_path / "c.zarr", decode_timedelta=True)
    assert ds.hour.dtype == np.int64 and list(ds.hour.values) == [0, 6, 12, 18]
    assert ds.attrs["jigsaw"]["identity"]["window"] == "triangular"


def test_the_uniform_window_is_named_and_kept(jigsaw, two_years, tmp_path):
    store = two_years / "tiles.zarr"
    p = jigsaw.shard("climatology", store, "--uniform-window", "--window", "31", "--out", tmp_path / "u.zarr")
    assert "31-day uniform window" in p.stdout, p.stdout
    worst, _ = check_against_wb2(jigsaw, store, tmp_path / "u.zarr", tmp_path, window=31, uniform=True)
    assert worst < 3e-7, worst
    p = jigsaw.shard("climatology", store, "--window", "1", "--out", tmp_path / "bad.zarr", check=False)
    assert p.returncode != 0 and "triangular window needs at least 3 days" in p.stderr, p.stderr


def test_a_common_year_alone_gives_day_366_its_day_365(jigsaw, two_years, tmp_path):
    """WB2's axis then ends at day 365 (no leap year's 31 December); jigsaw writes day 365's values there."""
    store = two_years / "tiles.zarr"
    p = jigsaw.shard("climatology", store, "--end", "2019", "--out", tmp_path / "c19.zarr")
    assert "climatology of 1460 samples" in p.stdout, p.stdout
    data = jigsaw.get(store, "data", tmp_path).astype(np.float64)[:1460]
    times = jigsaw.get(store, "time", tmp_path).astype("datetime64[s]")[:1460]
    want = hourly_climatology(times, data)
    assert len(want) == 365 * 4
    got = xr.open_zarr(tmp_path / "c19.zarr").climatology.values
    for (d, h), w in want.items():
        np.testing.assert_allclose(got[d - 1, h // 6], w, rtol=3e-7)
    np.testing.assert_array_equal(got[365], got[364])
