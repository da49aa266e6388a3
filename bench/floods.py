#!/usr/bin/env python3
"""The node's memory under two floods: anonymous large bodies, and a function flooding its own Runtime API.

1. `anonymous`: `--conns` connections at once each announce and start sending a `--body-mib` MiB body, half with no
   credentials and half signed with an unknown access key; each should get its 403 without the server buffering
   the body.
2. `runtime-api`: a function (tests/functions/runtime_api_flood) opens 120 Runtime API connections posting 5 MiB
   answers to its own invocation in parallel, then connects, asks for `/next` and hangs up 3,000 times.

For each, the growth of the server's peak resident memory (VmHWM) is reported.

    .venv/bin/python bench/floods.py --binary target/release/updraft [--binary other/updraft ...]

Every loop is bounded; the only target is a server this script starts on 127.0.0.1 with its own temporary data
directory.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from config_writes import ROLE, Server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FLOOD_FN = REPO / "tests" / "functions" / "runtime_api_flood"


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def anonymous_flood(srv: Server, conns: int, body_mib: int) -> tuple[float, dict[str, int]]:
    before = vm_hwm_mib(srv.proc.pid)
    answers: dict[str, int] = {}
    lock = threading.Lock()
    chunk = b"x" * (1 << 20)

    def one(i: int) -> None:
        auth = "" if i % 2 == 0 else (
            "Authorization: AWS4-HMAC-SHA256 Credential=AKIANOSUCHKEY0000000/20260101/us-east-1/lambda/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64 + "\r\nX-Amz-Date: 20260101T000000Z\r\n")
        head = (f"POST /2015-03-31/functions HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {body_mib << 20}\r\n{auth}\r\n")
        status = "no answer"
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
                s.sendall(head.encode())
                try:
                    for _ in range(body_mib):
                        s.sendall(chunk)
                except OSError:
                    pass  # the server answered and closed: what it should do
                s.settimeout(30)
                data = s.recv(4096)
                status = data.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
        except OSError as e:
            status = type(e).__name__
        with lock:
            answers[status] = answers.get(status, 0) + 1

    threads = [threading.Thread(target=one, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return vm_hwm_mib(srv.proc.pid) - before, answers


def flood_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in FLOOD_FN.iterdir():
            zf.write(f, f.name)
    return buf.getvalue()


def runtime_api_flood(srv: Server) -> tuple[float, str]:
    lam = srv.client()
    lam.create_function(FunctionName="flood", Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": flood_zip()}, Timeout=120, MemorySize=512)
    lam.get_waiter("function_active_v2").wait(FunctionName="flood", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    lam.invoke(FunctionName="flood", Payload=b"{}")  # warm: measure the flood, not the start
    before = vm_hwm_mib(srv.proc.pid)
    r = lam.invoke(FunctionName="flood", Payload=json.dumps({"conns": 120, "body_mib": 5, "next_loops": 3000}))
    out = json.loads(r["Payload"].read() or b"{}")
    summary = f"posts fully sent {out.get('posts', {}).get('fully_sent')}, /next loops {out.get('next')}"
    return vm_hwm_mib(srv.proc.pid) - before, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", action="append", required=True, type=Path)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--body-mib", type=int, default=60)
    args = ap.parse_args()
    rows = []
    for binary in args.binary:
        # A fresh server for each flood: VmHWM is a peak, so the second flood would hide below the first's.
        for flood in ("anonymous", "runtime-api"):
            with tempfile.TemporaryDirectory(prefix="updraft-floods-") as work:
                srv = Server(binary, Path(work))
                try:
                    start = vm_hwm_mib(srv.proc.pid)
                    if flood == "anonymous":
                        t0 = time.monotonic()
                        grew, answers = anonymous_flood(srv, args.conns, args.body_mib)
                        note = f"{answers} in {time.monotonic() - t0:.1f} s"
                        what = f"anonymous {args.conns} x {args.body_mib} MiB"
                    else:
                        start_flood = time.monotonic()
                        grew, note = runtime_api_flood(srv)
                        start = vm_hwm_mib(srv.proc.pid) - grew
                        note += f" ({time.monotonic() - start_flood:.1f} s)"
                        what = "runtime-api 120 x 5 MiB posts + 3000 /next"
                    rows.append((str(binary), what, start, grew, note))
                finally:
                    srv.stop()
    print("| binary | flood | server VmHWM before (MiB) | growth (MiB) | answers |")
    print("| --- | --- | ---: | ---: | --- |")
    for b, what, start, grew, note in rows:
        print(f"| {b} | {what} | {start:.1f} | {grew:.1f} | {note} |")


if __name__ == "__main__":
    main()
