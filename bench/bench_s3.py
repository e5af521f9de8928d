"""Reading a tile-aligned store from a local S3 server (moto, started here): jigsaw beside parallel curl and
boto3 fetching the same objects, in one run. jigsaw reads *and decodes* every chunk (jigsaw-bench read);
curl and boto3 only fetch the bytes. Throughput is stored (network) bytes per second; medians of N runs.

usage: .venv/bin/python bench/bench_s3.py [--grid 181x360] [--times 16] [--repeats 3] [--in-flight 32]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "tools"))
from servers import Moto  # noqa: E402
from timing import median_seconds  # noqa: E402

BIN = ROOT / "build" / "cli"


def run(*args, env=None):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}).stdout


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", default="181x360")
    p.add_argument("--times", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--in-flight", type=int, default=32)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Moto() as moto:
        env = moto.env()
        moto.create_public_bucket("bench")  # curl fetches unsigned; the others sign
        t_end = 6 * (a.times - 1)
        end = f"2020-01-{1 + t_end // 24:02d}T{t_end % 24:02d}"
        run(BIN / "jigsaw-shard", "synth", f"{tmp}/src.zarr", "--grid", a.grid, "--times", a.times)
        run(BIN / "jigsaw-shard", "run", "--source", f"{tmp}/src.zarr", "--vars",
            "z,t,q,u,v,t2m,msl,u10,v10", "--start", "2020-01-01T00", "--end", end,
            "--tiles", "1x2x2", "--out", "s3://bench/tiles.zarr", env=env)
        s3 = moto.client()
        keys, stored = [], 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix="tiles.zarr/data/"):
            for o in page.get("Contents", []):
                if "/c/" in o["Key"] or o["Key"].split("/")[-1][0].isdigit():
                    keys.append(o["Key"])
                    stored += o["Size"]
        print(f"store: {len(keys)} chunk objects, {stored / 1e6:.1f} MB stored, grid {a.grid}, {a.times} steps")

        report = json.loads(run(BIN / "jigsaw-bench", "read", "s3://bench/tiles.zarr", "--array", "data", "--json",
                                "--repeats", a.repeats, "--max-in-flight", a.in_flight, env=env))
        assert report["stored_bytes"] == stored, (report["stored_bytes"], stored)
        t_jigsaw = report["seconds"]

        urls = Path(tmp) / "curl.cfg"
        urls.write_text("".join(f'url = "{moto.endpoint}/bench/{k}"\noutput = "/dev/null"\n' for k in keys))
        t_curl = median_seconds(lambda: run("curl", "-s", "-f", "--parallel", "--parallel-max", a.in_flight,
                                         "-K", urls), a.repeats)

        import botocore.config
        client = moto.client()
        client_pool = __import__("boto3").client(
            "s3", endpoint_url=moto.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
            region_name="us-east-1", config=botocore.config.Config(max_pool_connections=a.in_flight))

        def boto_serial():
            for k in keys:
                client.get_object(Bucket="bench", Key=k)["Body"].read()

        def boto_threads():
            with ThreadPoolExecutor(a.in_flight) as ex:
                list(ex.map(lambda k: client_pool.get_object(Bucket="bench", Key=k)["Body"].read(), keys))

        t_boto = median_seconds(boto_serial, a.repeats)
        t_boto_threads = median_seconds(boto_threads, a.repeats)

        # The prefetch loader on the same store, from S3 and from local disk (a copy).
        run(BIN / "jigsaw-store", "copy", "s3://bench/tiles.zarr", f"{tmp}/tiles.zarr", env=env)
        loader = {}
        for where, url in (("local disk", f"{tmp}/tiles.zarr"), ("S3", "s3://bench/tiles.zarr")):
            runs = [json.loads(run(BIN / "jigsaw-bench", "loader", url, "--rank", "0", "--seconds", "3", "--json",
                                   env=env)) for _ in range(a.repeats)]
            loader[where] = statistics.median(r["gb_per_s"] for r in runs), runs[0]["read_amplification"]

    gbs = lambda t: stored / t / 1e9  # noqa: E731
    print(f"{'reader':<34}{'seconds':>9}{'GB/s stored':>13}")
    rows = [("jigsaw (read + decode)", t_jigsaw), (f"curl --parallel-max {a.in_flight}", t_curl),
            ("boto3 get_object, one thread", t_boto), (f"boto3 get_object, {a.in_flight} threads", t_boto_threads)]
    for name, t in rows:
        print(f"{name:<34}{t:9.3f}{gbs(t):13.3f}")
    print(f"jigsaw / parallel curl        = {t_curl / t_jigsaw:.2f}x  (target >= 0.80)")
    print(f"jigsaw / boto3 one thread     = {t_boto / t_jigsaw:.2f}x  (target >= 3)")
    print(f"jigsaw / boto3 {a.in_flight} threads     = {t_boto_threads / t_jigsaw:.2f}x")
    for where, (g, amp) in loader.items():
        print(f"loader, rank 0 of 1x2x2, from {where:<10}: {g:.3f} GB/s delivered, read amplification {amp:.2f}")
    print(f"loader from S3 / from local disk = {loader['S3'][0] / loader['local disk'][0]:.2f}  (target >= 0.70)")


if __name__ == "__main__":
    main()
