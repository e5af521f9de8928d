"""Bad input gives an error naming the store and key, a non-zero exit, and never a crash."""
import json
import struct

import numcodecs
import numpy as np
import pytest
import zarr
from zarr.codecs import ShardingCodec, ZstdCodec


def make_v3(tmp_path, **kw):
    path = tmp_path / "s.zarr"
    arr = zarr.create_array(store=str(path), name="a", shape=(8, 8), chunks=(4, 4), dtype="float32",
                            zarr_format=3, **kw)
    arr[...] = np.arange(64, dtype="float32").reshape(8, 8)
    return path


def make_v2(tmp_path):
    path = tmp_path / "v2.zarr"
    arr = zarr.create_array(store=str(path), name="a", shape=(8, 8), chunks=(4, 4), dtype="<f4", zarr_format=2,
                            compressors=numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE))
    arr[...] = np.arange(64, dtype="float32").reshape(8, 8)
    return path


def expect_failure(jigsaw, tmp_path, path, *needles, array="a"):
    """Both get and verify fail with exit 1 (a store's own bytes or metadata are corrupt, which the README
    separates from exit 2, bad arguments), get naming each needle; neither crashes."""
    get = jigsaw.store("get", path, array, "--out", tmp_path / "x.npy", check=False)
    assert get.returncode == 1, (get.returncode, get.stderr)
    for n in needles:
        assert n in get.stderr, f"{n!r} not in {get.stderr!r}"
    verify = jigsaw.store("verify", path, check=False)
    assert verify.returncode == 1, (verify.returncode, verify.stdout, verify.stderr)
    assert str(path) in verify.stdout + verify.stderr
    return get.stderr


def edit_json(path, fn):
    j = json.loads(path.read_text())
    fn(j)
    path.write_text(json.dumps(j))


def test_malformed_json(jigsaw, tmp_path):
    path = make_v3(tmp_path)
    (path / "a" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "array", "shape": [8,')
    expect_failure(jigsaw, tmp_path, path, str(path), "a/zarr.json", "malformed JSON")


def test_unknown_codec(jigsaw, tmp_path):
    path = make_v3(tmp_path)
    edit_json(path / "a" / "zarr.json", lambda j: j["codecs"].append({"name": "lzma9000"}))
    expect_failure(jigsaw, tmp_path, path, "a/zarr.json", "lzma9000")


def test_unknown_dtype(jigsaw, tmp_path):
    path = make_v2(tmp_path)
    edit_json(path / "a" / ".zarray", lambda j: j.update(dtype="<c16"))
    expect_failure(jigsaw, tmp_path, path, "a/.zarray", "<c16")


def test_truncated_chunk(jigsaw, tmp_path):
    path = make_v2(tmp_path)
    chunk = path / "a" / "1.0"
    chunk.write_bytes(chunk.read_bytes()[:20])
    expect_failure(jigsaw, tmp_path, path, str(path), "a/1.0")


def test_corrupted_chunk_with_checksum(jigsaw, tmp_path):
    from zarr.codecs import Crc32cCodec
    path = make_v3(tmp_path, compressors=[Crc32cCodec()])
    chunk = path / "a" / "c" / "0" / "1"
    b = bytearray(chunk.read_bytes())
    b[5] ^= 0xFF
    chunk.write_bytes(bytes(b))
    expect_failure(jigsaw, tmp_path, path, "a/c/0/1", "crc32c")


def test_wrong_chunk_size(jigsaw, tmp_path):
    path = make_v2(tmp_path)
    (path / "a" / "0.0").write_bytes(numcodecs.Blosc("lz4").encode(np.zeros(10, "float32")))
    expect_failure(jigsaw, tmp_path, path, "a/0.0")
    path = make_v3(tmp_path, compressors=None)
    (path / "a" / "c" / "1" / "1").write_bytes(b"\0" * 60)  # uncompressed chunk of the wrong size
    expect_failure(jigsaw, tmp_path, path, "a/c/1/1", "expected 64")


def test_shard_index_pointing_outside(jigsaw, tmp_path):
    path = tmp_path / "sh.zarr"
    arr = zarr.create_array(store=str(path), name="a", shape=(8, 8), chunks=(2, 2), shards=(4, 8), dtype="float32",
                            compressors=[ZstdCodec()], zarr_format=3)
    arr[...] = np.arange(64, dtype="float32").reshape(8, 8)
    shard = path / "a" / "c" / "0" / "0"
    b = bytearray(shard.read_bytes())
    # Index at the end: 8 entries of 16 bytes + crc32c. Point entry 0 far outside and fix the checksum.
    idx = len(b) - (8 * 16 + 4)
    struct.pack_into("<Q", b, idx, 10**9)
    import crc32c
    struct.pack_into("<I", b, len(b) - 4, crc32c.crc32c(bytes(b[idx:len(b) - 4])))
    shard.write_bytes(bytes(b))
    err = expect_failure(jigsaw, tmp_path, path, "a/c/0/0")
    assert "outside" in err


def test_missing_store_and_array(jigsaw, tmp_path):
    r = jigsaw.store("ls", tmp_path / "nothing", check=False)
    assert r.returncode == 2 and "no Zarr metadata" in r.stderr
    path = make_v3(tmp_path)
    r = jigsaw.store("get", path, "b", "--out", tmp_path / "x.npy", check=False)
    assert r.returncode == 2 and "no Zarr array or group" in r.stderr and str(path) in r.stderr
    r = jigsaw.store("get", path, "a", "--slice", "0,99", "--out", tmp_path / "x.npy", check=False)
    assert r.returncode == 2 and "outside" in r.stderr and '"0,99"' in r.stderr, r.stderr


def test_copy_refuses_non_empty_destination_and_bad_flags(jigsaw, tmp_path):
    path = make_v3(tmp_path)
    r = jigsaw.store("copy", path, path, check=False)
    assert r.returncode == 2 and "the destination lies inside the source" in r.stderr
    r = jigsaw.store("copy", path, tmp_path / "d1", "--codec", "snappy9", check=False)
    assert r.returncode == 2 and "snappy9" in r.stderr
    r = jigsaw.store("copy", path, tmp_path / "d2", "--shard", "3,8", check=False)
    assert r.returncode == 2 and "multiple" in r.stderr
    r = jigsaw.store("copy", path, tmp_path / "d3", "--format", "zarr4", check=False)
    assert r.returncode == 2 and "zarr4" in r.stderr, r.stderr
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_text("someone's file")
    r = jigsaw.store("copy", path, other, check=False)
    assert r.returncode == 1 and "not empty" in r.stderr and str(other) in r.stderr, r.stderr


def test_copy_never_into_itself_and_a_failed_copy_never_verifies(jigsaw, tmp_path):
    """A destination inside the source (also through file:// or a link) or a source inside the destination
    is refused before anything is written; a copy that fails half-way leaves a destination that verify calls
    unfinished, and rerunning the copy starts over and succeeds."""
    path = make_v3(tmp_path)
    link = tmp_path / "link.zarr"
    link.symlink_to(path)
    for dst in (path / "sub", f"file://{path}/sub", link / "sub"):
        r = jigsaw.store("copy", path, dst, check=False)
        assert r.returncode == 2 and "the destination lies inside the source" in r.stderr, (dst, r.stderr)
    r = jigsaw.store("copy", path / "a", path, check=False)
    assert r.returncode == 2 and "the source lies inside the destination" in r.stderr, r.stderr
    assert not (path / "sub").exists()
    jigsaw.store("verify", path)
    # A bad --codec fails after the root group is written: the retry is not blocked by it.
    dst = tmp_path / "copy.zarr"
    r = jigsaw.store("copy", path, dst, "--codec", "snappy9", check=False)
    assert r.returncode != 0
    v = jigsaw.store("verify", dst, check=False)
    assert v.returncode != 0 and "unfinished: a jigsaw-store copy of" in v.stdout + v.stderr, v.stdout + v.stderr
    # A corrupt source chunk fails the copy half-way; the destination does not verify; once the source is
    # mended, the copy reruns into the same destination.
    chunk = path / "a" / "c" / "1" / "1"
    good = chunk.read_bytes()
    chunk.write_bytes(good[:5])
    r = jigsaw.store("copy", path, dst, check=False)
    assert r.returncode != 0 and "a/c/1/1" in r.stderr, r.stderr
    v = jigsaw.store("verify", dst, check=False)
    assert v.returncode != 0 and "unfinished: a jigsaw-store copy of" in v.stdout + v.stderr
    chunk.write_bytes(good)
    jigsaw.store("copy", path, dst)
    jigsaw.store("verify", dst)
    assert not (dst / "jigsaw-write-unfinished").exists()


def safetensors_bytes(tensors, data, pad=b""):
    """A safetensors file from a header dict and the data bytes, as the format lays it out."""
    header = json.dumps(tensors).encode() + pad
    return struct.pack("<Q", len(header)) + header + data


def test_safetensors_import_follows_the_formats_rules(jigsaw, tmp_path):
    """Offsets contiguous, sorted, covering the data exactly; names that can be keys; each refusal names
    the file and the tensor, and leaves no checkpoint behind."""
    f4 = np.arange(4, dtype="<f4").tobytes()
    good = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}
    cases = {
        "overlap": (dict(good, b={"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}), f4,
                    ["tensor b", "overlap"]),
        "hole": (dict(good, b={"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}), f4 + f4[:4],
                 ["tensor b", "a hole"]),
        "trailing": (good, f4 + b"hidden", ["bytes after the last tensor"]),
        "truncated": (good, f4[:12], ["truncated"]),
        "empty_name": ({"": good["a"], "b": good["b"]}, f4, ['tensor name ""']),
        "escaping_name": ({"../../x": good["a"], "b": good["b"]}, f4, ['tensor name "../../x"']),
        "shape_mismatch": (dict(good, a={"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}), f4,
                           ["tensor a", "data_offsets [0,8]"]),
        "negative_shape": (dict(good, a={"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}), f4,
                           ["tensor a", "shape -2"]),
    }
    for name, (header, data, needles) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(safetensors_bytes(header, data))
        out = tmp_path / f"{name}.ckpt"
        r = jigsaw.ckpt("import", path, "--mesh", "domain=1", "--out", out, check=False, timeout=60)
        assert r.returncode == 2, (name, r.returncode)  # the file given is bad input
        for n in [str(path)] + needles:
            assert n in r.stderr, (name, n, r.stderr)
        assert not (out / "LATEST").exists(), name
    # The well-formed file imports.
    path = tmp_path / "good.safetensors"
    path.write_bytes(safetensors_bytes(good, f4))
    jigsaw.ckpt("import", path, "--mesh", "domain=1", "--out", tmp_path / "good.ckpt")
    assert (tmp_path / "good.ckpt" / "LATEST").exists()


def test_inputs_that_once_hung_now_finish_within_seconds(jigsaw, tmp_path):
    """Each finishes (here: fails, naming the problem) within 30 s; before, each ran for minutes or forever."""
    jigsaw.shard("synth", tmp_path / "src.zarr", "--grid", "9x16", "--times", "4", timeout=30)
    run = ["run", "--source", tmp_path / "src.zarr", "--vars", "t2m", "--start", "2020-01-01T00",
           "--end", "2020-01-01T18", "--tiles", "1x1x1"]
    # An output of "/" was listed whole (through /proc's links back to "/") to see whether it was empty.
    r = jigsaw.shard(*run, "--out", "/", check=False, timeout=30)
    assert r.returncode != 0 and "file:/// is not empty" in r.stderr, r.stderr
    # A store holding a link to its own parent lists, verifies and copies without walking round the loop.
    jigsaw.shard(*run, "--out", tmp_path / "tiles.zarr", timeout=60)
    (tmp_path / "tiles.zarr" / "data" / "loop").symlink_to("..")
    assert "stored 1.9 KiB in 4 objects" in jigsaw.store("ls", tmp_path / "tiles.zarr", timeout=30).stdout
    jigsaw.shard("verify", tmp_path / "tiles.zarr", timeout=30)
    # --max-batches 0 ran forever (the stop test was "reached 0 after at least one"); --seconds 0 likewise.
    for flag, value, needle in [("--max-batches", "0", "0 is below 1"), ("--seconds", "-1", "-1 is below")]:
        r = jigsaw.run("jigsaw-bench", "loader", tmp_path / "tiles.zarr", "--rank", "0", flag, value, check=False,
                       timeout=30)
        assert r.returncode != 0 and needle in r.stderr, r.stderr
    # An S3 endpoint of another scheme was retried for minutes by the HTTP client.
    r = jigsaw.store("ls", "s3://bucket/x", "--s3-endpoint", "ftp://127.0.0.1:1", check=False, timeout=30,
                     env={"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
    assert r.returncode != 0 and 'S3 endpoint "ftp://127.0.0.1:1"' in r.stderr, r.stderr


def test_arguments_are_read_strictly_and_refused_with_exit_2(jigsaw, tmp_path):
    """What once was read leniently ("500abc" as 500, February 30th as March 1st, a name given twice as two
    channels, negative counts) is refused with exit 2, naming the bad part."""
    jigsaw.shard("synth", tmp_path / "src.zarr", "--grid", "9x16", "--times", "4", timeout=30)
    run = ["run", "--source", tmp_path / "src.zarr", "--tiles", "1x1x1", "--out", tmp_path / "o.zarr"]
    window = ["--start", "2020-01-01T00", "--end", "2020-01-01T18"]
    cases = [
        (["--vars", "t", "--levels", "500abc", *window], 'level "500abc" is not a number'),
        (["--vars", "t", "--levels", "500,850,500", *window], "--levels names 500 twice"),
        (["--vars", "t2m,msl,t2m", *window], "--vars names t2m twice"),
        (["--vars", "t2m", "--start", "2020-02-30T00", "--end", "2020-03-01T00"],
         'the date "2020-02-30T00" does not exist (month 2 has 29 days)'),
        (["--vars", "t2m", *window, "--threads", "-3"], "-3 is below 1"),
    ]
    for args, needle in cases:
        r = jigsaw.shard(*run, *args, check=False, timeout=30)
        assert r.returncode == 2 and needle in r.stderr, (args, r.returncode, r.stderr)
        assert not (tmp_path / "o.zarr").exists(), args
    jigsaw.shard(*run, "--vars", "t2m", "--start", "2020-01-01T00", "--end", "2020-01-01T18", timeout=60)  # 2020 is leap
    r = jigsaw.ckpt("import", tmp_path / "x.safetensors", "--mesh", "domain=1", "--out", tmp_path / "c", "--step", "-5",
                    check=False)
    assert r.returncode == 2 and "-5 is below 0" in r.stderr, r.stderr
    r = jigsaw.store("ls", tmp_path / "o.zarr", "--no-such-flag", check=False)
    assert r.returncode == 2 and "--no-such-flag" in r.stderr, r.stderr


def test_get_refuses_a_result_larger_than_memory(jigsaw, tmp_path):
    """A shape whose size overflows int64, or exceeds the machine's memory, is refused with a message instead
    of a 128-byte .npy without data or std::bad_alloc."""
    for name, shape in [("huge", (2**62, 2**62)), ("big", (2**40, 2**20))]:
        zarr.create_array(store=str(tmp_path / f"{name}.zarr"), shape=shape, chunks=(1000, 1000), dtype="float32",
                          zarr_format=3)
        r = jigsaw.store("get", tmp_path / f"{name}.zarr", "", "--out", tmp_path / "x.npy", check=False, timeout=30)
        assert r.returncode == 2 and "more than half this machine's memory" in r.stderr, r.stderr
        assert not (tmp_path / "x.npy").exists()
    # A slice of it is fine (missing chunks read as the fill value: an array never written).
    r = jigsaw.store("get", tmp_path / "big.zarr", "", "--slice", "0:2,0:3", "--out", tmp_path / "x.npy", timeout=30)
    assert np.load(tmp_path / "x.npy").shape == (2, 3)
