"""A function that attacks its own Runtime API, and a streaming client that stops reading.

- The Runtime API server lives in Updraft's process, so what it buffers for a function is the node's
  memory, outside the function's cgroup. A function that opens hundreds of connections posting large
  answers to its own invocation in parallel, then connects, asks for `/next` and hangs up in a loop,
  must not grow the server by more than a bounded amount (measured as the growth of the server's
  VmHWM), and the node must keep serving other functions and the attacker itself.
- A client of InvokeWithResponseStream that never reads while the function keeps writing must not pin
  the environment: after the node's stream write timeout the environment is released, which a later
  invocation of a function limited to one concurrent execution shows.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from conftest import FUNCTIONS, REGION, create_function, dir_zip, invoke, make_zip, unique_name

FLOOD = FUNCTIONS / "runtime_api_flood"
# Parallel posts and their size: with every body held at once the server would need
# CONNS × BODY_MIB MiB.
CONNS = 120
BODY_MIB = 5
NEXT_LOOPS = 3000
# The bound on the server's peak memory growth: one answer being read (6 MiB at most), the capped
# connections' buffers, and allocator slack; far below what the flood offers (600 MiB).
MAX_GROWTH_MIB = 48


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def test_runtime_api_flood_does_not_grow_server(server_factory):
    srv = server_factory()
    lam = srv.client()
    attacker = unique_name("flood")
    create_function(lam, attacker, dir_zip(FLOOD), MemorySize=512, Timeout=120)
    bystander = unique_name("calm")
    create_function(lam, bystander, make_zip())
    # Both warm, so that what follows measures the flood and not start-up.
    assert invoke(lam, attacker, {}).function_error is None
    assert invoke(lam, bystander, {"k": 1}).json() == {"k": 1}
    before = vm_hwm_kib(srv.proc.pid)

    r = invoke(lam, attacker, {"conns": CONNS, "body_mib": BODY_MIB, "next_loops": NEXT_LOOPS})
    after = vm_hwm_kib(srv.proc.pid)
    growth_mib = (after - before) / 1024
    print(f"server VmHWM {before} KiB -> {after} KiB (+{growth_mib:.1f} MiB); answer {r.body[:600]!r}")
    # The answer is the handler's own: none of the flood's posts became it.
    assert r.function_error is None, r
    out = r.json()
    assert out["request_id"] == r.request_id
    posts = out["posts"]
    # No post was heard out to its (missing) last byte.
    assert posts["fully_sent"] <= 1, posts
    assert out["next"]["sent"] + out["next"]["failed"] == NEXT_LOOPS, out
    assert growth_mib < MAX_GROWTH_MIB, f"server grew by {growth_mib:.1f} MiB: {posts}"

    # The node still serves: another function, and the attacker's own environment.
    assert invoke(lam, bystander, {"k": 2}).json() == {"k": 2}
    again = invoke(lam, attacker, {})
    assert again.function_error is None, again


STREAM_WRITER = FUNCTIONS / "stream_writer"
# The node's write timeout for the stalled-reader test, and the function's own timeout: the
# environment must come back long before the function could time out.
WRITE_TIMEOUT_S = 2
WRITER_TIMEOUT_S = 90
RELEASE_WITHIN_S = 45
# 150 chunks of 128 KiB (19 MiB, under the 20 MiB limit of streamed responses): far more than the
# socket buffers and the channels between the function and the client hold.
STALLED_EVENT = {"chunks": 150, "kib": 128, "gap_ms": 10}


def open_unread_stream(srv, name: str, event: dict) -> socket.socket:
    """Sends a signed InvokeWithResponseStream on a raw socket with a tiny receive window and
    returns the socket without reading anything from it."""
    path = f"/2021-11-15/functions/{name}/response-streaming-invocations"
    body = json.dumps(event).encode()
    req = AWSRequest(method="POST", url=srv.endpoint + path, data=body,
                     headers={"Content-Type": "application/json"})
    SigV4Auth(srv.credentials(), "lambda", REGION).add_auth(req)
    prepared = req.prepare()
    s = unread_socket(srv)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nContent-Length: {len(body)}\r\n"
    for k, v in prepared.headers.items():
        if k.lower() not in ("host", "content-length"):
            head += f"{k}: {v}\r\n"
    s.sendall(head.encode() + b"\r\n" + body)
    return s


def unread_socket(srv) -> socket.socket:
    """A connection to the server with a tiny receive window."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", srv.port))
    return s


def stalled_writer(server_factory):
    """A server with a short write timeout and a streaming function limited to one environment."""
    srv = server_factory(extra_args=("--write-timeout", str(WRITE_TIMEOUT_S)))
    lam = srv.client()
    name = unique_name("stall")
    create_function(lam, name, dir_zip(STREAM_WRITER), Runtime="nodejs20.x", Handler="index.handler",
                    Timeout=WRITER_TIMEOUT_S)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    return srv, lam, name


def assert_released_and_cut(lam, name: str, stalled: socket.socket, status_line: bytes, end_marker: bytes):
    """The function's one environment comes back long before the function could time out, and
    the server cut the stalled connection: what it had sent still arrives, then the end, and the
    response never completed."""
    # The stalled call holds the environment once its response has begun: wait for its first byte
    # (peeked, not read) so the invocations below cannot take the environment before it does.
    stalled.settimeout(60)
    assert stalled.recv(1, socket.MSG_PEEK), "the stalled call was never answered"
    started = time.monotonic()
    throttled = 0
    while True:
        try:
            r = invoke(lam, name, {"chunks": 2, "kib": 1})
            break
        except lam.exceptions.TooManyRequestsException:
            throttled += 1
            assert time.monotonic() - started < RELEASE_WITHIN_S, (
                f"the environment was still busy after {RELEASE_WITHIN_S}s ({throttled} throttles)"
            )
            time.sleep(0.5)
    assert r.function_error is None, r
    assert r.body == b"x" * 2048
    # The stalled call really held the environment for a while (it was not answered at once).
    assert throttled > 0

    stalled.settimeout(30)
    received = bytearray()
    try:
        while chunk := stalled.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    stalled.close()
    assert received.startswith(status_line), received[:200]
    assert end_marker not in received
    assert len(received) < STALLED_EVENT["chunks"] * STALLED_EVENT["kib"] * 1024


def test_a_stream_reader_that_stops_reading_releases_the_environment(server_factory):
    srv, lam, name = stalled_writer(server_factory)
    stalled = open_unread_stream(srv, name, STALLED_EVENT)
    # The event stream's last message would be InvokeComplete.
    assert_released_and_cut(lam, name, stalled, b"HTTP/1.1 200", b"InvokeComplete")


def test_a_function_url_reader_that_stops_reading_releases_the_environment(server_factory):
    srv, lam, name = stalled_writer(server_factory)
    cfg = lam.create_function_url_config(FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM")
    lam.add_permission(FunctionName=name, StatementId="FunctionURLAllowPublicAccess",
                       Action="lambda:InvokeFunctionUrl", Principal="*", FunctionUrlAuthType="NONE")
    lam.add_permission(FunctionName=name, StatementId="FunctionURLAllowInvokeAction",
                       Action="lambda:InvokeFunction", Principal="*", InvokedViaFunctionUrl=True)
    url_id = urlparse(cfg["FunctionUrl"]).hostname.split(".")[0]
    query = "&".join(f"{k}={v}" for k, v in STALLED_EVENT.items())
    stalled = unread_socket(srv)
    stalled.sendall(f"GET /lambda-url/{url_id}/?{query} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n\r\n"
                    .encode())
    # A chunked body ends with its empty last chunk.
    assert_released_and_cut(lam, name, stalled, b"HTTP/1.1 200", b"\r\n0\r\n\r\n")
