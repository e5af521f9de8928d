#!/usr/bin/env python3
"""Real servers for tests, started and stopped here: moto's standalone S3 server, Debian's nginx serving a
directory, and the fault-injecting proxy (fault_proxy.py). Each binds 127.0.0.1 on a free port.

As a module (pytest fixtures): Moto(), Nginx(root), FaultProxy(upstream, ...), each a context manager.
As a command (ctest), runs one command with the servers up and their addresses in its environment:

  servers.py [--moto] [--bucket NAME] [--nginx DIR] [--faults RATE] -- COMMAND ARGS...

  sets AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, JIGSAW_TEST_BUCKET and
  JIGSAW_TEST_PUBLIC_BUCKET (created, the second readable by anyone),
  JIGSAW_TEST_HTTP_URL and JIGSAW_TEST_HTTP_ROOT; with --faults, a fault proxy in front of each server:
  JIGSAW_TEST_PROXY_URL (S3) and JIGSAW_TEST_HTTP_PROXY_URL (nginx).
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, what, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def stop(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Moto:
    """moto_server (moto[server] from PyPI) on 127.0.0.1; credentials are moto's test ones."""

    def __enter__(self):
        self.port = free_port()
        exe = shutil.which("moto_server", path=str(VENV_BIN)) or "moto_server"
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc, "moto_server")
        self.endpoint = f"http://127.0.0.1:{self.port}"
        return self

    def env(self, endpoint=None):
        return {"AWS_ENDPOINT_URL": endpoint or self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}

    def client(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def create_bucket(self, name):
        self.client().create_bucket(Bucket=name)
        return name

    def create_public_bucket(self, name):
        """A bucket anyone may read and list, as the WeatherBench2 / ARCO-ERA5 buckets are."""
        import json
        self.create_bucket(name)
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"], "Resource": f"arn:aws:s3:::{name}/*"},
            {"Effect": "Allow", "Principal": "*", "Action": ["s3:ListBucket"], "Resource": f"arn:aws:s3:::{name}"}]}
        self.client().put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
        return name

    def __exit__(self, *exc):
        stop(self.proc)


class Nginx:
    """Debian's nginx serving `root` read-only (Range requests honoured, as nginx does for static files)."""

    def __init__(self, root):
        self.root = str(Path(root).resolve())

    def __enter__(self):
        self.port = free_port()
        self.prefix = tempfile.mkdtemp(prefix="jigsaw-nginx-")
        user = "user root root;\n" if os.geteuid() == 0 else ""
        conf = Path(self.prefix) / "nginx.conf"
        conf.write_text(f"""{user}worker_processes 2;
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {self.prefix}/body;
  proxy_temp_path {self.prefix}/proxy;
  fastcgi_temp_path {self.prefix}/fastcgi;
  uwsgi_temp_path {self.prefix}/uwsgi;
  scgi_temp_path {self.prefix}/scgi;
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{self.port};
    root {self.root};
    location / {{ }}
  }}
}}
""")
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([exe, "-c", str(conf), "-p", self.prefix, "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc, "nginx")
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc):
        stop(self.proc)
        shutil.rmtree(self.prefix, ignore_errors=True)


class FaultProxy:
    """fault_proxy.py in front of `upstream`; see its docstring for the options."""

    def __init__(self, upstream, rate=0.1, seed=1, kinds="503,429,reset,truncate,stall", stall_s=3.0, gone_after=0,
                 port=0, fail_parts=False, cap_mb_s=0.0):
        self.args = ["--upstream", upstream, "--rate", str(rate), "--seed", str(seed), "--kinds", kinds,
                     "--stall-s", str(stall_s), "--gone-after", str(gone_after), "--port", str(port),
                     "--cap-mb-s", str(cap_mb_s)]
        if fail_parts:
            self.args.append("--fail-parts")

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, str(HERE / "fault_proxy.py")] + self.args,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError("fault_proxy.py did not start")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def stats(self):
        import json
        import urllib.request
        with urllib.request.urlopen(self.url + "/__proxy_stats", timeout=10) as r:
            return json.loads(r.read())

    def __exit__(self, *exc):
        stop(self.proc)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--moto", action="store_true")
    p.add_argument("--bucket", default="jigsaw-test")
    p.add_argument("--nginx", metavar="DIR")
    p.add_argument("--faults", type=float, default=0.0, metavar="RATE")
    p.add_argument("--stall-s", type=float, default=2.0)
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("no command given")
    env = dict(os.environ)
    running = []

    def start(server):
        running.append(server.__enter__())
        return server

    try:
        if args.moto:
            moto = start(Moto())
            env.update(moto.env())
            env["JIGSAW_TEST_BUCKET"] = moto.create_bucket(args.bucket)
            env["JIGSAW_TEST_PUBLIC_BUCKET"] = moto.create_public_bucket(args.bucket + "-public")
            if args.faults:
                env["JIGSAW_TEST_PROXY_URL"] = start(FaultProxy(moto.endpoint, args.faults, stall_s=args.stall_s)).url
        if args.nginx:
            os.makedirs(args.nginx, exist_ok=True)
            nginx = start(Nginx(args.nginx))
            env["JIGSAW_TEST_HTTP_URL"] = nginx.url
            env["JIGSAW_TEST_HTTP_ROOT"] = nginx.root
            if args.faults:
                env["JIGSAW_TEST_HTTP_PROXY_URL"] = start(FaultProxy(nginx.url, args.faults, stall_s=args.stall_s)).url
        return subprocess.call(command, env=env)
    finally:
        for server in reversed(running):
            server.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main())
