"""Asynchronous invocation: `Invoke` with `InvocationType: Event`, `InvokeAsync`, retries, destinations, payload limits.

A private server runs with short retry intervals (`--async-retry-interval-ms` and friends); destination functions log
every event they get, and the tests read those lines back through `/updraft/v1/functions/{name}/logs`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from async_helpers import (FAST_FLAGS, RECORDER, WORKER, deploy, event_summary, lines, records, wait_for)
from conftest import BIN, UpdraftServer, assert_error, unique_name

TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = UpdraftServer(tmp_path_factory.mktemp("updraft-async"), extra_args=FAST_FLAGS)
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client()


def test_event_is_accepted_and_the_function_sees_the_returned_request_id(srv, lam):
    name, _ = deploy(lam, WORKER, "worker")
    resp = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"n": 1}))
    assert resp["StatusCode"] == 202
    assert resp["Payload"].read() == b""
    rid = resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    got = wait_for("the attempt", lambda: lines(srv, name, "ATTEMPT"))
    assert len(got) == 1, got
    assert got[0]["message"] == f'ATTEMPT {rid} {{"n": 1}}'


def test_success_reaches_on_success_with_lambdas_record(srv, lam):
    dest, dest_arn = deploy(lam, RECORDER, "dest")
    name, arn = deploy(lam, WORKER, "src")
    lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": dest_arn}})
    resp = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"hello": "world"}))
    rid = resp["ResponseMetadata"]["RequestId"]
    [record] = wait_for("the success record", lambda: records(srv, dest))
    ts = record.pop("timestamp")
    assert TIMESTAMP_RE.match(ts), ts
    assert record == {
        "version": "1.0",
        "requestContext": {
            "requestId": rid,
            "functionArn": f"{arn}:$LATEST",
            "condition": "Success",
            "approximateInvokeCount": 1,
        },
        "requestPayload": {"hello": "world"},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
        "responsePayload": {"echo": {"hello": "world"}},
    }
    summary = wait_for("the queue to drain", lambda: (s := event_summary(srv, name)) and s["Pending"] + s["InFlight"] == 0 and s)
    assert summary["Failed"] == 0


def test_a_failing_function_is_retried_then_reaches_on_failure(srv, lam):
    dest, dest_arn = deploy(lam, RECORDER, "onfail")
    name, arn = deploy(lam, WORKER, "failing")
    cfg = lam.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=2,
        DestinationConfig={"OnFailure": {"Destination": dest_arn}})
    assert cfg["MaximumRetryAttempts"] == 2
    resp = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"fail": "always"}))
    rid = resp["ResponseMetadata"]["RequestId"]
    [record] = wait_for("the failure record", lambda: records(srv, dest))
    attempts = lines(srv, name, "ATTEMPT")
    assert len(attempts) == 3, f"one attempt and MaximumRetryAttempts=2 retries: {attempts}"
    assert all(a["message"].startswith(f"ATTEMPT {rid} ") for a in attempts), attempts
    # Retry k waits k retry intervals (300 ms here) after attempt k ended: never sooner.
    starts = [a["timestamp_ms"] for a in attempts]
    assert starts[1] - starts[0] >= 300 and starts[2] - starts[1] >= 600, starts
    record.pop("timestamp")
    assert record["requestContext"] == {
        "requestId": rid,
        "functionArn": f"{arn}:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"] == {"fail": "always"}
    assert record["responseContext"] == {
        "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert record["responsePayload"]["errorMessage"] == "failing on purpose: always"
    summary = event_summary(srv, name)
    assert summary["Failed"] == 1 and summary["Pending"] == 0 and summary["Retrying"] == 0, summary
    assert "failing on purpose" in summary["Events"][0]["last_error"]


def test_zero_retries_means_one_attempt(srv, lam):
    dest, dest_arn = deploy(lam, RECORDER, "onfail0")
    name, _ = deploy(lam, WORKER, "once")
    lam.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0, DestinationConfig={"OnFailure": {"Destination": dest_arn}})
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"fail": 1}))
    [record] = wait_for("the failure record", lambda: records(srv, dest))
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert len(lines(srv, name, "ATTEMPT")) == 1


def test_an_event_older_than_its_maximum_age_goes_to_on_failure(srv, lam):
    """A function with reserved concurrency 0 throttles every attempt: the event is retried (throttles do not count
    as retries) until MaximumEventAgeInSeconds, the smallest Lambda allows (60 s), then dropped to OnFailure."""
    dest, dest_arn = deploy(lam, RECORDER, "aged")
    name, arn = deploy(lam, WORKER, "throttled")
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    lam.put_function_event_invoke_config(
        FunctionName=name, MaximumEventAgeInSeconds=60, MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": dest_arn}})
    resp = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"old": True}))
    rid = resp["ResponseMetadata"]["RequestId"]
    s = wait_for("a throttled retry", lambda: (x := event_summary(srv, name)) and x["Events"]
                 and x["Events"][0]["attempt"] >= 2 and x)
    assert s["Failed"] == 0, s
    [record] = wait_for("the age record", lambda: records(srv, dest), timeout=150)
    assert record["requestContext"]["requestId"] == rid
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["functionArn"] == f"{arn}:$LATEST"
    assert record["requestContext"]["approximateInvokeCount"] >= 2
    assert record["requestPayload"] == {"old": True}
    assert "responseContext" not in record, "the function never ran"
    assert lines(srv, name, "ATTEMPT") == []


def test_invoke_async_answers_202_with_status(srv, lam):
    name, _ = deploy(lam, WORKER, "legacy")
    resp = lam.invoke_async(FunctionName=name, InvokeArgs=json.dumps({"legacy": True}))
    assert resp["Status"] == 202
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 202
    rid = resp["ResponseMetadata"]["RequestId"]
    got = wait_for("the attempt", lambda: lines(srv, name, "ATTEMPT"))
    assert got[0]["message"] == f'ATTEMPT {rid} {{"legacy": true}}'
    raw = srv.signed_request("POST", f"/2014-11-13/functions/{name}/invoke-async/", body=b'{"x": 1}')
    assert raw.status == 202 and raw.json() == {"Status": 202}, raw


def test_payload_limits(srv, lam):
    name, _ = deploy(lam, WORKER, "limits")
    big = json.dumps({"pad": "x" * (1100 * 1024)})
    with pytest.raises(lam.exceptions.RequestTooLargeException) as e:
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=big)
    assert_error(e, "RequestTooLargeException", 413)
    medium = json.dumps({"pad": "x" * (300 * 1024)})
    with pytest.raises(lam.exceptions.RequestTooLargeException) as e:
        lam.invoke_async(FunctionName=name, InvokeArgs=medium)
    assert_error(e, "RequestTooLargeException", 413)
    # 300 KB is within the Event limit of 1 MB; that one is accepted and runs.
    ok = lam.invoke(FunctionName=name, InvocationType="Event", Payload=medium)
    assert ok["StatusCode"] == 202
    got = wait_for("the accepted event", lambda: lines(srv, name, "ATTEMPT"))
    assert len(got) == 1, "the refused events were not stored"
    s = event_summary(srv, name)
    assert s["Pending"] + s["InFlight"] + s["Retrying"] + s["Failed"] == 0, s


def test_bad_requests_store_nothing(srv, lam):
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.invoke(FunctionName=unique_name("missing"), InvocationType="Event", Payload=b"{}")
    assert_error(e, "ResourceNotFoundException", 404)
    name, _ = deploy(lam, WORKER, "badjson")
    raw = srv.signed_request("POST", f"/2015-03-31/functions/{name}/invocations", body=b"{not json",
                             headers={"X-Amz-Invocation-Type": "Event"})
    assert raw.status == 400 and raw.error_type == "InvalidRequestContentException", raw
    s = event_summary(srv, name)
    assert s["Pending"] + s["InFlight"] + s["Retrying"] + s["Failed"] == 0, s
    assert lines(srv, name, "ATTEMPT") == []


def test_dead_letter_config_on_create_and_update(srv, lam):
    account = lam.get_function(FunctionName=deploy(lam, WORKER, "acct")[0])["Configuration"]["FunctionArn"].split(":")[4]
    dlq = f"arn:aws:sqs:us-east-1:{account}:my-dlq"
    name, _ = deploy(lam, WORKER, "dlq", DeadLetterConfig={"TargetArn": dlq})
    assert lam.get_function_configuration(FunctionName=name)["DeadLetterConfig"] == {"TargetArn": dlq}
    topic = f"arn:aws:sns:us-east-1:{account}:failures"
    lam.update_function_configuration(FunctionName=name, DeadLetterConfig={"TargetArn": topic})
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert lam.get_function_configuration(FunctionName=name)["DeadLetterConfig"] == {"TargetArn": topic}
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.update_function_configuration(
            FunctionName=name, DeadLetterConfig={"TargetArn": f"arn:aws:lambda:us-east-1:{account}:function:x"})
    assert_error(e, "InvalidParameterValueException", 400)
    lam.update_function_configuration(FunctionName=name, DeadLetterConfig={})
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert "DeadLetterConfig" not in lam.get_function_configuration(FunctionName=name)


def cli(srv, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
    env["UPDRAFT_ACCESS_KEY_ID"], env["UPDRAFT_SECRET_ACCESS_KEY"] = srv.keys()
    proc = subprocess.run([str(BIN), *args, "--endpoint", srv.endpoint], capture_output=True, text=True, env=env,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}"
    return proc


def test_updraft_cli_invoke_async_and_events(srv, lam):
    name, _ = deploy(lam, WORKER, "cli")
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    out = cli(srv, "invoke", "--async", name, '{"fail": "cli"}').stdout
    m = re.search(r"queued, request id ([0-9a-f-]{36})", out)
    assert m, out
    rid = m.group(1)
    wait_for("the attempt", lambda: lines(srv, name, "ATTEMPT"))
    wait_for("the failed event", lambda: event_summary(srv, name)["Failed"] == 1)
    text = cli(srv, "events", name).stdout
    assert "pending 0  in flight 0  retrying 0  failed 1" in text, text
    row = next(l for l in text.splitlines() if l.startswith(rid))
    assert "failed" in row and "failing on purpose: cli" in row, text
    as_json = json.loads(cli(srv, "events", name, "--json").stdout)
    assert as_json["Failed"] == 1 and as_json["Events"][0]["request_id"] == rid


def test_sync_calls_are_not_starved_by_a_burst_of_events(tmp_path):
    """With room for two environments of the function, a burst of slow events waits in the queue instead of taking
    them all: the dispatcher's bound (--async-max-in-flight 1) leaves one for synchronous calls, which succeed."""
    srv = UpdraftServer(tmp_path, extra_args=(*FAST_FLAGS, "--async-max-in-flight", "1"))
    srv.start()
    try:
        lam = srv.client()
        code = ("import time\n"
                "def handler(event, context):\n"
                "    if event.get('sleep'):\n"
                "        time.sleep(event['sleep'])\n"
                "        print('SLOW ' + context.aws_request_id)\n"
                "    return 'ok'\n")
        name, _ = deploy(lam, code, "burst")
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
        # Warm one environment first, so the burst does not wait on a cold start.
        assert lam.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200
        for _ in range(8):
            assert lam.invoke(FunctionName=name, InvocationType="Event",
                              Payload=json.dumps({"sleep": 1.5}))["StatusCode"] == 202
        wait_for("the burst to start", lambda: event_summary(srv, name)["InFlight"] >= 1)
        for _ in range(5):
            r = lam.invoke(FunctionName=name, Payload=b"{}")
            assert r["StatusCode"] == 200 and "FunctionError" not in r, r
            assert r["Payload"].read() == b'"ok"'
        wait_for("every event", lambda: len(lines(srv, name, "SLOW")) >= 8, timeout=120)
    finally:
        srv.stop()
