#!/usr/bin/env python3
"""Queue service throughput: durable SendMessageBatch, then ReceiveMessage + DeleteMessageBatch, then end to end
through an event source mapping (send -> warm Python function -> delete) with batch sizes 1 and 10.

Starts its own `updraft serve` (a fresh data directory, so every send is a real group commit into
<data-dir>/queues.db) and drives it with boto3 over SQS's JSON protocol from several threads, each with its own
client and connection. Every send is acknowledged only after its commit, so the send rate is the durable rate.

    .venv/bin/python bench/sqs.py [--bin target/release/updraft] [--threads 8] [--messages 20000] [--size 256]
                                  [--e2e-messages 20000] [--e2e-messages-batch1 3000]

End to end: the mapping is created, its function warmed and one untimed round sent through it first; the clock
then runs from the first send of a second round until the queue is empty again (every message sent, given to the
function in a batch and deleted). The end-to-end senders are processes (--threads of them), so one Python
process's interpreter lock does not bound the send side.

Prints a table and writes bench/out/sqs.md and bench/out/sqs.json. A measurement, not a test; boto3's own
CPU cost (signing, parsing) is part of it, and on a shared machine the numbers are noisy.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import io
import zipfile

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary: Path, data: Path, ak: str, sk: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
    env.update(UPDRAFT_ACCESS_KEY_ID=ak, UPDRAFT_SECRET_ACCESS_KEY=sk, RUST_LOG="warn")
    log = open(data / "server.log", "wb")
    proc = subprocess.Popen([str(binary), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data / "d")],
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


def client(endpoint: str, ak: str, sk: str):
    return boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ak,
                        aws_secret_access_key=sk,
                        config=Config(retries={"max_attempts": 1}, max_pool_connections=2))


# A warm Python function that does nothing with its batch: what is measured is the path around it.
NOOP = "def handler(event, context):\n    return {}\n"


def deploy_noop(endpoint: str, ak: str, sk: str) -> str:
    lam = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ak,
                       aws_secret_access_key=sk, config=Config(retries={"max_attempts": 1}))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", NOOP)
    name = "esm-bench-" + uuid.uuid4().hex[:8]
    lam.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler", Role="arn:aws:iam::123456789012:role/bench",
                        Code={"ZipFile": buf.getvalue()}, Timeout=30)
    for _ in range(300):
        if lam.get_function_configuration(FunctionName=name)["State"] == "Active":
            break
        time.sleep(0.1)
    lam.invoke(FunctionName=name, Payload=b'{"Records": []}')
    return name


def end_to_end(endpoint: str, ak: str, sk: str, threads: int, batch: int, messages: int,
               body: str, pid: int) -> dict:
    """send -> function -> delete through an event source mapping; messages/s from first send to empty queue."""
    lam = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ak,
                       aws_secret_access_key=sk, config=Config(retries={"max_attempts": 1}))
    sqs = client(endpoint, ak, sk)
    name = deploy_noop(endpoint, ak, sk)
    url = sqs.create_queue(QueueName=f"e2e-{batch}-" + uuid.uuid4().hex[:6])["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=batch)
    while lam.get_event_source_mapping(UUID=m["UUID"])["State"] != "Enabled":
        time.sleep(0.05)
    per_thread = messages // threads // 10
    total = per_thread * 10 * threads

    def send_round() -> tuple[float, float]:
        """Senders in processes of their own, so that one Python process's lock does not bound the rate."""
        return run_send_processes(endpoint, ak, sk, url, threads, per_thread, body)

    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]

    def drained() -> None:
        while True:
            a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            if sum(int(a[n]) for n in names) == 0:
                return
            time.sleep(0.02)

    # A first, untimed round starts the environments the mapping scales to (cold starts are
    # measured elsewhere); the timed round then finds them warm.
    send_round()
    drained()
    cpu0 = cpu_seconds(pid)
    t0, send_s = send_round()
    drained()
    elapsed = time.perf_counter() - t0
    cpu1 = cpu_seconds(pid)
    lam.delete_event_source_mapping(UUID=m["UUID"])
    return {
        "batch_size": batch,
        "messages": total,
        "send_seconds": round(send_s, 3),
        "seconds": round(elapsed, 3),
        "messages_per_s": round(total / elapsed),
        "server_cpu_ms_per_message": round((cpu1 - cpu0) * 1000 / total, 4),
    }


def _send_worker(endpoint, ak, sk, url, batches, body, start, done) -> None:
    c = client(endpoint, ak, sk)
    c.get_queue_attributes(QueueUrl=url)  # connected before the clock starts
    start.wait()
    for _ in range(batches):
        r = c.send_message_batch(QueueUrl=url, Entries=[{"Id": str(k), "MessageBody": body} for k in range(10)])
        if r.get("Failed"):
            raise RuntimeError(r["Failed"])
    done.put(batches)


def run_send_processes(endpoint: str, ak: str, sk: str, url: str, n: int, batches: int,
                       body: str) -> tuple[float, float]:
    """`n` sender processes, `batches` SendMessageBatch calls each; returns when the sending started
    (`time.perf_counter()` of this process) and the seconds it took."""
    ctx = multiprocessing.get_context("fork")
    start, done = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_send_worker, args=(endpoint, ak, sk, url, batches, body, start, done))
             for _ in range(n)]
    for p in procs:
        p.start()
    time.sleep(1.0)
    t0 = time.perf_counter()
    start.set()
    for _ in procs:
        done.get(timeout=600)
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"a sender process failed ({p.exitcode})")
    return t0, elapsed


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its reaped children), from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def run_threads(n: int, work) -> float:
    barrier = threading.Barrier(n + 1)
    errors: list[BaseException] = []

    def wrap(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    default_bin = REPO / "target" / "release" / "updraft"
    if not default_bin.exists():
        default_bin = REPO / "target" / "debug" / "updraft"
    ap.add_argument("--bin", type=Path, default=default_bin)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--e2e-messages", type=int, default=20000)
    ap.add_argument("--e2e-messages-batch1", type=int, default=3000)
    args = ap.parse_args()
    ak, sk = "AKIAUPDRAFTBENCH0001", uuid.uuid4().hex
    per_thread = args.messages // args.threads // 10
    total = per_thread * 10 * args.threads
    body = "x" * args.size
    with tempfile.TemporaryDirectory() as tmp:
        proc, endpoint = start(args.bin, Path(tmp), ak, sk)
        try:
            main_client = client(endpoint, ak, sk)
            url = main_client.create_queue(QueueName="bench")["QueueUrl"]
            clients = [client(endpoint, ak, sk) for _ in range(args.threads)]

            def send(i: int) -> None:
                c = clients[i]
                for b in range(per_thread):
                    r = c.send_message_batch(QueueUrl=url, Entries=[
                        {"Id": str(k), "MessageBody": body} for k in range(10)])
                    if r.get("Failed"):
                        raise RuntimeError(r["Failed"])

            cpu0 = cpu_seconds(proc.pid)
            send_s = run_threads(args.threads, send)
            cpu1 = cpu_seconds(proc.pid)
            attrs = main_client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            stored = int(attrs["Attributes"]["ApproximateNumberOfMessages"])
            received = [0] * args.threads

            def drain(i: int) -> None:
                c = clients[i]
                empty = 0
                while empty < 2:
                    msgs = c.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=120).get(
                        "Messages", [])
                    if not msgs:
                        empty += 1
                        continue
                    empty = 0
                    received[i] += len(msgs)
                    c.delete_message_batch(QueueUrl=url, Entries=[
                        {"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]} for k, m in enumerate(msgs)])

            drain_s = run_threads(args.threads, drain)
            cpu2 = cpu_seconds(proc.pid)
            e2e = [
                end_to_end(endpoint, ak, sk, args.threads, 1, args.e2e_messages_batch1, body, proc.pid),
                end_to_end(endpoint, ak, sk, args.threads, 10, args.e2e_messages, body, proc.pid),
            ]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    got = sum(received)
    res = {
        "threads": args.threads,
        "message_bytes": args.size,
        "sent": total,
        "stored_after_send": stored,
        "send_seconds": round(send_s, 3),
        "send_messages_per_s": round(total / send_s),
        "send_batches_per_s": round(total / 10 / send_s),
        "received_and_deleted": got,
        "receive_delete_seconds": round(drain_s, 3),
        "receive_delete_messages_per_s": round(got / drain_s),
        "server_cpu_ms_per_message_send": round((cpu1 - cpu0) * 1000 / total, 4),
        "server_cpu_ms_per_message_receive_delete": round((cpu2 - cpu1) * 1000 / max(got, 1), 4),
        "end_to_end": e2e,
        "loadavg": open("/proc/loadavg").read().split()[:3],
        "binary": str(args.bin),
    }
    table = "\n".join([
        "| measure | value |", "| --- | --- |",
        f"| SendMessageBatch (10 x {args.size} B, durable), messages/s | {res['send_messages_per_s']} |",
        f"| SendMessageBatch calls/s | {res['send_batches_per_s']} |",
        f"| ReceiveMessage(10) + DeleteMessageBatch, messages/s | {res['receive_delete_messages_per_s']} |",
        f"| server CPU per message sent, ms | {res['server_cpu_ms_per_message_send']} |",
        f"| server CPU per message received and deleted, ms | {res['server_cpu_ms_per_message_receive_delete']} |",
        f"| messages sent / stored / received and deleted | {total} / {stored} / {got} |",
        *[f"| end to end (send -> warm Python function -> delete), batch {e['batch_size']}, messages/s "
          f"| {e['messages_per_s']} ({e['messages']} messages, server CPU {e['server_cpu_ms_per_message']} ms each) |"
          for e in e2e],
        f"| client threads | {args.threads} |",
        f"| load average at the end | {' '.join(res['loadavg'])} |",
    ])
    print(table)
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sqs.md").write_text(table + "\n")
    (out / "sqs.json").write_text(json.dumps(res, indent=2) + "\n")
    if stored != total or got != total:
        sys.exit(f"message count mismatch: sent {total}, stored {stored}, received {got}")


if __name__ == "__main__":
    main()
