"""Stores written by zarr-python 3, TensorStore and xarray read identically in jigsaw."""
import json

import numcodecs
import numpy as np
import pytest
import tensorstore as ts
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, GzipCodec, ShardingCodec, TransposeCodec, ZstdCodec

from conftest import assert_same

DTYPES = ["float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "bool"]


def sample(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if np.dtype(dtype).kind == "f":
        return (rng.standard_normal(shape) * 100).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 1000), shape).astype(dtype)


def fill_for(dtype):
    return False if dtype == "bool" else (np.nan if np.dtype(dtype).kind == "f" else 7)


def write_partial(arr, data):
    """Writes all but the last chunk row, so that missing chunks must read as the fill value."""
    arr[: data.shape[0] - 3] = data[: data.shape[0] - 3]


def expected(data, fill):
    out = data.copy()
    out[data.shape[0] - 3:] = fill
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["plain", "sharded", "big_endian_crc", "transpose"])
def test_zarr_python_v3(jigsaw, tmp_path, dtype, layout):
    shape, chunks = (9, 10, 7), (3, 5, 4)
    data = sample(dtype, shape)
    fill = fill_for(dtype)
    kw = dict(shape=shape, dtype=dtype, chunks=chunks, fill_value=fill, zarr_format=3,
              dimension_names=["time", "lat", "lon"], attributes={"units": "K", "nested": {"a": [1, 2]}})
    if layout == "sharded":
        kw.update(chunks=(3, 5, 2), shards=(3, 10, 4), compressors=[ZstdCodec(level=1)])
    elif layout == "big_endian_crc":
        kw.update(serializer=BytesCodec(endian="big"), compressors=[GzipCodec(level=3), Crc32cCodec()])
    elif layout == "transpose":
        kw.update(filters=[TransposeCodec(order=(2, 0, 1))],
                  compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")])
    arr = zarr.create_array(store=str(tmp_path / "s.zarr"), name="a", **kw)
    write_partial(arr, data)
    got = jigsaw.get(tmp_path / "s.zarr", "a", tmp_path)
    assert_same(got, arr[...])
    assert_same(got, expected(data, fill))
    # A box that cuts chunks (and shards) unevenly.
    assert_same(jigsaw.get(tmp_path / "s.zarr", "a", tmp_path, "1:8,-7:,3"), arr[1:8, -7:, 3])
    jigsaw.store("verify", tmp_path / "s.zarr")


@pytest.mark.parametrize("dtype", ["<f4", ">f4", ">i2", "<u8", "|b1", "<f2", ">f8"])
@pytest.mark.parametrize("compressor", ["blosc", "blosc_bit", "zstd", "gzip", "zlib", "none"])
def test_zarr_python_v2(jigsaw, tmp_path, dtype, compressor):
    comp = {"blosc": numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE),
            "blosc_bit": numcodecs.Blosc("zstd", 3, numcodecs.Blosc.BITSHUFFLE),
            "zstd": numcodecs.Zstd(level=2), "gzip": numcodecs.GZip(level=4), "zlib": numcodecs.Zlib(level=1),
            "none": None}[compressor]
    shape = (9, 6)
    data = sample(np.dtype(dtype).newbyteorder("=").name, shape).astype(dtype)
    fill = fill_for(np.dtype(dtype).newbyteorder("=").name)
    sep = "/" if compressor in ("zstd", "gzip") else "."
    arr = zarr.create_array(store=str(tmp_path / "v2.zarr"), name="a", shape=shape, chunks=(3, 4), dtype=dtype,
                            compressors=comp, fill_value=fill, zarr_format=2,
                            chunk_key_encoding={"name": "v2", "separator": sep})
    write_partial(arr, data)
    assert_same(jigsaw.get(tmp_path / "v2.zarr", "a", tmp_path), arr[...])
    jigsaw.store("verify", tmp_path / "v2.zarr")


def test_zarr_python_v2_fortran_order_and_null_fill(jigsaw, tmp_path):
    data = sample("float32", (5, 7))
    arr = zarr.create_array(store=str(tmp_path / "f.zarr"), name="a", shape=(5, 7), chunks=(2, 3), dtype="f4",
                            order="F", fill_value=None, zarr_format=2)
    arr[:3] = data[:3]
    assert_same(jigsaw.get(tmp_path / "f.zarr", "a", tmp_path), arr[...])


@pytest.mark.parametrize("driver", ["zarr", "zarr3", "zarr3_sharded"])
def test_tensorstore(jigsaw, tmp_path, driver):
    path = str(tmp_path / "ts.zarr")
    data = sample("float32", (12, 20))
    if driver == "zarr":
        spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": path},
                "metadata": {"shape": [12, 20], "chunks": [5, 6], "dtype": "<f4", "fill_value": -1.5,
                             "compressor": {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 2}}}
    else:
        codecs = [{"name": "bytes", "configuration": {"endian": "little"}},
                  {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle", "typesize": 4}}]
        if driver == "zarr3_sharded":
            codecs = [{"name": "sharding_indexed", "configuration": {
                "chunk_shape": [2, 5], "codecs": codecs, "index_location": "start",
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]}}]
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": path},
                "metadata": {"shape": [12, 20], "data_type": "float32", "fill_value": -1.5,
                             "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 10]}},
                             "codecs": codecs}}
    t = ts.open(spec, create=True).result()
    t[:9].write(data[:9]).result()
    want = t.read().result()
    assert_same(jigsaw.get(path, "/", tmp_path), want)
    assert_same(jigsaw.get(path, "/", tmp_path, "3:11,7:19"), want[3:11, 7:19])


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_xarray_cf_encoded_dataset(jigsaw, tmp_path, zarr_format):
    times = np.array(["2020-01-01T00", "2020-01-01T06", "2020-01-01T12", "2020-01-01T18"], dtype="datetime64[ns]")
    lat = np.linspace(90, -90, 5)
    lon = np.arange(0, 360, 60.0)
    t2m = (250 + 30 * np.random.default_rng(1).random((4, 5, 6))).astype("float32")
    t2m[1, 2, 3] = np.nan
    ds = xr.Dataset({"t2m": (("time", "latitude", "longitude"), t2m, {"units": "K"})},
                    coords={"time": times, "latitude": lat, "longitude": lon}, attrs={"source": "test"})
    enc = {"t2m": {"dtype": "int16", "scale_factor": 0.01, "add_offset": 270.0, "_FillValue": -32768},
           "time": {"units": "hours since 1900-01-01 00:00:00", "calendar": "proleptic_gregorian", "dtype": "int64"}}
    store = tmp_path / f"xr{zarr_format}.zarr"
    ds.to_zarr(store, encoding=enc, zarr_format=zarr_format, consolidated=True)
    back = xr.open_zarr(store, chunks=None)
    got = jigsaw.get(store, "t2m", tmp_path, decode_cf=True)
    np.testing.assert_allclose(got, back["t2m"].values.astype("float64"), rtol=0, atol=1e-3)
    assert np.isnan(got[1, 2, 3])
    secs = jigsaw.get(store, "time", tmp_path, decode_cf=True)
    assert_same(secs, back["time"].values.astype("datetime64[s]").astype("int64"))
    assert_same(jigsaw.get(store, "latitude", tmp_path), lat)
    listing = json.loads(jigsaw.store("ls", store, "--json").stdout)
    t2m_node = next(n for n in listing["nodes"] if n["path"] == "t2m")
    assert t2m_node["dimension_names"] == ["time", "latitude", "longitude"]
    assert t2m_node["dtype"] == "int16"
    jigsaw.store("verify", store)


def test_tensorstore_bfloat16_both_ways(jigsaw, tmp_path):
    """bfloat16 (a v3 extension zarr-python lacks): TensorStore writes, jigsaw reads (widened to float32 in
    the .npy) and copies to a sharded store, TensorStore reads the copy."""
    path = str(tmp_path / "bf16.zarr")
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": path},
            "metadata": {"shape": [6, 10], "data_type": "bfloat16", "fill_value": 0,
                         "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [3, 5]}},
                         "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                    {"name": "zstd", "configuration": {"level": 1}}]}}
    t = ts.open(spec, create=True).result()
    values = (np.arange(60).reshape(6, 10) * 0.37 - 9).astype("float32")
    t.write(values.astype(t.dtype.numpy_dtype)).result()
    want = t.read().result().astype("float32")
    assert_same(jigsaw.get(path, "/", tmp_path), want)
    copy = tmp_path / "bf16-sharded.zarr"
    jigsaw.store("copy", path, copy, "--shard", "6,10", "--codec", "blosc-lz4")
    back = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(copy)}}).result()
    assert back.dtype.name == "bfloat16"
    assert_same(back.read().result().astype("float32"), want)
