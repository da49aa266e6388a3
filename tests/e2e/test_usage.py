"""Usage metering: one record per invocation in `usage.db`, the report behind `updraft usage`, prices.

A private server per module (its usage is only this module's). Functions sleep a known time with
a known memory size; every invocation asks for its log tail, so the test knows each one's billed
duration from Lambda's `REPORT` line, and the report must equal the arithmetic over those.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import time
from urllib.parse import urlencode

import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import BIN, UpdraftServer, create_function, invoke, package_zip, unique_name

REQUEST_PRICE = 0.20 / 1_000_000
X86_GB_SECOND = 0.0000166667
ARM_GB_SECOND = 0.0000133334

HANDLER_SRC = """
import time

def handler(event, context):
    time.sleep(event.get("sleep_ms", 0) / 1000)
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"ok": True}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = UpdraftServer(tmp_path_factory.mktemp("updraft-usage"))
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client()


def deploy(lam, memory: int, **kwargs) -> str:
    name = unique_name("use")
    create_function(lam, name, package_zip({"app.py": HANDLER_SRC}), MemorySize=memory, **kwargs)
    return name


def billed_ms(res) -> int:
    m = re.search(r"Billed Duration: (\d+) ms", res.log or "")
    assert m, res
    return int(m.group(1))


def usage(srv: UpdraftServer, keys: tuple[str, str] | None = None, **params):
    creds = Credentials(*keys) if keys else None
    r = srv.signed_request("GET", "/updraft/v1/usage?" + urlencode(sorted(params.items())), credentials=creds)
    assert r.status == 200, r
    return r.json()


def row(report: dict, key_suffix: str) -> dict:
    rows = [r for r in report["Rows"] if r["Key"].endswith(key_suffix)]
    assert len(rows) == 1, report
    return rows[0]


def wait_requests(srv, name: str, want: int, since: int, keys=None) -> dict:
    """Records are written off the invoke path: poll until the function's row has them all."""
    deadline = time.monotonic() + 15
    while True:
        rep = usage(srv, keys, since=since, by="function")
        got = [r for r in rep["Rows"] if r["Key"].endswith("/" + name)]
        if got and got[0]["Requests"] + got[0]["Throttles"] >= want:
            return got[0]
        assert time.monotonic() < deadline, rep
        time.sleep(0.1)


def test_report_equals_the_arithmetic(srv, lam):
    since = int(time.time() * 1000) - 1000
    name = deploy(lam, 256)
    sleeps = [50, 120, 200, 80, 10]
    billed = []
    for ms in sleeps:
        res = invoke(lam, name, {"sleep_ms": ms}, LogType="Tail")
        assert res.status == 200 and res.function_error is None, res
        b = billed_ms(res)
        assert b >= ms
        billed.append(b)
    r = wait_requests(srv, name, len(sleeps), since)
    assert r["Requests"] == len(sleeps)
    assert r["BilledMs"] == sum(billed)
    gbs = sum(billed) * 256 / 1024 / 1000
    assert r["GBSeconds"] == pytest.approx(gbs, rel=1e-12)
    assert r["Cost"] == pytest.approx(len(sleeps) * REQUEST_PRICE + gbs * X86_GB_SECOND, rel=1e-9)
    assert r["Errors"] == 0 and r["Throttles"] == 0
    assert r["ColdStarts"] == 1
    assert r["Function"] == name and r["Account"] == lam.get_function(FunctionName=name)[
        "Configuration"]["FunctionArn"].split(":")[4]


def test_arm64_uses_its_own_price(srv, lam):
    since = int(time.time() * 1000) - 1000
    name = deploy(lam, 512, Architectures=["arm64"])
    res = invoke(lam, name, {"sleep_ms": 30}, LogType="Tail")
    b = billed_ms(res)
    r = wait_requests(srv, name, 1, since)
    gbs = b * 512 / 1024 / 1000
    assert r["Cost"] == pytest.approx(REQUEST_PRICE + gbs * ARM_GB_SECOND, rel=1e-9)


def test_errors_timeouts_and_throttles_have_their_outcome(srv, lam):
    since = int(time.time() * 1000) - 1000
    name = deploy(lam, 128, Timeout=1)
    ok = invoke(lam, name, {"sleep_ms": 1}, LogType="Tail")
    fail = invoke(lam, name, {"fail": True}, LogType="Tail")
    assert fail.function_error == "Unhandled", fail
    slow = invoke(lam, name, {"sleep_ms": 2500}, LogType="Tail")
    assert slow.function_error == "Unhandled" and "Task timed out" in (slow.log or ""), slow
    billed = billed_ms(ok) + billed_ms(fail) + billed_ms(slow)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    # No client-side retries: each call is one throttled invocation.
    once = srv.client(retries=0)
    for _ in range(2):
        with pytest.raises(ClientError) as e:
            once.invoke(FunctionName=name, Payload=b"{}")
        assert e.value.response["Error"]["Code"] == "TooManyRequestsException"
    r = wait_requests(srv, name, 5, since)
    assert (r["Requests"], r["Errors"], r["Timeouts"], r["Throttles"]) == (3, 2, 1, 2), r
    # Throttled invocations are not billed: neither requests nor duration.
    assert r["BilledMs"] == billed
    assert r["Cost"] == pytest.approx(3 * REQUEST_PRICE + billed * 128 / 1024000 * X86_GB_SECOND, rel=1e-9)
    # Each record is in usage.db with its outcome.
    db = sqlite3.connect(srv.data_dir / "usage.db")
    try:
        outcomes = sorted(o for (o,) in db.execute("SELECT outcome FROM usage WHERE function = ?", (name,)))
    finally:
        db.close()
    assert outcomes == ["function-error", "success", "throttle", "throttle", "timeout"]


def test_usage_by_tag_version_and_hour(srv, lam):
    since = int(time.time() * 1000) - 1000
    blue = deploy(lam, 128, Tags={"team": "blue-" + unique_name("t")})
    red = deploy(lam, 128)
    team_blue = lam.list_tags(Resource=lam.get_function(FunctionName=blue)["Configuration"]["FunctionArn"])[
        "Tags"]["team"]
    red_arn = lam.get_function(FunctionName=red)["Configuration"]["FunctionArn"]
    team_red = "red-" + unique_name("t")
    lam.tag_resource(Resource=red_arn, Tags={"team": team_red})
    billed = {blue: 0, red: 0}
    for name, n in ((blue, 2), (red, 3)):
        for _ in range(n):
            billed[name] += billed_ms(invoke(lam, name, {"sleep_ms": 5}, LogType="Tail"))
    wait_requests(srv, blue, 2, since)
    wait_requests(srv, red, 3, since)
    rep = usage(srv, since=since, by="tag:team")
    by_key = {r["Key"]: r for r in rep["Rows"]}
    assert by_key[team_blue]["Requests"] == 2 and by_key[team_blue]["BilledMs"] == billed[blue]
    assert by_key[team_red]["Requests"] == 3 and by_key[team_red]["BilledMs"] == billed[red]
    assert by_key[team_red]["Tag"] == team_red
    # A published version is its own row under by=version.
    v = lam.publish_version(FunctionName=red)["Version"]
    res = invoke(lam, red, {}, Qualifier=v)
    assert res.status == 200, res
    deadline = time.monotonic() + 15
    while True:
        rep = usage(srv, since=since, by="version")
        keys = {r["Key"].split("/", 1)[1] for r in rep["Rows"]}
        if f"{red}:{v}" in keys:
            break
        assert time.monotonic() < deadline, rep
        time.sleep(0.1)
    assert f"{red}:$LATEST" in keys
    hourly = usage(srv, since=since, by="hour")
    assert sum(r["Requests"] for r in hourly["Rows"]) == hourly["Total"]["Requests"] >= 6
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00Z", r["Hour"]) for r in hourly["Rows"]), hourly


def test_bad_parameters_are_refused(srv):
    for params in ({"by": "colour"}, {"since": "yesterday"}, {"since": "2000", "until": "1000"}):
        r = srv.signed_request("GET", "/updraft/v1/usage?" + urlencode(params))
        assert r.status == 400, (params, r)
        assert r.error_type == "InvalidParameterValueException", r


def cli(srv: UpdraftServer, *args: str, keys: tuple[str, str] | None = None) -> str:
    ak, sk = keys or srv.keys()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
    env.update(UPDRAFT_ENDPOINT=srv.endpoint, UPDRAFT_ACCESS_KEY_ID=ak, UPDRAFT_SECRET_ACCESS_KEY=sk)
    proc = subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_cli_prints_json_csv_and_a_table(srv, lam):
    since = int(time.time() * 1000) - 1000
    name = deploy(lam, 128)
    billed = sum(billed_ms(invoke(lam, name, {"sleep_ms": 20}, LogType="Tail")) for _ in range(3))
    wait_requests(srv, name, 3, since)
    out = json.loads(cli(srv, "usage", "--since", str(since), "--format", "json"))
    r = row(out, "/" + name)
    assert (r["Requests"], r["BilledMs"]) == (3, billed)
    assert {"Requests", "BilledMs", "GBSeconds", "Cost"} <= set(r)
    rows = list(csv.DictReader(io.StringIO(cli(srv, "usage", "--since", "10m", "--format", "csv"))))
    mine = [x for x in rows if x["Key"].endswith("/" + name)]
    assert len(mine) == 1 and mine[0]["Requests"] == "3" and mine[0]["BilledMs"] == str(billed), rows
    table = cli(srv, "usage", "--since", "1h", "--by", "account")
    assert "TOTAL" in table and "GBSeconds" in table, table


def test_an_account_sees_only_its_own_usage(srv, lam):
    since = int(time.time() * 1000) - 1000
    r = srv.signed_request("POST", "/updraft/admin/v1/accounts", json.dumps({"Name": "usage-b"}).encode())
    assert r.status == 201, r
    b = r.json()
    keys_b = (b["AccessKeyId"], b["SecretAccessKey"])
    lam_b = srv.client(access_key=keys_b[0], secret_key=keys_b[1])
    name_b = deploy(lam_b, 128)
    name_root = deploy(lam, 128)
    assert invoke(lam_b, name_b, {}).status == 200
    assert invoke(lam, name_root, {}).status == 200
    wait_requests(srv, name_b, 1, since, keys=keys_b)
    wait_requests(srv, name_root, 1, since)
    root_account = lam.get_function(FunctionName=name_root)["Configuration"]["FunctionArn"].split(":")[4]
    # B sees only B, even when it names another account.
    for params in ({}, {"account": root_account}):
        rep = usage(srv, keys_b, since=since, by="account", **params)
        assert [x["Key"] for x in rep["Rows"]] == [b["AccountId"]], rep
    # Root sees both, or one when it asks.
    rep = usage(srv, since=since, by="account")
    assert {b["AccountId"], root_account} <= {x["Key"] for x in rep["Rows"]}
    rep = usage(srv, since=since, by="account", account=b["AccountId"])
    assert [x["Key"] for x in rep["Rows"]] == [b["AccountId"]]
    out = json.loads(cli(srv, "usage", "--since", str(since), "--format", "json", keys=keys_b))
    assert {x["Account"] for x in out["Rows"]} == {b["AccountId"]}


def test_a_price_file_replaces_the_defaults(server_factory, tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({
        "Source": "test", "Currency": "EUR", "RequestsPerMillion": 1000000.0, "EphemeralStorageGBSecond": 0,
        "Architectures": {"x86_64": {"GBSecondTiers": [{"Price": 1.0}],
                                     "ProvisionedConcurrencyGBSecond": 0, "ProvisionedDurationGBSecond": 0}},
    }))
    s = server_factory(extra_args=("--prices", str(prices)))
    lam = s.client()
    since = int(time.time() * 1000) - 1000
    name = deploy(lam, 1024)
    b = billed_ms(invoke(lam, name, {"sleep_ms": 10}, LogType="Tail"))
    r = wait_requests(s, name, 1, since)
    assert r["Cost"] == pytest.approx(1.0 + b / 1000, rel=1e-12)
    assert usage(s, since=since)["Currency"] == "EUR"


def test_metering_off_stores_nothing(server_factory):
    s = server_factory(extra_args=("--metering", "off"))
    lam = s.client()
    name = deploy(lam, 128)
    assert invoke(lam, name, {}).status == 200
    r = s.signed_request("GET", "/updraft/v1/usage")
    assert r.status == 404 and r.error_type == "ResourceNotFoundException", r
    assert not (s.data_dir / "usage.db").exists()


def test_records_survive_a_restart(server_factory):
    s = server_factory(extra_args=("--usage-retention-days", "1"))
    lam = s.client()
    since = int(time.time() * 1000) - 1000
    name = deploy(lam, 128)
    for _ in range(2):
        assert invoke(lam, name, {}).status == 200
    wait_requests(s, name, 2, since)
    s.restart()
    assert usage(s, since=since)["Total"]["Requests"] == 2
