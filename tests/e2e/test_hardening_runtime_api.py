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
