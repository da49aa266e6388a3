#!/usr/bin/env python3
"""Updraft's benchmark driver: warm invoke latency and throughput (wrk) and cold starts (boto3).

`bench/run.sh` starts the server and calls this script; see bench/README.md for what every number means.

For each runtime (Python, Node.js, Rust on provided.al2023) the driver
  1. deploys a hello function and checks that it answers {"hello": "world"};
  2. warms it (sequential invokes, 10 concurrent invokes, then an unmeasured wrk run at 10 connections);
  3. signs one Invoke request with botocore's SigV4Auth and hands the fixed method, path, headers and body to
     wrk through bench/invoke.lua; runs wrk at 1 connection and at 10 connections and parses p50/p99/req/s;
  4. measures cold starts: each sample changes an environment variable (a new revision, hence a new pool),
     waits for the update, then times one plain Invoke (no LogType Tail: a tail makes the answer wait for the
     runtime's next /next) from the request's first byte to its answer's last, the request signed beforehand
     and sent on a kept-alive connection as wrk sends them, and reads the server's `Init Duration` from that
     invocation's REPORT line in the function's log events; then times warm invokes of the same function the
     same way and through boto3, for reference.

For the Python and Node.js hellos it also measures a Function URL (AuthType NONE, public by a resource-policy
statement): after checking that one GET answers 200 with the function's JSON and the same warm-up as the Invoke
runs, wrk sends unsigned GETs to the path form `/lambda-url/<url-id>/` at 1 and 10 connections.

Memory (with --server-pid): the server's RSS/PSS at idle before anything is deployed, the peak RSS of the server
and all its environments during each runtime's warm runs, the PSS of one warm environment per runtime, and the
summed PSS of N idle warm Python environments (one function each), extrapolated to a node's memory.

Every loop is bounded in count and time; the only target is the server on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import http.client
import io
import json
import math
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
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

from bench_wrk import parse_wrk
from memory import PeakRss, cgroup_memory_kib, descendants, environments, pss_sum_kib, smaps_rollup

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/bench"
BODY = b"{}"
EXPECTED = {"hello": "world"}
# wrk runs are given this much time beyond their duration before they are killed.
WRK_GRACE_S = 30
# Deadline for a configuration update to become Successful.
UPDATE_WAIT_S = 30
# Warm invokes of a function after its cold starts, timed as the cold ones and through boto3.
WARM_REFERENCE_INVOKES = 20
INIT_RE = re.compile(r"Init Duration: ([0-9.]+) ms")
DURATION_RE = re.compile(r"\tDuration: ([0-9.]+) ms")
# Runtimes whose hello is also measured through a Function URL.
URL_RUNTIMES = ("python", "node")
URL_ID_RE = re.compile(r"^[a-z0-9]{32}$")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def zip_of(files: dict[str, tuple[bytes, int]]) -> bytes:
    """A zip with the given (content, mode) per name; modes are kept so `bootstrap` stays executable."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, (content, mode) in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    return buf.getvalue()


def runtimes(rust_bootstrap: Path) -> list[dict]:
    fn = BENCH / "functions"
    return [
        {
            "key": "python",
            "label": "Python (python3.12)",
            "runtime": "python3.12",
            "handler": "app.handler",
            "zip": lambda: zip_of({"app.py": ((fn / "python-hello" / "app.py").read_bytes(), 0o644)}),
        },
        {
            "key": "node",
            "label": "Node.js (nodejs20.x)",
            "runtime": "nodejs20.x",
            "handler": "index.handler",
            "zip": lambda: zip_of({"index.js": ((fn / "node-hello" / "index.js").read_bytes(), 0o644)}),
        },
        {
            "key": "rust",
            "label": "Rust (provided.al2023, lambda_runtime)",
            "runtime": "provided.al2023",
            "handler": "bootstrap",
            "zip": lambda: zip_of({"bootstrap": (rust_bootstrap.read_bytes(), 0o755)}),
        },
    ]


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p99 of 20 samples is the largest one)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.endpoint = args.endpoint
        self.creds = Credentials(args.access_key, args.secret_key)
        self.client = boto3.client(
            "lambda",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=args.access_key,
            aws_secret_access_key=args.secret_key,
            config=Config(
                retries={"max_attempts": 1, "mode": "standard"},
                read_timeout=60,
                connect_timeout=5,
                max_pool_connections=32,
            ),
        )
        self.suffix = uuid.uuid4().hex[:8]
        # Kept-alive connection of raw_invoke.
        self.raw_conn: http.client.HTTPConnection | None = None
        self.deployed = 0

    # ---- deployment -------------------------------------------------------------------------------------

    def deploy(self, rt: dict) -> str:
        self.deployed += 1
        name = f"bench-{rt['key']}-{self.suffix}-{self.deployed}"
        self.client.create_function(
            FunctionName=name,
            Runtime=rt["runtime"],
            Role=ROLE,
            Handler=rt["handler"],
            Code={"ZipFile": rt["zip"]()},
            MemorySize=self.args.memory,
            Timeout=10,
        )
        self.wait_ready(name)
        return name

    def wait_ready(self, name: str) -> None:
        deadline = time.monotonic() + UPDATE_WAIT_S
        last = None
        while time.monotonic() < deadline:
            cfg = self.client.get_function_configuration(FunctionName=name)
            last = (cfg.get("State"), cfg.get("LastUpdateStatus"))
            if last[0] in (None, "Active") and last[1] in (None, "Successful"):
                return
            if last[0] == "Failed" or last[1] == "Failed":
                raise RuntimeError(f"{name}: state {last}: {cfg.get('StateReason') or cfg.get('LastUpdateStatusReason')}")
            time.sleep(0.05)
        raise RuntimeError(f"{name}: not ready after {UPDATE_WAIT_S}s (State, LastUpdateStatus) = {last}")

    def invoke(self, name: str, tail: bool = False) -> tuple[float, dict]:
        """One Invoke; returns (client-side milliseconds, response). Raises on any failure."""
        kwargs = {"FunctionName": name, "Payload": BODY}
        if tail:
            kwargs["LogType"] = "Tail"
        t0 = time.perf_counter()
        resp = self.client.invoke(**kwargs)
        payload = resp["Payload"].read()
        ms = (time.perf_counter() - t0) * 1000.0
        if resp.get("FunctionError"):
            logs = base64.b64decode(resp.get("LogResult", "")).decode(errors="replace")
            raise RuntimeError(f"{name}: FunctionError {resp['FunctionError']}: {payload[:500]!r}\n{logs}")
        check_hello(name, payload)
        return ms, resp

    # ---- warm: wrk ------------------------------------------------------------------------------------

    def signed_request_file(self, name: str, path: Path) -> None:
        """Signs one Invoke request and writes it in the format bench/invoke.lua reads."""
        url_path, signed = self.signed_invoke(name)
        headers = {"Host": urlparse(self.endpoint).netloc}
        headers.update(signed)
        lines = [f"POST {url_path}"]
        for k, v in headers.items():
            if "\n" in k or "\n" in v:
                raise RuntimeError("header with a newline")
            lines.append(f"{k}: {v}")
        path.write_bytes(("\n".join(lines) + "\n\n").encode() + BODY)

    def wrk(self, request_file: Path, threads: int, conns: int, seconds: int) -> dict:
        cmd = [
            self.args.wrk,
            f"-t{threads}",
            f"-c{conns}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(BENCH / "invoke.lua"),
            self.endpoint,
        ]
        env = dict(os.environ, UPDRAFT_BENCH_REQUEST=str(request_file))
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + WRK_GRACE_S)
        if proc.returncode != 0:
            raise RuntimeError(f"wrk exited {proc.returncode}: {proc.stderr.strip()} {proc.stdout.strip()}")
        return parse_wrk(proc.stdout)

    def warm_up(self, name: str) -> None:
        for _ in range(5):
            self.invoke(name)
        # Ten invokes at once so the pool grows towards ten environments before the 10-connection run.
        with concurrent.futures.ThreadPoolExecutor(max_workers=10) as ex:
            for f in [ex.submit(self.invoke, name) for _ in range(10)]:
                f.result(timeout=60)

    def warm(self, rt: dict, name: str, out: Path) -> dict:
        roots = [self.args.server_pid] if self.args.server_pid else []
        with PeakRss(roots) as peak:
            result = self.warm_runs(rt, name, out)
        if roots:
            result["peak_rss_mib"] = round(peak.peak_kib / 1024, 1)
            result["peak_rss_processes"] = peak.peak_procs
        return result

    def warm_runs(self, rt: dict, name: str, out: Path) -> dict:
        self.warm_up(name)
        req_file = out / f"request-{rt['key']}.txt"
        self.signed_request_file(name, req_file)
        # Unmeasured: lets the pool settle at the size 10 connections need.
        warm = self.wrk(req_file, 2, 10, self.args.warmup)
        check_wrk(warm, "warm-up")
        result = {}
        for label, threads, conns in (("c1", 1, 1), ("c10", 2, 10)):
            if conns > 1:
                # The 1-connection run left most of the pool idle long enough for the keep-alive policy to
                # stop it: without this, the measured run would start by re-growing the pool (cold starts).
                check_wrk(self.wrk(req_file, threads, conns, self.args.warmup), f"{label} warm-up")
            log(f"  wrk -t{threads} -c{conns} -d{self.args.duration}s {rt['key']}")
            r = self.wrk(req_file, threads, conns, self.args.duration)
            (out / "raw").mkdir(exist_ok=True)
            (out / "raw" / f"wrk-{rt['key']}-{label}.txt").write_text(r["raw"])
            check_wrk(r, label)
            result[label] = r
            log(f"    p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  {r['rps']:.1f} req/s")
        req_file.unlink(missing_ok=True)
        return result

    # ---- Function URL ---------------------------------------------------------------------------------

    def url_get(self, url: str) -> float:
        """One GET of a Function URL; returns client-side milliseconds. Raises unless it answers 200 + hello."""
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=30) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        ms = (time.perf_counter() - t0) * 1000.0
        try:
            got = json.loads(body)
        except ValueError:
            got = body
        if status != 200 or got != EXPECTED:
            raise RuntimeError(f"GET {url}: HTTP {status} {body[:500]!r}")
        return ms

    def create_url(self, name: str) -> dict:
        """A public Function URL for `name`; returns its FunctionUrl, url-id and the path-form URL on 127.0.0.1."""
        cfg = self.client.create_function_url_config(FunctionName=name, AuthType="NONE")
        self.client.add_permission(
            FunctionName=name,
            StatementId="public-url",
            Action="lambda:InvokeFunctionUrl",
            Principal="*",
            FunctionUrlAuthType="NONE",
        )
        # Since October 2025 a function URL also needs lambda:InvokeFunction (via the URL only).
        self.client.add_permission(
            FunctionName=name,
            StatementId="public-url-invoke",
            Action="lambda:InvokeFunction",
            Principal="*",
            InvokedViaFunctionUrl=True,
        )
        function_url = cfg["FunctionUrl"]
        host = urlparse(function_url).hostname or ""
        url_id = host.split(".lambda-url.", 1)[0]
        if ".lambda-url." not in host or not URL_ID_RE.match(url_id):
            raise RuntimeError(f"{name}: unexpected FunctionUrl {function_url!r}")
        return {"function_url": function_url, "url_id": url_id, "path": f"/lambda-url/{url_id}/"}

    def url(self, rt: dict, name: str, out: Path) -> dict:
        roots = [self.args.server_pid] if self.args.server_pid else []
        with PeakRss(roots) as peak:
            result = self.url_runs(rt, name, out)
        if roots:
            result["peak_rss_mib"] = round(peak.peak_kib / 1024, 1)
            result["peak_rss_processes"] = peak.peak_procs
        return result

    def url_runs(self, rt: dict, name: str, out: Path) -> dict:
        result = self.create_url(name)
        url = f"{self.endpoint}{result['path']}"
        result["first_get_ms"] = round(self.url_get(url), 3)
        # The same warm-up as the Invoke runs: sequential, ten at once, then an unmeasured wrk run.
        for _ in range(5):
            self.url_get(url)
        with concurrent.futures.ThreadPoolExecutor(max_workers=10) as ex:
            for f in [ex.submit(self.url_get, url) for _ in range(10)]:
                f.result(timeout=60)
        req_file = out / f"request-url-{rt['key']}.txt"
        host = urlparse(self.endpoint).netloc
        req_file.write_bytes(f"GET {result['path']}\nHost: {host}\n\n".encode())
        check_wrk(self.wrk(req_file, 2, 10, self.args.warmup), "url warm-up")
        for label, threads, conns in (("c1", 1, 1), ("c10", 2, 10)):
            if conns > 1:
                # As in warm_runs: the pool re-grows before the measured run, not during it.
                check_wrk(self.wrk(req_file, threads, conns, self.args.warmup), f"url {label} warm-up")
            log(f"  wrk -t{threads} -c{conns} -d{self.args.duration}s {rt['key']} Function URL")
            r = self.wrk(req_file, threads, conns, self.args.duration)
            (out / "raw").mkdir(exist_ok=True)
            (out / "raw" / f"wrk-url-{rt['key']}-{label}.txt").write_text(r["raw"])
            check_wrk(r, f"url {label}")
            result[label] = r
            log(f"    p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  {r['rps']:.1f} req/s")
        req_file.unlink(missing_ok=True)
        return result

    # ---- cold starts ------------------------------------------------------------------------------------

    def signed_invoke(self, name: str) -> tuple[str, dict[str, str]]:
        """Path and headers of one Invoke of `name` with body BODY, SigV4-signed now (valid 15 minutes)."""
        url = f"{self.endpoint}/2015-03-31/functions/{name}/invocations"
        req = AWSRequest(
            method="POST",
            url=url,
            data=BODY,
            headers={
                "Content-Type": "application/json",
                "X-Amz-Content-Sha256": hashlib.sha256(BODY).hexdigest(),
            },
        )
        SigV4Auth(self.creds, "lambda", REGION).add_auth(req)
        return urlparse(url).path, dict(req.headers.items())

    def raw_invoke(self, name: str) -> tuple[float, str]:
        """One Invoke sent as a request signed beforehand, on a kept-alive HTTP/1.1 connection (as wrk sends
        them); returns (milliseconds from the first byte sent to the last byte of the answer, request id).
        Signing and connecting are not timed. Raises on any failure."""
        path, headers = self.signed_invoke(name)
        for attempt in (0, 1):
            conn = self.raw_conn
            if conn is None:
                u = urlparse(self.endpoint)
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.raw_conn = conn
            try:
                t0 = time.perf_counter()
                conn.request("POST", path, body=BODY, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                ms = (time.perf_counter() - t0) * 1000.0
                break
            except (http.client.HTTPException, OSError):
                # A kept-alive connection the server closed while idle: once more on a new one.
                conn.close()
                self.raw_conn = None
                if attempt == 1:
                    raise
        if resp.status != 200 or resp.getheader("X-Amz-Function-Error"):
            raise RuntimeError(f"{name}: HTTP {resp.status} {resp.getheader('X-Amz-Function-Error')}: {payload[:500]!r}")
        check_hello(name, payload)
        return ms, resp.getheader("x-amzn-RequestId") or ""

    def report_line(self, name: str, request_id: str, since_ms: int) -> str:
        """The REPORT line of one invocation, read from the function's log events (the route `updraft logs`
        uses; SigV4-signed). Empty when it does not appear within a few seconds."""
        url = f"{self.endpoint}/updraft/v1/functions/{name}/logs?since_ms={since_ms}"
        needle = f"REPORT RequestId: {request_id}"
        deadline = time.monotonic() + 5
        while True:
            req = AWSRequest(method="GET", url=url)
            SigV4Auth(self.creds, "lambda", REGION).add_auth(req)
            with urllib.request.urlopen(urllib.request.Request(url, headers=dict(req.headers.items())), timeout=10) as r:
                events = json.loads(r.read()).get("events", [])
            for e in events:
                if e.get("message", "").startswith(needle):
                    return e["message"]
            if time.monotonic() > deadline:
                return ""
            time.sleep(0.02)

    def cold(self, rt: dict, name: str, pause: float) -> dict:
        """Cold starts `pause` seconds apart. Updraft replaces a pre-warmed environment in the background
        once a cold start took it; with a pause the next cold start finds one ready (and the previous
        revision's environment has stopped), back to back (pause 0) most have to build their environment while
        the replacement is being built and the previous one is being torn down."""
        samples = []
        misses = 0
        deadline = time.monotonic() + self.args.cold_budget
        for i in range(self.args.cold_samples):
            if time.monotonic() > deadline:
                log(f"  cold-start time budget of {self.args.cold_budget}s spent after {i} samples")
                break
            self.client.update_function_configuration(
                FunctionName=name,
                Environment={"Variables": {"BENCH_COLD": f"{i}-{uuid.uuid4().hex[:8]}"}},
            )
            self.wait_ready(name)
            if pause:
                # Lets the previous revision's environment finish stopping, too.
                time.sleep(pause)
            since = int(time.time() * 1000) - 1000
            ms, request_id = self.raw_invoke(name)
            report = self.report_line(name, request_id, since)
            m = INIT_RE.search(report)
            d = DURATION_RE.search(report)
            if m is None:
                misses += 1
            samples.append(
                {
                    "client_ms": round(ms, 3),
                    "init_duration_ms": float(m.group(1)) if m else None,
                    "duration_ms": float(d.group(1)) if d else None,
                }
            )
        client = [s["client_ms"] for s in samples]
        init = [s["init_duration_ms"] for s in samples if s["init_duration_ms"] is not None]
        # The same function warm, timed the same way and through boto3: what a first invoke costs beyond a
        # warm one, and what a client library adds on top of the request itself.
        warm_raw = [self.raw_invoke(name)[0] for _ in range(WARM_REFERENCE_INVOKES)]
        warm_boto3 = [self.invoke(name)[0] for _ in range(WARM_REFERENCE_INVOKES)]
        res = {
            "pause_s": pause,
            "samples": samples,
            "n": len(samples),
            "without_init_duration": misses,
            "client_p50_ms": percentile(client, 50),
            "client_p99_ms": percentile(client, 99),
            "client_mean_ms": round(statistics.fmean(client), 3) if client else None,
            "init_p50_ms": percentile(init, 50),
            "init_p99_ms": percentile(init, 99),
            "warm_p50_ms": percentile(warm_raw, 50),
            "warm_boto3_p50_ms": percentile(warm_boto3, 50),
        }
        log(
            f"  cold {rt['key']} ({pause} s apart): client p50 {fmt(res['client_p50_ms'])} p99 {fmt(res['client_p99_ms'])} ms; "
            f"Init Duration p50 {fmt(res['init_p50_ms'])} p99 {fmt(res['init_p99_ms'])} ms ({misses} without Init Duration); "
            f"warm p50 {fmt(res['warm_p50_ms'])} ms (boto3 {fmt(res['warm_boto3_p50_ms'])} ms)"
        )
        return res


    # ---- memory ----------------------------------------------------------------------------------------------

    def server_memory(self) -> dict:
        f = smaps_rollup(self.args.server_pid)
        others = descendants([self.args.server_pid]) - {self.args.server_pid}
        return {
            "rss_mib": round(f.get("Rss", 0) / 1024, 1),
            "pss_mib": round(f.get("Pss", 0) / 1024, 1),
            "pss_anon_mib": round(f.get("Pss_Anon", 0) / 1024, 1),
            "child_processes": len(others),
        }

    def new_environments(self, names: list[str]) -> dict:
        """Invokes each function once (a cold start each) and sums the PSS of the environments they got: those
        that appeared, and pre-warmed ones that were waiting before and are assigned now. Pre-warmed environments
        still waiting (the replacements built in the background) are not counted."""
        before = environments(self.args.server_pid)
        for name in names:
            self.invoke(name)
        # The runtime has answered and is waiting in /next: the environment is idle and warm.
        time.sleep(1.0)
        after = environments(self.args.server_pid)
        inits = [
            init
            for init, (_, waiting) in after.items()
            if not waiting and (init not in before or before[init][1])
        ]
        new: set[int] = set()
        for init in inits:
            new |= after[init][0]
        charged = [k for k in (cgroup_memory_kib(p) for p in inits) if k is not None]
        return {
            "environments": len(names),
            # Environments of these functions alive at the end (one pid 1 each).
            "alive": len(inits),
            "cgroup_kib_mean": round(statistics.fmean(charged)) if charged else None,
            **pss_sum_kib(new),
        }

    def memory(self, rts: list[dict]) -> dict:
        res: dict = {"per_runtime": {}}
        for rt in rts:
            name = None
            try:
                name = self.deploy(rt)
                m = self.new_environments([name])
                m["pss_mib"] = round(m["pss_kib"] / 1024, 1)
                m["rss_mib"] = round(m["rss_kib"] / 1024, 1)
                m["pss_anon_mib"] = round(m["pss_anon_kib"] / 1024, 1)
                res["per_runtime"][rt["key"]] = m
                log(f"  one warm {rt['key']} environment: PSS {m['pss_mib']} MiB, RSS {m['rss_mib']} MiB, {m['processes']} processes")
            except Exception as e:
                res["per_runtime"][rt["key"]] = {"error": f"{type(e).__name__}: {e}"}
                log(f"  memory of one {rt['key']} environment FAILED: {e}")
            finally:
                if name:
                    self.delete_quietly(name)
        n = self.args.mem_envs
        py = next((rt for rt in rts if rt["key"] == "python"), None)
        if n > 0 and py is not None:
            names: list[str] = []
            try:
                server_before = smaps_rollup(self.args.server_pid).get("Pss", 0)
                for _ in range(n):
                    names.append(self.deploy(py))
                m = self.new_environments(names)
                server_after = smaps_rollup(self.args.server_pid).get("Pss", 0)
                m["server_pss_growth_kib"] = server_after - server_before
                m["pss_per_env_mib"] = round(m["pss_kib"] / n / 1024, 2)
                node_kib = self.args.node_gib * 1024 * 1024
                m["node_gib"] = self.args.node_gib
                m["fit_by_pss"] = int(node_kib // (m["pss_kib"] / n)) if m["pss_kib"] else None
                # What Updraft's admission allows: idle environments count at what their cgroup is charged once
                # the budget (default: the host's memory) runs short, busy ones at MemorySize.
                m["fit_by_admission"] = (
                    int(node_kib // m["cgroup_kib_mean"]) if m.get("cgroup_kib_mean") else None
                )
                res["python_n"] = m
                log(
                    f"  {n} idle Python environments: PSS {m['pss_kib'] / 1024:.1f} MiB in {m['processes']} processes, "
                    f"{m['pss_per_env_mib']} MiB each; {m['alive']} alive, cgroups charged "
                    f"{(m['cgroup_kib_mean'] or 0) / 1024:.1f} MiB each; server PSS grew {m['server_pss_growth_kib'] / 1024:.1f} MiB"
                )
            except Exception as e:
                res["python_n"] = {"error": f"{type(e).__name__}: {e}", "deployed": len(names)}
                log(f"  {n} Python environments FAILED: {e}")
            finally:
                for name in names:
                    self.delete_quietly(name)
        return res

    def delete_quietly(self, name: str) -> None:
        try:
            self.client.delete_function(FunctionName=name)
        except Exception as e:
            log(f"  delete of {name} failed: {e}")


def check_hello(name: str, payload: bytes) -> None:
    """Raises unless `payload` is the hello functions' answer."""
    try:
        got = json.loads(payload)
    except ValueError:
        got = payload
    if got != EXPECTED:
        raise RuntimeError(f"{name}: unexpected payload {payload[:500]!r}")


def check_wrk(r: dict, label: str) -> None:
    if r["p50_ms"] is None or r["rps"] is None or not r["requests"]:
        raise RuntimeError(f"wrk {label}: no result\n{r['raw']}")
    if r["non_2xx"] or r["socket_errors"]:
        raise RuntimeError(
            f"wrk {label}: {r['non_2xx']} non-2xx responses, {r['socket_errors']} socket errors\n{r['raw']}"
        )


def cell(text: str) -> str:
    """Text fit for one markdown table cell."""
    return " ".join(text.replace("|", "/").split())[:120]


def fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    commit = sh(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = bool(sh(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"]))
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = []
    return {
        "nproc": int(sh(["nproc"]) or 0),
        "cpu_model": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "updraft_commit": commit,
        "working_tree_modified": dirty,
        "loadavg_at_start": load,
        "python": platform.python_version(),
        "node": sh(["node", "--version"]),
        "rustc": sh(["rustc", "--version"]),
        "wrk": sh(["sh", "-c", "wrk -v 2>&1 | head -1"]).split(" [")[0],
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def markdown(results: dict) -> str:
    m = results["machine"]
    p = results["parameters"]
    commit = m["updraft_commit"] + (" (with uncommitted changes)" if m["working_tree_modified"] else "")
    lines = [
        "# Updraft benchmark",
        "",
        f"- Updraft commit: `{commit}`, binary `{p['binary']}`; {m['date_utc']} UTC",
        f"- Machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['memory_gib']} GiB memory, Linux {m['kernel']}; "
        f"load average at start {' '.join(m['loadavg_at_start'])}",
        f"- Interpreters: Python {m['python']}, Node.js {m['node']}; {m['rustc']}; {m['wrk']}",
        f"- Function memory {p['memory_mb']} MB; server, load generator and functions share the machine",
        "",
        f"## Warm invoke (wrk, {p['duration_s']} s per run, Invoke API, SigV4-signed)",
        "",
        "| runtime | 1 conn p50 (ms) | 1 conn p99 (ms) | 1 conn req/s | 10 conn p50 (ms) | 10 conn p99 (ms) | 10 conn req/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["runtimes"]:
        w = r.get("warm")
        if not w:
            lines.append(f"| {r['label']} | failed: {cell(r.get('warm_error', ''))} | | | | | |")
            continue
        c1, c10 = w["c1"], w["c10"]
        lines.append(
            f"| {r['label']} | {fmt(c1['p50_ms'])} | {fmt(c1['p99_ms'])} | {fmt(c1['rps'], 0)} "
            f"| {fmt(c10['p50_ms'])} | {fmt(c10['p99_ms'])} | {fmt(c10['rps'], 0)} |"
        )
    lines += url_markdown(results)
    lines += [
        "",
        f"## Cold start ({p['cold_samples']} new environments per runtime and spacing)",
        "",
        "| runtime | cold starts | first invoke p50 (ms) | first invoke p99 (ms) | Init Duration p50 (ms) | Init Duration p99 (ms) | warm invoke p50, same way / boto3 (ms) | samples |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["runtimes"]:
        for key in ("cold", "cold_burst"):
            c = r.get(key)
            if not c:
                if key == "cold":
                    lines.append(f"| {r['label']} | | failed: {cell(r.get('cold_error', ''))} | | | | | |")
                continue
            mode = f"{c['pause_s']:g} s apart" if c["pause_s"] else "back to back"
            n = f"{c['n']}" + (f" ({c['without_init_duration']} without Init Duration)" if c["without_init_duration"] else "")
            lines.append(
                f"| {r['label']} | {mode} | {fmt(c['client_p50_ms'])} | {fmt(c['client_p99_ms'])} "
                f"| {fmt(c['init_p50_ms'])} | {fmt(c['init_p99_ms'])} "
                f"| {fmt(c.get('warm_p50_ms'))} / {fmt(c.get('warm_boto3_p50_ms'))} | {n} |"
            )
    lines += [
        "",
        "A first invoke is timed from the first byte of an Invoke request, signed beforehand and sent on a "
        "kept-alive connection as wrk sends them, to the last byte of its answer; the warm column times the same "
        "function afterwards the same way and through boto3 (signing, request building and parsing are the "
        "difference). "
        f"Percentiles are nearest-rank: p99 of {p['cold_samples']} cold samples is the slowest one. "
        f"Updraft keeps {p.get('prewarm', 1)} pre-warmed environment(s) per runtime and replaces a taken one in the "
        "background: cold starts spaced out find one ready (the sandbox is built and, for Python and Node.js, the "
        "interpreter and runtime client are loaded); back to back, most build their environment while the replacement "
        "is being built. bench/README.md says what each number measures.",
        "",
    ]
    lines += memory_markdown(results)
    return "\n".join(lines)


def url_markdown(results: dict) -> list[str]:
    p = results["parameters"]
    rows = [r for r in results["runtimes"] if "url" in r or "url_error" in r]
    if not rows:
        return []
    lines = [
        "",
        f"## Function URL (wrk, {p['duration_s']} s per run, unsigned GET of `/lambda-url/<url-id>/`, AuthType NONE)",
        "",
        "| runtime | 1 conn p50 (ms) | 1 conn p99 (ms) | 1 conn req/s | 10 conn p50 (ms) | 10 conn p99 (ms) "
        "| 10 conn req/s | peak RSS (MiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        u = r.get("url")
        if not u:
            lines.append(f"| {r['label']} | failed: {cell(r.get('url_error', ''))} | | | | | | |")
            continue
        c1, c10 = u["c1"], u["c10"]
        lines.append(
            f"| {r['label']} | {fmt(c1['p50_ms'])} | {fmt(c1['p99_ms'])} | {fmt(c1['rps'], 0)} "
            f"| {fmt(c10['p50_ms'])} | {fmt(c10['p99_ms'])} | {fmt(c10['rps'], 0)} | {fmt(u.get('peak_rss_mib'), 1)} |"
        )
    lines += [
        "",
        "Each request becomes a payload format 2.0 event and runs through the same Invoke path; the function's "
        "object comes back as the 200 body. The peers section compares these rows with the raw Node.js http server.",
    ]
    return lines


def memory_markdown(results: dict) -> list[str]:
    mem = results.get("memory")
    if not mem:
        return []
    idle = mem["server_idle"]
    lines = [
        "## Memory",
        "",
        f"- Server at idle (no functions, no environments; /proc/<pid>/smaps_rollup): RSS {idle['rss_mib']} MiB, "
        f"PSS {idle['pss_mib']} MiB (anonymous {idle['pss_anon_mib']} MiB), {idle['child_processes']} child processes",
        "",
        "| runtime | one warm idle environment: PSS (MiB) | of it anonymous (MiB) | RSS (MiB) | processes "
        "| peak RSS during warm runs, server + environments (MiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    labels = {r["key"]: r for r in results["runtimes"]}
    for key, m in mem.get("per_runtime", {}).items():
        r = labels.get(key, {"label": key})
        peak = (r.get("warm") or {}).get("peak_rss_mib")
        if "error" in m:
            lines.append(f"| {r['label']} | failed: {cell(m['error'])} | | | | {fmt(peak, 1)} |")
        else:
            lines.append(
                f"| {r['label']} | {m['pss_mib']:.1f} | {m.get('pss_anon_mib', 0):.1f} | {m['rss_mib']:.1f} "
                f"| {m['processes']} | {fmt(peak, 1)} |"
            )
    n = mem.get("python_n")
    if n:
        lines.append("")
        if "error" in n:
            lines.append(f"- Idle Python environments together: failed: {cell(n['error'])}")
        else:
            lines.append(
                f"- {n['environments']} idle warm Python environments (one function each, measured together): "
                f"PSS {n['pss_kib'] / 1024:.1f} MiB (anonymous {n['pss_anon_kib'] / 1024:.1f} MiB) in {n['processes']} "
                f"processes, {n['pss_per_env_mib']:.2f} MiB per environment; {n.get('alive', '?')} of them alive at the end "
                f"(none evicted); each environment's cgroup is charged {(n.get('cgroup_kib_mean') or 0) / 1024:.1f} MiB on "
                f"average (its processes and the page cache it brought in); the server's own PSS changed by "
                f"{n['server_pss_growth_kib'] / 1024:.1f} MiB. For a {n['node_gib']:g} GiB node: about "
                f"{n['fit_by_pss']:,} idle Python environments fit by PSS, and Updraft's admission, which counts idle "
                f"environments at what their cgroup is charged once its budget (default: the host's memory) runs short, "
                f"holds about {n.get('fit_by_admission') or 0:,} (MemorySize {results['parameters']['memory_mb']} MB "
                f"alone would allow {int(n['node_gib'] * 1024 // results['parameters']['memory_mb']):,})."
            )
    lines.append("")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--access-key", default=os.environ.get("UPDRAFT_ACCESS_KEY_ID"))
    ap.add_argument("--secret-key", default=os.environ.get("UPDRAFT_SECRET_ACCESS_KEY"))
    ap.add_argument("--rust-bootstrap", type=Path, required=True)
    ap.add_argument("--wrk", default="wrk")
    ap.add_argument("--out", type=Path, default=BENCH / "out")
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of the unmeasured wrk warm-up run")
    ap.add_argument("--cold-samples", type=int, default=20)
    ap.add_argument("--cold-pause", type=float, default=0.5, help="seconds between spaced-out cold starts")
    ap.add_argument("--prewarm", type=int, default=1, help="the server's --prewarm (reported only)")
    ap.add_argument("--cold-budget", type=int, default=300, help="seconds at most for one runtime's cold samples")
    ap.add_argument("--memory", type=int, default=128, help="MemorySize of the functions (MB)")
    ap.add_argument("--binary", default="target/release/updraft", help="the updraft binary, as recorded")
    ap.add_argument("--only", default="", help="comma-separated subset of python,node,rust")
    ap.add_argument("--urls", type=int, choices=(0, 1), default=1,
                    help="1: also measure the Python and Node.js hellos through a Function URL")
    ap.add_argument("--server-pid", type=int, default=0, help="the server's pid, for the memory readings")
    ap.add_argument("--mem-envs", type=int, default=50, help="idle warm Python environments to measure together")
    ap.add_argument("--node-gib", type=float, default=24.0, help="node memory the environment count is extrapolated to")
    args = ap.parse_args()
    if not args.access_key or not args.secret_key:
        ap.error("credentials missing (--access-key/--secret-key or UPDRAFT_ACCESS_KEY_ID/UPDRAFT_SECRET_ACCESS_KEY)")
    host = urlparse(args.endpoint).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("the benchmark only targets a server on the loopback interface")

    args.out.mkdir(parents=True, exist_ok=True)
    bench = Bench(args)
    results = {
        "machine": machine(),
        "parameters": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "cold_samples": args.cold_samples,
            "prewarm": args.prewarm,
            "memory_mb": args.memory,
            "binary": args.binary,
            "wrk_c1": "wrk -t1 -c1 --latency",
            "wrk_c10": "wrk -t2 -c10 --latency",
            "body": BODY.decode(),
            "function_urls": bool(args.urls),
        },
        "runtimes": [],
    }
    only = {s for s in args.only.split(",") if s}
    failures = 0
    if args.server_pid:
        idle = bench.server_memory()
        results["memory"] = {"server_idle": idle}
        log(f"idle server: RSS {idle['rss_mib']} MiB, PSS {idle['pss_mib']} MiB, {idle['child_processes']} child processes")
    for rt in runtimes(args.rust_bootstrap):
        if only and rt["key"] not in only:
            continue
        entry = {"key": rt["key"], "label": rt["label"], "runtime": rt["runtime"]}
        results["runtimes"].append(entry)
        log(f"{rt['label']}: deploying")
        try:
            name = bench.deploy(rt)
            entry["function"] = name
            bench.invoke(name)
        except Exception as e:  # a broken runtime must not hide the others' numbers
            entry["warm_error"] = entry["cold_error"] = f"{type(e).__name__}: {e}"
            if args.urls and rt["key"] in URL_RUNTIMES:
                entry["url_error"] = entry["warm_error"]
            log(f"  FAILED: {entry['warm_error']}")
            failures += 1
            continue
        try:
            entry["warm"] = bench.warm(rt, name, args.out)
        except Exception as e:
            entry["warm_error"] = f"{type(e).__name__}: {e}"
            log(f"  warm FAILED: {entry['warm_error']}")
            failures += 1
        if args.urls and rt["key"] in URL_RUNTIMES:
            try:
                entry["url"] = bench.url(rt, name, args.out)
            except Exception as e:
                entry["url_error"] = f"{type(e).__name__}: {e}"
                log(f"  Function URL FAILED: {entry['url_error']}")
                failures += 1
        try:
            entry["cold"] = bench.cold(rt, name, args.cold_pause)
            entry["cold_burst"] = bench.cold(rt, name, 0)
        except Exception as e:
            entry["cold_error"] = f"{type(e).__name__}: {e}"
            log(f"  cold FAILED: {entry['cold_error']}")
            failures += 1
        try:
            bench.client.delete_function(FunctionName=name)
        except Exception as e:
            log(f"  delete of {name} failed: {e}")

    if args.server_pid:
        log("memory: one warm environment per runtime, then idle Python environments together")
        selected = [rt for rt in runtimes(args.rust_bootstrap) if not only or rt["key"] in only]
        results["memory"].update(bench.memory(selected))
    for r in results["runtimes"]:
        for w in [*(r.get("warm") or {}).values(), *(r.get("url") or {}).values()]:
            if isinstance(w, dict):
                w.pop("raw", None)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    md = markdown(results)
    (args.out / "results.md").write_text(md)
    print(md)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
