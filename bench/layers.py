#!/usr/bin/env python3
"""What layers cost: the one-time merge of a function's layers into its `/opt` tree, and cold starts of a
Python hello with no layer, one small layer, five layers and one large layer (a library-sized tree), beside the
same hello without layers on a server that does not pre-warm (the floor: a sandbox built on demand).

    .venv/bin/python bench/layers.py [--bin target/release/updraft] [--samples 15]

Writes bench/out/layers.md and bench/out/layers.json. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
ROLE = "arn:aws:iam::123456789012:role/bench"
HELLO = "def handler(e, c):\n    return {'hello': 'world'}\n"
KEY, SECRET = "AKIAUPDRAFTBENCH0001", "bench-secret-bench-secret-bench-secret00"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def zip_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in files.items():
            zf.writestr(name, body)
    return buf.getvalue()


def library_tree(files: int, total_bytes: int) -> dict[str, bytes]:
    """A site-packages-like tree: `files` modules in nested packages, `total_bytes` in all."""
    size = max(1, total_bytes // files)
    out = {}
    for i in range(files):
        pkg = f"python/lib/python3.12/site-packages/biglib/sub{i % 40}/mod{i}.py"
        out[pkg] = (f"# module {i}\n".encode() + os.urandom(size // 2).hex().encode())[:size]
    return out


class Server:
    def __init__(self, binary: Path, prewarm: int):
        self.dir = Path(tempfile.mkdtemp(prefix="updraft-layers-bench-"))
        self.port = free_port()
        env = dict(os.environ, UPDRAFT_ACCESS_KEY_ID=KEY, UPDRAFT_SECRET_ACCESS_KEY=SECRET)
        self.log = open(self.dir / "server.log", "w")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.dir / "data"),
             "--prewarm", str(prewarm), "--keep-alive", "fixed"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        self.lam = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{self.port}", region_name="us-east-1",
                                aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                                config=Config(retries={"max_attempts": 1}, read_timeout=120))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_ready(lam, name):
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})


def deploy(lam, name, layers):
    t0 = time.perf_counter()
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": zip_of({"app.py": HELLO.encode()})}, Layers=layers)
    ms = (time.perf_counter() - t0) * 1000
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
    return ms


def cold_starts(lam, name, samples, pause):
    out = []
    for i in range(samples):
        lam.update_function_configuration(FunctionName=name,
                                          Environment={"Variables": {"COLD": f"{i}-{uuid.uuid4().hex[:6]}"}})
        wait_ready(lam, name)
        time.sleep(pause)
        t0 = time.perf_counter()
        r = lam.invoke(FunctionName=name, Payload=b"{}")
        body = r["Payload"].read()
        out.append((time.perf_counter() - t0) * 1000)
        assert r["StatusCode"] == 200 and "FunctionError" not in r, body
    warm = []
    for _ in range(20):
        t0 = time.perf_counter()
        lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read()
        warm.append((time.perf_counter() - t0) * 1000)
    return {"cold_p50_ms": round(statistics.median(out), 2), "cold_min_ms": round(min(out), 2),
            "cold_max_ms": round(max(out), 2), "warm_p50_ms": round(statistics.median(warm), 2),
            "samples": [round(x, 2) for x in out]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "updraft"))
    ap.add_argument("--samples", type=int, default=15)
    ap.add_argument("--pause", type=float, default=1.0)
    args = ap.parse_args()
    binary = Path(args.bin)
    results = {"binary": str(binary), "samples": args.samples, "cases": {}}

    srv = Server(binary, prewarm=1)
    try:
        lam = srv.lam
        small = [lam.publish_layer_version(LayerName=f"small{i}", Content={"ZipFile": zip_of(
            {f"python/small{i}.py": b"X = 1\n"})})["LayerVersionArn"] for i in range(5)]
        big_files = library_tree(2000, 40 << 20)
        big_zip = zip_of(big_files)
        t0 = time.perf_counter()
        big = lam.publish_layer_version(LayerName="big", Content={"ZipFile": big_zip})["LayerVersionArn"]
        publish_big_ms = (time.perf_counter() - t0) * 1000
        cases = [("no layer", []), ("1 small layer", small[:1]), ("5 small layers", small),
                 ("1 large layer (2,000 files, 40 MB)", [big])]
        for label, layers in cases:
            name = f"hello-{len(results['cases'])}"
            create_ms = deploy(lam, name, layers)
            res = cold_starts(lam, name, args.samples, args.pause)
            res["create_function_ms"] = round(create_ms, 2)
            results["cases"][label] = res
            print(f"{label}: CreateFunction {create_ms:.1f} ms, cold p50 {res['cold_p50_ms']} ms, "
                  f"warm p50 {res['warm_p50_ms']} ms", flush=True)
        # The merge alone: a second function with the large layer finds its tree built.
        again_ms = deploy(lam, "hello-again", [big])
        results["publish_large_layer_ms"] = round(publish_big_ms, 2)
        results["create_function_large_layer_tree_cached_ms"] = round(again_ms, 2)
    finally:
        srv.stop()

    floor = Server(binary, prewarm=0)
    try:
        deploy(floor.lam, "hello-floor", [])
        res = cold_starts(floor.lam, "hello-floor", args.samples, args.pause)
        results["cases"]["no layer, pre-warming off"] = res
        print(f"no layer, pre-warming off: cold p50 {res['cold_p50_ms']} ms", flush=True)
    finally:
        floor.stop()

    results["loadavg"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "layers.json").write_text(json.dumps(results, indent=2))
    base = results["cases"]["no layer"]["cold_p50_ms"]
    lines = ["# Layers: merge cost and cold starts", "",
             f"Python hello (python3.12), {args.samples} cold starts each ({args.pause} s apart, boto3 client time), "
             f"binary `{binary}`, load average {results['loadavg']} at the end of the run.", "",
             "| case | CreateFunction (ms) | cold p50 (ms) | cold min..max (ms) | ratio to no layer | warm p50 (ms) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for label, r in results["cases"].items():
        lines.append(f"| {label} | {r.get('create_function_ms', '')} | {r['cold_p50_ms']} | "
                     f"{r['cold_min_ms']}..{r['cold_max_ms']} | {r['cold_p50_ms'] / base:.2f} | {r['warm_p50_ms']} |")
    lines += ["", f"PublishLayerVersion of the large layer: {results['publish_large_layer_ms']} ms; "
              f"CreateFunction with it once its `/opt` tree exists: "
              f"{results['create_function_large_layer_tree_cached_ms']} ms."]
    (OUT / "layers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
