"""Adaptive keep-alive, end to end: a server started with `--keep-alive adaptive` and 100 ms bins
learns a function's regular period, releases its environment as soon as it is idle, pre-warms one
before the next call, and reports it all on the admin stats route."""

from __future__ import annotations

import json
import time

import pytest
from botocore.credentials import Credentials

from conftest import UpdraftServer, create_function, make_zip, unique_name

STATS = "/updraft/admin/v1/engine/stats"
# Sleep between calls: idle times land in the 1.9–2.0 s bin, so the pre-warm window is 1.71 s and
# the keep-alive window ends at 2.2 s.
PERIOD_S = 1.95
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
        extra_args=("--keep-alive", "adaptive", "--keep-alive-bin-ms", "100", "--idle-timeout", "300"),
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
    assert s["KeepAlive"] == {"Mode": "adaptive", "BinMs": 100, "Bins": 240, "IdleTimeoutMs": 300000}
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
    create_function(lam, name, APP)

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
    assert f["PrewarmsStarted"] >= CHECKED_CALLS, f
    assert f["PrewarmsUsed"] == CHECKED_CALLS, f
    window = f["Window"]
    assert window is not None and not window["Fallback"], f
    assert 1000 <= window["PrewarmMs"] <= 1800, window
    s = stats(srv)
    assert s["PrewarmsUsed"] >= CHECKED_CALLS
    assert s["IdleMiBSeconds"] > 0
