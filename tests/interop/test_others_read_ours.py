"""Stores written by jigsaw (jigsaw-store copy, v2 and v3, with and without sharding; jigsaw-shard) read
identically in zarr-python 3, xarray and TensorStore, and the v2 ones in Debian 12's zarr 2.13 / numcodecs 0.11."""
import json
import shutil
import subprocess

import numpy as np
import pytest
import tensorstore as ts
import xarray as xr
import zarr

from conftest import assert_same, debian_read


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


# ---- Debian 12's own stack (zarr 2.13, numcodecs 0.11, xarray; /usr/bin/python3) reads our v2 stores ----

V2_CODECS = ["blosc-lz4", "blosc-zstd", "zstd", "gzip", "zlib", "none"]


@pytest.mark.parametrize("codec", V2_CODECS)
def test_debian_zarr2_reads_our_v2_copies(jigsaw, tmp_path, source, codec):
    src, ds = source
    dst = tmp_path / "copy.zarr"
    jigsaw.store("copy", src, dst, "--format", "zarr2", "--codec", codec)
    got = debian_read(dst, tmp_path / "read.npz")
    ref = zarr.open_group(str(src), mode="r", zarr_format=2)
    names = list(ds.data_vars) + list(ds.coords)
    for name in names:
        assert_same(got[name], ref[name][...])
    assert set(names) <= set(got["_vars"])


@pytest.fixture(scope="module")
def shard_stores(jigsaw, tmp_path_factory):
    """jigsaw-shard stores, v2 and v3, of a synthetic source."""
    d = tmp_path_factory.mktemp("shard")
    jigsaw.shard("synth", d / "src.zarr", "--grid", "17x32", "--times", "4")
    for fmt in ("zarr2", "zarr3"):
        jigsaw.shard("run", "--source", d / "src.zarr", "--vars", "t2m,z", "--levels", "500,850", "--start",
                     "2020-01-01T00", "--end", "2020-01-01T18", "--tiles", "1x2x2", "--format", fmt,
                     "--out", d / f"{fmt}.zarr")
    return d


CHANNELS = ["2m_temperature", "geopotential_500", "geopotential_850"]


def test_debian_stack_reads_a_jigsaw_shard_v2_store_and_selects_channels_by_name(tmp_path, shard_stores):
    store = shard_stores / "zarr2.zarr"
    got = debian_read(store, tmp_path / "read.npz", "geopotential_500")
    ref = zarr.open_group(str(store), mode="r", zarr_format=2)
    for name in ("data", "latitude", "longitude", "time", "mean", "std", "min", "max"):
        assert_same(got[name], ref[name][...])
    assert list(got["channel"]) == CHANNELS
    np.testing.assert_array_equal(got["_sel"], ref["data"][:, 1])


@pytest.mark.parametrize("fmt", [2, 3])
def test_xarray_selects_channels_by_name(shard_stores, fmt):
    ds = xr.open_zarr(shard_stores / f"zarr{fmt}.zarr", zarr_format=fmt)
    assert list(ds.channel.values) == CHANNELS
    raw = zarr.open_group(str(shard_stores / f"zarr{fmt}.zarr"), mode="r", zarr_format=fmt)
    np.testing.assert_array_equal(ds.data.sel(channel="geopotential_850").values, raw["data"][:, 2])
    np.testing.assert_array_equal(ds["mean"].sel(channel="2m_temperature").values, raw["mean"][0])
    assert ds.attrs["jigsaw"]["version"] == 2


def test_a_version_1_store_without_the_channel_coordinate_still_reads(jigsaw, tmp_path, shard_stores):
    """Stores written before the channel coordinate (store version 1) verify, describe and load as before."""
    old = tmp_path / "v1.zarr"
    shutil.copytree(shard_stores / "zarr3.zarr", old)
    shutil.rmtree(old / "channel")
    (old / "jigsaw-checksums.json").unlink()  # version 1 stores had no checksum record either
    root = json.loads((old / "zarr.json").read_text())
    root["attributes"]["jigsaw"]["version"] = 1
    root["consolidated_metadata"]["metadata"].pop("channel")
    (old / "zarr.json").write_text(json.dumps(root))
    jigsaw.shard("verify", old)
    info = json.loads(jigsaw.shard("info", old, "--json").stdout)
    assert info["plan"]["channels"] == CHANNELS
    new = json.loads(jigsaw.shard("info", shard_stores / "zarr3.zarr", "--json").stdout)
    assert new["plan"]["channels"] == CHANNELS
    # The native loader reads the same tiles from both.
    for store in (old, shard_stores / "zarr3.zarr"):
        p = jigsaw.run("jigsaw-bench", "loader", store, "--batch-size", "1", "--max-batches", "2", check=False)
        assert p.returncode == 0, p.stderr


# ---- v3 output uses only codecs of the v3 specification; TensorStore opens every one we write ----

V3_CODECS = ["blosc-lz4", "blosc-lz4hc", "blosc-zstd", "blosc-zlib", "blosc-blosclz", "zstd", "gzip", "none"]


@pytest.mark.parametrize("codec", V3_CODECS)
def test_tensorstore_opens_every_v3_codec_we_write(jigsaw, tmp_path, source, codec):
    src, ds = source
    dst = tmp_path / "copy.zarr"
    jigsaw.store("copy", src, dst, "--format", "zarr3", "--codec", codec)
    for name in ("temperature", "orography", "count", "latitude"):
        t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(dst / name)}}).result()
        np.testing.assert_array_equal(t.read().result(), ds[name].values)


@pytest.fixture(scope="module")
def zlib_big_endian_source(tmp_path_factory):
    """A v2 array compressed with numcodecs zlib and stored big-endian, written by zarr-python."""
    import numcodecs
    path = tmp_path_factory.mktemp("zlib") / "src.zarr"
    g = zarr.open_group(str(path), mode="w", zarr_format=2)
    a = g.create_array("x", shape=(6, 5), chunks=(3, 5), dtype=">f4", compressors=numcodecs.Zlib(level=4))
    values = (np.arange(30, dtype="float32").reshape(6, 5) * 1.5 - 7)
    a[...] = values
    zarr.consolidate_metadata(str(path))
    return path, values


def test_a_zlib_source_becomes_gzip_in_v3_and_the_copy_says_so(jigsaw, tmp_path, zlib_big_endian_source):
    src, values = zlib_big_endian_source
    dst = tmp_path / "v3.zarr"
    out = jigsaw.store("copy", src, dst, "--format", "zarr3").stdout
    assert "zlib has no Zarr v3 codec: re-encoded as gzip, level 4" in out, out
    meta = json.loads((dst / "x" / "zarr.json").read_text())
    assert [c["name"] for c in meta["codecs"]] == ["bytes", "gzip"], meta["codecs"]
    assert meta["codecs"][1]["configuration"]["level"] == 4
    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(dst / "x")}}).result()
    np.testing.assert_array_equal(t.read().result(), values)
    np.testing.assert_array_equal(zarr.open_array(str(dst / "x"), mode="r")[...], values)


def test_copies_keep_the_source_byte_order_unless_told(jigsaw, tmp_path, zlib_big_endian_source):
    src, values = zlib_big_endian_source
    for fmt, order, expect in [("zarr2", None, ">f4"), ("zarr2", "little", "<f4"), ("zarr3", None, "big"),
                               ("zarr3", "little", "little")]:
        dst = tmp_path / f"{fmt}-{order}.zarr"
        jigsaw.store("copy", src, dst, "--format", fmt, *(["--byte-order", order] if order else []))
        if fmt == "zarr2":
            assert json.loads((dst / "x" / ".zarray").read_text())["dtype"] == expect
            got = zarr.open_array(str(dst / "x"), mode="r", zarr_format=2)[...]
        else:
            assert json.loads((dst / "x" / "zarr.json").read_text())["codecs"][0]["configuration"]["endian"] == expect
            got = zarr.open_array(str(dst / "x"), mode="r", zarr_format=3)[...]
        np.testing.assert_array_equal(got, values)
    p = jigsaw.store("copy", src, tmp_path / "bad.zarr", "--byte-order", "middle", check=False)
    assert p.returncode == 2 and "--byte-order" in p.stderr
