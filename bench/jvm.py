#!/usr/bin/env python3
"""Java and C# benchmark: warm latency, throughput and cold start of a hello function in Java
(`java17`) and C# (`dotnet8`, on Mono) beside the Node.js hello (`nodejs20.x`), all in one run
of one release server, and the floors a cold start cannot go below: a bare JVM start
(`java -version` with the flags Updraft starts the JVM with) and a bare Mono start (an empty
program).

- warm: sequential Invokes from one boto3 client after a first call (p50, p99), then a fixed
  number of Invokes from 4 client threads (throughput);
- cold: the function's configuration is changed (a new environment variable value, so no
  environment can be reused), then one Invoke is timed; the REPORT line's Init Duration is read
  from the log tail. With the server's default pre-warming the sandbox is already built; the JVM
  or Mono starts after the function is known (its heap and options are the function's).

Usage: bench/jvm.py [--bin target/release/updraft] [--warm 400] [--cold 15]
Writes bench/out/jvm.{md,json} and prints the table.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import io
import json
import os
import re
import secrets
import shutil
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
from botocore.config import Config

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/bench"
JVM_FLAGS = ["-XX:+TieredCompilation", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto",
             "-XX:-UsePerfData", "-XX:MaxHeapSize=108800k"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary: Path, work: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.key = "AKIAUPDRAFTJVMBENCH0"
        self.secret = secrets.token_hex(20)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
        env.update(UPDRAFT_ACCESS_KEY_ID=self.key, UPDRAFT_SECRET_ACCESS_KEY=self.secret,
                   UPDRAFT_LOG=os.environ.get("UPDRAFT_LOG", "warn"))
        self.log = open(work / "server.log", "wb")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(work / "data")],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for _ in range(300):
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: {(work / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit("server not healthy after 30 s")

    def client(self):
        return boto3.client(
            "lambda", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=self.key, aws_secret_access_key=self.secret,
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60,
                          max_pool_connections=16))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ------------------------------------------------------------------------------------------ packages

def zip_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(files.items()):
            zf.writestr(name, data)
    return buf.getvalue()


def run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {proc.stdout}{proc.stderr}")


def java_package(work: Path) -> bytes:
    core, out = work / "java-core", work / "java-hello"
    run(["javac", "-d", str(core), *map(str, sorted((REPO / "tests/functions/java/core").rglob("*.java")))])
    run(["javac", "-cp", str(core), "-d", str(out),
         *map(str, sorted((BENCH / "functions/java-hello").rglob("*.java")))])
    return zip_of({p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.class")})


def dotnet_package(work: Path) -> bytes:
    ref = REPO / "tests/functions/dotnet/ref"
    core, ser, out = work / "Amazon.Lambda.Core.dll", work / "Amazon.Lambda.Serialization.SystemTextJson.dll", work / "Hello.dll"
    run(["mcs", "-nologo", "-target:library", f"-out:{core}", str(ref / "Core.cs")])
    run(["mcs", "-nologo", "-target:library", f"-out:{ser}", f"-r:{core}", str(ref / "Serializer.cs")])
    run(["mcs", "-nologo", "-target:library", f"-out:{out}", f"-r:{core}", f"-r:{ser}",
         str(BENCH / "functions/dotnet-hello/Hello.cs")])
    return zip_of({"Hello.dll": out.read_bytes()})


def node_package() -> bytes:
    d = BENCH / "functions/node-hello"
    return zip_of({p.name: p.read_bytes() for p in d.iterdir() if p.is_file()})


# ------------------------------------------------------------------------------------------ measures

def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def invoke_ms(lam, name: str, tail: bool = False) -> tuple[float, dict]:
    t0 = time.perf_counter()
    r = lam.invoke(FunctionName=name, Payload=b"{}", **({"LogType": "Tail"} if tail else {}))
    body = r["Payload"].read()
    ms = (time.perf_counter() - t0) * 1000
    if r.get("FunctionError") or json.loads(body) != {"hello": "world"}:
        raise SystemExit(f"{name} answered {r.get('FunctionError')}: {body[:500]!r}")
    return ms, r


def warm(lam_factory, name: str, n: int) -> dict:
    lam = lam_factory()
    for _ in range(20):
        invoke_ms(lam, name)
    lat = [invoke_ms(lam, name)[0] for _ in range(n)]
    clients = [lam_factory() for _ in range(4)]
    per = n // 2
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda c: [invoke_ms(c, name) for _ in range(per)], clients))
    elapsed = time.perf_counter() - t0
    return {"p50_ms": statistics.median(lat), "p99_ms": pct(lat, 0.99),
            "throughput_rps": 4 * per / elapsed, "samples": len(lat)}


INIT = re.compile(r"Init Duration: ([0-9.]+) ms")


def cold(lam, name: str, n: int) -> dict:
    totals, inits = [], []
    for i in range(n):
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"GEN": f"{i}-{secrets.token_hex(4)}"}})
        lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
        time.sleep(0.3)  # let the previous environment go and a pre-warmed jail be rebuilt
        ms, r = invoke_ms(lam, name, tail=True)
        log = base64.b64decode(r.get("LogResult", "")).decode("utf-8", "replace")
        m = INIT.search(log)
        if m is None:
            continue  # not a cold start after all (should not happen)
        totals.append(ms)
        inits.append(float(m.group(1)))
    return {"p50_ms": statistics.median(totals), "p90_ms": pct(totals, 0.9),
            "init_p50_ms": statistics.median(inits), "samples": len(totals)}


def floor(cmd: list[str], n: int) -> dict:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": statistics.median(times), "samples": n, "command": " ".join(cmd)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(REPO / "target/release/updraft"))
    ap.add_argument("--warm", type=int, default=400)
    ap.add_argument("--cold", type=int, default=15)
    args = ap.parse_args()
    for tool in ("java", "javac", "mcs", "mono", "node"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (scripts/ci-deps.sh)")
    out_dir = BENCH / "out"
    out_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        packages = {
            "Node.js hello (nodejs20.x)": ("nodejs20.x", "index.handler", node_package()),
            "Java hello (java17)": ("java17", "example.Hello", java_package(work)),
            "C# hello (dotnet8 on Mono)": ("dotnet8", "Hello::Example.Hello::Handler", dotnet_package(work)),
        }
        mono_empty = work / "Empty.exe"
        (work / "Empty.cs").write_text("static class P { static void Main() {} }\n")
        run(["mcs", "-nologo", f"-out:{mono_empty}", str(work / "Empty.cs")])
        server = Server(Path(args.bin), work)
        try:
            lam = server.client()
            results = {}
            for label, (runtime, handler, code) in packages.items():
                name = "bench-" + runtime.replace(".", "-")
                lam.create_function(FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler,
                                    Code={"ZipFile": code}, MemorySize=128, Timeout=30)
                lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120})
                invoke_ms(lam, name)  # compiles the runtime client (once per data directory) and warms up
                results[label] = {"runtime": runtime, "warm": warm(server.client, name, args.warm),
                                  "cold": cold(lam, name, args.cold)}
                print(label, json.dumps(results[label]), flush=True)
        finally:
            server.stop()
        java = shutil.which("java")
        floors = {
            "JVM start (java -version, Updraft's flags)": floor([java, *JVM_FLAGS, "-version"], args.cold),
            "Mono start (empty program)": floor(["mono", str(mono_empty)], args.cold),
            "Node.js start (node -e 0)": floor(["node", "-e", "0"], args.cold),
        }
    node = results["Node.js hello (nodejs20.x)"]
    jv = results["Java hello (java17)"]
    lines = [
        "| function | warm p50 ms | warm p99 ms | throughput (4 clients) inv/s | cold p50 ms | cold p90 ms | Init Duration p50 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, r in results.items():
        w, c = r["warm"], r["cold"]
        lines.append(f"| {label} | {w['p50_ms']:.2f} | {w['p99_ms']:.2f} | {w['throughput_rps']:.0f} | "
                     f"{c['p50_ms']:.1f} | {c['p90_ms']:.1f} | {c['init_p50_ms']:.1f} |")
    lines += ["", "| floor | p50 ms |", "| --- | ---: |"]
    for label, f in floors.items():
        lines.append(f"| {label} | {f['p50_ms']:.1f} |")
    jvm_floor = floors["JVM start (java -version, Updraft's flags)"]["p50_ms"]
    lines += [
        "",
        f"Java warm p50 / Node.js warm p50: {jv['warm']['p50_ms'] / node['warm']['p50_ms']:.2f}x (target <= 1.5x)",
        f"Java cold p50: {jv['cold']['p50_ms']:.1f} ms (target <= 150 ms); JVM start floor {jvm_floor:.1f} ms; "
        f"cold / floor: {jv['cold']['p50_ms'] / jvm_floor:.2f}x",
        f"load average at the end: {open('/proc/loadavg').read().split()[:3]}",
    ]
    table = "\n".join(lines)
    print(table)
    (out_dir / "jvm.md").write_text(table + "\n")
    (out_dir / "jvm.json").write_text(json.dumps({"results": results, "floors": floors}, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
