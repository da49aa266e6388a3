#!/usr/bin/env python3
"""Peers of Updraft's benchmark: the same hello served by other systems, measured in the same run and machine.

`bench/run.sh` calls this script twice, after bench.py has measured Updraft:
  peers.py run     installs each peer from its package registry (npm, PyPI) or builds it (cargo) into bench/.build,
                   starts it on 127.0.0.1, checks that it answers {"hello":"world"}, runs wrk exactly like
                   bench.py does for Updraft (an unmeasured warm-up at 10 connections, then 1 and 10 connections),
                   samples the peak RSS of all its processes with ps, stops it, and writes peers.json;
  peers.py report  merges peers.json into results.json, appends the peers and ratio tables to results.md and draws
                   latency.png (matplotlib, when it can be imported).

A peer that cannot be installed or started is recorded as "not measured: <reason>" and the others go on. Every
process a peer starts runs in its own session and is stopped (SIGTERM, then SIGKILL) before the next peer starts,
and on any exit of this script. Every wait is bounded. See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench_wrk import parse_wrk
from memory import PeakRss

BENCH = Path(__file__).resolve().parent
PEERS = BENCH / "peers"
FUNCTIONS = BENCH / "functions"
EXPECTED = {"hello": "world"}
WRK_GRACE_S = 30
READY_S = 90
INSTALL_S = 900
NODE_FLOOR = (
    "require('http').createServer((q,s)=>{q.resume();q.on('end',()=>{"
    "s.writeHead(200,{'content-type':'application/json'});s.end('{\"hello\":\"world\"}')})})"
    ".listen(+process.env.BENCH_PORT,'127.0.0.1')"
)

STARTED: list[subprocess.Popen] = []


def log(msg: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class NotMeasured(Exception):
    """A peer that could not be installed, built or started: the reason goes into the table."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_step(cmd: list[str], cwd: Path, what: str, log_file: Path, timeout: int = INSTALL_S, env=None) -> None:
    with open(log_file, "ab") as f:
        f.write(f"$ {' '.join(cmd)}\n".encode())
        try:
            proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, env=env)
        except FileNotFoundError as e:
            raise NotMeasured(f"{what}: {e.filename} not found") from e
        except subprocess.TimeoutExpired as e:
            raise NotMeasured(f"{what}: no result after {timeout} s") from e
    if proc.returncode != 0:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
        raise NotMeasured(f"{what} exited {proc.returncode}: {' / '.join(tail)}")


def start(cmd: list[str], cwd: Path, log_file: Path, env: dict | None = None) -> subprocess.Popen:
    """Starts a peer process in a session of its own, so that it and everything it spawns can be stopped."""
    f = open(log_file, "ab")
    try:
        p = subprocess.Popen(
            cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(os.environ, **(env or {})), start_new_session=True,
        )
    except OSError as e:
        raise NotMeasured(f"cannot start {cmd[0]}: {e}") from e
    finally:
        f.close()
    STARTED.append(p)
    return p


def stop(p: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                break
            p.poll()
            time.sleep(0.05)
        else:
            continue
        break
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    if p in STARTED:
        STARTED.remove(p)


def stop_all() -> None:
    for p in list(STARTED):
        stop(p)


def post(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=b"{}", method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read()


def wait_ready(procs: list[subprocess.Popen], port: int, path: str, log_file: Path) -> float:
    """Seconds until the peer answers {"hello":"world"} on `path`; raises NotMeasured if it dies or never does."""
    t0 = time.monotonic()
    last = ""
    while time.monotonic() - t0 < READY_S:
        for p in procs:
            if p.poll() is not None:
                tail = " / ".join(log_file.read_text(errors="replace").strip().splitlines()[-3:])
                raise NotMeasured(f"exited {p.returncode} while starting: {tail}")
        try:
            status, body = post(port, path)
            try:
                got = json.loads(body)
            except ValueError:
                got = body
            if status == 200 and got == EXPECTED:
                return time.monotonic() - t0
            last = f"HTTP {status} {body[:200]!r}"
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    raise NotMeasured(f"no {{\"hello\":\"world\"}} on {path} within {READY_S} s (last: {last})")


def wait_listening(port: int, seconds: float) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise NotMeasured(f"nothing listens on 127.0.0.1:{port} after {seconds:g} s")


def npm_version(root: Path, package: str) -> str:
    try:
        return json.loads((root / "node_modules" / package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "?"


# ---- the peers -----------------------------------------------------------------------------------------------


class Ctx:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.build = args.build_dir
        self.peers_build = args.build_dir / "peers"
        self.logs = args.out / "raw"
        self.peers_build.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)

    def log_file(self, key: str) -> Path:
        return self.logs / f"peer-{key}.log"

    def npm_install(self, key: str) -> Path:
        """`npm ci` of bench/peers/<key>/package-lock.json into bench/.build/peers/<key> (skipped when current)."""
        src, dst = PEERS / key, self.peers_build / key
        dst.mkdir(parents=True, exist_ok=True)
        lock = (src / "package-lock.json").read_bytes()
        stamp = dst / ".installed-lock-sha256"
        digest = hashlib.sha256(lock + (src / "package.json").read_bytes()).hexdigest()
        if stamp.exists() and stamp.read_text() == digest and (dst / "node_modules").is_dir():
            return dst
        shutil.copy2(src / "package.json", dst / "package.json")
        shutil.copy2(src / "package-lock.json", dst / "package-lock.json")
        log(f"  npm ci ({key})")
        run_step(
            [self.args.npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], dst, "npm ci", self.log_file(key)
        )
        stamp.write_text(digest)
        return dst


def hyper_floor_binary(ctx: Ctx) -> Path:
    target = ctx.build / "hyper-floor"
    binary = target / "release" / "hyper-floor"
    if not (ctx.args.skip_build and binary.exists()):
        log("  cargo build --release --locked (bench/peers/hyper-floor)")
        run_step(
            ["cargo", "build", "--release", "--quiet", "--locked", "--manifest-path",
             str(PEERS / "hyper-floor" / "Cargo.toml"), "--target-dir", str(target)],
            BENCH, "cargo build", ctx.log_file("hyper-floor"),
        )
    if not binary.exists():
        raise NotMeasured(f"no binary at {binary}")
    return binary


def hyper_version() -> str:
    lock = (PEERS / "hyper-floor" / "Cargo.lock").read_text()
    m = re.search(r'name = "hyper"\nversion = "([^"]+)"', lock)
    return m.group(1) if m else "?"


def peer_hyper(ctx: Ctx) -> dict:
    binary = hyper_floor_binary(ctx)
    port = free_port()
    return {
        "version": f"hyper {hyper_version()} + tokio, HTTP/1.1",
        "port": port,
        "procs": lambda: [start([str(binary), str(port)], BENCH, ctx.log_file("hyper-floor"))],
    }


def peer_relay(ctx: Ctx) -> dict:
    """The same hello one process hop away: a hyper relay posting each body to a hyper-floor behind it."""
    binary = hyper_floor_binary(ctx)
    port, upstream = free_port(), free_port()

    def procs() -> list[subprocess.Popen]:
        worker = start([str(binary), str(upstream)], BENCH, ctx.log_file("relay-floor"))
        wait_listening(upstream, READY_S)
        return [worker, start([str(binary), str(port), "--relay", str(upstream)], BENCH, ctx.log_file("relay-floor"))]

    return {
        "version": f"hyper {hyper_version()} + tokio, HTTP/1.1, a kept-alive connection per client connection",
        "port": port,
        "procs": procs,
    }


def peer_node_floor(ctx: Ctx) -> dict:
    port = free_port()
    return {
        "version": f"Node.js {subprocess.run([ctx.args.node, '--version'], capture_output=True, text=True).stdout.strip()} http",
        "port": port,
        "procs": lambda: [start([ctx.args.node, "-e", NODE_FLOOR], BENCH, ctx.log_file("node-floor"),
                                {"BENCH_PORT": str(port)})],
    }


def peer_serverless_offline(ctx: Ctx) -> dict:
    d = ctx.npm_install("serverless-offline")
    shutil.copy2(PEERS / "serverless-offline" / "serverless.yml", d / "serverless.yml")
    shutil.copy2(FUNCTIONS / "node-hello" / "index.js", d / "index.js")
    sls = d / "node_modules" / ".bin" / "serverless"
    if not sls.exists():
        raise NotMeasured("node_modules/.bin/serverless missing after npm ci")
    http_port, lambda_port = free_port(), free_port()
    env = {
        "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off",
        "SLS_DEPRECATION_DISABLE": "*",
        "BENCH_SLS_HTTP_PORT": str(http_port),
        "BENCH_SLS_LAMBDA_PORT": str(lambda_port),
    }
    return {
        "version": f"serverless {npm_version(d, 'serverless')}, serverless-offline {npm_version(d, 'serverless-offline')}",
        "port": http_port,
        "procs": lambda: [start([str(sls), "offline", "start"], d, ctx.log_file("serverless-offline"), env)],
        "endpoints": [
            ("serverless-offline-http", "serverless-offline, httpApi route", http_port, "/hello"),
            ("serverless-offline-invoke", "serverless-offline, Invoke API", lambda_port,
             "/2015-03-31/functions/bench-dev-hello/invocations"),
        ],
    }


def peer_lambda_local(ctx: Ctx) -> dict:
    d = ctx.npm_install("lambda-local")
    shutil.copy2(FUNCTIONS / "node-hello" / "index.js", d / "index.js")
    cli = d / "node_modules" / "lambda-local" / "build" / "cli.js"
    if not cli.exists():
        raise NotMeasured("lambda-local's build/cli.js missing after npm ci")
    port = free_port()
    cmd = [ctx.args.node, "-r", str(PEERS / "lambda-local" / "loopback.js"), str(cli),
           "-l", "index.js", "-h", "handler", "-W", str(port), "-v", "0"]
    return {
        "version": f"lambda-local {npm_version(d, 'lambda-local')}",
        "port": port,
        "procs": lambda: [start(cmd, d, ctx.log_file("lambda-local"))],
    }


def peer_workerd(ctx: Ctx) -> dict:
    d = ctx.npm_install("workerd")
    for f in ("config.capnp", "worker.js"):
        shutil.copy2(PEERS / "workerd" / f, d / f)
    binary = d / "node_modules" / "@cloudflare" / "workerd-linux-64" / "bin" / "workerd"
    if not binary.exists():
        raise NotMeasured(f"no workerd binary at {binary.relative_to(ctx.build)}")
    port = free_port()
    cmd = [str(binary), "serve", "config.capnp", "--socket-addr", f"http=127.0.0.1:{port}"]
    return {
        "version": f"workerd {npm_version(d, 'workerd')}",
        "port": port,
        "procs": lambda: [start(cmd, d, ctx.log_file("workerd"))],
    }


def peer_cargo_lambda(ctx: Ctx) -> dict:
    venv_bin = Path(sys.prefix) / "bin"
    cl = venv_bin / "cargo-lambda"
    if not cl.exists():
        log(f"  pip install {ctx.args.cargo_lambda_req}")
        run_step([sys.executable, "-m", "pip", "install", "--quiet", ctx.args.cargo_lambda_req], BENCH,
                 "pip install", ctx.log_file("cargo-lambda"))
    if not cl.exists():
        raise NotMeasured(f"no cargo-lambda in {venv_bin}")
    bootstrap = ctx.args.rust_bootstrap
    if bootstrap is None or not bootstrap.exists():
        raise NotMeasured(f"no Rust bootstrap at {bootstrap}")
    d = ctx.peers_build / "cargo-lambda"
    d.mkdir(parents=True, exist_ok=True)
    for f in ("Cargo.toml", "main.rs"):
        shutil.copy2(PEERS / "cargo-lambda" / f, d / f)
    version = subprocess.run([sys.executable, "-m", "pip", "show", "cargo-lambda"], capture_output=True, text=True)
    m = re.search(r"^Version: (\S+)", version.stdout, re.M)
    port = free_port()
    log_file = ctx.log_file("cargo-lambda")

    def procs() -> list[subprocess.Popen]:
        emulator = start([str(cl), "lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", str(port)],
                         d, log_file, {"PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"})
        try:
            wait_listening(port, 60)
        except NotMeasured:
            return [emulator]
        fn = start([str(bootstrap)], d, log_file, {
            "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{port}/.rt",
            "AWS_LAMBDA_FUNCTION_NAME": "_",
            "AWS_LAMBDA_FUNCTION_VERSION": "1",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        })
        return [emulator, fn]

    return {
        "version": f"cargo-lambda {m.group(1) if m else '?'} (emulator, default concurrency 1) + the lambda_runtime hello",
        "port": port,
        "procs": procs,
        "endpoints": [("cargo-lambda", "cargo-lambda emulator, Invoke API", port, "/2015-03-31/functions/_/invocations")],
    }


# key, label, Updraft runtime it is compared with, kind, setup
CATALOGUE = [
    ("hyper-floor", "raw hyper server (floor)", "rust", "floor", peer_hyper),
    ("relay-floor", "raw hyper relay + raw hyper server, two processes (floor)", "rust", "floor", peer_relay),
    ("node-floor", "raw Node.js http server (floor)", "node", "floor", peer_node_floor),
    ("serverless-offline", "serverless-offline", "node", "emulator", peer_serverless_offline),
    ("lambda-local", "lambda-local (watch mode)", "node", "emulator", peer_lambda_local),
    ("workerd", "workerd (V8 isolate)", "node", "runtime", peer_workerd),
    ("cargo-lambda", "cargo-lambda emulator", "rust", "emulator", peer_cargo_lambda),
]


# ---- measuring -----------------------------------------------------------------------------------------------


def wrk(args: argparse.Namespace, req_file: Path, port: int, threads: int, conns: int, seconds: int) -> dict:
    cmd = [args.wrk, f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "10s",
           "-s", str(BENCH / "invoke.lua"), f"http://127.0.0.1:{port}"]
    env = dict(os.environ, UPDRAFT_BENCH_REQUEST=str(req_file))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + WRK_GRACE_S)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}: {proc.stderr.strip()} {proc.stdout.strip()}")
    r = parse_wrk(proc.stdout)
    if r["p50_ms"] is None or r["rps"] is None or not r["requests"]:
        raise RuntimeError(f"wrk: no result: {proc.stdout.strip()}")
    if r["non_2xx"] or r["socket_errors"]:
        raise RuntimeError(f"wrk: {r['non_2xx']} non-2xx answers, {r['socket_errors']} socket errors")
    return r


def loopback_only(port: int) -> str | None:
    """A complaint if any socket of the peer listens on `port` beyond 127.0.0.1."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and not parts[3].startswith("127.0.0.1:"):
            return f"listens on {parts[3]}"
    return None


def measure_peer(ctx: Ctx, key: str, label: str, compare: str, kind: str, setup) -> dict:
    args = ctx.args
    entry: dict = {"key": key, "label": label, "compare": compare, "kind": kind, "rows": []}
    log(f"{label}: installing")
    procs: list[subprocess.Popen] = []
    try:
        spec = setup(ctx)
        entry["version"] = spec["version"]
        endpoints = spec.get("endpoints") or [(key, label, spec["port"], "/")]
        t0 = time.monotonic()
        procs = spec["procs"]()
        with PeakRss([p.pid for p in procs]) as peak:
            ready = wait_ready(procs, endpoints[0][2], endpoints[0][3], ctx.log_file(key))
            entry["ready_s"] = round(time.monotonic() - t0, 2)
            log(f"  answering after {entry['ready_s']} s ({ready:.2f} s of polling)")
            for _, _, port, _ in endpoints:
                bad = loopback_only(port)
                if bad:
                    raise NotMeasured(f"not confined to 127.0.0.1: {bad}")
            for row_key, row_label, port, path in endpoints:
                row: dict = {"key": row_key, "label": row_label, "path": path}
                entry["rows"].append(row)
                try:
                    wait_ready(procs, port, path, ctx.log_file(key))
                    req = ctx.logs.parent / f"request-{row_key}.txt"
                    req.write_bytes(
                        f"POST {path}\nHost: 127.0.0.1:{port}\nContent-Type: application/json\n\n".encode() + b"{}"
                    )
                    wrk(args, req, port, 2, 10, args.warmup)
                    for label_c, threads, conns in (("c1", 1, 1), ("c10", 2, 10)):
                        log(f"  wrk -t{threads} -c{conns} -d{args.duration}s {row_key}")
                        r = wrk(args, req, port, threads, conns, args.duration)
                        (ctx.logs / f"wrk-{row_key}-{label_c}.txt").write_text(r.pop("raw"))
                        row[label_c] = r
                        log(f"    p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  {r['rps']:.1f} req/s")
                    req.unlink(missing_ok=True)
                except (RuntimeError, subprocess.TimeoutExpired, NotMeasured) as e:
                    row["error"] = f"{type(e).__name__}: {e}"
                    log(f"  {row_key} FAILED: {row['error']}")
        entry["peak_rss_mib"] = round(peak.peak_kib / 1024, 1)
        entry["peak_rss_processes"] = peak.peak_procs
        entry["status"] = "measured"
        log(f"  peak RSS {entry['peak_rss_mib']} MiB in {entry['peak_rss_processes']} processes")
    except NotMeasured as e:
        entry["status"] = f"not measured: {e}"
        log(f"  {entry['status']}")
    except Exception as e:  # one broken peer must not hide the others
        entry["status"] = f"not measured: {type(e).__name__}: {e}"
        log(f"  {entry['status']}")
    finally:
        for p in procs:
            stop(p)
    return entry


def cmd_run(args: argparse.Namespace) -> int:
    ctx = Ctx(args)
    only = {s for s in args.only.split(",") if s}
    results = {
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "peers": [],
    }
    for key, label, compare, kind, setup in CATALOGUE:
        if only and key not in only:
            results["peers"].append({"key": key, "label": label, "compare": compare, "kind": kind,
                                     "status": "not measured: left out by BENCH_PEERS", "rows": []})
            continue
        results["peers"].append(measure_peer(ctx, key, label, compare, kind, setup))
    (args.out / "peers.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


# ---- report --------------------------------------------------------------------------------------------------


def fmt(v, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def ratio(a, b) -> str:
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.1f}×" if a / b >= 10 else f"{a / b:.2f}×"


def cell(text: str) -> str:
    return " ".join(str(text).replace("|", "/").split())[:160]


# The peer Updraft's Function URL rows are compared with: an HTTP server answering the JSON, nothing else.
URL_FLOOR = "node-floor"


def url_rows(results: dict) -> list[dict]:
    """Updraft's measured Function URL rows, as {key, label, c1, c10, peak_rss_mib}."""
    rows = []
    for r in results.get("runtimes", []):
        u = r.get("url")
        if u and "c1" in u and "c10" in u:
            rows.append({"key": r["key"], "label": f"{r['label']}, Function URL", "c1": u["c1"], "c10": u["c10"],
                         "peak_rss_mib": u.get("peak_rss_mib")})
    return rows


def systems(results: dict, peers: dict) -> list[dict]:
    """Every measured row, Updraft's first, as {label, compare, c1, c10, peak_rss_mib, updraft}."""
    rows = []
    for r in results.get("runtimes", []):
        w = r.get("warm")
        if w:
            rows.append({"label": f"Updraft, {r['label']}", "short": f"Updraft {r['key']}", "compare": r["key"],
                         "c1": w["c1"], "c10": w["c10"], "peak_rss_mib": w.get("peak_rss_mib"), "updraft": True})
    for u in url_rows(results):
        rows.append({"label": f"Updraft, {u['label']}", "short": f"Updraft {u['key']} URL", "compare": u["key"],
                     "c1": u["c1"], "c10": u["c10"], "peak_rss_mib": u["peak_rss_mib"], "updraft": True})
    for p in peers.get("peers", []):
        for row in p.get("rows", []):
            if "c1" in row and "c10" in row:
                rows.append({"label": row["label"], "short": row["key"], "compare": p["compare"], "c1": row["c1"],
                             "c10": row["c10"], "peak_rss_mib": p.get("peak_rss_mib"), "updraft": False})
    return rows


def peers_markdown(results: dict, peers: dict) -> str:
    names = {"python": "Python", "node": "Node.js", "rust": "Rust"}
    lines = [
        "## Updraft and its peers, same machine, same run",
        "",
        f"- Peers measured after Updraft, {peers['date_utc']} UTC; load average when they started "
        f"{' '.join(peers['loadavg_at_start'])}; wrk as above ({peers['duration_s']} s per run after a "
        f"{peers['warmup_s']} s unmeasured run at 10 connections), every server on 127.0.0.1",
        "- Updraft rows are SigV4-signed Invoke calls through the whole server and an execution environment, "
        "except the Function URL rows: unsigned GETs of the public URL's `/lambda-url/<url-id>/`, through the same "
        "server and environments; peers get unsigned POSTs with body `{}`. Peak RSS: Updraft's is the server plus "
        "all its environments during that runtime's warm (or URL) runs; a peer's is the sum over all its processes "
        "(ps, sampled each second) from start to stop.",
        "",
        "| system | version | 1 conn p50 (ms) | 1 conn p99 (ms) | 1 conn req/s | 10 conn p50 (ms) | 10 conn p99 (ms) "
        "| 10 conn req/s | peak RSS (MiB) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results.get("runtimes", []):
        w = r.get("warm")
        if w:
            lines.append(
                f"| **Updraft**, {r['label']} | `{results['machine']['updraft_commit']}` | {fmt(w['c1']['p50_ms'])} "
                f"| {fmt(w['c1']['p99_ms'])} | {fmt(w['c1']['rps'], 0)} | {fmt(w['c10']['p50_ms'])} "
                f"| {fmt(w['c10']['p99_ms'])} | {fmt(w['c10']['rps'], 0)} | {fmt(w.get('peak_rss_mib'), 1)} |"
            )
    for u in url_rows(results):
        lines.append(
            f"| **Updraft**, {u['label']} | `{results['machine']['updraft_commit']}` | {fmt(u['c1']['p50_ms'])} "
            f"| {fmt(u['c1']['p99_ms'])} | {fmt(u['c1']['rps'], 0)} | {fmt(u['c10']['p50_ms'])} "
            f"| {fmt(u['c10']['p99_ms'])} | {fmt(u['c10']['rps'], 0)} | {fmt(u['peak_rss_mib'], 1)} |"
        )
    for p in peers.get("peers", []):
        if p["status"] != "measured":
            lines.append(f"| {p['label']} | {cell(p.get('version', ''))} | {cell(p['status'])} | | | | | | |")
            continue
        for row in p["rows"]:
            if "error" in row or "c1" not in row:
                lines.append(f"| {row['label']} | {cell(p['version'])} | failed: {cell(row.get('error', ''))} "
                             f"| | | | | | {fmt(p.get('peak_rss_mib'), 1)} |")
                continue
            c1, c10 = row["c1"], row["c10"]
            lines.append(
                f"| {row['label']} | {cell(p['version'])} | {fmt(c1['p50_ms'])} | {fmt(c1['p99_ms'])} "
                f"| {fmt(c1['rps'], 0)} | {fmt(c10['p50_ms'])} | {fmt(c10['p99_ms'])} | {fmt(c10['rps'], 0)} "
                f"| {fmt(p.get('peak_rss_mib'), 1)} |"
            )
    lines += [
        "",
        "### Ratios",
        "",
        "Latency: Updraft ÷ peer (above 1× Updraft is slower); throughput: peer ÷ Updraft (above 1× the peer serves "
        "more). Each peer is compared with Updraft's function of the same language (the Node.js hello for the "
        "JavaScript peers, the Rust lambda_runtime hello for the Rust ones); no peer runs Python. The raw Node.js "
        "http server is also compared with Updraft's Function URLs (Python and Node.js), as both are plain HTTP "
        "requests with no signature.",
        "",
        "| peer | compared with | p50 1 conn | p99 1 conn | p50 10 conn | p99 10 conn | req/s 1 conn | req/s 10 conn |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    updraft = {r["key"]: r["warm"] for r in results.get("runtimes", []) if r.get("warm")}
    urls = url_rows(results)

    def ratio_line(row: dict, what: str, u: dict) -> str:
        return (
            f"| {row['label']} | {what} "
            f"| {ratio(u['c1']['p50_ms'], row['c1']['p50_ms'])} | {ratio(u['c1']['p99_ms'], row['c1']['p99_ms'])} "
            f"| {ratio(u['c10']['p50_ms'], row['c10']['p50_ms'])} | {ratio(u['c10']['p99_ms'], row['c10']['p99_ms'])} "
            f"| {ratio(row['c1']['rps'], u['c1']['rps'])} | {ratio(row['c10']['rps'], u['c10']['rps'])} |"
        )

    for p in peers.get("peers", []):
        u = updraft.get(p["compare"])
        for row in p.get("rows", []):
            if "c1" not in row or "c10" not in row:
                continue
            if not u:
                lines.append(f"| {row['label']} | Updraft {names[p['compare']]}: not measured | | | | | | |")
            else:
                lines.append(ratio_line(row, f"Updraft {names[p['compare']]}", u))
            if p["key"] == URL_FLOOR:
                for url in urls:
                    lines.append(ratio_line(row, f"Updraft {names[url['key']]}, Function URL", url))
    lines.append("")
    return "\n".join(lines)


def chart(results: dict, peers: dict, path: Path) -> str | None:
    """A grouped bar chart of p50/p99 at 1 and 10 connections per system; returns why it was not drawn, if not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        return f"matplotlib cannot be imported ({e})"
    rows = systems(results, peers)
    if not rows:
        return "no measured system"
    series = [("p50, 1 conn", "c1", "p50_ms", "#9ecae1"), ("p99, 1 conn", "c1", "p99_ms", "#3182bd"),
              ("p50, 10 conn", "c10", "p50_ms", "#fdae6b"), ("p99, 10 conn", "c10", "p99_ms", "#e6550d")]
    width = 0.2
    fig, ax = plt.subplots(figsize=(max(9, 1.25 * len(rows) + 2), 5.5))
    for i, (name, c, key, colour) in enumerate(series):
        xs = [j + (i - 1.5) * width for j in range(len(rows))]
        ys = [r[c][key] for r in rows]
        bars = ax.bar(xs, ys, width, label=name, color=colour)
        for b, y in zip(bars, ys):
            ax.annotate(f"{y:.0f}" if y >= 10 else f"{y:.1f}" if y >= 1 else f"{y:.2g}", (b.get_x() + b.get_width() / 2, y), ha="center", va="bottom", fontsize=6,
                        rotation=90, xytext=(0, 2), textcoords="offset points")
    ax.set_yscale("log")
    top = max(r[c][key] for r in rows for _, c, key, _ in series)
    ax.set_ylim(top=top * 4)
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["label"].replace(", ", ",\n", 1) for r in rows], rotation=30, ha="right", fontsize=7)
    for tick, r in zip(ax.get_xticklabels(), rows):
        if r["updraft"]:
            tick.set_fontweight("bold")
    m = results.get("machine", {})
    ax.set_title(f"Warm hello, wrk on 127.0.0.1 ({m.get('nproc', '?')} CPUs, {m.get('cpu_model', '')}), "
                 f"{m.get('date_utc', '')} UTC", fontsize=9)
    ax.legend(fontsize=8, ncol=4, loc="upper right")
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def cmd_report(args: argparse.Namespace) -> int:
    results_path, peers_path = args.out / "results.json", args.out / "peers.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"runtimes": [], "machine": {}}
    if not peers_path.exists():
        log("no peers.json: nothing to report")
        return 1
    peers = json.loads(peers_path.read_text())
    results["peers"] = peers
    md = peers_markdown(results, peers)
    why = chart(results, peers, args.out / "latency.png")
    md += "\n" + ("![latency](latency.png)\n" if why is None else f"Chart not drawn: {why}.\n")
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path = args.out / "results.md"
    head = md_path.read_text() if md_path.exists() else "# Updraft benchmark\n\n"
    md_path.write_text(head.rstrip("\n") + "\n\n" + md)
    print(md)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["run", "report"])
    ap.add_argument("--out", type=Path, default=BENCH / "out")
    ap.add_argument("--build-dir", type=Path, default=BENCH / ".build")
    ap.add_argument("--wrk", default="wrk")
    ap.add_argument("--node", default=shutil.which("node") or "node")
    ap.add_argument("--npm", default=shutil.which("npm") or "npm")
    ap.add_argument("--rust-bootstrap", type=Path, help="the Rust hello's bootstrap (run.sh builds it); needed by `run`")
    ap.add_argument("--cargo-lambda-req", default="cargo-lambda==1.9.2")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--skip-build", action="store_true", help="no cargo build when the floor binary exists")
    ap.add_argument("--only", default="", help="comma-separated subset of the peers' keys")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return cmd_run(args) if args.command == "run" else cmd_report(args)
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
