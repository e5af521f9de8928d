"""Object stores end to end, against real server processes started here (tests/tools/servers.py): moto's
S3 server, nginx, and the fault-injecting proxy. Independent clients (boto3, zarr-python 3, TensorStore)
check what jigsaw writes and write what jigsaw reads."""
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from servers import FaultProxy, Moto, Nginx  # noqa: E402

from conftest import assert_same  # noqa: E402

SHARD_ARGS = ["--vars", "t2m,msl,z,t", "--levels", "500,850", "--start", "2020-01-01T00", "--end", "2020-01-02T18",
              "--tiles", "1x2x2"]
# Short stalls and quick giving up, so that faults cost seconds, not minutes.
FAST = {"JIGSAW_HTTP_STALL_TIMEOUT": "1", "JIGSAW_S3_MULTIPART_THRESHOLD": str(5 << 20),
        "JIGSAW_S3_PART_SIZE": str(5 << 20)}


@pytest.fixture(scope="module")
def moto():
    with Moto() as m:
        m.create_bucket("bkt")
        m.create_public_bucket("public")
        yield m


@pytest.fixture(scope="module")
def source(jigsaw, tmp_path_factory):
    d = tmp_path_factory.mktemp("src")
    jigsaw.shard("synth", d / "src.zarr", "--grid", "19x36", "--times", "8")
    return d / "src.zarr"


def objects(moto, bucket, prefix):
    """{key below prefix: sha256} of every object, read with boto3."""
    s3 = moto.client()
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            out[o["Key"][len(prefix) + 1:]] = hashlib.sha256(body).hexdigest()
    return out


def local_objects(root):
    root = Path(root)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def chunk_count(objects_by_key):
    """The chunk objects of a store: every key but the metadata documents and the checksum record."""
    meta = ("zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata", "jigsaw-checksums.json")
    return sum(1 for k in objects_by_key if not k.rsplit("/", 1)[-1] in meta)


def test_copy_to_s3_reads_back_byte_for_byte_with_boto3(jigsaw, moto, source, tmp_path):
    jigsaw.store("copy", source, tmp_path / "local.zarr")
    jigsaw.store("copy", source, "s3://bkt/copy.zarr", env=moto.env())
    theirs = objects(moto, "bkt", "copy.zarr")
    assert theirs == local_objects(tmp_path / "local.zarr")
    # and jigsaw reads its S3 copy as it reads the local one
    a = jigsaw.get(tmp_path / "local.zarr", "temperature", tmp_path)
    jigsaw.store("get", "s3://bkt/copy.zarr", "temperature", "--out", tmp_path / "s3.npy", env=moto.env())
    assert_same(np.load(tmp_path / "s3.npy"), a)
    # verify read every chunk object there is (the run() above already asserted exit 0)
    v = json.loads(jigsaw.store("verify", "s3://bkt/copy.zarr", "--json", env=moto.env()).stdout)
    assert v["ok"] and v["problems"] == [] and v["chunks_checked"] == chunk_count(theirs), (v, chunk_count(theirs))


def test_reads_what_zarr_python_and_tensorstore_put_on_s3(jigsaw, moto, tmp_path, monkeypatch):
    import tensorstore as ts
    data = np.arange(4 * 10 * 12, dtype="float32").reshape(4, 10, 12) / 7
    # TensorStore writes to the S3 server itself.
    spec = {"driver": "zarr3", "kvstore": {"driver": "s3", "bucket": "bkt", "path": "ts.zarr/",
                                           "endpoint": moto.endpoint, "aws_region": "us-east-1",
                                           "aws_credentials": {"type": "environment"}}}
    for k, v in moto.env().items():
        monkeypatch.setenv(k, v)  # TensorStore's "environment" credentials
    t = ts.open(spec, create=True, dtype="float32", shape=data.shape,
                chunk_layout=ts.ChunkLayout(chunk_shape=[1, 5, 6])).result()
    t[...] = data
    got = tmp_path / "ts.npy"
    jigsaw.store("get", "s3://bkt/ts.zarr", "/", "--out", got, env=moto.env())
    assert_same(np.load(got), data)
    # zarr-python 3 writes a sharded v3 array; its files go to S3 unchanged with boto3.
    z = zarr.create_array(tmp_path / "zp.zarr", shape=data.shape, chunks=(1, 5, 6), shards=(2, 10, 12), dtype="float32")
    z[...] = data
    s3 = moto.client()
    for p in (tmp_path / "zp.zarr").rglob("*"):
        if p.is_file():
            s3.put_object(Bucket="bkt", Key="zp.zarr/" + str(p.relative_to(tmp_path / "zp.zarr")), Body=p.read_bytes())
    jigsaw.store("get", "s3://bkt/zp.zarr", "/", "--slice", "1:3,2:9,:", "--out", got, env=moto.env())
    assert_same(np.load(got), data[1:3, 2:9, :])


def test_http_and_gcs_urls_read_the_same_store(jigsaw, moto, source, tmp_path):
    www = tmp_path / "www"
    jigsaw.store("copy", source, www / "era5.zarr")
    jigsaw.store("copy", source, "s3://public/era5.zarr", env=moto.env())
    want = jigsaw.get(www / "era5.zarr", "geopotential", tmp_path, slice_="2,:,3:9,:")
    with Nginx(www) as nginx:
        got = tmp_path / "http.npy"
        jigsaw.store("get", nginx.url + "/era5.zarr", "geopotential", "--slice", "2,:,3:9,:", "--out", got)
        assert_same(np.load(got), want)
        # A web server cannot list: arrays come from the consolidated metadata jigsaw wrote.
        assert "geopotential" in jigsaw.store("ls", nginx.url + "/era5.zarr").stdout
        jigsaw.shard("run", "--source", nginx.url + "/era5.zarr", *SHARD_ARGS, "--out", tmp_path / "from-http.zarr")
        jigsaw.shard("run", "--source", source, *SHARD_ARGS, "--out", tmp_path / "from-disk.zarr")
        assert ({k: v for k, v in local_objects(tmp_path / "from-http.zarr").items() if k.startswith("data/")} ==
                {k: v for k, v in local_objects(tmp_path / "from-disk.zarr").items() if k.startswith("data/")})
        (www / "bare.zarr").mkdir()
        (www / "bare.zarr" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
        proc = jigsaw.store("ls", nginx.url + "/bare.zarr", check=False)
        assert proc.returncode != 0 and "cannot list" in proc.stderr and "consolidated" in proc.stderr
    # gs:// is anonymous HTTPS to storage.googleapis.com; here it points at the public bucket on moto.
    gcs = {"JIGSAW_GCS_ENDPOINT": moto.endpoint}
    got = tmp_path / "gs.npy"
    jigsaw.store("get", "gs://public/era5.zarr", "geopotential", "--slice", "2,:,3:9,:", "--out", got, env=gcs)
    assert_same(np.load(got), want)
    assert "geopotential" in jigsaw.store("ls", "gs://public/era5.zarr", env=gcs).stdout


def test_shard_from_and_to_s3_equals_local(jigsaw, moto, source, tmp_path):
    jigsaw.shard("run", "--source", source, *SHARD_ARGS, "--out", tmp_path / "tiles.zarr")
    jigsaw.store("copy", source, "s3://bkt/src-for-shard.zarr", env=moto.env())
    jigsaw.shard("run", "--source", "s3://bkt/src-for-shard.zarr", *SHARD_ARGS, "--out", "s3://bkt/tiles.zarr",
                 env=moto.env())
    jigsaw.shard("verify", "s3://bkt/tiles.zarr", env=moto.env())
    mine, theirs = local_objects(tmp_path / "tiles.zarr"), objects(moto, "bkt", "tiles.zarr")
    v = json.loads(jigsaw.store("verify", "s3://bkt/tiles.zarr", "--json", env=moto.env()).stdout)
    assert v["ok"] and v["chunks_checked"] == chunk_count(theirs) > 0, (v, chunk_count(theirs))
    # Every chunk is identical; the metadata differs only where it names the source.
    chunks = {k for k in mine if "/c/" in k or k.startswith("data/")}
    assert chunks and {k: mine[k] for k in chunks} == {k: theirs[k] for k in chunks}
    assert set(mine) == set(theirs)


def test_ten_percent_faults_change_nothing(jigsaw, moto, source, tmp_path):
    jigsaw.shard("run", "--source", source, *SHARD_ARGS, "--out", "s3://bkt/clean.zarr", env=moto.env())
    jigsaw.store("copy", source, "s3://bkt/clean-copy.zarr", env=moto.env())
    with FaultProxy(moto.endpoint, rate=0.1, seed=7, stall_s=2) as proxy:
        env = {**moto.env(proxy.url), **FAST}
        jigsaw.shard("run", "--source", source, *SHARD_ARGS, "--out", "s3://bkt/faulty.zarr", env=env, timeout=600)
        jigsaw.store("copy", source, "s3://bkt/faulty-copy.zarr", env=env, timeout=600)
        stats = proxy.stats()
    assert stats["503"] + stats["reset"] + stats["truncate"] + stats["stall"] >= 5, stats
    assert stats["429"] >= 3, stats  # Too Many Requests, retried as the README says (seeded: about 1 in 50)
    # Equal and not empty (two empty listings would be equal too): every chunk of the plan is there.
    clean, clean_copy = objects(moto, "bkt", "clean.zarr"), objects(moto, "bkt", "clean-copy.zarr")
    assert chunk_count(clean) > 0 and chunk_count(clean_copy) > 0
    assert objects(moto, "bkt", "faulty.zarr") == clean
    assert objects(moto, "bkt", "faulty-copy.zarr") == clean_copy


def test_server_gone_fails_clearly_then_resumes(jigsaw, moto, source, tmp_path):
    jigsaw.shard("run", "--source", source, *SHARD_ARGS, "--out", "s3://bkt/ref.zarr", env=moto.env())
    with FaultProxy(moto.endpoint, rate=0, gone_after=25) as proxy:
        env = {**moto.env(proxy.url), **FAST, "JIGSAW_HTTP_RETRIES": "3"}
        proc = jigsaw.shard("run", "--source", source, *SHARD_ARGS, "--out", "s3://bkt/gone.zarr", env=env,
                            check=False, timeout=300)
    assert proc.returncode != 0
    assert "gave up after 4 attempts" in proc.stderr, proc.stderr
    assert "testing" not in proc.stderr  # the secret key
    assert jigsaw.shard("verify", "s3://bkt/gone.zarr", env=moto.env(), check=False).returncode != 0
    jigsaw.shard("run", "--source", source, *SHARD_ARGS, "--out", "s3://bkt/gone.zarr", env=moto.env())
    ref = objects(moto, "bkt", "ref.zarr")
    assert chunk_count(ref) > 0 and objects(moto, "bkt", "gone.zarr") == ref


def test_loader_streams_from_s3(jigsaw, moto, source, tmp_path):
    jigsaw.shard("run", "--source", source, *SHARD_ARGS, "--out", "s3://bkt/loader.zarr", env=moto.env())
    proc = jigsaw.run("jigsaw-bench", "loader", "s3://bkt/loader.zarr", "--rank", "3", "--seconds", "1", "--json",
                      env=moto.env())
    report = json.loads(proc.stdout)
    assert report["read_amplification"] == pytest.approx(1.0)
    assert report["samples"] > 0


def test_loader_over_s3_delivers_the_local_stores_values(jigsaw, moto, source, tmp_path, monkeypatch):
    """The Python loader over s3:// gives the batches it gives from the same store on disk (whose values
    test_loader.py checks against zarr-python), batch for batch."""
    from pathlib import Path
    sys.path.insert(0, os.environ.get("JIGSAW_PYTHONPATH", str(Path(__file__).resolve().parents[2] / "build" / "python")))
    module = pytest.importorskip("jigsaw", reason="the Python module is built by the release build only")
    jigsaw.shard("run", "--source", source, *SHARD_ARGS, "--out", "s3://bkt/values.zarr", env=moto.env())
    jigsaw.shard("run", "--source", source, *SHARD_ARGS, "--out", tmp_path / "values.zarr")
    for k, v in moto.env().items():
        monkeypatch.setenv(k, v)
    opts = dict(rank=2, batch_size=2, lead_steps=1, seed=4)
    remote = [a.copy() for a in module.Loader("s3://bkt/values.zarr", **opts)]  # batches share loader buffers
    local = [a.copy() for a in module.Loader(str(tmp_path / "values.zarr"), **opts)]
    assert len(remote) == len(local) > 0
    for a, b in zip(remote, local):
        np.testing.assert_array_equal(a, b)


def test_bad_urls_and_credentials_are_named(jigsaw, moto):
    proc = jigsaw.store("ls", "s3://bkt/x.zarr", check=False, env={**moto.env(), "AWS_ACCESS_KEY_ID": "",
                                                                  "AWS_SECRET_ACCESS_KEY": ""})
    assert proc.returncode != 0 and "AWS_ACCESS_KEY_ID" in proc.stderr
    proc = jigsaw.store("ls", "s3://no-such-bucket/x.zarr", check=False, env=moto.env())
    assert proc.returncode != 0 and "no-such-bucket" in proc.stderr
    proc = jigsaw.store("ls", "ftp://host/x", check=False)
    assert proc.returncode != 0 and "s3://" in proc.stderr


def test_gs_refuses_writes_naming_the_object(jigsaw, moto, tmp_path):
    """gs:// is anonymous and read-only: a copy from a real source is refused at the first write, naming it."""
    jigsaw.shard("synth", tmp_path / "src.zarr", "--grid", "9x12", "--times", "2")
    proc = jigsaw.store("copy", tmp_path / "src.zarr", "gs://public/y.zarr", check=False,
                        env={**moto.env(), "JIGSAW_GCS_ENDPOINT": moto.endpoint})
    assert proc.returncode == 1, proc.stderr
    assert "gs://public/y.zarr/" in proc.stderr and "this store is read-only" in proc.stderr, proc.stderr


def test_checkpoints_on_s3(jigsaw, moto, tmp_path):
    from safetensors.numpy import load_file, save_file
    rng = np.random.default_rng(3)
    tensors = {"w": rng.standard_normal((37, 22)).astype("float32"), "b": rng.standard_normal(30).astype("float16")}
    save_file(tensors, str(tmp_path / "m.safetensors"))
    (tmp_path / "p.json").write_text(json.dumps({"w": ["domain", "tensor"], "b": ["tensor"]}))
    env = moto.env()
    jigsaw.ckpt("import", tmp_path / "m.safetensors", "--mesh", "domain=2,tensor=2", "--partition", tmp_path / "p.json",
                "--out", "s3://bkt/ckpt", "--step", "7", env=env)
    jigsaw.ckpt("verify", "s3://bkt/ckpt/step-00000007", env=env)
    jigsaw.ckpt("reshard", "s3://bkt/ckpt", "--mesh", "domain=4,tensor=2", "--out", "s3://bkt/ckpt8", env=env)
    jigsaw.ckpt("export", "s3://bkt/ckpt8", "--out", tmp_path / "back.safetensors", env=env)
    back = load_file(str(tmp_path / "back.safetensors"))
    assert all(back[k].tobytes() == v.tobytes() for k, v in tensors.items())
    jigsaw.ckpt("export", "s3://bkt/ckpt8", "--out", "s3://bkt/ckpt8.zarr", env=env)
    got = tmp_path / "w.npy"
    jigsaw.store("get", "s3://bkt/ckpt8.zarr", "w", "--out", got, env=env)
    assert np.load(got).tobytes() == tensors["w"].tobytes()
    assert "LATEST" in objects(moto, "bkt", "ckpt8")


def test_requests_in_flight_are_bounded_and_overlap(jigsaw, moto, source):
    # The proxy counts how many requests it serves at once (the server is otherwise fault-free).
    for limit in (1, 6):
        with FaultProxy(moto.endpoint, rate=0) as proxy:
            env = {**moto.env(proxy.url), "JIGSAW_HTTP_MAX_IN_FLIGHT": str(limit)}
            jigsaw.store("copy", source, f"s3://bkt/inflight-{limit}.zarr", env=env)
            seen = proxy.stats()["max_in_flight"]  # jigsaw is done: the stats request is alone
        assert 1 <= seen <= limit, (limit, seen)
        if limit > 1:
            assert seen >= 3, seen  # requests overlap, though this machine has 2 cores


def test_the_capped_proxy_paces_every_connection_together(moto):
    # bench_io_scaling.py's per-rank link: 4 MB over 4 connections at once through a 10 MB/s cap take about
    # 0.4 s however many connections share it; boto3 reads the bytes unchanged.
    import time
    from concurrent.futures import ThreadPoolExecutor
    import boto3
    import botocore.config
    body = np.random.default_rng(0).bytes(1_000_000)
    moto.client().put_object(Bucket="bkt", Key="capped/obj", Body=body)
    with FaultProxy(moto.endpoint, rate=0, cap_mb_s=10) as proxy:
        client = boto3.client("s3", endpoint_url=proxy.url, aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1",
                              config=botocore.config.Config(max_pool_connections=4))
        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as ex:
            got = list(ex.map(lambda _: client.get_object(Bucket="bkt", Key="capped/obj")["Body"].read(), range(4)))
        seconds = time.perf_counter() - t0
        stats = proxy.stats()
    assert all(g == body for g in got)
    assert stats["bytes_out"] == 4_000_000 and stats["max_in_flight"] >= 2, stats
    # The first piece is stamped once sent; the bucket lets a 256 kB burst through at once: the rest, less
    # that piece, leaves at 10 MB/s at most. (The upper bounds only catch a proxy far slower than its cap.)
    window = stats["t_last_out"] - stats["t_first_out"]
    assert (4_000_000 - 256 * 1024 - 64 * 1024) / 10e6 - 0.01 <= window <= 1.5, stats
    assert window <= seconds <= 3.0, seconds


def test_netcdf_sources_given_as_urls(jigsaw, moto, tmp_path):
    """A CDS NetCDF file read from an http(s) URL (nginx) and from s3:// (moto) makes the same store as from disk."""
    import netCDF4
    www = tmp_path / "www"
    www.mkdir()
    path = www / "era5.nc"
    ds = netCDF4.Dataset(str(path), "w", format="NETCDF4")
    ds.createDimension("valid_time", 4)
    ds.createDimension("latitude", 9)
    ds.createDimension("longitude", 12)
    t = ds.createVariable("valid_time", "i8", ("valid_time",))
    t.units, t.calendar = "seconds since 1970-01-01", "proleptic_gregorian"
    t[:] = np.datetime64("2020-01-01T00", "s").astype(np.int64) + np.arange(4) * 6 * 3600
    ds.createVariable("latitude", "f8", ("latitude",))[:] = np.linspace(90, -90, 9)
    ds.createVariable("longitude", "f8", ("longitude",))[:] = np.arange(12) * 30.0
    values = np.random.default_rng(2).standard_normal((4, 9, 12)).astype("f4") + 280
    ds.createVariable("t2m", "f4", ("valid_time", "latitude", "longitude"))[:] = values
    ds.close()
    moto.client().upload_file(str(path), "bkt", "nc/era5.nc")
    args = ["--vars", "t2m", "--start", "2020-01-01T00", "--end", "2020-01-01T18", "--tiles", "1x1x1"]
    jigsaw.shard("run", "--source", path, *args, "--out", tmp_path / "disk.zarr")
    with Nginx(www) as nginx:
        jigsaw.shard("run", "--source", nginx.url + "/era5.nc", *args, "--out", tmp_path / "http.zarr")
        missing = jigsaw.shard("run", "--source", nginx.url + "/nope.nc", *args, "--out", tmp_path / "x.zarr",
                               check=False)
        assert missing.returncode != 0 and "nope.nc" in missing.stderr, missing.stderr
    jigsaw.shard("run", "--source", "s3://bkt/nc/era5.nc", *args, "--out", tmp_path / "s3.zarr", env=moto.env())
    want = zarr.open_array(str(tmp_path / "disk.zarr" / "data"), mode="r")[...]
    np.testing.assert_array_equal(want[:, 0], values)
    for name in ("http", "s3"):
        got = zarr.open_array(str(tmp_path / f"{name}.zarr" / "data"), mode="r")[...]
        np.testing.assert_array_equal(got, want)


def test_grib_sources_given_as_urls(jigsaw, moto, tmp_path, monkeypatch):
    """A GRIB file (written by ecCodes' grib_filter) read from http(s) (nginx) and s3:// (moto), fetched whole
    and indexed in memory, makes the same store as from disk."""
    from test_grib import fields, write_grib
    monkeypatch.setenv("JIGSAW_CACHE_DIR", str(tmp_path / "cache"))
    www = tmp_path / "www"
    www.mkdir()
    path = write_grib(www / "era5.grib", 2, fields(seed=5))
    moto.client().upload_file(str(path), "bkt", "grib/era5.grib")
    args = ["--vars", "t,2t", "--levels", "500", "--start", "2020-01-01T00", "--end", "2020-01-01T12",
            "--tiles", "1x1x1"]
    jigsaw.shard("run", "--source", path, *args, "--out", tmp_path / "disk.zarr")
    with Nginx(www) as nginx:
        jigsaw.shard("run", "--source", nginx.url + "/era5.grib", *args, "--out", tmp_path / "http.zarr")
    jigsaw.shard("run", "--source", "s3://bkt/grib/era5.grib", *args, "--out", tmp_path / "s3.zarr", env=moto.env())
    want = zarr.open_array(str(tmp_path / "disk.zarr" / "data"), mode="r")[...]
    assert want.shape == (3, 2, 9, 16) and not np.isnan(want).any()
    for name in ("http", "s3"):
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / f"{name}.zarr" / "data"), mode="r")[...], want)


def test_s3_flags_anonymous_access_and_no_secret_in_any_output(jigsaw, moto, source, tmp_path):
    """--s3-endpoint / --s3-region / --s3-anonymous stand in for the environment; the credentials jigsaw is
    given never appear in its output, --json included, nor in its errors."""
    jigsaw.shard("run", "--source", source, *SHARD_ARGS, "--out", "s3://public/anon.zarr", env=moto.env())
    bare = {"AWS_ENDPOINT_URL": "", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_REGION": ""}
    flags = ["--s3-endpoint", moto.endpoint, "--s3-region", "us-east-1"]
    # No credentials at all: refused, naming what is missing; anonymous: reads the public bucket.
    r = jigsaw.store("ls", "s3://public/anon.zarr", *flags, check=False, env=bare)
    assert r.returncode != 0 and "AWS_ACCESS_KEY_ID" in r.stderr, r.stderr
    listing = jigsaw.store("ls", "s3://public/anon.zarr", *flags, "--s3-anonymous", env=bare).stdout
    assert "data" in listing and "channel" in listing
    # Anonymous means unsigned: through a proxy that counts requests carrying an Authorization header.
    with FaultProxy(moto.endpoint, rate=0.0) as proxy:
        proxied = ["--s3-endpoint", proxy.url, "--s3-region", "us-east-1"]
        jigsaw.store("get", "s3://public/anon.zarr", "latitude", "--out", tmp_path / "lat.npy", *proxied,
                     "--s3-anonymous", env=bare)
        anonymous = proxy.stats()
        jigsaw.store("get", "s3://public/anon.zarr", "latitude", "--out", tmp_path / "lat2.npy", *proxied,
                     env={**bare, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
        both = proxy.stats()
    assert anonymous["requests"] > 0 and anonymous["signed"] == 0, anonymous
    assert both["signed"] == both["requests"] - anonymous["requests"] > 0, (anonymous, both)  # signed: every one
    # Secrets given: absent from every output.
    secret = {"AWS_ENDPOINT_URL": "", "AWS_ACCESS_KEY_ID": "AKIDNEVERPRINTED",
              "AWS_SECRET_ACCESS_KEY": "SECRETNEVERPRINTED", "AWS_SESSION_TOKEN": "TOKENNEVERPRINTED"}
    outputs = [jigsaw.store("verify", "s3://public/anon.zarr", *flags, "--json", env=secret),
               jigsaw.shard("info", "s3://public/anon.zarr", *flags, "--json", env=secret),
               jigsaw.store("ls", "s3://public/anon.zarr", *flags, "--json", env=secret),
               jigsaw.store("ls", "s3://no-such-bucket/x.zarr", *flags, check=False, env=secret)]
    for p in outputs:
        for word in ("AKIDNEVERPRINTED", "SECRETNEVERPRINTED", "TOKENNEVERPRINTED"):
            assert word not in p.stdout + p.stderr, (p.args, word)
    assert json.loads(outputs[0].stdout)["ok"]


def test_a_failed_multipart_upload_is_aborted_and_leaves_nothing(jigsaw, moto, tmp_path):
    """A value above the multipart threshold whose parts keep failing: the copy fails naming the part, the
    upload is aborted (none left listed in the bucket, no orphaned parts to pay for), and no object appears."""
    src = tmp_path / "big.zarr"
    big = zarr.create_array(str(src), name="x", shape=(3 << 20,), chunks=(3 << 20,), dtype="float32",
                            zarr_format=2, compressors=None)
    big[...] = np.random.default_rng(5).standard_normal(3 << 20).astype("float32")  # one 12 MiB chunk
    with FaultProxy(moto.endpoint, rate=0.0, fail_parts=True) as proxy:
        env = {**moto.env(proxy.url), **FAST}
        r = jigsaw.store("copy", src, "s3://bkt/multipart.zarr", "--codec", "none", env=env, check=False, timeout=300)
    assert r.returncode == 1 and "partNumber=" in r.stderr and "multipart.zarr/x/0" in r.stderr, r.stderr
    s3 = moto.client()
    assert s3.list_multipart_uploads(Bucket="bkt").get("Uploads", []) == []
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="bkt", Prefix="multipart.zarr/").get("Contents", [])]
    assert "multipart.zarr/x/0" not in keys and "multipart.zarr/jigsaw-checksums.json" not in keys, keys
    # The same copy with the parts going through: the one object arrives whole.
    jigsaw.store("copy", src, "s3://bkt/multipart.zarr", "--codec", "none", env={**moto.env(), **FAST})
    body = s3.get_object(Bucket="bkt", Key="multipart.zarr/x/0")["Body"].read()
    assert body == big[...].tobytes()
