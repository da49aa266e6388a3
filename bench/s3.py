#!/usr/bin/env python3
"""Object store throughput and notification latency.

Starts its own `updraft serve` (fresh data directory) and measures:
- 1 KiB PUT and GET operations per second: wrk at 8 connections over presigned URLs (one key
  per connection for PUTs, so each PUT is a whole durable write: temp file, fsync, rename,
  index commit), so the client's signing cost is not part of the number;
- 64 MiB PUT and GET throughput in MB/s: curl over presigned URLs, best of 3;
- the latency from a PUT's answer to the notified function's start, p50/p99, over N PUTs;
- the floor: a plain file copy of the same 64 MiB on the same disk (read + write + fsync)
  and a read of it back, in the same run.

    .venv/bin/python bench/s3.py [--bin target/release/updraft] [--duration 10] [--events 100]

Writes bench/out/s3.md and bench/out/s3.json. A measurement, not a test; noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_wrk import parse_wrk  # noqa: E402
from sqs import start  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024

WRK_PUT = """
-- Each request a new 1 KiB body (so each is a new stored body, not a deduplicated one),
-- cycling over one presigned URL per connection.
local paths = {}
local counter = 0
local pad = string.rep("x", 1014)
function init(args)
  paths = args
end
request = function()
  counter = counter + 1
  local p = paths[(counter % #paths) + 1]
  return wrk.format("PUT", p, nil, string.format("%010d", counter) .. pad)
end
"""


def s3_client(endpoint: str, ak: str, sk: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ak,
                        aws_secret_access_key=sk,
                        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                      retries={"max_attempts": 1}))


def wrk(binary: str, url: str, duration: int, conns: int, script: Path | None, args: list[str]) -> dict:
    cmd = [binary, "-t", "2", "-c", str(conns), "-d", f"{duration}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    cmd += [url]
    if args:
        cmd += ["--", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    return parse_wrk(out)


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - t


def floor_copy(src: Path, dst: Path) -> tuple[float, float]:
    """Seconds to copy a file (read, write, fsync) and to read it back whole."""
    t = time.perf_counter()
    with open(src, "rb") as i, open(dst, "wb") as o:
        shutil.copyfileobj(i, o, 1 << 20)
        o.flush()
        os.fsync(o.fileno())
    w = time.perf_counter() - t
    t = time.perf_counter()
    with open(dst, "rb") as i:
        while i.read(1 << 20):
            pass
    r = time.perf_counter() - t
    return w, r


RECORDER = (
    "import json, time\n"
    "def handler(event, context):\n"
    "    t = time.time()\n"
    "    print('S3START %.6f %s' % (t, event['Records'][0]['s3']['object']['key']))\n"
)


def notification_latency(endpoint: str, ak: str, sk: str, n: int) -> dict:
    import io
    import zipfile

    lam = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ak,
                       aws_secret_access_key=sk)
    s3 = s3_client(endpoint, ak, sk)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", RECORDER)
    name = "s3bench-" + uuid.uuid4().hex[:8]
    arn = lam.create_function(FunctionName=name, Runtime="python3.11", Role="arn:aws:iam::123456789012:role/r",
                              Handler="app.handler", Code={"ZipFile": buf.getvalue()})["FunctionArn"]
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    bucket = "notify-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    lam.add_permission(FunctionName=name, StatementId="s3", Action="lambda:InvokeFunction",
                       Principal="s3.amazonaws.com", SourceArn=f"arn:aws:s3:::{bucket}")
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "LambdaFunctionConfigurations": [{"LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    answered = {}
    # Warm the function first (its cold start is not a notification cost).
    s3.put_object(Bucket=bucket, Key="warm", Body=b"w")
    time.sleep(2)
    for i in range(n):
        key = f"k{i}"
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        answered[key] = time.time()
        time.sleep(0.05)
    started = {}
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    import urllib.request
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(started) < n:
        req = AWSRequest(method="GET", url=f"{endpoint}/updraft/v1/functions/{name}/logs?limit=10000")
        SigV4Auth(Credentials(ak, sk), "lambda", "us-east-1").add_auth(req)
        p = req.prepare()
        with urllib.request.urlopen(urllib.request.Request(p.url, headers=dict(p.headers.items()))) as r:
            events = json.load(r)["events"]
        for e in events:
            parts = e["message"].split()
            if parts and parts[0] == "S3START" and parts[2] in answered:
                started[parts[2]] = float(parts[1])
        time.sleep(0.5)
    lat = sorted((started[k] - answered[k]) * 1000 for k in started)
    if not lat:
        return {"count": 0}
    return {
        "count": len(lat),
        "p50_ms": round(statistics.median(lat), 2),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "updraft"))
    ap.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--events", type=int, default=100)
    args = ap.parse_args()
    ak, sk = "AKIAS3BENCH000000001", uuid.uuid4().hex
    tmp = Path(tempfile.mkdtemp(prefix="s3bench-"))
    proc, endpoint = start(Path(args.bin), tmp, ak, sk)
    results: dict = {"binary": args.bin, "cpus": os.cpu_count()}
    try:
        s3 = s3_client(endpoint, ak, sk)
        bucket = "bench-" + uuid.uuid4().hex[:8]
        s3.create_bucket(Bucket=bucket)
        # 1 KiB PUTs: one presigned URL per connection.
        urls = [s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": f"small/{i}"},
                                          ExpiresIn=3600) for i in range(args.conns)]
        paths = [u[len(endpoint):] for u in urls]
        script = tmp / "put.lua"
        script.write_text(WRK_PUT)
        put = wrk(args.wrk, endpoint, args.duration, args.conns, script, paths)
        s3.put_object(Bucket=bucket, Key="small/get", Body=b"y" * 1024)
        get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "small/get"},
                                            ExpiresIn=3600)
        get = wrk(args.wrk, get_url, args.duration, args.conns, None, [])
        results["small"] = {
            "put_ops": put["rps"], "put_p99_ms": put["p99_ms"], "put_non_2xx": put["non_2xx"],
            "get_ops": get["rps"], "get_p99_ms": get["p99_ms"], "get_non_2xx": get["non_2xx"],
        }
        # 64 MiB objects with curl.
        big = tmp / "big.bin"
        big.write_bytes(os.urandom(64 * MIB))
        put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "big"}, ExpiresIn=3600)
        get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "big"}, ExpiresIn=3600)
        put_s = min(timed(["curl", "-sf", "-o", "/dev/null", "-T", str(big), put_url]) for _ in range(3))
        get_s = min(timed(["curl", "-sf", "-o", "/dev/null", get_url]) for _ in range(3))
        fw, fr = zip(*(floor_copy(big, tmp / "copy.bin") for _ in range(3)))
        mb = 64 * MIB / 1e6
        results["large"] = {
            "put_mb_s": round(mb / put_s, 1), "get_mb_s": round(mb / get_s, 1),
            "floor_copy_mb_s": round(mb / min(fw), 1), "floor_read_mb_s": round(mb / min(fr), 1),
        }
        results["notification"] = notification_latency(endpoint, ak, sk, args.events)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "s3.json").write_text(json.dumps(results, indent=2))
    s, l, n = results["small"], results["large"], results["notification"]
    md = [
        "| measure | Updraft | floor (file copy) | ratio |",
        "| --- | --- | --- | --- |",
        f"| 1 KiB PUT ops/s ({args.conns} conns) | {s['put_ops']:.0f} (p99 {s['put_p99_ms']} ms) | | |",
        f"| 1 KiB GET ops/s ({args.conns} conns) | {s['get_ops']:.0f} (p99 {s['get_p99_ms']} ms) | | |",
        f"| 64 MiB PUT MB/s | {l['put_mb_s']} | {l['floor_copy_mb_s']} (copy + fsync) | {l['put_mb_s'] / l['floor_copy_mb_s']:.2f} |",
        f"| 64 MiB GET MB/s | {l['get_mb_s']} | {l['floor_read_mb_s']} (read) | {l['get_mb_s'] / l['floor_read_mb_s']:.2f} |",
        f"| PUT answer -> function start p50 / p99 ({n.get('count')} events) | {n.get('p50_ms')} / {n.get('p99_ms')} ms | | |",
    ]
    (out / "s3.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
