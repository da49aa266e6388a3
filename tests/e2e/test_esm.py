"""Event source mappings for SQS queues, end to end: boto3 and the aws CLI against the real binary, Python
functions that log what they were given, the queue read back through SQS's own API."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from async_helpers import wait_for
from conftest import REGION, assert_error, unique_name
from esm_helpers import (
    RECORDER,
    counts_by_id,
    deploy,
    done_records,
    make_queue,
    queue_depth,
    send_many,
    settle,
    wait_drained,
    wait_state,
)


@pytest.fixture(scope="module")
def sqs(server):
    return server.client("sqs")


@pytest.fixture(scope="module")
def recorder(lam):
    name, arn = deploy(lam, RECORDER, Timeout=30)
    yield name, arn
    lam.delete_function(FunctionName=name)


def new_function(lam, code: str, timeout: int = 30) -> tuple[str, str]:
    return deploy(lam, code, Timeout=timeout)


def warm(lam, name: str) -> None:
    """Starts the function's environment, so a short visibility timeout is not spent on a cold start."""
    r = lam.invoke(FunctionName=name, Payload=json.dumps({"Records": []}))
    assert "FunctionError" not in r, r


def test_a_mapping_drains_1000_messages_exactly_once(server, lam, sqs):
    name, _ = new_function(lam, RECORDER)
    url, arn = make_queue(sqs)
    ids = send_many(sqs, url, [f"m-{i}" for i in range(1000)])
    m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=10)
    assert m["State"] == "Creating"
    assert m["BatchSize"] == 10 and m["EventSourceArn"] == arn
    assert m["FunctionArn"].endswith(f":function:{name}")
    wait_state(lam, m["UUID"], "Enabled")
    counts = wait_drained(server, sqs, url, name, ids)
    assert set(counts) == set(ids)
    duplicates = {k: v for k, v in counts.items() if v != 1}
    detail = [(r["messageId"], r["attributes"]) for r in done_records(server, name) if r["messageId"] in duplicates]
    assert not duplicates, f"processed more than once: {detail}"
    got = lam.get_event_source_mapping(UUID=m["UUID"])
    assert got["LastProcessingResult"] == "OK"
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_the_record_has_lambdas_sqs_shape(server, lam, sqs):
    name, _ = new_function(lam, RECORDER)
    url, arn = make_queue(sqs)
    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody='{"hello": "world"}',
        MessageAttributes={
            "colour": {"DataType": "String", "StringValue": "blue"},
            "raw": {"DataType": "Binary", "BinaryValue": b"\x01\x02\x03"},
            "n": {"DataType": "Number", "StringValue": "42"},
        },
    )
    m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)
    counts = wait_drained(server, sqs, url, name, [sent["MessageId"]])
    assert counts[sent["MessageId"]] == 1
    (r,) = done_records(server, name)
    assert r["messageId"] == sent["MessageId"]
    assert r["body"] == '{"hello": "world"}'
    assert r["md5OfBody"] == sent["MD5OfMessageBody"]
    assert r["md5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert r["eventSource"] == "aws:sqs"
    assert r["eventSourceARN"] == arn
    assert r["awsRegion"] == REGION
    assert r["receiptHandle"]
    assert set(r["attributes"]) >= {"ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                    "ApproximateFirstReceiveTimestamp"}
    assert r["attributes"]["ApproximateReceiveCount"] == "1"
    assert r["messageAttributes"]["colour"] == {
        "stringValue": "blue", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
    assert r["messageAttributes"]["raw"] == {
        "binaryValue": "AQID", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"}
    assert r["messageAttributes"]["n"]["stringValue"] == "42"
    assert r["messageAttributes"]["n"]["dataType"] == "Number"
    lam.delete_event_source_mapping(UUID=m["UUID"])


POISON = (
    "import json\n"
    "def handler(event, context):\n"
    "    for r in event['Records']:\n"
    "        if r['body'] == 'poison':\n"
    "            print('POISONED ' + r['messageId'] + ' ' + r['attributes']['ApproximateReceiveCount'])\n"
    "            raise RuntimeError('poisoned batch')\n"
    "    for r in event['Records']:\n"
    "        print('DONE ' + json.dumps(r, sort_keys=True))\n"
    "    return {}\n"
)


def test_a_poisoned_message_reaches_the_dead_letter_queue(server, lam, sqs):
    name, _ = new_function(lam, POISON, timeout=2)
    warm(lam, name)
    dlq_url, dlq_arn = make_queue(sqs, "esmdlq")
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})
    url, arn = make_queue(sqs, VisibilityTimeout=2, RedrivePolicy=policy)
    good = send_many(sqs, url, [f"good-{i}" for i in range(5)])
    bad = sqs.send_message(QueueUrl=url, MessageBody="poison")["MessageId"]
    # One message per batch, so the good ones never share a failing batch.
    m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=1)
    counts = wait_drained(server, sqs, url, name, good, timeout=120)
    # At least once: a good message is never lost, never sent to the DLQ.
    assert all(counts[g] >= 1 for g in good), counts
    got = wait_for("the poisoned message in the DLQ",
                   lambda: sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1,
                                               AttributeNames=["All"]).get("Messages"))
    assert got[0]["MessageId"] == bad and got[0]["Body"] == "poison"
    assert got[0]["Attributes"]["DeadLetterQueueSourceArn"] == arn
    assert bad not in counts
    assert lam.get_event_source_mapping(UUID=m["UUID"])["LastProcessingResult"] in (
        "OK", "PROBLEM: Function call failed.")
    lam.delete_event_source_mapping(UUID=m["UUID"])


PARTIAL = (
    "import json\n"
    "def handler(event, context):\n"
    "    failures = []\n"
    "    for r in event['Records']:\n"
    "        if r['body'].startswith('retry') and r['attributes']['ApproximateReceiveCount'] == '1':\n"
    "            failures.append({'itemIdentifier': r['messageId']})\n"
    "        else:\n"
    "            print('DONE ' + json.dumps(r, sort_keys=True))\n"
    "    return {'batchItemFailures': failures}\n"
)


def test_partial_batch_failure_deletes_only_the_successes(server, lam, sqs):
    name, _ = new_function(lam, PARTIAL, timeout=2)
    warm(lam, name)
    url, arn = make_queue(sqs, VisibilityTimeout=2)
    bodies = [("retry" if i % 3 == 0 else "ok") + f"-{i}" for i in range(30)]
    ids = send_many(sqs, url, bodies)
    m = lam.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=name, BatchSize=10,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    assert m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    wait_drained(server, sqs, url, name, ids, timeout=120)
    recs = done_records(server, name)
    counts = counts_by_id(recs)
    assert all(v == 1 for v in counts.values()), counts
    by_body = {r["body"]: r for r in recs}
    for b in bodies:
        # A reported failure came back once more; the rest of its batch was deleted at once.
        want = "2" if b.startswith("retry") else "1"
        assert by_body[b]["attributes"]["ApproximateReceiveCount"] == want, (b, by_body[b]["attributes"])
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_a_report_naming_an_unknown_item_fails_the_whole_batch(server, lam, sqs):
    code = (
        "import json\n"
        "def handler(event, context):\n"
        "    for r in event['Records']:\n"
        "        print('DONE ' + json.dumps(r, sort_keys=True))\n"
        "    if event['Records'][0]['attributes']['ApproximateReceiveCount'] == '1':\n"
        "        return {'batchItemFailures': [{'itemIdentifier': 'no-such-id'}]}\n"
        "    return {'batchItemFailures': []}\n"
    )
    name, _ = new_function(lam, code, timeout=1)
    url, arn = make_queue(sqs, VisibilityTimeout=1)
    ids = send_many(sqs, url, ["a", "b", "c"])
    m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=10,
                                        MaximumBatchingWindowInSeconds=1,
                                        FunctionResponseTypes=["ReportBatchItemFailures"])
    counts = wait_drained(server, sqs, url, name, ids, timeout=60)
    assert all(counts[i] >= 2 for i in ids), counts
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_filter_criteria_invoke_only_matching_messages_and_delete_the_rest(server, lam, sqs):
    name, _ = new_function(lam, RECORDER)
    url, arn = make_queue(sqs)
    m = lam.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=name, Enabled=False,
        FilterCriteria={"Filters": [{"Pattern": json.dumps({"body": {"kind": ["keep"]}})},
                                    {"Pattern": json.dumps({"body": [{"prefix": "plain-keep"}]})}]},
    )
    assert json.loads(m["FilterCriteria"]["Filters"][0]["Pattern"]) == {"body": {"kind": ["keep"]}}
    wait_state(lam, m["UUID"], "Disabled")
    keep = send_many(sqs, url, [json.dumps({"kind": "keep", "i": i}) for i in range(5)] + ["plain-keep-1"])
    drop = send_many(sqs, url, [json.dumps({"kind": "drop", "i": i}) for i in range(5)] + ["plain text"])
    lam.update_event_source_mapping(UUID=m["UUID"], Enabled=True)
    wait_state(lam, m["UUID"], "Enabled")
    counts = wait_drained(server, sqs, url, name, keep)
    assert set(counts) == set(keep), counts
    assert not set(drop) & set(counts)
    assert queue_depth(sqs, url) == 0
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_disable_and_enable(server, lam, sqs):
    name, _ = new_function(lam, RECORDER)
    url, arn = make_queue(sqs)
    m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)
    wait_state(lam, m["UUID"], "Enabled")
    first = send_many(sqs, url, ["before"])
    wait_drained(server, sqs, url, name, first)
    r = lam.update_event_source_mapping(UUID=m["UUID"], Enabled=False)
    assert r["State"] == "Disabling"
    assert r["StateTransitionReason"] == "USER_INITIATED"
    wait_state(lam, m["UUID"], "Disabled")
    later = send_many(sqs, url, [f"while-disabled-{i}" for i in range(5)])
    settle(3)
    assert not set(later) & set(counts_by_id(done_records(server, name)))
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert a["ApproximateNumberOfMessages"] == "5"
    r = lam.update_event_source_mapping(UUID=m["UUID"], Enabled=True)
    assert r["State"] == "Enabling"
    wait_state(lam, m["UUID"], "Enabled")
    counts = wait_drained(server, sqs, url, name, first + later)
    assert all(v == 1 for v in counts.values()), counts
    d = lam.delete_event_source_mapping(UUID=m["UUID"])
    assert d["State"] == "Deleting"
    with pytest.raises(ClientError) as e:
        lam.get_event_source_mapping(UUID=m["UUID"])
    assert_error(e, "ResourceNotFoundException", 404)


FIFO_RECORDER = (
    "import json, time\n"
    "def handler(event, context):\n"
    "    for r in event['Records']:\n"
    "        print('DONE ' + json.dumps(r, sort_keys=True))\n"
    "    time.sleep(0.05)\n"
    "    return {}\n"
)


def test_fifo_messages_reach_the_function_in_order_per_group(server, lam, sqs):
    name, _ = new_function(lam, FIFO_RECORDER)
    url, arn = make_queue(sqs, fifo=True, ContentBasedDeduplication="true")
    ids = []
    for i in range(0, 40, 10):
        entries = [
            {"Id": str(j), "MessageBody": json.dumps({"g": g, "n": n}), "MessageGroupId": g}
            for j, (g, n) in enumerate((["a", "b", "c"][k % 3], k) for k in range(i, i + 10))
        ]
        r = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert not r.get("Failed"), r
        ids += [s["MessageId"] for s in r["Successful"]]
    m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=5,
                                        ScalingConfig={"MaximumConcurrency": 3})
    assert m["ScalingConfig"] == {"MaximumConcurrency": 3}
    counts = wait_drained(server, sqs, url, name, ids)
    assert all(v == 1 for v in counts.values()), counts
    seen: dict[str, list[int]] = {}
    for r in done_records(server, name):
        body = json.loads(r["body"])
        assert r["attributes"]["MessageGroupId"] == body["g"]
        assert r["attributes"]["SequenceNumber"]
        seen.setdefault(body["g"], []).append(body["n"])
    for g, ns in seen.items():
        assert ns == sorted(ns), (g, ns)
    assert sum(len(v) for v in seen.values()) == 40
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_list_get_update_and_pagination(lam, sqs, recorder):
    name, fn_arn = recorder
    made = []
    for _ in range(3):
        _, arn = make_queue(sqs)
        made.append(lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, Enabled=False))
    for m in made:
        wait_state(lam, m["UUID"], "Disabled")
    listed = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
    assert {m["UUID"] for m in made} <= {m["UUID"] for m in listed}
    page = lam.list_event_source_mappings(FunctionName=fn_arn, MaxItems=2)
    assert len(page["EventSourceMappings"]) == 2 and page["NextMarker"]
    rest = lam.list_event_source_mappings(FunctionName=fn_arn, MaxItems=2, Marker=page["NextMarker"])
    assert len(rest["EventSourceMappings"]) == 1 and "NextMarker" not in rest
    only = lam.list_event_source_mappings(EventSourceArn=made[1]["EventSourceArn"])["EventSourceMappings"]
    assert [m["UUID"] for m in only] == [made[1]["UUID"]]
    u = lam.update_event_source_mapping(UUID=made[0]["UUID"], BatchSize=50, MaximumBatchingWindowInSeconds=2)
    assert u["State"] == "Updating" and u["BatchSize"] == 50 and u["MaximumBatchingWindowInSeconds"] == 2
    g = wait_state(lam, made[0]["UUID"], "Disabled")
    assert g["BatchSize"] == 50
    assert g["EventSourceMappingArn"].endswith(":event-source-mapping:" + made[0]["UUID"])
    for m in made:
        lam.delete_event_source_mapping(UUID=m["UUID"])


def test_validation_errors(lam, lam_raw, sqs, recorder):
    name, _ = recorder
    _, arn = make_queue(sqs)
    _, fifo_arn = make_queue(sqs, fifo=True)
    _, short_arn = make_queue(sqs, VisibilityTimeout=5)
    cases = [
        (lam_raw, dict(EventSourceArn=arn, FunctionName=name, BatchSize=0), "ValidationException", 400),
        (lam_raw, dict(EventSourceArn=arn, FunctionName=name, BatchSize=10001), "ValidationException", 400),
        (lam, dict(EventSourceArn=arn, FunctionName=name, BatchSize=100), "InvalidParameterValueException", 400),
        (lam_raw, dict(EventSourceArn=arn, FunctionName=name, MaximumBatchingWindowInSeconds=301),
         "ValidationException", 400),
        (lam_raw, dict(EventSourceArn=arn, FunctionName=name, ScalingConfig={"MaximumConcurrency": 1}),
         "ValidationException", 400),
        (lam_raw, dict(EventSourceArn=arn, FunctionName=name, ScalingConfig={"MaximumConcurrency": 1001}),
         "ValidationException", 400),
        (lam_raw, dict(EventSourceArn=arn, FunctionName=name, FunctionResponseTypes=["Nope"]),
         "ValidationException", 400),
        (lam, dict(EventSourceArn=arn, FunctionName=name, FilterCriteria={"Filters": [{"Pattern": "{nope"}]}),
         "InvalidParameterValueException", 400),
        (lam, dict(EventSourceArn=arn, FunctionName=name, StartingPosition="LATEST"),
         "InvalidParameterValueException", 400),
        (lam, dict(EventSourceArn=fifo_arn, FunctionName=name, BatchSize=20, MaximumBatchingWindowInSeconds=1),
         "InvalidParameterValueException", 400),
        (lam, dict(EventSourceArn=arn, FunctionName=unique_name("missing")), "ResourceNotFoundException", 404),
        (lam, dict(EventSourceArn=arn.rsplit(":", 1)[0] + ":no-such-queue", FunctionName=name),
         "InvalidParameterValueException", 400),
        (lam, dict(EventSourceArn="arn:aws:sns:us-east-1:123456789012:topic", FunctionName=name),
         "InvalidParameterValueException", 400),
        # The recorder's timeout is 30 s: a queue hiding messages for 5 s would hand them out twice.
        (lam, dict(EventSourceArn=short_arn, FunctionName=name), "InvalidParameterValueException", 400),
    ]
    for client, kwargs, code, status in cases:
        with pytest.raises(ClientError) as e:
            client.create_event_source_mapping(**kwargs)
        assert_error(e, code, status)
    with pytest.raises(ClientError) as e:
        lam.create_event_source_mapping(EventSourceArn=short_arn, FunctionName=name)
    assert "Queue visibility timeout: 5 seconds is less than Function timeout: 30 seconds" in str(e.value)
    assert lam.list_event_source_mappings(EventSourceArn=arn)["EventSourceMappings"] == []
    m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, Enabled=False)
    with pytest.raises(ClientError) as e:
        lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)
    err = assert_error(e, "ResourceConflictException", 409)
    assert m["UUID"] in err.response["Error"]["Message"]
    wait_state(lam, m["UUID"], "Disabled")
    with pytest.raises(ClientError) as e:
        lam.update_event_source_mapping(UUID=m["UUID"], BatchSize=11)
    assert_error(e, "InvalidParameterValueException", 400)
    assert lam.get_event_source_mapping(UUID=m["UUID"])["BatchSize"] == 10
    for op in (lam.get_event_source_mapping, lam.delete_event_source_mapping):
        with pytest.raises(ClientError) as e:
            op(UUID="00000000-0000-4000-8000-000000000000")
        assert_error(e, "ResourceNotFoundException", 404)
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_a_mapping_of_a_deleted_function_is_kept_and_consumes_nothing(server, lam, sqs):
    name, _ = new_function(lam, RECORDER)
    url, arn = make_queue(sqs)
    m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)
    wait_state(lam, m["UUID"], "Enabled")
    lam.delete_function(FunctionName=name)
    send_many(sqs, url, ["orphan-1", "orphan-2"])
    got = wait_for("the mapping to report the missing function",
                   lambda: "Function not found" in lam.get_event_source_mapping(UUID=m["UUID"])
                   ["LastProcessingResult"])
    assert got
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert a["ApproximateNumberOfMessages"] == "2"
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_the_aws_cli_creates_and_deletes_a_mapping(server, aws_cli, lam, sqs, recorder):
    name, _ = recorder
    url, arn = make_queue(sqs)
    out = json.loads(aws_cli("lambda", "create-event-source-mapping", "--function-name", name,
                             "--event-source-arn", arn, "--batch-size", "5").stdout)
    assert out["State"] == "Creating" and out["BatchSize"] == 5
    wait_state(lam, out["UUID"], "Enabled")
    listed = json.loads(aws_cli("lambda", "list-event-source-mappings", "--event-source-arn", arn).stdout)
    assert [m["UUID"] for m in listed["EventSourceMappings"]] == [out["UUID"]]
    ids = send_many(sqs, url, ["via-cli"])
    wait_drained(server, sqs, url, name, ids)
    gone = json.loads(aws_cli("lambda", "delete-event-source-mapping", "--uuid", out["UUID"]).stdout)
    assert gone["State"] == "Deleting"


def test_mappings_survive_a_restart(server_factory):
    srv = server_factory()
    lam, sqs = srv.client(), srv.client("sqs")
    name, _ = deploy(lam, RECORDER, Timeout=30)
    url, arn = make_queue(sqs)
    m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=3,
                                        ScalingConfig={"MaximumConcurrency": 5})
    wait_state(lam, m["UUID"], "Enabled")
    srv.restart()
    lam, sqs = srv.client(), srv.client("sqs")
    got = wait_state(lam, m["UUID"], "Enabled")
    assert got["BatchSize"] == 3 and got["ScalingConfig"] == {"MaximumConcurrency": 5}
    ids = send_many(sqs, url, [f"after-restart-{i}" for i in range(20)])
    counts = wait_drained(srv, sqs, url, name, ids)
    assert all(v == 1 for v in counts.values()), counts


def test_queue_cli_lists_and_peeks_without_receiving(server, sqs):
    from test_updraft_cli import ok, run

    url, arn = make_queue(sqs, "clipeek")
    name = arn.rsplit(":", 1)[1]
    ids = send_many(sqs, url, [f"peek-{i}" for i in range(5)])
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)["Messages"]
    assert got[0]["MessageId"] == ids[0]
    before = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    listed = json.loads(ok(run(server, "queue", "ls", "--json")).stdout)
    (q,) = [q for q in listed["Queues"] if q["Name"] == name]
    assert (q["Visible"], q["InFlight"], q["Delayed"], q["Arn"]) == (4, 1, 0, arn)
    text = ok(run(server, "queue", "ls")).stdout
    assert any(line.split()[:4] == [name, "4", "1", "0"] for line in text.splitlines()), text

    peeked = json.loads(ok(run(server, "queue", "peek", name, "--max", "3", "--json")).stdout)["Messages"]
    assert [m["MessageId"] for m in peeked] == ids[:3]
    assert [m["State"] for m in peeked] == ["in-flight", "visible", "visible"]
    assert [m["ReceiveCount"] for m in peeked] == [1, 0, 0]
    assert peeked[1]["Body"] == "peek-1"
    text = ok(run(server, "queue", "peek", name)).stdout
    assert "peek-4" in text and ids[4] in text
    # Read-only: nothing was received, hidden or counted.
    after = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert after["ApproximateNumberOfMessages"] == before["ApproximateNumberOfMessages"] == "4"
    assert after["ApproximateNumberOfMessagesNotVisible"] == "1"
    r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"])
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in r["Messages"]} == {"1"}
    assert len(r["Messages"]) == 4

    missing = run(server, "queue", "peek", "no-such-queue-" + name)
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr
    bad = run(server, "queue", "peek", name, "--max", "0")
    assert bad.returncode != 0 and "max must be between 1 and 100" in bad.stderr
