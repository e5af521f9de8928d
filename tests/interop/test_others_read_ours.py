"""Stores written by jigsaw (jigsaw-store copy, v2 and v3, with and without sharding) read identically in
zarr-python 3, xarray and TensorStore."""
import numpy as np
import pytest
import tensorstore as ts
import xarray as xr
import zarr

from conftest import assert_same


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A small WB2-like dataset written by xarray (zarr v2, consolidated), with several dtypes."""
    d = tmp_path_factory.mktemp("src")
    rng = np.random.default_rng(3)
    times = np.arange("2020-01-01T00", "2020-01-03T00", np.timedelta64(6, "h"), dtype="datetime64[ns]")
    ds = xr.Dataset(
        {"temperature": (("time", "level", "latitude", "longitude"),
                         (rng.standard_normal((8, 3, 9, 12)) * 10 + 250).astype("float32"), {"units": "K"}),
         "mask": (("latitude", "longitude"), rng.integers(0, 2, (9, 12)).astype("bool")),
         "orography": (("latitude", "longitude"), rng.standard_normal((9, 12)).astype("float64")),
         "count": (("time",), np.arange(8, dtype="int32"))},
        coords={"time": times, "level": np.array([1000, 850, 500], dtype="int64"),
                "latitude": np.linspace(90, -90, 9), "longitude": np.arange(0, 360, 30.0)},
        attrs={"title": "jigsaw interop"})
    path = d / "src.zarr"
    ds.to_zarr(path, zarr_format=2, consolidated=True, encoding={"temperature": {"chunks": (2, 1, 9, 12)}})
    return path, ds


CONFIGS = {
    "v3_blosc": ["--format", "zarr3", "--codec", "blosc-lz4"],
    "v3_sharded": ["--format", "zarr3", "--codec", "blosc-zstd", "--shard", "4,3,9,12"],
    "v3_zstd_sharded_time": ["--format", "zarr3", "--codec", "zstd", "--shard", "8,1,9,12"],
    "v2_gzip": ["--format", "zarr2", "--codec", "gzip"],
    "v2_none": ["--format", "zarr2", "--codec", "none"],
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_readers_agree(jigsaw, tmp_path, source, config):
    src, ds = source
    dst = tmp_path / f"{config}.zarr"
    args = list(CONFIGS[config])
    if "--shard" in args:
        # Only the 4-d variable can take a 4-d shard: copy it alone from a one-array source first.
        only = tmp_path / "temperature_only.zarr"
        ds[["temperature"]].drop_vars(list(ds.coords)).to_zarr(
            only, zarr_format=2, consolidated=True, encoding={"temperature": {"chunks": (2, 1, 9, 12)}})
        jigsaw.store("copy", only, dst, *args)
        names = ["temperature"]
    else:
        jigsaw.store("copy", src, dst, *args)
        names = list(ds.data_vars) + list(ds.coords)
    jigsaw.store("verify", dst)
    fmt = 3 if "zarr3" in args else 2
    group = zarr.open_group(str(dst), mode="r", zarr_format=fmt)
    ref = zarr.open_group(str(src), mode="r", zarr_format=2)
    for name in names:
        assert_same(group[name][...], ref[name][...])
        assert dict(group[name].attrs).get("units") == dict(ref[name].attrs).get("units")
        kind = "zarr3" if fmt == 3 else "zarr"
        t = ts.open({"driver": kind, "kvstore": {"driver": "file", "path": str(dst / name)}}).result()
        assert_same(t.read().result(), ref[name][...])
    assert group.attrs["title"] == "jigsaw interop"
    opened = xr.open_zarr(dst, zarr_format=fmt, chunks=None)
    for name in names:
        np.testing.assert_array_equal(opened[name].values, ds[name].values)
        assert opened[name].dims == ds[name].dims
    if "--shard" in args:
        meta = group["temperature"].metadata
        assert meta.codecs[0].__class__.__name__ == "ShardingCodec"
