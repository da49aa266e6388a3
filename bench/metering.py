#!/usr/bin/env python3
"""What metering costs: warm Invoke throughput with metering on and off, in the same run.

Starts two servers from the same binary on 127.0.0.1, one with `--metering on` (usage records in
usage.db, Prometheus counters, CloudWatch's AWS/Lambda points) and one with `--metering off` (the
engine has no usage subscriber), deploys the same Python function on each, warms them, then
alternates wrk runs (off, on, off, on, ...) with a pre-signed Invoke (bench/invoke.lua) so drift of
the machine hits both alike. Reports req/s per run, the medians, and on/off as a ratio; also checks
that the metered server recorded every request wrk made.

    .venv/bin/python bench/metering.py --binary target/release/updraft [--rounds 3 --duration 10]

Writes bench/out/metering.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from bench_wrk import parse_wrk  # noqa: E402

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/bench"
HANDLER_SRC = "def handler(event, context):\n    return {'hello': 'world'}\n"
BODY = b'{"bench": true}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hello_zip() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", HANDLER_SRC)
    return buf.getvalue()


class Server:
    def __init__(self, binary: Path, work: Path, metering: str):
        self.metering = metering
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.key = "AKIAUPDRAFTMETERING1"
        self.secret = secrets.token_hex(20)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
        env.update(UPDRAFT_ACCESS_KEY_ID=self.key, UPDRAFT_SECRET_ACCESS_KEY=self.secret, RUST_LOG="warn")
        data = work / f"data-{metering}"
        self.log = open(work / f"server-{metering}.log", "wb")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(data),
             "--metering", metering],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"server ({metering}) did not start; see {work}")

    def lam(self):
        return boto3.client("lambda", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=self.key, aws_secret_access_key=self.secret,
                            config=Config(retries={"total_max_attempts": 1}))

    def signed(self, method: str, path: str, body: bytes = b"", service: str = "lambda") -> dict[str, str]:
        req = AWSRequest(method=method, url=self.endpoint + path, data=body)
        SigV4Auth(Credentials(self.key, self.secret), service, REGION).add_auth(req)
        return dict(req.prepare().headers.items())

    def request_file(self, name: str, path: Path) -> None:
        url_path = f"/2015-03-31/functions/{name}/invocations"
        headers = {"Host": f"127.0.0.1:{self.port}"}
        headers.update(self.signed("POST", url_path, BODY))
        lines = [f"POST {url_path}"] + [f"{k}: {v}" for k, v in headers.items()]
        path.write_bytes(("\n".join(lines) + "\n\n").encode() + BODY)

    def requests_recorded(self, since_ms: int) -> int:
        path = "/updraft/v1/usage?" + urlencode({"by": "account", "since": since_ms})
        req = urllib.request.Request(self.endpoint + path, headers=self.signed("GET", path))
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(json.loads(resp.read())["Total"]["Requests"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def wrk(args, request_file: Path, endpoint: str, seconds: int) -> dict:
    cmd = [args.wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency",
           "--timeout", "10s", "-s", str(BENCH / "invoke.lua"), endpoint]
    env = dict(os.environ, UPDRAFT_BENCH_REQUEST=str(request_file))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 30)
    if proc.returncode != 0:
        raise SystemExit(f"wrk exited {proc.returncode}: {proc.stderr} {proc.stdout}")
    r = parse_wrk(proc.stdout)
    if r["non_2xx"] or r["socket_errors"]:
        raise SystemExit(f"wrk saw errors: {r['raw']}")
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", type=Path, default=BENCH.parent / "target" / "release" / "updraft")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--wrk", default="wrk")
    ap.add_argument("--out", type=Path, default=BENCH / "out" / "metering.md")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="updraft-metering-bench-"))
    servers = {m: Server(args.binary, work, m) for m in ("off", "on")}
    try:
        files = {}
        for m, s in servers.items():
            lam = s.lam()
            name = "metered-hello"
            lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                                Code={"ZipFile": hello_zip()}, MemorySize=128)
            lam.get_waiter("function_active_v2").wait(FunctionName=name)
            files[m] = work / f"request-{m}.txt"
            s.request_file(name, files[m])
            wrk(args, files[m], s.endpoint, 3)  # warm-up: environments started, caches filled
        since = int(time.time() * 1000)
        rps: dict[str, list[float]] = {"off": [], "on": []}
        sent_on = 0
        for r in range(args.rounds):
            for m in ("off", "on") if r % 2 == 0 else ("on", "off"):
                res = wrk(args, files[m], servers[m].endpoint, args.duration)
                rps[m].append(res["rps"])
                if m == "on":
                    sent_on += res["requests"]
                print(f"round {r + 1} metering {m:>3}: {res['rps']:.0f} req/s "
                      f"(p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms)", flush=True)
        deadline = time.monotonic() + 30
        recorded = servers["on"].requests_recorded(since)
        while recorded < sent_on and time.monotonic() < deadline:
            time.sleep(0.5)
            recorded = servers["on"].requests_recorded(since)
    finally:
        for s in servers.values():
            s.stop()
    off, on = statistics.median(rps["off"]), statistics.median(rps["on"])
    ratio = on / off
    lines = [
        "# Metering cost: warm Invoke throughput, metering on vs off (same run, same binary)",
        "",
        f"wrk -t{args.threads} -c{args.connections}, {args.duration} s per run, {args.rounds} rounds alternating; "
        f"Python 3.12 hello handler, 128 MB.",
        "",
        "| metering | runs (req/s) | median req/s |",
        "| --- | --- | --- |",
        f"| off | {', '.join(f'{x:.0f}' for x in rps['off'])} | {off:.0f} |",
        f"| on | {', '.join(f'{x:.0f}' for x in rps['on'])} | {on:.0f} |",
        "",
        f"on / off = {ratio:.3f} (cost {100 * (1 - ratio):+.1f} %; target: under 2 %).",
        f"Requests wrk completed against the metered server: {sent_on}; usage records the report counts "
        f"for the measured runs: {recorded} (answers wrk had not read when a run ended count too).",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
