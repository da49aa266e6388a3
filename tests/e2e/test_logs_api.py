"""CloudWatch Logs: the Logs API (`X-Amz-Target: Logs_20140328.*`) over functions' log streams and groups
written with PutLogEvents, driven with boto3 and the aws CLI.

`aws logs tail` is a command of the aws CLI v2, which is not published on PyPI; the CLI this suite installs
(v1) lacks it. `tail_once` and `FOLLOW_SCRIPT` make exactly the calls `aws logs tail` and `aws logs tail
--follow` make (FilterLogEvents from a start time, following nextToken; when following, the same call again
every few seconds from the newest timestamp seen, skipping event ids already printed), so the server is
exercised the way that command exercises it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import REGION, UpdraftServer, invoke_ok, unique_name

STREAM_NAME = re.compile(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}")

PRINTER = {
    "app.py": (
        "def handler(event, context):\n"
        "    for line in event.get('lines', []):\n"
        "        print(line, flush=True)\n"
        "    big = event.get('big')\n"
        "    if big:\n"
        "        print('B' * big, flush=True)\n"
        "    return {'ok': True}\n"
    )
}


@pytest.fixture(scope="module")
def logs(server):
    return server.client("logs")


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_for(fn, timeout: float = 15.0, every: float = 0.1):
    deadline = time.time() + timeout
    while True:
        got = fn()
        if got or time.time() > deadline:
            return got
        time.sleep(every)


def tail_once(client, group: str, since_ms: int, pattern: str = "") -> list[dict]:
    """What `aws logs tail GROUP --since …` asks for."""
    kwargs = {"logGroupName": group, "startTime": since_ms, "interleaved": True}
    if pattern:
        kwargs["filterPattern"] = pattern
    out = []
    for page in client.get_paginator("filter_log_events").paginate(**kwargs):
        out.extend(page["events"])
    return out


# The loop of `aws logs tail --follow`: poll FilterLogEvents from the newest timestamp seen, print unseen ids.
FOLLOW_SCRIPT = r"""
import sys, time, boto3
endpoint, ak, sk, group, since = sys.argv[1:6]
c = boto3.client("logs", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id=ak, aws_secret_access_key=sk)
start, seen = int(since), set()
while True:
    kwargs = {"logGroupName": group, "startTime": start, "interleaved": True}
    while True:
        resp = c.filter_log_events(**kwargs)
        for e in resp["events"]:
            if e["eventId"] not in seen:
                seen.add(e["eventId"])
                print(e["logStreamName"], e["message"], flush=True)
            start = max(start, e["timestamp"])
        if "nextToken" not in resp:
            break
        kwargs["nextToken"] = resp["nextToken"]
    time.sleep(0.5)
"""


@pytest.fixture(scope="module")
def printer(deploy):
    return deploy(PRINTER)


def messages(events) -> list[str]:
    return [e["message"] for e in events]


def test_function_lines_come_back_through_filter_tail_and_describe(server, lam, logs, printer, aws_cli):
    since = now_ms() - 1000
    marker = unique_name("line")
    invoke_ok(lam, printer, {"lines": [f"{marker} one", f"{marker} two"]})
    group = f"/aws/lambda/{printer}"

    got = wait_for(lambda: [m for m in messages(tail_once(logs, group, since)) if marker in m])
    assert got == [f"{marker} one", f"{marker} two"]
    # The platform's lines are there too, in order around the function's own.
    all_msgs = messages(tail_once(logs, group, since))
    start = next(i for i, m in enumerate(all_msgs) if m.startswith("START RequestId:"))
    assert all_msgs.index(f"{marker} one") > start
    assert any(m.startswith("REPORT RequestId:") for m in all_msgs)

    out = json.loads(aws_cli("logs", "filter-log-events", "--log-group-name", group,
                             "--filter-pattern", f'"{marker} two"').stdout)
    assert messages(out["events"]) == [f"{marker} two"]
    ev = out["events"][0]
    assert STREAM_NAME.fullmatch(ev["logStreamName"]), ev
    assert ev["timestamp"] >= since and ev["eventId"]

    groups = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [group]
    acct = server.keys() and groups[0]["arn"].split(":")[4]
    assert groups[0]["arn"] == f"arn:aws:logs:{REGION}:{acct}:log-group:{group}:*"
    assert groups[0]["storedBytes"] > 0 and "retentionInDays" not in groups[0]

    streams = logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime", descending=True)["logStreams"]
    assert streams and all(STREAM_NAME.fullmatch(s["logStreamName"]) for s in streams)
    s = streams[0]
    assert s["firstEventTimestamp"] <= s["lastEventTimestamp"] and s["storedBytes"] > 0

    out = json.loads(aws_cli("logs", "get-log-events", "--log-group-name", group, "--log-stream-name",
                             s["logStreamName"], "--start-from-head").stdout)
    assert f"{marker} one" in messages(out["events"])
    assert out["nextForwardToken"].startswith("f/") and out["nextBackwardToken"].startswith("b/")


def test_tail_follow_sees_lines_logged_after_it_started(server, lam, printer):
    ak, sk = server.keys()
    group = f"/aws/lambda/{printer}"
    proc = subprocess.Popen([sys.executable, "-c", FOLLOW_SCRIPT, server.endpoint, ak, sk, group, str(now_ms())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        markers = [unique_name("follow") for _ in range(3)]
        for m in markers:
            invoke_ok(lam, printer, {"lines": [m]})
            time.sleep(0.3)
        # Let it poll for a few seconds, then stop it as a user would.
        time.sleep(3.0)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    lines = out.splitlines()
    for m in markers:
        assert sum(1 for line in lines if line.endswith(" " + m)) == 1, (m, out, err)
    seen = [next(i for i, line in enumerate(lines) if line.endswith(" " + m)) for m in markers]
    assert seen == sorted(seen)


def test_get_log_events_pages_forward_and_backward(logs):
    group = "/updraft/test/" + unique_name("pages")
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s1")
    base = now_ms() - 60_000
    logs.put_log_events(logGroupName=group, logStreamName="s1",
                        logEvents=[{"timestamp": base + i, "message": f"event {i}"} for i in range(250)])

    got, token, pages = [], None, 0
    while True:
        kw = {"nextToken": token} if token else {"startFromHead": True}
        page = logs.get_log_events(logGroupName=group, logStreamName="s1", limit=100, **kw)
        pages += 1
        if page["nextForwardToken"] == token:
            assert page["events"] == []
            break
        got.extend(messages(page["events"]))
        token = page["nextForwardToken"]
        assert pages < 10
    assert got == [f"event {i}" for i in range(250)]
    assert pages == 4

    # Without startFromHead: the newest page first, then backwards.
    last = logs.get_log_events(logGroupName=group, logStreamName="s1", limit=100)
    assert messages(last["events"]) == [f"event {i}" for i in range(150, 250)]
    prev = logs.get_log_events(logGroupName=group, logStreamName="s1", limit=100,
                               nextToken=last["nextBackwardToken"])
    assert messages(prev["events"]) == [f"event {i}" for i in range(50, 150)]
    # Time bounds.
    window = logs.get_log_events(logGroupName=group, logStreamName="s1", startTime=base + 10,
                                 endTime=base + 15, startFromHead=True)
    assert messages(window["events"]) == [f"event {i}" for i in range(10, 15)]

    # FilterLogEvents pages chain to the whole stream too.
    fl, ftoken = [], None
    while True:
        kw = {"nextToken": ftoken} if ftoken else {}
        page = logs.filter_log_events(logGroupName=group, limit=70, **kw)
        fl.extend(messages(page["events"]))
        ftoken = page.get("nextToken")
        if not ftoken:
            break
    assert fl == [f"event {i}" for i in range(250)]

    with pytest.raises(ClientError) as e:
        logs.get_log_events(logGroupName=group, logStreamName="nope")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        logs.get_log_events(logGroupName=group, logStreamName="s1", nextToken="x/1")
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"


def test_filter_patterns_terms_and_json(logs, aws_cli):
    group = "/updraft/test/" + unique_name("filter")
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="a")
    logs.create_log_stream(logGroupName=group, logStreamName="b")
    t = now_ms() - 10_000
    logs.put_log_events(logGroupName=group, logStreamName="a", logEvents=[
        {"timestamp": t, "message": "ERROR db timeout"},
        {"timestamp": t + 2, "message": "WARN cache miss"},
        {"timestamp": t + 4, "message": json.dumps({"level": "ERROR", "latency": 150, "user": {"id": "u1"}})},
    ])
    logs.put_log_events(logGroupName=group, logStreamName="b", logEvents=[
        {"timestamp": t + 1, "message": "INFO all good"},
        {"timestamp": t + 3, "message": "ERROR cache down"},
        {"timestamp": t + 5, "message": json.dumps({"level": "INFO", "latency": 50})},
    ])

    def f(pattern: str) -> list[str]:
        return messages(logs.filter_log_events(logGroupName=group, filterPattern=pattern)["events"])

    assert len(f("")) == 6
    assert f("ERROR") == ["ERROR db timeout", "ERROR cache down"] + [m for m in f("ERROR") if m.startswith("{")]
    assert f("ERROR -cache") == ["ERROR db timeout", f("ERROR -cache")[1]]
    assert f("ERROR cache") == ["ERROR cache down"]
    assert f('"cache miss"') == ["WARN cache miss"]
    assert f("?WARN ?INFO") == ["INFO all good", "WARN cache miss", '{"level": "INFO", "latency": 50}']
    assert [json.loads(m)["latency"] for m in f('{ $.level = "ERROR" }')] == [150]
    assert [json.loads(m)["latency"] for m in f("{ $.latency > 100 }")] == [150]
    assert [json.loads(m)["latency"] for m in f('{ $.latency < 100 || $.user.id = "u1" }')] == [150, 50]
    assert f('{ $.level = "INFO" && $.latency > 100 }') == []
    assert f("[level, what, state]") == ["ERROR db timeout", "INFO all good", "WARN cache miss", "ERROR cache down"]
    assert f("[level = WARN, ...]") == ["WARN cache miss"]
    # Events come back interleaved across streams, oldest first, with the stream named.
    evs = logs.filter_log_events(logGroupName=group, filterPattern="cache")["events"]
    assert [(e["logStreamName"], e["message"]) for e in evs] == [("a", "WARN cache miss"), ("b", "ERROR cache down")]
    only_b = logs.filter_log_events(logGroupName=group, logStreamNames=["b"], filterPattern="ERROR")["events"]
    assert messages(only_b) == ["ERROR cache down"]

    out = json.loads(aws_cli("logs", "filter-log-events", "--log-group-name", group,
                             "--filter-pattern", '{ $.latency > 100 }').stdout)
    assert len(out["events"]) == 1 and json.loads(out["events"][0]["message"])["level"] == "ERROR"

    with pytest.raises(ClientError) as e:
        logs.filter_log_events(logGroupName=group, filterPattern='{ $.latency > "x" }')
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_put_log_events_rules_and_group_lifecycle(logs):
    group = "/updraft/test/" + unique_name("life")
    logs.create_log_group(logGroupName=group)
    with pytest.raises(ClientError) as e:
        logs.create_log_group(logGroupName=group)
    assert e.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as e:
        logs.put_log_events(logGroupName=group, logStreamName="missing",
                            logEvents=[{"timestamp": now_ms(), "message": "x"}])
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    with pytest.raises(ClientError) as e:
        logs.create_log_stream(logGroupName=group, logStreamName="s")
    assert e.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    t = now_ms()
    with pytest.raises(ClientError) as e:
        logs.put_log_events(logGroupName=group, logStreamName="s",
                            logEvents=[{"timestamp": t, "message": "b"}, {"timestamp": t - 5, "message": "a"}])
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
            {"timestamp": t - 2 * 86_400_000, "message": "a"}, {"timestamp": t, "message": "b"}])
    assert "24 hours" in e.value.response["Error"]["Message"]
    r = logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
        {"timestamp": t - 20 * 86_400_000, "message": "too old"},
        {"timestamp": t - 20 * 86_400_000 + 5, "message": "too old too"}])
    assert r["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 2}
    r = logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
        {"timestamp": t, "message": "kept\nacross lines"},
        {"timestamp": t + 3 * 3_600_000, "message": "too new"},
    ])
    assert r["rejectedLogEventsInfo"] == {"tooNewLogEventStartIndex": 1}
    evs = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True)["events"]
    assert [e["message"] for e in evs] == ["kept\racross lines"]
    with pytest.raises(ClientError) as e:
        logs.put_retention_policy(logGroupName=group, retentionInDays=2)
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    logs.delete_log_group(logGroupName=group)
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"] == []
    with pytest.raises(ClientError) as e:
        logs.delete_log_group(logGroupName=group)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        logs.describe_log_streams(logGroupName=group)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_300kb_line_is_split_as_lambda_splits_it(lam, logs, printer):
    since = now_ms() - 1000
    invoke_ok(lam, printer, {"big": 300 * 1024})
    group = f"/aws/lambda/{printer}"
    got = wait_for(lambda: [m for m in messages(tail_once(logs, group, since)) if m.startswith("BBB")])
    assert [len(m) for m in got] == [256 * 1024, 300 * 1024 - 256 * 1024]
    assert "".join(got) == "B" * (300 * 1024)


def test_retention_hides_and_sweeps_old_events(server_factory):
    srv: UpdraftServer = server_factory(extra_args=("--logs-sweep-ms", "200"))
    logs = srv.client("logs")
    group = "/updraft/retention"
    logs.create_log_group(logGroupName=group)
    for s in ("old-only", "mixed"):
        logs.create_log_stream(logGroupName=group, logStreamName=s)
    t = now_ms()
    three_days = t - 3 * 86_400_000
    logs.put_log_events(logGroupName=group, logStreamName="old-only",
                        logEvents=[{"timestamp": three_days, "message": "ancient"}])
    logs.put_log_events(logGroupName=group, logStreamName="mixed",
                        logEvents=[{"timestamp": three_days, "message": "ancient too"}])
    logs.put_log_events(logGroupName=group, logStreamName="mixed", logEvents=[{"timestamp": t, "message": "fresh"}])
    assert len(logs.filter_log_events(logGroupName=group)["events"]) == 3

    logs.put_retention_policy(logGroupName=group, retentionInDays=1)
    g = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]
    assert g["retentionInDays"] == 1
    assert messages(logs.filter_log_events(logGroupName=group)["events"]) == ["fresh"]
    assert messages(logs.get_log_events(logGroupName=group, logStreamName="mixed",
                                        startFromHead=True)["events"]) == ["fresh"]
    gone = wait_for(lambda: [s["logStreamName"] for s in
                             logs.describe_log_streams(logGroupName=group)["logStreams"]] == ["mixed"], timeout=10)
    assert gone
    # An expired event is refused as such.
    r = logs.put_log_events(logGroupName=group, logStreamName="mixed",
                            logEvents=[{"timestamp": three_days, "message": "late"}])
    assert r["rejectedLogEventsInfo"] == {"expiredLogEventEndIndex": 1}

    logs.delete_retention_policy(logGroupName=group)
    g = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]
    assert "retentionInDays" not in g


def test_node_cap_drops_the_oldest_streams_first(server_factory):
    srv: UpdraftServer = server_factory(extra_args=("--logs-max-mb", "1", "--logs-sweep-ms", "200"))
    logs = srv.client("logs")
    group = "/updraft/cap"
    logs.create_log_group(logGroupName=group)
    chunk = "z" * 1000
    all_streams = [f"s{i:02}" for i in range(12)]
    for s in all_streams:
        # 100 KB per stream; the sweeper runs between them and keeps room for the next.
        logs.create_log_stream(logGroupName=group, logStreamName=s)
        logs.put_log_events(logGroupName=group, logStreamName=s,
                            logEvents=[{"timestamp": now_ms(), "message": f"{s} {chunk}"} for _ in range(100)])
        time.sleep(0.3)

    def streams():
        return logs.describe_log_streams(logGroupName=group)["logStreams"]

    assert wait_for(lambda: sum(s["storedBytes"] for s in streams()) <= 1024 * 1024, timeout=10)
    kept = [s["logStreamName"] for s in streams()]
    # The oldest went first; the newest are whole.
    assert 1 <= len(kept) <= 10 and kept == all_streams[-len(kept):], kept
    newest = logs.filter_log_events(logGroupName=group, logStreamNames=["s11"])["events"]
    assert len(newest) == 100
    assert "removed the oldest streams" in srv.logs()


def test_a_flooding_function_is_capped_and_its_newest_lines_kept(server_factory):
    srv: UpdraftServer = server_factory(extra_args=("--logs-max-mb", "1", "--logs-sweep-ms", "200"))
    lam, logs = srv.client(), srv.client("logs")
    from conftest import create_function, package_zip
    name = unique_name("flood")
    create_function(lam, name, package_zip({"app.py": (
        "def handler(event, context):\n"
        "    line = 'f' * 200\n"
        "    for i in range(event['n']):\n"
        "        print(i, line)\n"
        "    print('LAST-LINE', flush=True)\n"
        "    return 'done'\n")}), Runtime="python3.12", Handler="app.handler", Timeout=60)
    assert invoke_ok(lam, name, {"n": 25_000}) == "done"  # about 5 MB of output
    group = f"/aws/lambda/{name}"

    def total():
        return sum(s["storedBytes"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"])

    assert wait_for(lambda: total() <= 1024 * 1024, timeout=15), total()
    # The environment went on in new streams as each filled; the oldest were removed first.
    assert len(logs.describe_log_streams(logGroupName=group)["logStreams"]) >= 2
    first = logs.filter_log_events(logGroupName=group, filterPattern='"0 fff"')["events"]
    assert not [e for e in first if e["message"].startswith("0 ")]
    # The node keeps logging once room is made: the next invocation's lines arrive.
    assert invoke_ok(lam, name, {"n": 3}) == "done"
    assert wait_for(lambda: len(logs.filter_log_events(logGroupName=group, filterPattern="LAST-LINE")["events"]) >= 1)
    assert "removed the oldest streams" in srv.logs()


def test_one_account_never_reads_anothers_logs(server, lam, logs, printer):
    invoke_ok(lam, printer, {"lines": ["secret line"]})
    group = f"/aws/lambda/{printer}"
    r = server.signed_request("POST", "/updraft/admin/v1/accounts", json.dumps({"Name": unique_name("t")}).encode())
    assert r.status == 201, r
    other = r.json()
    theirs = server.client("logs", access_key=other["AccessKeyId"], secret_key=other["SecretAccessKey"])
    root_account = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["arn"].split(":")[4]
    assert theirs.describe_log_groups()["logGroups"] == []
    for call in (
        lambda: theirs.filter_log_events(logGroupName=group),
        lambda: theirs.describe_log_streams(logGroupName=group),
        lambda: theirs.filter_log_events(logGroupIdentifier=f"arn:aws:logs:{REGION}:{root_account}:log-group:{group}"),
        lambda: theirs.put_retention_policy(logGroupName=group, retentionInDays=1),
        lambda: theirs.delete_log_group(logGroupName=group),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # Their own group of the same name is theirs alone.
    theirs.create_log_group(logGroupName=group)
    assert theirs.filter_log_events(logGroupName=group)["events"] == []
    assert "secret line" in messages(logs.filter_log_events(logGroupName=group)["events"])


def test_requests_signed_for_another_service_are_refused(server):
    r = server.signed_request("POST", "/", b"{}", headers={
        "X-Amz-Target": "Logs_20140328.DescribeLogGroups", "Content-Type": "application/x-amz-json-1.1"})
    assert r.status == 403 and r.error_type == "InvalidSignatureException", r


PY_LEVELS = {
    "app.py": (
        "import logging\n"
        "log = logging.getLogger('orders')\n"
        "def handler(event, context):\n"
        "    log.debug('debug %s', event['m'])\n"
        "    log.info('info %s', event['m'], extra={'orderId': 7})\n"
        "    log.warning('warn %s', event['m'])\n"
        "    log.error('error %s', event['m'])\n"
        "    print('plain ' + event['m'])\n"
        "    return 'ok'\n"
    )
}

NODE_LEVELS = {
    "index.mjs": (
        "export const handler = async (event) => {\n"
        "  console.debug('debug ' + event.m);\n"
        "  console.log('info', event.m);\n"
        "  console.warn('warn ' + event.m);\n"
        "  console.error(new Error('boom ' + event.m));\n"
        "  return 'ok';\n"
        "};\n"
    )
}


def json_records(client, group: str, since: int, marker: str, want: int) -> list[dict]:
    def read():
        out = []
        for m in messages(tail_once(client, group, since)):
            if marker in m:
                out.append(m)
        return out if len(out) >= want else []
    got = wait_for(read)
    return got


def test_json_format_and_level_filtering_python(lam, logs, deploy):
    name = deploy(PY_LEVELS, LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "WARN"})
    cfg = lam.get_function_configuration(FunctionName=name)["LoggingConfig"]
    assert cfg == {"LogFormat": "JSON", "ApplicationLogLevel": "WARN", "SystemLogLevel": "INFO",
                   "LogGroup": f"/aws/lambda/{name}"}
    since = now_ms() - 1000
    marker = unique_name("py")
    inv = lam.invoke(FunctionName=name, Payload=json.dumps({"m": marker}))
    request_id = inv["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    group = f"/aws/lambda/{name}"
    got = json_records(logs, group, since, marker, 3)
    # print() stays plain text; logging records are JSON, below WARN dropped.
    assert f"plain {marker}" in got
    recs = [json.loads(m) for m in got if m.startswith("{")]
    assert [(r["level"], r["message"]) for r in recs] == [("WARNING", f"warn {marker}"), ("ERROR", f"error {marker}")]
    for r in recs:
        assert r["logger"] == "orders" and r["requestId"] == request_id
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["timestamp"])
    # Platform records are JSON objects too.
    platform = [json.loads(m) for m in messages(tail_once(logs, group, since)) if m.startswith('{"record"')
                or '"type":"platform.' in m]
    types = [p["type"] for p in platform if p["record"].get("requestId") == request_id]
    assert types == ["platform.start", "platform.report"], platform
    report = next(p for p in platform if p["type"] == "platform.report")
    assert report["record"]["status"] == "success"
    assert set(report["record"]["metrics"]) >= {"durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB"}
    # JSON patterns work on what the function logged.
    hits = logs.filter_log_events(logGroupName=group, filterPattern='{ $.level = "ERROR" }')["events"]
    assert any(marker in e["message"] for e in hits)

    # Lower the level: DEBUG lines and `extra` fields appear.
    lam.update_function_configuration(FunctionName=name, LoggingConfig={"ApplicationLogLevel": "DEBUG"})
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    marker2 = unique_name("py")
    invoke_ok(lam, name, {"m": marker2})
    recs = [json.loads(m) for m in json_records(logs, group, since, marker2, 5) if m.startswith("{")]
    assert [r["level"] for r in recs] == ["DEBUG", "INFO", "WARNING", "ERROR"]
    assert recs[1]["orderId"] == 7


def test_json_format_and_level_filtering_node(lam, logs, deploy):
    name = deploy(NODE_LEVELS, runtime="nodejs20.x", handler="index.handler",
                  LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "SystemLogLevel": "WARN"})
    since = now_ms() - 1000
    marker = unique_name("node")
    inv = lam.invoke(FunctionName=name, Payload=json.dumps({"m": marker}))
    request_id = inv["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    group = f"/aws/lambda/{name}"
    recs = [json.loads(m) for m in json_records(logs, group, since, marker, 3)]
    assert [(r["level"], r["message"].split("\n")[0]) for r in recs] == [
        ("INFO", f"info {marker}"), ("WARN", f"warn {marker}"), ("ERROR", f"Error: boom {marker}")]
    assert all(r["requestId"] == request_id for r in recs)
    assert recs[2]["errorType"] == "Error" and recs[2]["errorMessage"] == f"boom {marker}"
    assert isinstance(recs[2]["stackTrace"], list)
    # SystemLogLevel WARN: a successful invocation writes no platform records.
    time.sleep(0.5)
    assert not [m for m in messages(tail_once(logs, group, since)) if '"platform.' in m]


def test_text_format_stays_the_default_and_levels_need_json(lam, deploy):
    name = deploy(PRINTER)
    assert lam.get_function_configuration(FunctionName=name)["LoggingConfig"] == {
        "LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"}
    with pytest.raises(ClientError) as e:
        lam.update_function_configuration(FunctionName=name, LoggingConfig={"ApplicationLogLevel": "DEBUG"})
    assert e.value.response["Error"]["Code"] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as e:
        lam.update_function_configuration(FunctionName=name, LoggingConfig={"LogFormat": "XML"})
    assert e.value.response["Error"]["Code"] == "ValidationException"


def test_custom_log_group_receives_the_functions_logs(lam, logs, deploy):
    group = "/custom/" + unique_name("grp")
    name = deploy(PRINTER, LoggingConfig={"LogFormat": "Text", "LogGroup": group})
    since = now_ms() - 1000
    marker = unique_name("cg")
    invoke_ok(lam, name, {"lines": [marker]})
    assert wait_for(lambda: marker in messages(tail_once(logs, group, since)))
    assert [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]] == [group]
    with pytest.raises(ClientError):
        logs.describe_log_streams(logGroupName=f"/aws/lambda/{name}")
