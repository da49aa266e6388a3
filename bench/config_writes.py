#!/usr/bin/env python3
"""Invoke latency while the control plane is busy writing.

Measures warm Invoke latency at one connection (p50/p99/max) to one function, first alone, then while
`--writers` client processes stream UpdateFunctionConfiguration calls to another function, then alone again.
Each configuration write is a SQLite commit; a control plane that makes the invoke path wait for its writers
shows it here as a higher p99 under writes.

    .venv/bin/python bench/config_writes.py --binary target/release/updraft [--binary other/updraft ...]

With several `--binary` options the phases run for each binary in turn (for example a build before and after
a change) and the table compares them. The writers are separate processes, so they do not share the measuring
process's interpreter lock. Every loop is bounded in count and time; the only target is a server this script
starts on 127.0.0.1 with its own temporary data directory.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import multiprocessing
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/bench"
HANDLER_SRC = "def handler(event, context):\n    return {'hello': 'world'}\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary: Path, work: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.key = "AKIAUPDRAFTCFGWRITES"
        self.secret = secrets.token_hex(20)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
        env.update(UPDRAFT_ACCESS_KEY_ID=self.key, UPDRAFT_SECRET_ACCESS_KEY=self.secret,
                   UPDRAFT_LOG=os.environ.get("UPDRAFT_LOG", "warn"))
        self.log_path = work / "server.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(work / "data")],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        for _ in range(300):
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit("server not healthy after 30 s")

    def client(self):
        return client(self.endpoint, self.key, self.secret)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def client(endpoint: str, key: str, secret: str):
    return boto3.client(
        "lambda", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=key, aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60),
    )


def hello_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("app.py", HANDLER_SRC)
    return buf.getvalue()


def deploy(lam, name: str) -> None:
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": hello_zip()}, Timeout=10)
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def signed_invoke(srv: Server, name: str) -> tuple[str, dict[str, str], bytes]:
    """One Invoke request signed once and replayed (SigV4 allows it within 15 minutes), as wrk replays it."""
    path = f"/2015-03-31/functions/{name}/invocations"
    body = b"{}"
    req = AWSRequest(method="POST", url=srv.endpoint + path, data=body,
                     headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(srv.key, srv.secret), "lambda", REGION).add_auth(req)
    return path, dict(req.prepare().headers.items()), body


def measure(srv: Server, name: str, count: int, max_s: float) -> list[float]:
    """Sequential invokes on one kept-alive connection; latency of each in ms."""
    path, headers, body = signed_invoke(srv, name)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    out: list[float] = []
    deadline = time.monotonic() + max_s
    while len(out) < count and time.monotonic() < deadline:
        t0 = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        out.append((time.perf_counter() - t0) * 1000)
        if resp.status != 200 or json.loads(data) != {"hello": "world"}:
            raise SystemExit(f"invoke answered {resp.status}: {data[:200]!r}")
    conn.close()
    return out


def writer(endpoint: str, key: str, secret: str, name: str, idx: int, stop, counts, max_s: float) -> None:
    """Streams UpdateFunctionConfiguration calls until told to stop (or `max_s` passes).

    One request signed once and replayed on a kept-alive connection, so the client spends little CPU per write
    (the box's cores are what the server and the measuring client need). Every replay is a real write: the
    function gets a new RevisionId and the store a commit.
    """
    port = int(endpoint.rsplit(":", 1)[1])
    path = f"/2015-03-31/functions/{name}/configuration"
    body = json.dumps({"Description": f"written by writer {idx}"}).encode()
    req = AWSRequest(method="PUT", url=endpoint + path, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(key, secret), "lambda", REGION).add_auth(req)
    headers = dict(req.prepare().headers.items())
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    done = errors = 0
    deadline = time.monotonic() + max_s
    while not stop.is_set() and time.monotonic() < deadline:
        conn.request("PUT", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status == 200:
            done += 1
        else:
            errors += 1
    conn.close()
    counts.put((done, errors))


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


def summary(lat: list[float]) -> dict:
    return {"n": len(lat), "p50": statistics.median(lat), "p99": percentile(lat, 99),
            "p99.9": percentile(lat, 99.9), "max": max(lat)}


def run_binary(binary: Path, count: int, writers: int, max_s: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="updraft-cfgwrites-") as tmp:
        srv = Server(binary, Path(tmp))
        try:
            lam = srv.client()
            deploy(lam, "hot")
            deploy(lam, "busy")
            measure(srv, "hot", 200, 60)  # warm-up: environment started, connection paths hot
            result: dict = {"binary": str(binary)}
            result["alone"] = summary(measure(srv, "hot", count, max_s))
            ctx = multiprocessing.get_context("spawn")
            stop, counts = ctx.Event(), ctx.Queue()
            procs = [ctx.Process(target=writer, args=(srv.endpoint, srv.key, srv.secret, "busy", i, stop, counts,
                                                      max_s + 60))
                     for i in range(writers)]
            for p in procs:
                p.start()
            time.sleep(2)  # let the writers reach their steady stream
            t0 = time.monotonic()
            lat = measure(srv, "hot", count, max_s)
            elapsed = time.monotonic() - t0
            stop.set()
            totals = [counts.get(timeout=120) for _ in procs]
            for p in procs:
                p.join(30)
            result["writes"] = summary(lat)
            result["writes"]["writes_per_s"] = sum(d for d, _ in totals) / (elapsed + 2)
            result["writes"]["write_errors"] = sum(e for _, e in totals)
            result["alone_again"] = summary(measure(srv, "hot", count, max_s))
            return result
        finally:
            srv.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", action="append", type=Path, required=True)
    ap.add_argument("--count", type=int, default=3000, help="invokes per phase")
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--max-seconds", type=float, default=120, help="time bound of each phase")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    results = [run_binary(b, args.count, args.writers, args.max_seconds) for b in args.binary]
    print(f"invoke latency at 1 connection, ms ({args.writers} writer processes in the middle phase)")
    print("| binary | phase | n | p50 | p99 | p99.9 | max | writes/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        for phase in ("alone", "writes", "alone_again"):
            s = r[phase]
            wps = f"{s['writes_per_s']:.0f}" if "writes_per_s" in s else ""
            print(f"| {r['binary']} | {phase} | {s['n']} | {s['p50']:.2f} | {s['p99']:.2f} | {s['p99.9']:.1f} | {s['max']:.1f} | {wps} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
