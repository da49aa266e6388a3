#!/usr/bin/env python3
"""Keep-alive benchmark: fixed against adaptive keep-alive on one replayed, bursty trace.

A deterministic (seeded) trace of invocations of a few Python hello functions is generated in
compressed time and replayed, once against `updraft serve --keep-alive fixed` and once against
`--keep-alive adaptive`, each a fresh release server. The engine's counters (admin route
`GET /updraft/admin/v1/engine/stats`) give, per policy and per function:

- cold-start rate: invocations that started an environment of their own / all invocations;
- idle memory: the integral over the replay of the `MemorySize` of idle, non-provisioned
  environments (MiB·s), and its average over the replay (MiB).

Time scale: one histogram bin is 100 ms here where the paper ("Serverless in the Wild", Shahrad
et al., ATC 2020) uses one minute, so 1 s of replay stands for 10 minutes. The fixed baseline is
the paper's 10-minute keep-alive, scaled: `--idle-timeout 1`. The adaptive server falls back to
the same 1 s while a function's histogram is not trusted. Cold starts themselves are not
compressed (they take their real ~0.1 s, a whole bin), which is harder on pre-warming than the
paper's setting.

Functions of the trace (times in replay seconds; ×10 gives minutes):
- `timer-*`: periodic timers with uniform jitter (±5 %): every 0.1 s, 0.5 s, 1 s, 3 s and 12 s;
- `burst-*`: Poisson on/off sources (exponential on and off periods, Poisson arrivals while on);
- `sporadic`: Poisson arrivals with a mean gap of 20 s.

Usage: bench/keepalive.py [--bin target/release/updraft] [--duration 150] [--seed 7]
Writes bench/out/keepalive.{md,json} and prints the table. `bench/run.sh` runs it after bench.py.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/bench"
STATS_PATH = "/updraft/admin/v1/engine/stats"
MEMORY_MB = 128


# ------------------------------------------------------------------------------------------- trace

def periodic(rng: random.Random, period: float, jitter: float, duration: float) -> list[float]:
    t, out = rng.uniform(0, period), []
    while t < duration:
        out.append(t)
        t += period * (1 + rng.uniform(-jitter, jitter))
    return out


def on_off(rng: random.Random, on_mean: float, off_mean: float, rate: float, duration: float) -> list[float]:
    t, out = rng.expovariate(1 / off_mean), []
    while t < duration:
        end = t + rng.expovariate(1 / on_mean)
        while t < min(end, duration):
            out.append(t)
            t += rng.expovariate(rate)
        t = end + rng.expovariate(1 / off_mean)
    return out


def poisson(rng: random.Random, mean_gap: float, duration: float) -> list[float]:
    t, out = rng.expovariate(1 / mean_gap), []
    while t < duration:
        out.append(t)
        t += rng.expovariate(1 / mean_gap)
    return out


def make_trace(seed: int, duration: float) -> dict[str, list[float]]:
    """Arrival times (seconds from the start) per function; the same for a given seed."""
    rng = random.Random(seed)
    return {
        "timer-1m": periodic(rng, 0.1, 0.05, duration),
        "timer-5m": periodic(rng, 0.5, 0.05, duration),
        "timer-10m": periodic(rng, 1.0, 0.05, duration),
        "timer-30m": periodic(rng, 3.0, 0.05, duration),
        "timer-2h": periodic(rng, 12.0, 0.05, duration),
        "burst-a": on_off(rng, on_mean=2.0, off_mean=10.0, rate=4.0, duration=duration),
        "burst-b": on_off(rng, on_mean=1.0, off_mean=25.0, rate=8.0, duration=duration),
        "sporadic": poisson(rng, 20.0, duration),
    }


# ------------------------------------------------------------------------------------------ server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary: Path, args: list[str], work: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.key = "AKIAUPDRAFTKEEPALIVE"
        self.secret = secrets.token_hex(20)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
        env.update(UPDRAFT_ACCESS_KEY_ID=self.key, UPDRAFT_SECRET_ACCESS_KEY=self.secret,
                   UPDRAFT_LOG=os.environ.get("UPDRAFT_LOG", "warn"))
        self.log = open(work / "server.log", "wb")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(work / "data"), *args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
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
        self.stop()
        raise SystemExit("server not healthy after 30 s")

    def client(self):
        return boto3.client(
            "lambda", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=self.key, aws_secret_access_key=self.secret,
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60,
                          max_pool_connections=64),
        )

    def stats(self) -> dict:
        req = AWSRequest(method="GET", url=self.endpoint + STATS_PATH, data=b"")
        SigV4Auth(Credentials(self.key, self.secret), "lambda", REGION).add_auth(req)
        p = req.prepare()
        with urllib.request.urlopen(urllib.request.Request(p.url, headers=dict(p.headers.items())),
                                    timeout=10) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def hello_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(BENCH / "functions" / "python-hello" / "app.py", "app.py")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ replay

def replay(binary: Path, policy: str, trace: dict[str, list[float]], duration: float, bin_ms: int,
           fixed_s: int) -> dict:
    args = ["--idle-timeout", str(fixed_s), "--keep-alive", policy, "--keep-alive-bin-ms", str(bin_ms)]
    with tempfile.TemporaryDirectory(prefix="updraft-ka-") as tmp:
        srv = Server(binary, args, Path(tmp))
        try:
            return _replay(srv, policy, args, trace, duration)
        finally:
            srv.stop()


def _replay(srv: Server, policy: str, args: list[str], trace: dict[str, list[float]], duration: float) -> dict:
    lam = srv.client()
    code = hello_zip()
    for name in trace:
        lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                            MemorySize=MEMORY_MB, Code={"ZipFile": code})
    for name in trace:
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})

    events = sorted((t, name) for name, ts in trace.items() for t in ts)
    local = threading.local()
    latencies: dict[str, list[float]] = {name: [] for name in trace}
    errors: list[str] = []
    lock = threading.Lock()

    def invoke(name: str) -> None:
        if not hasattr(local, "client"):
            local.client = srv.client()
        t0 = time.perf_counter()
        try:
            r = local.client.invoke(FunctionName=name, Payload=b"{}")
            r["Payload"].read()
            bad = r.get("FunctionError")
        except Exception as e:  # noqa: BLE001 - every failure is counted and reported
            bad = repr(e)
        with lock:
            latencies[name].append((time.perf_counter() - t0) * 1000)
            if bad:
                errors.append(f"{name}: {bad}")

    before = srv.stats()
    late = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=48) as pool:
        start = time.monotonic()
        for t, name in events:
            delay = start + t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                late.append(-delay)
            pool.submit(invoke, name)
        # Idle memory is integrated over the same span, `duration`, for every policy.
        rest = start + duration - time.monotonic()
        if rest > 0:
            time.sleep(rest)
        after = srv.stats()
        elapsed = time.monotonic() - start
    return summarize(policy, args, before, after, elapsed, latencies, errors, late)


def summarize(policy, args, before, after, elapsed, latencies, errors, late) -> dict:
    def per_fn(stats):
        return {f["FunctionArn"].rsplit(":", 1)[1]: f for f in stats["Functions"]}

    b, a = per_fn(before), per_fn(after)
    functions = {}
    for name, f in sorted(a.items()):
        f0 = b.get(name, {})
        d = {k: f[k] - f0.get(k, 0) for k in ("ColdStarts", "WarmStarts", "PrewarmsStarted", "PrewarmsUsed",
                                               "IdleMiBSeconds")}
        n = d["ColdStarts"] + d["WarmStarts"]
        lat = sorted(latencies.get(name, []))
        functions[name] = {
            "invocations": n,
            "cold_starts": d["ColdStarts"],
            "cold_start_rate": d["ColdStarts"] / n if n else 0.0,
            "prewarms_started": d["PrewarmsStarted"],
            "prewarms_used": d["PrewarmsUsed"],
            "idle_mib_s": round(d["IdleMiBSeconds"], 1),
            "idle_samples": f["IdleSamples"],
            "window": f["Window"],
            "p50_ms": round(statistics.median(lat), 1) if lat else None,
        }
    tot = {k: after[k] - before[k] for k in ("ColdStarts", "WarmStarts", "PrewarmsStarted", "PrewarmsUsed",
                                             "IdleMiBSeconds")}
    n = tot["ColdStarts"] + tot["WarmStarts"]
    all_lat = sorted(x for v in latencies.values() for x in v)
    return {
        "policy": policy,
        "server_args": args,
        "seconds": round(elapsed, 1),
        "invocations": n,
        "client_invocations": len(all_lat),
        "errors": len(errors),
        "error_samples": errors[:5],
        "late_events": sum(1 for x in late if x > 0.05),
        "cold_starts": tot["ColdStarts"],
        "cold_start_rate": tot["ColdStarts"] / n if n else 0.0,
        "prewarms_started": tot["PrewarmsStarted"],
        "prewarms_used": tot["PrewarmsUsed"],
        "idle_mib_s": round(tot["IdleMiBSeconds"], 1),
        "avg_idle_mib": round(tot["IdleMiBSeconds"] / elapsed, 1),
        "p50_ms": round(all_lat[len(all_lat) // 2], 2) if all_lat else None,
        "p99_ms": round(all_lat[int(len(all_lat) * 0.99)], 2) if all_lat else None,
        "functions": functions,
    }


# ------------------------------------------------------------------------------------------ report

def markdown(results: list[dict], meta: dict) -> str:
    lines = [
        "# Keep-alive: fixed against adaptive",
        "",
        f"`bench/keepalive.py` (seed {meta['seed']}, {meta['duration_s']:.0f} s replay, "
        f"{meta['invocations']} invocations of {len(meta['functions'])} Python hello functions "
        f"of {MEMORY_MB} MB, bins of {meta['bin_ms']} ms, fixed keep-alive {meta['fixed_s']} s "
        f"= the paper's 10 minutes at 1 minute per bin), {meta['when']}, {meta['host']}.",
        "",
        "| policy | invocations | cold starts | cold-start rate | pre-warms (used) | idle MiB·s | avg idle MiB "
        "| p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['policy']} | {r['invocations']} | {r['cold_starts']} | {r['cold_start_rate']:.2%} "
            f"| {r['prewarms_started']} ({r['prewarms_used']}) | {r['idle_mib_s']:.0f} | {r['avg_idle_mib']:.0f} "
            f"| {r['p50_ms']} | {r['p99_ms']} | {r['errors']} |"
        )
    lines += ["", "Per function:", "",
              "| function | invocations | " + " | ".join(
                  f"{r['policy']} cold | {r['policy']} idle MiB·s" for r in results) + " | adaptive window |",
              "| --- | ---: | " + " | ".join("---: | ---:" for _ in results) + " | --- |"]
    for name in meta["functions"]:
        cells = []
        window = ""
        for r in results:
            f = r["functions"].get(name, {})
            cells.append(f"{f.get('cold_starts', 0)} ({f.get('cold_start_rate', 0):.0%}) | {f.get('idle_mib_s', 0):.0f}")
            if r["policy"] == "adaptive" and f.get("window"):
                w = f["window"]
                window = ("fixed (fallback)" if w["Fallback"]
                          else f"pre-warm {w['PrewarmMs']} ms, keep {w['KeepAliveMs']} ms")
        n = results[0]["functions"].get(name, {}).get("invocations", 0)
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + f" | {window} |")
    lines += ["", "The adaptive window is the one in force at the end of the replay. Idle memory is "
              "sampled by the engine every 25 ms (adaptive) or 100 ms (fixed)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", type=Path, default=Path(os.environ.get("UPDRAFT_BIN", REPO / "target/release/updraft")))
    ap.add_argument("--duration", type=float, default=150.0, help="replay length per policy, seconds")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--bin-ms", type=int, default=100)
    ap.add_argument("--fixed-s", type=int, default=1, help="fixed keep-alive, seconds (10 bins)")
    ap.add_argument("--policies", default="fixed,adaptive")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("BENCH_OUT", BENCH / "out")))
    a = ap.parse_args()

    trace = make_trace(a.seed, a.duration)
    meta = {
        "seed": a.seed, "duration_s": a.duration, "bin_ms": a.bin_ms, "fixed_s": a.fixed_s,
        "functions": list(trace), "invocations": sum(len(v) for v in trace.values()),
        "per_function": {k: len(v) for k, v in trace.items()},
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "host": f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start",
    }
    print(f"trace: {meta['per_function']}", file=sys.stderr)
    results = []
    for policy in a.policies.split(","):
        print(f"replaying with --keep-alive {policy} ...", file=sys.stderr)
        r = replay(a.bin, policy, trace, a.duration, a.bin_ms, a.fixed_s)
        print(f"  {policy}: cold-start rate {r['cold_start_rate']:.2%}, idle {r['idle_mib_s']} MiB·s "
              f"(avg {r['avg_idle_mib']} MiB), errors {r['errors']}", file=sys.stderr)
        results.append(r)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "keepalive.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    md = markdown(results, meta)
    (a.out / "keepalive.md").write_text(md)
    print(md)
    return 0 if all(r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
