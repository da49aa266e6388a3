"""EventBridge rules with SQS queue targets: the matched event (or its transformed input) becomes one message,
sent on the durable path; a queue of another account takes it only when its policy allows events.amazonaws.com."""

from __future__ import annotations

import json
import time

import pytest

from async_helpers import wait_for
from conftest import unique_name


@pytest.fixture(scope="module")
def sqs(server):
    return server.client("sqs")


@pytest.fixture(scope="module")
def events(server):
    return server.client("events")


def new_queue(sqs, client=None) -> tuple[str, str]:
    c = client or sqs
    url = c.create_queue(QueueName=unique_name("ebq"))["QueueUrl"]
    arn = c.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def receive_all(sqs, url: str, want: int, timeout: float = 60.0) -> list[dict]:
    got: list[dict] = []

    def more():
        r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for m in r.get("Messages", []):
            got.append(m)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return len(got) >= want

    wait_for(f"{want} message(s) on {url}", more, timeout=timeout, interval=0)
    return got


def test_a_rule_sends_matching_events_to_a_queue(sqs, events):
    url, arn = new_queue(sqs)
    detail_url, detail_arn = new_queue(sqs)
    rule = unique_name("ebsqs")
    rule_arn = events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["shop"]}))["RuleArn"]
    r = events.put_targets(Rule=rule, Targets=[
        {"Id": "whole", "Arn": arn},
        {"Id": "detail", "Arn": detail_arn, "InputPath": "$.detail"},
    ])
    assert r["FailedEntryCount"] == 0, r
    put = events.put_events(Entries=[
        {"Source": "shop", "DetailType": "order", "Detail": json.dumps({"id": 7})},
        {"Source": "elsewhere", "DetailType": "order", "Detail": json.dumps({"id": 8})},
    ])
    assert put["FailedEntryCount"] == 0
    (m,) = receive_all(sqs, url, 1)
    event = json.loads(m["Body"])
    assert event["id"] == put["Entries"][0]["EventId"]
    assert event["source"] == "shop" and event["detail-type"] == "order"
    assert event["detail"] == {"id": 7}
    assert event["resources"] == [] and event["region"] and event["account"] == arn.split(":")[4]
    (d,) = receive_all(sqs, detail_url, 1)
    assert json.loads(d["Body"]) == {"id": 7}
    # The non-matching event sent nothing.
    time.sleep(1)
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    assert events.list_rule_names_by_target(TargetArn=arn)["RuleNames"] == [rule]
    assert rule_arn.endswith(f":rule/{rule}")


def test_a_queue_of_another_account_needs_a_policy_for_events(server, sqs, events):
    r = server.signed_request("POST", "/updraft/admin/v1/accounts",
                              json.dumps({"Name": unique_name("ebacct")}).encode())
    assert r.status == 201, r
    other = r.json()
    theirs = server.client("sqs", access_key=other["AccessKeyId"], secret_key=other["SecretAccessKey"])
    closed_url, closed_arn = new_queue(sqs, theirs)
    open_url, open_arn = new_queue(sqs, theirs)
    rule = unique_name("ebx")
    rule_arn = events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["cross"]}))["RuleArn"]
    theirs.set_queue_attributes(QueueUrl=open_url, Attributes={"Policy": json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                       "Action": "sqs:SendMessage", "Resource": open_arn,
                       "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]})})
    # Allowing the account alone is not allowing the service.
    theirs.set_queue_attributes(QueueUrl=closed_url, Attributes={"Policy": json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                       "Action": "sqs:SendMessage", "Resource": closed_arn,
                       "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn + "-other"}}}]})})
    events.put_targets(Rule=rule, Targets=[{"Id": "closed", "Arn": closed_arn}, {"Id": "open", "Arn": open_arn}])
    events.put_events(Entries=[{"Source": "cross", "DetailType": "t", "Detail": "{}"}])
    (m,) = receive_all(theirs, open_url, 1)
    assert json.loads(m["Body"])["source"] == "cross"
    time.sleep(2)
    assert "Messages" not in theirs.receive_message(QueueUrl=closed_url, WaitTimeSeconds=1)
    assert "delivery refused" in server.stderr() and closed_arn in server.stderr()
