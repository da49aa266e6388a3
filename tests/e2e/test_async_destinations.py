"""Asynchronous invocation across services: destinations on an event bus and on queues, dead-letter queues.

One `Event` invoke drives a chain of three functions (function → OnSuccess event bus → rule → function → OnSuccess
function), and failed events reach SQS queues of the same node: as Lambda's invocation record (`OnFailure`) and as the
original event with Lambda's `RequestID`/`ErrorCode`/`ErrorMessage` message attributes (`DeadLetterConfig`).
"""

from __future__ import annotations

import json

import pytest

from async_helpers import FAST_FLAGS, RECORDER, WORKER, deploy, lines, records, wait_for
from conftest import UpdraftServer, unique_name


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = UpdraftServer(tmp_path_factory.mktemp("updraft-async-dest"), extra_args=FAST_FLAGS)
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client()


@pytest.fixture(scope="module")
def sqs(srv):
    return srv.client("sqs")


@pytest.fixture(scope="module")
def events(srv):
    return srv.client("events")


def receive_all(sqs, url: str, want: int) -> list[dict]:
    """Receives (and deletes) messages until `want` arrived; long polls, so it returns as they come."""
    got: list[dict] = []

    def more():
        resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2,
                                   MessageAttributeNames=["All"])
        for m in resp.get("Messages", []):
            got.append(m)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return len(got) >= want

    wait_for(f"{want} message(s) on {url}", more, timeout=90)
    return got


def test_one_event_drives_a_chain_of_three_functions_through_an_event_bus(srv, lam, events):
    first, first_arn = deploy(lam, WORKER, "chain1")
    second, second_arn = deploy(lam, WORKER, "chain2")
    third, _ = deploy(lam, RECORDER, "chain3")
    bus = unique_name("chain-bus")
    bus_arn = events.create_event_bus(Name=bus)["EventBusArn"]
    rule_arn = events.put_rule(
        Name="lambda-success", EventBusName=bus,
        EventPattern=json.dumps({"source": ["lambda"],
                                 "detail-type": ["Lambda Function Invocation Result - Success"],
                                 "detail": {"requestContext": {"functionArn": [{"prefix": first_arn}]}}}),
    )["RuleArn"]
    lam.add_permission(FunctionName=second, StatementId="from-rule", Action="lambda:InvokeFunction",
                       Principal="events.amazonaws.com", SourceArn=rule_arn)
    events.put_targets(Rule="lambda-success", EventBusName=bus, Targets=[{"Id": "next", "Arn": second_arn}])
    lam.put_function_event_invoke_config(FunctionName=first,
                                         DestinationConfig={"OnSuccess": {"Destination": bus_arn}})
    third_arn = lam.get_function_configuration(FunctionName=third)["FunctionArn"]
    lam.put_function_event_invoke_config(FunctionName=second,
                                         DestinationConfig={"OnSuccess": {"Destination": third_arn}})

    resp = lam.invoke(FunctionName=first, InvocationType="Event", Payload=json.dumps({"step": 1}))
    assert resp["StatusCode"] == 202
    rid = resp["ResponseMetadata"]["RequestId"]

    [record] = wait_for("the third function's record", lambda: records(srv, third), timeout=90)
    # The third function got Lambda's success record of the second, whose event was the bus's event carrying the
    # first function's success record.
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["functionArn"] == f"{second_arn}:$LATEST"
    bus_event = record["requestPayload"]
    assert bus_event["source"] == "lambda"
    assert bus_event["detail-type"] == "Lambda Function Invocation Result - Success"
    assert bus_event["account"] == first_arn.split(":")[4]
    detail = bus_event["detail"]
    assert detail["requestContext"]["requestId"] == rid
    assert detail["requestContext"]["functionArn"] == f"{first_arn}:$LATEST"
    assert detail["requestPayload"] == {"step": 1}
    assert detail["responsePayload"] == {"echo": {"step": 1}}
    assert record["responsePayload"] == {"echo": bus_event}
    # Each function ran exactly once.
    assert len(lines(srv, first, "ATTEMPT")) == 1
    assert len(lines(srv, second, "ATTEMPT")) == 1


def test_retries_exhausted_reach_an_on_failure_queue_and_the_dead_letter_queue(srv, lam, sqs):
    on_failure_url = sqs.create_queue(QueueName=unique_name("onfailure"))["QueueUrl"]
    dlq_url = sqs.create_queue(QueueName=unique_name("dlq"))["QueueUrl"]
    arn_of = lambda url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    name, arn = deploy(lam, WORKER, "to-queues", DeadLetterConfig={"TargetArn": arn_of(dlq_url)})
    assert lam.get_function_configuration(FunctionName=name)["DeadLetterConfig"] == {"TargetArn": arn_of(dlq_url)}
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1,
                                         DestinationConfig={"OnFailure": {"Destination": arn_of(on_failure_url)}})

    resp = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"fail": "dlq"}))
    rid = resp["ResponseMetadata"]["RequestId"]

    [failure] = receive_all(sqs, on_failure_url, 1)
    record = json.loads(failure["Body"])
    assert record["requestContext"] == {
        "requestId": rid,
        "functionArn": f"{arn}:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 2,
    }
    assert record["requestPayload"] == {"fail": "dlq"}
    assert record["responsePayload"]["errorMessage"] == "failing on purpose: dlq"

    [dead] = receive_all(sqs, dlq_url, 1)
    assert json.loads(dead["Body"]) == {"fail": "dlq"}
    attrs = dead["MessageAttributes"]
    assert attrs["RequestID"] == {"StringValue": rid, "DataType": "String"}
    assert attrs["ErrorCode"] == {"StringValue": "200", "DataType": "Number"}
    assert attrs["ErrorMessage"]["DataType"] == "String"
    assert "failing on purpose: dlq" in attrs["ErrorMessage"]["StringValue"]
    assert len(lines(srv, name, "ATTEMPT")) == 2


def test_success_record_reaches_an_on_success_queue(srv, lam, sqs):
    url = sqs.create_queue(QueueName=unique_name("onsuccess"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    name, arn = deploy(lam, WORKER, "ok-to-queue")
    lam.put_function_event_invoke_config(FunctionName=name,
                                         DestinationConfig={"OnSuccess": {"Destination": queue_arn}})
    rid = lam.invoke(FunctionName=name, InvocationType="Event",
                     Payload=json.dumps({"ok": True}))["ResponseMetadata"]["RequestId"]
    [msg] = receive_all(sqs, url, 1)
    record = json.loads(msg["Body"])
    assert record["requestContext"]["requestId"] == rid
    assert record["requestContext"]["condition"] == "Success"
    assert record["responsePayload"] == {"echo": {"ok": True}}
