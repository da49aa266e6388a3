#!/usr/bin/env python3
"""Log ingestion and search: how many lines per second a function can write before its logs lag, and how long
FilterLogEvents takes over 1 GB of logs.

Starts its own `updraft serve` (a fresh data directory) and measures:

1. Ingestion. A Python function writes N lines (`print` in a loop, and the same lines written in blocks of 10,000),
   then returns. The clock runs from the Invoke call until the last line is readable through FilterLogEvents;
   `lines/s` is N over that time, `lag` is how long after the function's answer the last line became readable.
   The function's own rate (lines over its time in the handler) is the ceiling the node could show.
2. Search. About 1 GB of JSON log lines is written by a function printing in a loop (blocks of 20,000 lines); then
   FilterLogEvents is timed over the whole group with a rare term, a JSON pattern and an
   empty pattern limited to 100 events, following nextToken to the end.

    .venv/bin/python bench/logs.py [--bin target/release/updraft] [--lines 1000000] [--gb 1.0]

Prints a table and writes bench/out/logs.md and bench/out/logs.json. A measurement, not a test; on a shared machine
the numbers are noisy.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[1]

WRITER = """
import sys, time
def handler(event, context):
    n, tag, mode = event["n"], event["tag"], event["mode"]
    t0 = time.perf_counter()
    if mode == "print":
        for i in range(n):
            print("line", i, tag)
    else:
        block = 10_000
        for start in range(0, n, block):
            sys.stdout.write("".join("line %d %s\\n" % (i, tag) for i in range(start, min(n, start + block))))
    print("LAST", tag, flush=True)
    return {"seconds": time.perf_counter() - t0}
"""

# Writes `n` JSON lines like an application's structured log; about one in 100,000 is an ERROR.
FILLER = """
import json, random, sys
def handler(event, context):
    rnd = random.Random(event["seed"])
    pad = "x" * 120
    n, block = event["n"], 20_000
    for start in range(0, n, block):
        out = []
        for seq in range(start, min(n, start + block)):
            level = "ERROR" if rnd.random() < 0.00001 else "INFO"
            out.append(json.dumps({"level": level, "latency": rnd.randrange(1000), "seq": seq, "pad": pad}))
        sys.stdout.write("\\n".join(out) + "\\n")
    sys.stdout.flush()
    return n
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary: Path, data: Path, ak: str, sk: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
    env.update(UPDRAFT_ACCESS_KEY_ID=ak, UPDRAFT_SECRET_ACCESS_KEY=sk, RUST_LOG="warn")
    log = open(data / "server.log", "wb")
    proc = subprocess.Popen([str(binary), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data / "d"),
                             "--logs-max-mb", "4096"],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(endpoint + "/health", timeout=1):
                return proc, endpoint
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("server did not become healthy")


def client(service: str, endpoint: str, ak: str, sk: str):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ak,
                        aws_secret_access_key=sk,
                        config=Config(retries={"max_attempts": 1}, read_timeout=900, max_pool_connections=4))


def zip_of(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
    return buf.getvalue()


def ingestion(lam, logs, n: int, mode: str) -> dict:
    tag = f"{mode}-{random.randrange(1 << 40):x}"
    group = "/aws/lambda/writer"
    t0 = time.perf_counter()
    resp = lam.invoke(FunctionName="writer", Payload=json.dumps({"n": n, "tag": tag, "mode": mode}))
    answered = time.perf_counter()
    body = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, body
    # Readable: the last line is among the newest events of the newest stream (END and REPORT follow it); two
    # cheap reads per poll.
    while True:
        streams = logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime", descending=True,
                                            limit=1)["logStreams"]
        if streams:
            ev = logs.get_log_events(logGroupName=group, logStreamName=streams[0]["logStreamName"], limit=5)["events"]
            if any(e["message"] == f"LAST {tag}" for e in ev):
                break
        time.sleep(0.005)
    visible = time.perf_counter()
    # Every line arrived (none dropped on the way).
    count = 0
    token = None
    while True:
        kw = {"nextToken": token} if token else {}
        page = logs.filter_log_events(logGroupName=group, filterPattern=f"{tag} -LAST", limit=10_000, **kw)
        count += len(page["events"])
        token = page.get("nextToken")
        if not token:
            break
    return {
        "mode": mode,
        "lines": n,
        "lines_found": count,
        "function_s": body["seconds"],
        "function_lines_per_s": n / body["seconds"],
        "invoke_to_visible_s": visible - t0,
        "lines_per_s": n / (visible - t0),
        "lag_after_answer_ms": (visible - answered) * 1000,
    }


def fill(lam, logs, gb: float) -> dict:
    """About `gb` GB of JSON lines written by a function (its own stdout, the way applications log)."""
    group = "/aws/lambda/filler"
    target = int(gb * (1 << 30))
    per_invoke = max(10_000, min(1_000_000, target // 190))  # lines are about 190 bytes

    def stored() -> int:
        total, token = 0, None
        while True:
            kw = {"nextToken": token} if token else {}
            page = logs.describe_log_streams(logGroupName=group, **kw)
            total += sum(s["storedBytes"] for s in page["logStreams"])
            token = page.get("nextToken")
            if not token:
                return total

    t0 = time.perf_counter()
    seed = 0
    while True:
        try:
            if stored() >= target:
                break
        except logs.exceptions.ResourceNotFoundException:
            pass
        seed += 1
        resp = lam.invoke(FunctionName="filler", Payload=json.dumps({"n": per_invoke, "seed": seed}))
        assert "FunctionError" not in resp, resp["Payload"].read()
    secs = time.perf_counter() - t0
    total = stored()
    return {"group": group, "bytes": total, "events": seed * per_invoke, "seconds": secs,
            "mb_per_s": total / secs / 1e6, "events_per_s": seed * per_invoke / secs}


def search(logs, group: str, pattern: str, limit: int | None = None) -> dict:
    t0 = time.perf_counter()
    found, calls, token = 0, 0, None
    while True:
        kw = {"nextToken": token} if token else {}
        if limit:
            kw["limit"] = limit
        page = logs.filter_log_events(logGroupName=group, filterPattern=pattern, **kw)
        calls += 1
        found += len(page["events"])
        token = page.get("nextToken")
        if not token or limit:
            break
    return {"pattern": pattern or "(empty)", "limit": limit, "matches": found, "calls": calls,
            "seconds": time.perf_counter() - t0}


def wait_active(lam, name: str) -> None:
    for _ in range(300):
        if lam.get_function(FunctionName=name)["Configuration"]["State"] == "Active":
            return
        time.sleep(0.1)


KEYS = ("AKIAUPDRAFTBENCH0001", "benchsecretbenchsecretbenchsecret0000000")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "updraft"))
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--gb", type=float, default=1.0)
    args = ap.parse_args()
    binary = Path(args.bin)
    results: dict = {"binary": str(binary), "lines": args.lines, "gb": args.gb}
    with tempfile.TemporaryDirectory(prefix="updraft-bench-logs-") as tmp:
        proc, endpoint = start(binary, Path(tmp), *KEYS)
        try:
            lam = client("lambda", endpoint, *KEYS)
            logs = client("logs", endpoint, *KEYS)
            lam.create_function(FunctionName="writer", Runtime="python3.12", Handler="app.handler", Timeout=900,
                                MemorySize=1024, Role="arn:aws:iam::123456789012:role/bench",
                                Code={"ZipFile": zip_of({"app.py": WRITER})})
            wait_active(lam, "writer")
            ingestion(lam, logs, 1000, "print")  # warm the environment
            results["ingestion"] = [ingestion(lam, logs, args.lines, mode) for mode in ("print", "block", "block")]
            lam.create_function(FunctionName="filler", Runtime="python3.12", Handler="app.handler", Timeout=900,
                                MemorySize=1024, Role="arn:aws:iam::123456789012:role/bench",
                                Code={"ZipFile": zip_of({"app.py": FILLER})})
            wait_active(lam, "filler")
            results["fill"] = fill(lam, logs, args.gb)
            group = results["fill"]["group"]
            results["search"] = [
                search(logs, group, '"ERROR"'),
                search(logs, group, '{ $.level = "ERROR" }'),
                search(logs, group, '{ $.latency > 998 && $.level = "INFO" }', limit=100),
                search(logs, group, "", limit=100),
            ]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# Logs: ingestion and search ({binary.name}, {os.cpu_count()} cores)", "",
             "| writer | lines | found | function lines/s | lines/s until readable | lag after answer |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in results["ingestion"]:
        lines.append(f"| {r['mode']} | {r['lines']:,} | {r['lines_found']:,} | {r['function_lines_per_s']:,.0f} | "
                     f"{r['lines_per_s']:,.0f} | {r['lag_after_answer_ms']:.0f} ms |")
    f = results["fill"]
    lines += ["", f"Filled {f['bytes'] / 1e9:.2f} GB ({f['events']:,} events) from a function's stdout in "
              f"{f['seconds']:.1f} s ({f['mb_per_s']:.1f} MB/s, {f['events_per_s']:,.0f} events/s).", "",
              "| FilterLogEvents pattern | limit | matches | calls | seconds |", "| --- | --- | --- | --- | --- |"]
    for s in results["search"]:
        lines.append(f"| `{s['pattern']}` | {s['limit'] or '-'} | {s['matches']} | {s['calls']} | {s['seconds']:.2f} |")
    text = "\n".join(lines) + "\n"
    (out / "logs.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
