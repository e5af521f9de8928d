#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for tests: sits between jigsaw and a server (moto, nginx) and, for a
chosen fraction of requests, returns a 503 SlowDown, resets the connection, truncates the body, or stalls.

  fault_proxy.py --upstream http://127.0.0.1:9000 [--port 0] [--rate 0.1] [--seed 1]
                 [--kinds 503,429,reset,truncate,stall] [--stall-s 3] [--gone-after N] [--fail-parts]
                 [--cap-mb-s R]

Prints "port N" on stdout once listening. GET /__proxy_stats answers JSON counts of what it did, the most
requests it had in flight at once, the answer bytes it sent and when it sent the first and the last (Unix
seconds: bytes_out, t_first_out, t_last_out).
With --cap-mb-s R the answers' bytes, over all connections together, leave at R MB/s at most (a token bucket
with a 256 kB burst): one proxy per client stands in for that client's share of a link (a node's NIC, its
share of a parallel file system). --rate 0 injects no faults.
Requests that change state (PUT, POST, DELETE) are faulted only before they reach the server (503,
reset, stall), as a dropped request would be; GET and HEAD can also be cut after the server answered
(truncate). With --gone-after N the proxy stops listening after N requests, like a server that died.
"""
import argparse
import http.client
import json
import random
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}


class TokenBucket:
    """Paces bytes to `rate` per second over every thread that sends through it, allowing `burst` at once."""

    def __init__(self, rate, burst=256 * 1024):
        self.rate, self.burst = rate, burst
        self.lock = threading.Lock()
        self.t = 0.0  # when the bytes granted so far will have left at `rate`

    def take(self, n):
        with self.lock:
            now = time.monotonic()
            self.t = max(self.t, now) + n / self.rate
            wait = self.t - self.burst / self.rate - now
        if wait > 0:
            time.sleep(wait)


class State:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.counts = {"requests": 0, "signed": 0, "503": 0, "429": 0, "reset": 0, "truncate": 0, "stall": 0, "max_in_flight": 0,
                       "bytes_out": 0, "t_first_out": None, "t_last_out": None}
        self.bucket = TokenBucket(args.cap_mb_s * 1e6) if args.cap_mb_s else None
        self.in_flight = 0
        self.kinds = [k for k in args.kinds.split(",") if k]

    def choose(self, method):
        with self.lock:
            self.counts["requests"] += 1
            n = self.counts["requests"]
            if self.rng.random() >= self.args.rate:
                return None, n
            kinds = self.kinds if method in ("GET", "HEAD") else [k for k in self.kinds if k != "truncate"]
            kind = self.rng.choice(kinds) if kinds else None
            if kind:
                self.counts[kind] += 1
            return kind, n


def make_handler(state, upstream):
    up = urllib.parse.urlsplit(upstream)
    local = threading.local()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _upstream(self):
            if getattr(local, "conn", None) is None:
                local.conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            return local.conn

        def _reset(self):
            self._answered()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def _handle(self):
            with state.lock:
                state.in_flight += 1
                state.counts["max_in_flight"] = max(state.counts["max_in_flight"], state.in_flight)
            self.counted = True
            try:
                self._serve()
            finally:
                self._answered()

        def _answered(self):
            # A request stops counting before its answer leaves: the client may send its next request the
            # moment it has the answer, before this thread would get back to the count.
            if self.counted:
                self.counted = False
                with state.lock:
                    state.in_flight -= 1

        def _serve(self):
            if self.path == "/__proxy_stats":
                body = json.dumps(state.counts).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.headers.get("Authorization"):
                with state.lock:
                    state.counts["signed"] += 1
            kind, n = state.choose(self.command)
            if state.args.fail_parts and "partNumber=" in self.path:
                kind = "503"  # every part of a multipart upload fails; starting and aborting one pass
            if state.args.gone_after and n > state.args.gone_after:
                threading.Thread(target=self.server.shutdown, daemon=True).start()
                return self._reset()
            if kind in ("503", "429"):  # S3's SlowDown, and the Too Many Requests of HTTP servers and GCS
                err = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                self._answered()
                self.send_response(int(kind))
                self.send_header("Content-Length", str(len(err)))
                self.end_headers()
                self.wfile.write(err)
                return
            if kind == "reset":
                return self._reset()
            if kind == "stall":
                time.sleep(state.args.stall_s)
                return self._reset()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            for attempt in range(2):
                conn = self._upstream()
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    break
                except (ConnectionError, http.client.HTTPException, OSError):
                    local.conn = None
                    if attempt == 1:
                        return self._reset()
            self._answered()
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_HEADERS and (k.lower() != "content-length" or self.command == "HEAD"):
                    self.send_header(k, v)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if kind == "truncate" and self.command == "GET" and len(data) >= 2:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                return self._reset()
            if self.command != "HEAD":
                self._send_body(data)

        def _send_body(self, data):
            piece = 64 * 1024
            for i in range(0, len(data), piece):
                if state.bucket:
                    state.bucket.take(min(piece, len(data) - i))
                self.wfile.write(data[i:i + piece])
                with state.lock:
                    c = state.counts
                    c["bytes_out"] += min(piece, len(data) - i)
                    c["t_last_out"] = time.time()
                    c["t_first_out"] = c["t_first_out"] or c["t_last_out"]

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--upstream", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--rate", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kinds", default="503,429,reset,truncate,stall")
    p.add_argument("--stall-s", type=float, default=3.0)
    p.add_argument("--fail-parts", action="store_true", help="answer 503 to every multipart part upload")
    p.add_argument("--gone-after", type=int, default=0)
    p.add_argument("--cap-mb-s", type=float, default=0.0, help="the answers' bandwidth, all connections together")
    args = p.parse_args()
    state = State(args)
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(state, args.upstream))
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    sys.exit(main())
