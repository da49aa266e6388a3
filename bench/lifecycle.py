"""Benchmark of the execution environment's lifecycle (issue 21): what freezing costs.

Measured in one run, on one machine, with one binary (`UPDRAFT_BIN`, default target/release/updraft):

1. warm Invoke p50/p99 and throughput of the Python hello with wrk (bench/invoke.lua, pre-signed requests)
   at 1 and 10 connections, on three servers side by side: `--freeze true` (the default, frozen as soon as
   the runtime waits), `--freeze-grace-ms 50` and `--freeze false`, runs alternating so that the machine's
   load hits all alike;
2. the idle CPU of `BENCH_IDLE_ENVS` (default 100) warm environments whose functions left a thread spinning,
   frozen and not frozen: CPU seconds used by their cgroups over `BENCH_IDLE_S` seconds, read from the host;
3. the cost of one freeze/thaw pair: the time of the two cgroup writes, measured from the host on a
   frozen environment's freezer file (v1 `freezer.state`, v2 `cgroup.freeze`), and in the warm path above.

A measurement, not a test: nothing here fails on a number. Results: bench/out/lifecycle.json and .md.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
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
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from bench_wrk import parse_wrk  # noqa: E402
from cgroup_helpers import EnvCgroup  # noqa: E402

BIN = Path(os.environ.get("UPDRAFT_BIN", REPO / "target" / "release" / "updraft"))
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/bench"
BODY = b"{}"
DURATION = int(os.environ.get("BENCH_DURATION", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
IDLE_ENVS = int(os.environ.get("BENCH_IDLE_ENVS", "100"))
IDLE_S = float(os.environ.get("BENCH_IDLE_S", "3"))
OUT = BENCH / "out"

HELLO = (BENCH / "functions" / "python-hello" / "app.py").read_text()
SPINNER = """
import threading, os
started = []
def spin():
    while True:
        pass
def handler(event, context):
    if not started:
        started.append(threading.Thread(target=spin, daemon=True))
        started[0].start()
    return {"cgroup": open("/proc/self/cgroup").read()}
"""


def log(msg: str) -> None:
    print(f"[lifecycle] {msg}", flush=True)


def zip_of(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (0o100644) << 16
            zf.writestr(info, text)
    return buf.getvalue()


class Server:
    def __init__(self, label: str, args: list[str]):
        self.label = label
        self.root = Path(f"/tmp/updraft-lifecycle-bench-{label}-{os.getpid()}")
        self.root.mkdir(parents=True, exist_ok=True)
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.key, self.secret = "AKIABENCH" + uuid.uuid4().hex[:11].upper(), uuid.uuid4().hex + uuid.uuid4().hex[:8]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
        env.update(UPDRAFT_ACCESS_KEY_ID=self.key, UPDRAFT_SECRET_ACCESS_KEY=self.secret, RUST_LOG="warn")
        self.out = open(self.root / "server.log", "wb")
        self.proc = subprocess.Popen(
            [str(BIN), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.root / "data"),
             "--prewarm", "0", "--keep-alive", "fixed", *args],
            stdout=self.out, stderr=self.out, env=env)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(self.endpoint + "/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        self.creds = Credentials(self.key, self.secret)
        self.lam = boto3.client("lambda", endpoint_url=self.endpoint, region_name=REGION,
                                aws_access_key_id=self.key, aws_secret_access_key=self.secret,
                                config=Config(retries={"max_attempts": 0}, read_timeout=120,
                                              max_pool_connections=50))

    def deploy(self, name: str, code: str, memory: int = 128) -> str:
        self.lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                                 Code={"ZipFile": zip_of({"app.py": code})}, MemorySize=memory, Timeout=30)
        for _ in range(100):
            if self.lam.get_function(FunctionName=name)["Configuration"]["State"] == "Active":
                break
            time.sleep(0.05)
        return name

    def invoke(self, name: str) -> dict:
        resp = self.lam.invoke(FunctionName=name, Payload=BODY)
        return json.loads(resp["Payload"].read())

    def request_file(self, name: str) -> Path:
        url = f"{self.endpoint}/2015-03-31/functions/{name}/invocations"
        req = AWSRequest(method="POST", url=url, data=BODY, headers={
            "Content-Type": "application/json", "X-Amz-Content-Sha256": hashlib.sha256(BODY).hexdigest()})
        SigV4Auth(self.creds, "lambda", REGION).add_auth(req)
        lines = [f"POST {urlparse(url).path}", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{k}: {v}" for k, v in req.headers.items()]
        path = self.root / f"{name}.req"
        path.write_bytes(("\n".join(lines) + "\n\n").encode() + BODY)
        return path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wrk(server: Server, req: Path, conns: int, seconds: int) -> dict:
    cmd = ["wrk", f"-t{min(conns, 2)}", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "10s",
           "-s", str(BENCH / "invoke.lua"), server.endpoint]
    proc = subprocess.run(cmd, env=dict(os.environ, UPDRAFT_BENCH_REQUEST=str(req)), capture_output=True,
                          text=True, timeout=seconds + 30)
    r = parse_wrk(proc.stdout)
    return {k: r[k] for k in ("p50_ms", "p99_ms", "rps") if k in r}


def warm_path(servers: list[Server]) -> dict:
    reqs = {}
    for s in servers:
        name = s.deploy(f"hello-{s.label}", HELLO)
        for _ in range(20):
            s.invoke(name)
        reqs[s.label] = s.request_file(name)
        wrk(s, reqs[s.label], 10, 2)
    runs: dict[str, dict[int, list[dict]]] = {s.label: {1: [], 10: []} for s in servers}
    for r in range(ROUNDS):
        for conns in (1, 10):
            order = servers[r % len(servers):] + servers[:r % len(servers)]
            for s in order:
                res = wrk(s, reqs[s.label], conns, DURATION)
                log(f"round {r + 1} {s.label} c={conns}: {res}")
                runs[s.label][conns].append(res)
    summary = {}
    for label, by_conns in runs.items():
        summary[label] = {
            c: {k: statistics.median(x[k] for x in rs) for k in ("p50_ms", "p99_ms", "rps")}
            for c, rs in by_conns.items()}
    return summary


def idle_cpu(server: Server, n: int) -> dict:
    names = [server.deploy(f"spin{i}-{server.label}", SPINNER) for i in range(n)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(server.invoke, names))
    failed = sum(1 for o in outs if "cgroup" not in o)
    if failed:
        log(f"{failed} of {n} spinner invocations failed (a loaded host): measured without them")
    envs = [EnvCgroup(o["cgroup"]) for o in outs if "cgroup" in o]
    time.sleep(0.5)
    envs = [e for e in envs if e.exists()]
    u0 = sum(e.usage_s() for e in envs)
    t0 = time.monotonic()
    time.sleep(IDLE_S)
    used = sum(e.usage_s() for e in envs) - u0
    wall = time.monotonic() - t0
    frozen = sum(1 for e in envs if e.frozen())
    for nm in names:
        server.lam.delete_function(FunctionName=nm)
    return {"environments": len(envs), "frozen": frozen, "cpu_s": round(used, 4), "wall_s": round(wall, 3),
            "cores_busy": round(used / wall, 4)}


def freeze_pair(server: Server) -> dict:
    name = server.deploy(f"pair-{server.label}", SPINNER)
    env = EnvCgroup(server.invoke(name)["cgroup"])
    time.sleep(0.3)
    if "freezer" in env.v1:
        path, freeze, thaw = env.v1["freezer"] / "freezer.state", b"FROZEN", b"THAWED"
    else:
        path, freeze, thaw = env.v2 / "cgroup.freeze", b"1", b"0"
    fd = os.open(path, os.O_WRONLY)
    samples = []
    try:
        for _ in range(1000):
            t = time.perf_counter_ns()
            os.write(fd, freeze)
            os.write(fd, thaw)
            samples.append(time.perf_counter_ns() - t)
        os.write(fd, freeze)
    finally:
        os.close(fd)
    samples.sort()
    return {"pairs": len(samples), "p50_us": samples[len(samples) // 2] / 1000,
            "p99_us": samples[int(len(samples) * 0.99)] / 1000}


def main() -> int:
    if not BIN.exists():
        log(f"no binary at {BIN}: build it with cargo build --release (or set UPDRAFT_BIN)")
        return 2
    OUT.mkdir(exist_ok=True)
    log(f"binary {BIN}, load {Path('/proc/loadavg').read_text().split()[:3]}")
    on = Server("freeze-on", ["--freeze", "true"])
    grace = Server("freeze-grace-50", ["--freeze-grace-ms", "50"])
    off = Server("freeze-off", ["--freeze", "false"])
    try:
        results = {"binary": str(BIN), "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
                   "warm": {} if os.environ.get("BENCH_SKIP_WARM") else warm_path([on, grace, off])}
        log(f"warm: {results['warm']}")
        results["idle"] = {s.label: idle_cpu(s, IDLE_ENVS) for s in (on, grace, off)}
        log(f"idle: {results['idle']}")
        results["freeze_thaw_pair"] = freeze_pair(on)
        log(f"freeze/thaw pair: {results['freeze_thaw_pair']}")
    finally:
        for s in (on, grace, off):
            s.stop()
    (OUT / "lifecycle.json").write_text(json.dumps(results, indent=2))
    w = results["warm"]
    if not w:
        return 0
    lines = ["| conns | freezing | p50 | p99 | req/s |", "| ---: | --- | ---: | ---: | ---: |"]
    for c in (1, 10):
        for label in ("freeze-on", "freeze-grace-50", "freeze-off"):
            x = w[label][c]
            lines.append(f"| {c} | {label} | {x['p50_ms']:.2f} ms | {x['p99_ms']:.2f} ms | {x['rps']:.0f} |")
    (OUT / "lifecycle.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
