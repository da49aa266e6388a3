#!/usr/bin/env python3
"""Updraft's queue service beside the queue services users know, in one run on this machine.

Each SQS service gets the same load: a fresh standard queue, then
  1. durable SendMessageBatch (10 x 256 B) from several boto3 client processes,
  2. ReceiveMessage(10) + DeleteMessageBatch from the same processes until the queue is empty,
  3. SendMessageBatch replayed by wrk (a C client: one request signed once and sent again and again, which SigV4
     permits for 15 minutes), so the client's own CPU hardly counts and the server's ceiling shows.
Peers: LocalStack's SQS (localstack-core run on the host, no Docker) and moto's server, installed by
bench/peers/queues/setup.sh into bench/.peers/. The floor is RabbitMQ on this machine: a durable queue,
persistent messages published in transactions of 10 (committed to disk like a durable SendMessageBatch) and
consumed with acknowledgements, driven by pika from the same number of processes.

    .venv/bin/python bench/sqs_peers.py [--bin target/release/updraft] [--procs 4] [--messages 20000]
                                        [--wrk-seconds 10] [--only updraft,localstack,moto,rabbitmq]

Writes bench/out/sqs_peers.{md,json}. A measurement, not a test: the clients share the two cores with the server,
so each figure is read beside the others of the same run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO / "bench" / ".peers"
BODY = "x" * 256
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU of a process and its live descendants (LocalStack runs workers)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            total += cpu_seconds(p)
            kids = open(f"/proc/{p}/task/{p}/children").read().split()
        except OSError:
            continue
        todo.extend(int(k) for k in kids)
    return total


# ------------------------------------------------------------------------------------------------ services

class Service:
    name = ""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None
        self.endpoint = ""
        self.ak, self.sk = "test", "test"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Updraft(Service):
    name = "updraft"

    def __init__(self, tmp: Path, binary: Path):
        super().__init__(tmp)
        port = free_port()
        self.ak, self.sk = "AKIAUPDRAFTBENCH0001", uuid.uuid4().hex
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
        env.update(UPDRAFT_ACCESS_KEY_ID=self.ak, UPDRAFT_SECRET_ACCESS_KEY=self.sk, RUST_LOG="warn")
        log = open(tmp / "updraft.log", "wb")
        self.proc = subprocess.Popen([str(binary), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                                      str(tmp / "updraft")], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                     env=env)
        self.endpoint = f"http://127.0.0.1:{port}"
        wait_http(self.endpoint + "/health", self.proc)


class LocalStack(Service):
    name = "localstack"

    def __init__(self, tmp: Path):
        super().__init__(tmp)
        py = PEERS / "localstack" / "bin" / "python"
        if not py.exists():
            raise RuntimeError("not installed (bench/peers/queues/setup.sh)")
        port = free_port()
        env = dict(os.environ, GATEWAY_LISTEN=f"127.0.0.1:{port}", SERVICES="sqs", DNS_ADDRESS="0",
                   SQS_ENDPOINT_STRATEGY="path", LOCALSTACK_VOLUME_DIR=str(tmp / "localstack"),
                   DISABLE_EVENTS="1", SKIP_SSL_CERT_DOWNLOAD="1")
        log = open(tmp / "localstack.log", "wb")
        self.proc = subprocess.Popen([str(py), "-m", "localstack.runtime.main"], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, env=env, cwd=tmp)
        self.endpoint = f"http://127.0.0.1:{port}"
        wait_http(self.endpoint + "/_localstack/health", self.proc)


class Moto(Service):
    name = "moto"

    def __init__(self, tmp: Path):
        super().__init__(tmp)
        exe = PEERS / "moto" / "bin" / "moto_server"
        if not exe.exists():
            raise RuntimeError("not installed (bench/peers/queues/setup.sh)")
        port = free_port()
        log = open(tmp / "moto.log", "wb")
        self.proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        self.endpoint = f"http://127.0.0.1:{port}"
        wait_http(self.endpoint + "/moto-api/", self.proc)


# ------------------------------------------------------------------------------------------------ SQS load

def sqs_client(endpoint: str, ak: str, sk: str):
    import boto3
    from botocore.config import Config
    return boto3.client("sqs", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ak,
                        aws_secret_access_key=sk, config=Config(retries={"max_attempts": 1}))


def sqs_send_worker(endpoint, ak, sk, url, batches, start, out):
    c = sqs_client(endpoint, ak, sk)
    c.get_queue_attributes(QueueUrl=url)  # connect and warm the client before the clock starts
    start.wait()
    for _ in range(batches):
        r = c.send_message_batch(QueueUrl=url, Entries=[{"Id": str(k), "MessageBody": BODY} for k in range(10)])
        if r.get("Failed"):
            raise RuntimeError(r["Failed"])
    out.put(batches * 10)


def sqs_drain_worker(endpoint, ak, sk, url, start, out):
    c = sqs_client(endpoint, ak, sk)
    c.get_queue_attributes(QueueUrl=url)
    start.wait()
    got, empty = 0, 0
    while empty < 2:
        msgs = c.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=120).get("Messages", [])
        if not msgs:
            empty += 1
            continue
        empty = 0
        got += len(msgs)
        c.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]}
                                                      for k, m in enumerate(msgs)])
    out.put(got)


def run_procs(n: int, target, args: tuple) -> tuple[float, int]:
    ctx = mp.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, start, out)) for _ in range(n)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # every worker connected and waiting
    t0 = time.perf_counter()
    start.set()
    counts = [out.get(timeout=600) for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"a client process failed ({p.exitcode})")
    return elapsed, sum(counts)


def wrk_send(wrk: str, svc: Service, url: str, seconds: int, conns: int, tmp: Path) -> dict:
    """Replays one signed SendMessageBatch with wrk; returns calls/s and non-2xx count."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    body = json.dumps({"QueueUrl": url, "Entries": [{"Id": str(k), "MessageBody": BODY} for k in range(10)]})
    host = svc.endpoint.removeprefix("http://")
    req = AWSRequest(method="POST", url=svc.endpoint + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.SendMessageBatch", "Host": host})
    SigV4Auth(Credentials(svc.ak, svc.sk), "sqs", REGION).add_auth(req)
    lua = tmp / f"wrk-{svc.name}.lua"
    hdrs = "".join(f'wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n' for k, v in req.headers.items())
    lua.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n{hdrs}'
                   'function done(summary, latency, requests)\n'
                   '  io.write(string.format("JSON %d %d %d %d\\n", summary.requests, summary.duration,\n'
                   '    summary.errors.status, latency:percentile(50)))\nend\n')
    r = subprocess.run([wrk, "-t1", f"-c{conns}", f"-d{seconds}s", "-s", str(lua), svc.endpoint + "/"],
                       capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in r.stdout.splitlines() if x.startswith("JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk: {r.stdout} {r.stderr}")
    reqs, dur_us, bad, p50_us = (int(x) for x in line.split()[1:])
    return {"calls": reqs, "seconds": dur_us / 1e6, "non_2xx": bad, "p50_ms": p50_us / 1000}


def bench_sqs(svc: Service, args, tmp: Path) -> dict:
    c = sqs_client(svc.endpoint, svc.ak, svc.sk)
    url = c.create_queue(QueueName="bench-" + uuid.uuid4().hex[:8])["QueueUrl"]
    # moto's queue answers in tens of milliseconds per message; a smaller sample gives its rate.
    messages = min(args.messages, args.moto_messages) if svc.name == "moto" else args.messages
    per = messages // args.procs // 10
    cpu0 = tree_cpu(svc.proc.pid)
    send_s, sent = run_procs(args.procs, sqs_send_worker, (svc.endpoint, svc.ak, svc.sk, url, per))
    cpu1 = tree_cpu(svc.proc.pid)
    stored = int(c.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
                 ["Attributes"]["ApproximateNumberOfMessages"])
    drain_s, got = run_procs(args.procs, sqs_drain_worker, (svc.endpoint, svc.ak, svc.sk, url))
    cpu2 = tree_cpu(svc.proc.pid)
    res = {
        "sent": sent, "stored": stored, "received_and_deleted": got,
        "send_messages_per_s": round(sent / send_s), "receive_delete_messages_per_s": round(got / drain_s),
        "server_cpu_ms_per_message_send": round((cpu1 - cpu0) * 1000 / max(sent, 1), 4),
        "server_cpu_ms_per_message_receive_delete": round((cpu2 - cpu1) * 1000 / max(got, 1), 4),
    }
    if args.wrk:
        url2 = c.create_queue(QueueName="bench-wrk-" + uuid.uuid4().hex[:8])["QueueUrl"]
        w = wrk_send(args.wrk, svc, url2, args.wrk_seconds, args.wrk_conns, tmp)
        stored2 = int(c.get_queue_attributes(QueueUrl=url2, AttributeNames=["ApproximateNumberOfMessages"])
                      ["Attributes"]["ApproximateNumberOfMessages"])
        res.update({"wrk_send_messages_per_s": round(w["calls"] * 10 / w["seconds"]),
                    "wrk_send_p50_ms": round(w["p50_ms"], 2), "wrk_non_2xx": w["non_2xx"],
                    "wrk_messages_stored": stored2, "wrk_calls": w["calls"]})
    return res


# ------------------------------------------------------------------------------------------------ RabbitMQ

def amqp_python() -> Path:
    py = PEERS / "amqp" / "bin" / "python"
    if not py.exists():
        raise RuntimeError("pika not installed (bench/peers/queues/setup.sh)")
    return py


RABBIT_WORKER = r'''
import sys, time, pika
mode, queue, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
ch = conn.channel()
ch.queue_declare(queue=queue, durable=True)
body = b"x" * 256
props = pika.BasicProperties(delivery_mode=2)
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
got = 0
if mode == "send":
    ch.tx_select()
    for _ in range(n):
        for _ in range(10):
            ch.basic_publish("", queue, body, props)
        ch.tx_commit()
    got = n * 10
else:
    ch.basic_qos(prefetch_count=10)
    pending = 0
    for method, _, _ in ch.consume(queue, inactivity_timeout=1.0):
        if method is None:
            break
        got += 1
        pending += 1
        if pending == 10:
            ch.basic_ack(method.delivery_tag, multiple=True)
            pending = 0
    if pending:
        ch.basic_ack(0, multiple=True)
    ch.cancel()
sys.stdout.write(f"{got}\n"); sys.stdout.flush()
conn.close()
'''


def rabbit_round(py: Path, mode: str, queue: str, procs: int, batches: int) -> tuple[float, int]:
    ps = [subprocess.Popen([str(py), "-c", RABBIT_WORKER, mode, queue, str(batches)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    for p in ps:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("a RabbitMQ client did not connect")
    t0 = time.perf_counter()
    for p in ps:
        p.stdin.write("go\n")
        p.stdin.flush()
    counts = [int(p.stdout.readline()) for p in ps]
    elapsed = time.perf_counter() - t0
    for p in ps:
        p.wait(timeout=60)
    if mode == "drain":
        elapsed -= 1.0  # each consumer stops after one idle second
    return elapsed, sum(counts)


def bench_rabbit(args) -> dict:
    py = amqp_python()
    queue = "updraft-bench-" + uuid.uuid4().hex[:8]
    per = args.messages // args.procs // 10
    pid = rabbit_pid()
    cpu0 = cpu_seconds(pid) if pid else 0.0
    send_s, sent = rabbit_round(py, "send", queue, args.procs, per)
    cpu1 = cpu_seconds(pid) if pid else 0.0
    drain_s, got = rabbit_round(py, "drain", queue, args.procs, 0)
    cpu2 = cpu_seconds(pid) if pid else 0.0
    subprocess.run([str(py), "-c", "import pika,sys; c=pika.BlockingConnection(); c.channel().queue_delete(sys.argv[1])",
                    queue], check=False, capture_output=True)
    return {
        "sent": sent, "stored": sent, "received_and_deleted": got,
        "send_messages_per_s": round(sent / send_s), "receive_delete_messages_per_s": round(got / drain_s),
        "server_cpu_ms_per_message_send": round((cpu1 - cpu0) * 1000 / max(sent, 1), 4) if pid else None,
        "server_cpu_ms_per_message_receive_delete": round((cpu2 - cpu1) * 1000 / max(got, 1), 4) if pid else None,
    }


def rabbit_pid() -> int | None:
    r = subprocess.run(["pgrep", "-f", "beam.smp.*rabbit"], capture_output=True, text=True)
    pids = r.stdout.split()
    return int(pids[0]) if pids else None


# ------------------------------------------------------------------------------------------------ main

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", type=Path, default=REPO / "target" / "release" / "updraft")
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--moto-messages", type=int, default=1000)
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--wrk-conns", type=int, default=32)
    ap.add_argument("--only", default="updraft,localstack,moto,rabbitmq")
    args = ap.parse_args()
    args.wrk = shutil.which("wrk")
    only = args.only.split(",")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for name in ("updraft", "localstack", "moto"):
            if name not in only:
                continue
            svc = None
            try:
                svc = {"updraft": lambda: Updraft(tmp, args.bin), "localstack": lambda: LocalStack(tmp),
                       "moto": lambda: Moto(tmp)}[name]()
                print(f"[sqs_peers] {name} at {svc.endpoint}", file=sys.stderr)
                results[name] = bench_sqs(svc, args, tmp)
            except Exception as e:  # noqa: BLE001 (a missing peer is reported, not fatal)
                results[name] = {"error": str(e)[:300]}
            finally:
                if svc:
                    svc.stop()
            print(f"[sqs_peers] {name}: {results[name]}", file=sys.stderr)
        if "rabbitmq" in only:
            try:
                results["rabbitmq"] = bench_rabbit(args)
            except Exception as e:  # noqa: BLE001
                results["rabbitmq"] = {"error": str(e)[:300]}
            print(f"[sqs_peers] rabbitmq: {results['rabbitmq']}", file=sys.stderr)
    floor = results.get("rabbitmq", {}).get("send_messages_per_s")
    upd = results.get("updraft", {})
    rows = ["| service | SendMessageBatch msg/s (boto3) | receive+delete msg/s (boto3) | SendMessageBatch msg/s (wrk) "
            "| server CPU µs/msg sent | server CPU µs/msg received+deleted | Updraft ÷ this, send (boto3) |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        if "error" in r:
            rows.append(f"| {name} | not measured: {r['error']} | | | | | |")
            continue
        cpu_s = r.get("server_cpu_ms_per_message_send")
        cpu_r = r.get("server_cpu_ms_per_message_receive_delete")
        ratio = f"{upd['send_messages_per_s'] / r['send_messages_per_s']:.2f}x" if "send_messages_per_s" in upd else ""
        rows.append(f"| {name} | {r['send_messages_per_s']} | {r['receive_delete_messages_per_s']} | "
                    f"{r.get('wrk_send_messages_per_s', 'n/a')} | "
                    f"{'' if cpu_s is None else round(cpu_s * 1000)} | {'' if cpu_r is None else round(cpu_r * 1000)} | "
                    f"{ratio} |")
    table = "\n".join(rows)
    note = (f"\n{args.procs} client processes, {args.messages} messages of 256 B per service "
            f"({args.moto_messages} for moto); wrk: 1 thread, "
            f"{args.wrk_conns} connections, {args.wrk_seconds} s. RabbitMQ: durable queue, persistent messages, "
            f"transactions of 10, pika. Load average at the end: {' '.join(open('/proc/loadavg').read().split()[:3])}.\n")
    print(table + note)
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sqs_peers.md").write_text(table + "\n" + note)
    (out / "sqs_peers.json").write_text(json.dumps({"results": results, "floor_rabbitmq_send": floor,
                                                    "procs": args.procs, "messages": args.messages}, indent=2) + "\n")
    for name, r in results.items():
        if "error" not in r and r["received_and_deleted"] != r["sent"]:
            print(f"[sqs_peers] {name}: sent {r['sent']} but received and deleted {r['received_and_deleted']}",
                  file=sys.stderr)
    u = results.get("updraft", {})
    if "error" in u or u.get("received_and_deleted") != u.get("sent") or u.get("wrk_non_2xx"):
        sys.exit(f"updraft did not deliver every message exactly once: {u}")


if __name__ == "__main__":
    main()
