"""Adaptive keep-alive, end to end: a server started with `--keep-alive adaptive` and 1 s bins
learns a function's regular period, releases its environment as soon as it is idle, pre-warms one
before the next call, and reports it all on the admin stats route."""

from __future__ import annotations

import json
import time

import pytest
from botocore.credentials import Credentials

from conftest import UpdraftServer, create_function, make_zip, unique_name

STATS = "/updraft/admin/v1/engine/stats"
# Sleep between calls: idle times land in the 4–5 s bin, so the pre-warm window is 3.6 s and the
# keep-alive window ends at 5.5 s. The sleep sits 0.6 s below the bin's end: the time a call takes
# to reach the server on a loaded machine adds to the idle time the server sees, and must not push
# it into the next bin (with 100 ms bins and a 50 ms margin it did).
BIN_MS = 1000
PERIOD_S = 4.4
PREWARM_MS = 3600
MEMORY_MB = 128
LEARNING_CALLS = 6
CHECKED_CALLS = 4
# Each environment counts its own invocations: a fresh one answers 1.
APP = make_zip({
    "app.py": (
        "import os\n"
        "calls = 0\n"
        "def handler(event, context):\n"
        "    global calls\n"
        "    calls += 1\n"
        "    return {'calls': calls, 'init': os.environ.get('AWS_LAMBDA_INITIALIZATION_TYPE')}\n"
    )
})


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = UpdraftServer(
        tmp_path_factory.mktemp("updraft-keepalive"),
        extra_args=("--keep-alive", "adaptive", "--keep-alive-bin-ms", str(BIN_MS), "--idle-timeout", "300"),
    )
    s.start()
    yield s
    s.stop()


def stats(srv: UpdraftServer) -> dict:
    r = srv.signed_request("GET", STATS)
    assert r.status == 200, r
    return r.json()


def function_stats(srv: UpdraftServer, name: str) -> dict:
    found = [f for f in stats(srv)["Functions"] if f["FunctionArn"].endswith(":" + name)]
    assert len(found) == 1, found
    return found[0]


def call(lam, name: str) -> dict:
    r = lam.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in r, r
    return json.loads(r["Payload"].read())


def test_stats_route_shape_and_settings(srv):
    s = stats(srv)
    assert s["KeepAlive"] == {"Mode": "adaptive", "BinMs": BIN_MS, "Bins": 240, "IdleTimeoutMs": 300000}
    for key in ("ColdStarts", "WarmStarts", "PrewarmsStarted", "PrewarmsUsed", "IdleMiBSeconds", "IdleMiBNow"):
        assert key in s, s
    assert isinstance(s["Functions"], list)


def test_stats_route_is_for_the_root_account_only(srv):
    r = srv.signed_request("POST", "/updraft/admin/v1/accounts", b'{"Name": "tenant-ka"}')
    assert r.status == 201, r
    k = r.json()
    r = srv.signed_request("GET", STATS, credentials=Credentials(k["AccessKeyId"], k["SecretAccessKey"]))
    assert r.status == 403, r
    assert r.error_type == "AccessDeniedException"


def test_a_periodic_function_is_prewarmed_after_learning(srv):
    lam = srv.client()
    name = unique_name("ka")
    create_function(lam, name, APP, MemorySize=MEMORY_MB)

    # Learning: the histogram is not trusted before five idle times, so the fixed keep-alive
    # (300 s) keeps the first environment and every call after the first is warm.
    for i in range(LEARNING_CALLS):
        if i:
            time.sleep(PERIOD_S)
        assert call(lam, name)["calls"] == i + 1
    f = function_stats(srv, name)
    assert (f["ColdStarts"], f["WarmStarts"], f["PrewarmsStarted"]) == (1, LEARNING_CALLS - 1, 0), f
    assert f["IdleSamples"] == LEARNING_CALLS - 1, f

    # From now on the function is released when idle and pre-warmed before each call: every call
    # gets a fresh environment (its count starts at 1) that nobody invoked before, and none of
    # them is a cold start.
    for _ in range(CHECKED_CALLS):
        time.sleep(PERIOD_S)
        out = call(lam, name)
        assert out == {"calls": 1, "init": "on-demand"}, out

    f = function_stats(srv, name)
    assert f["ColdStarts"] == 1, f
    assert f["WarmStarts"] == LEARNING_CALLS - 1 + CHECKED_CALLS, f
    # One pre-warm before each checked call; one more only if the next one became due while the
    # stats were read.
    assert CHECKED_CALLS <= f["PrewarmsStarted"] <= CHECKED_CALLS + 1, f
    assert f["PrewarmsUsed"] == CHECKED_CALLS, f
    window = f["Window"]
    assert window is not None and not window["Fallback"], f
    assert window["PrewarmMs"] == PREWARM_MS, window
    # While learning, the one environment sat idle between calls (the sleeps); the keeper adds the
    # idle memory at every tick (a quarter bin), so each gap is counted to within one tick.
    learning_idle_s = (LEARNING_CALLS - 1) * (PERIOD_S - BIN_MS / 4 / 1000)
    assert f["IdleMiBSeconds"] >= MEMORY_MB * learning_idle_s, f
    s = stats(srv)
    # This module's server runs no other function.
    assert s["PrewarmsUsed"] == CHECKED_CALLS, s
    assert s["IdleMiBSeconds"] >= f["IdleMiBSeconds"], s
