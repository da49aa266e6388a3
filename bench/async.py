#!/usr/bin/env python3
"""Asynchronous invocation benchmark: how fast Updraft accepts events durably, and how soon it delivers them.

It is a measurement, not a test: nothing passes or fails on a number. Run it on an idle machine
(`cat /proc/loadavg` well below 1); the server, the function and the load generator share the CPUs.

    .venv/bin/python bench/async.py --bin target/release/updraft          # about a minute
    .venv/bin/python bench/async.py --bin target/release/updraft --seconds 20 --events 500

What it does
1. starts `updraft serve` on a free port with a temporary data directory (its own, deleted afterwards);
2. deploys a Python function that prints the time it starts (`time.time()`, same host clock as this script);
3. delivery latency: warms the function with a synchronous call, then sends `--events` events one at a time
   (`InvocationType: Event`), each after the previous one was delivered, and takes, for each, the function's start
   time minus the moment this script received the `202` (the dispatcher may start the function before the `202`
   has travelled back, so a value can be slightly negative); p50/p99 over all events;
4. accept throughput: wrk (`bench/invoke.lua`) sends one pre-signed `Invoke` with `X-Amz-Invocation-Type: Event`
   over 1 and over 32 connections for `--seconds` each; every `202` means the event was committed to the event
   database (SQLite, `synchronous=FULL`, group commit) before the answer. Reports events/s and wrk's p50/p99
   latency. The server runs with `--async-max-in-flight 1` so the backlog these runs build is delivered one event
   at a time and the CPUs measure accepting, not the function running thousands of times a second;
5. writes `bench/out/async.json` and `bench/out/async.md` and prints the table.

Needs: wrk (`apt-get install wrk`), boto3 in the interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import zipfile
from io import BytesIO
from pathlib import Path
from urllib.parse import urlparse

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from bench_wrk import parse_wrk  # noqa: E402

REGION = "us-east-1"
KEY_ID = "AKIAUPDRAFTBENCHASYNC"
FUNCTION = (
    "import time\n"
    "def handler(event, context):\n"
    "    if 'seq' in event:\n"
    "        print('STARTED %d %.3f' % (event['seq'], time.time() * 1000.0))\n"
    "    return None\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return round(s[k], 3)


class Server:
    def __init__(self, binary: Path, extra: list[str]):
        self.dir = Path(tempfile.mkdtemp(prefix="updraft-bench-async-"))
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.secret = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
        env.update(UPDRAFT_ACCESS_KEY_ID=KEY_ID, UPDRAFT_SECRET_ACCESS_KEY=self.secret)
        self.log = open(self.dir / "server.log", "wb")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.dir / "data"), *extra],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"updraft exited {self.proc.returncode}: {(self.dir / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("updraft did not become healthy")

    def client(self):
        return boto3.client("lambda", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=KEY_ID,
                            aws_secret_access_key=self.secret,
                            config=Config(retries={"max_attempts": 1}, read_timeout=60))

    def signed(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        req = AWSRequest(method=method, url=self.endpoint + path, data=body, headers=headers)
        SigV4Auth(Credentials(KEY_ID, self.secret), "lambda", REGION).add_auth(req)
        return dict(req.prepare().headers.items())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def deploy(lam, name: str) -> None:
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", FUNCTION)
    lam.create_function(FunctionName=name, Runtime="python3.12", Role="arn:aws:iam::123456789012:role/bench",
                        Handler="app.handler", Code={"ZipFile": buf.getvalue()})
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def started_times(srv: Server, name: str) -> dict[int, float]:
    path = f"/updraft/v1/functions/{name}/logs"
    headers = srv.signed("GET", path, b"", {})
    req = urllib.request.Request(srv.endpoint + path, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        events = json.load(r)["events"]
    out = {}
    for e in events:
        parts = e["message"].split()
        if len(parts) == 3 and parts[0] == "STARTED":
            out[int(parts[1])] = float(parts[2])
    return out


def delivery_latency(srv: Server, lam, name: str, n: int) -> dict:
    lam.invoke(FunctionName=name, Payload=b"{}")  # warm: one environment up and idle
    lat = []
    for seq in range(n):
        r = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"seq": seq}).encode())
        accepted_ms = time.time() * 1000.0
        if r["StatusCode"] != 202:
            raise RuntimeError(f"event {seq}: status {r['StatusCode']}")
        deadline = time.monotonic() + 30
        while True:
            t = started_times(srv, name).get(seq)
            if t is not None:
                lat.append(t - accepted_ms)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"event {seq} was not delivered within 30 s")
            time.sleep(0.005)
    return {"events": n, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "mean_ms": round(statistics.mean(lat), 3),
            "min_ms": round(min(lat), 3), "max_ms": round(max(lat), 3)}


def accept_throughput(srv: Server, name: str, conns: int, seconds: int, wrk: str, out: Path) -> dict:
    path = f"/2015-03-31/functions/{name}/invocations"
    body = b'{"bench": "accept"}'
    headers = {"Host": urlparse(srv.endpoint).netloc, "X-Amz-Invocation-Type": "Event",
               "Content-Type": "application/json"}
    headers.update(srv.signed("POST", path, body, {"X-Amz-Invocation-Type": "Event",
                                                   "Content-Type": "application/json"}))
    req_file = out / f"async-request-c{conns}.txt"
    lines = [f"POST {path}"] + [f"{k}: {v}" for k, v in headers.items()]
    req_file.write_bytes(("\n".join(lines) + "\n\n").encode() + body)
    threads = 1 if conns == 1 else 2
    cmd = [wrk, f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "10s",
           "-s", str(BENCH / "invoke.lua"), srv.endpoint]
    proc = subprocess.run(cmd, env=dict(os.environ, UPDRAFT_BENCH_REQUEST=str(req_file)), capture_output=True,
                          text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}: {proc.stderr} {proc.stdout}")
    res = parse_wrk(proc.stdout)
    (out / f"async-wrk-c{conns}.txt").write_text(proc.stdout)
    raw = res.pop("raw")
    if res["non_2xx"] or res["socket_errors"]:
        print(f"warning: c{conns}: {res['non_2xx']} non-2xx answers, {res['socket_errors']} socket errors\n{raw}",
              file=sys.stderr)
    return {"connections": conns, "events_per_s": res["rps"], "p50_ms": res["p50_ms"], "p99_ms": res["p99_ms"],
            "requests": res["requests"], "non_2xx": res["non_2xx"], "socket_errors": res["socket_errors"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "updraft"))
    ap.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    ap.add_argument("--events", type=int, default=200, help="events timed one by one for delivery latency")
    ap.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    ap.add_argument("--out", default=str(BENCH / "out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    binary = Path(args.bin)
    if not binary.exists():
        print(f"no updraft binary at {binary} (cargo build --release, or --bin)", file=sys.stderr)
        return 2
    if not shutil.which(args.wrk):
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    srv = Server(binary, ["--async-max-in-flight", "1"])
    try:
        lam = srv.client()
        deliver_fn, accept_fn = f"async-deliver-{uuid.uuid4().hex[:6]}", f"async-accept-{uuid.uuid4().hex[:6]}"
        deploy(lam, deliver_fn)
        deploy(lam, accept_fn)
        delivery = delivery_latency(srv, lam, deliver_fn, args.events)
        accept = [accept_throughput(srv, accept_fn, c, args.seconds, args.wrk, out) for c in (1, 32)]
    finally:
        srv.stop()
    result = {
        "binary": str(binary),
        "loadavg_at_end": Path("/proc/loadavg").read_text().split()[:3],
        "cpus": os.cpu_count(),
        "accept": accept,
        "delivery": delivery,
    }
    (out / "async.json").write_text(json.dumps(result, indent=2) + "\n")
    md = ["| measure | value |", "| --- | --- |"]
    for a in accept:
        md.append(f"| accepted events/s, {a['connections']} sender(s) | {a['events_per_s']:.0f} |")
        md.append(f"| accept latency p50 / p99, {a['connections']} sender(s) | {a['p50_ms']} ms / {a['p99_ms']} ms |")
    md.append(f"| delivery latency 202 → function start, p50 / p99 (warm, {delivery['events']} events) | "
              f"{delivery['p50_ms']} ms / {delivery['p99_ms']} ms |")
    md.append(f"\nload average at the end: {' '.join(result['loadavg_at_end'])} on {result['cpus']} CPUs")
    text = "\n".join(md) + "\n"
    (out / "async.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
