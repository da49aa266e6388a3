"""EventBridge on the front door: buses, rules, targets, PutEvents delivery, TestEventPattern,
permissions and errors, with boto3 and the aws CLI (JSON 1.1, `X-Amz-Target: AWSEvents.*`)."""

from __future__ import annotations

import json
import re
import time

import pytest

from conftest import REGION, account_of, assert_error, unique_name
from eventbridge_helpers import allow_rule, make_recorder, received, wait_received


@pytest.fixture(scope="session")
def events(server):
    return server.client("events")


@pytest.fixture(scope="session")
def events_raw(server):
    return server.client("events", validate=False)


def put(events, source: str, detail: dict, detail_type: str = "Order Placed", **extra) -> dict:
    r = events.put_events(Entries=[{"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail),
                                    **extra}])
    assert r["FailedEntryCount"] == 0, r
    return r


# ---------------------------------------------------------------------------------------------- buses

def test_bus_crud(events):
    name = unique_name("bus")
    arn = events.create_event_bus(Name=name, Description="orders of the shop")["EventBusArn"]
    assert re.fullmatch(rf"arn:aws:events:{REGION}:\d{{12}}:event-bus/{name}", arn), arn
    d = events.describe_event_bus(Name=name)
    assert d["Name"] == name and d["Arn"] == arn and d["Description"] == "orders of the shop"
    assert d["CreationTime"].year >= 2024
    # By ARN too.
    assert events.describe_event_bus(Name=arn)["Name"] == name
    names = [b["Name"] for b in events.list_event_buses()["EventBuses"]]
    assert "default" in names and name in names
    assert [b["Name"] for b in events.list_event_buses(NamePrefix=name)["EventBuses"]] == [name]
    default = events.describe_event_bus()
    assert default["Name"] == "default" and default["Arn"].endswith(":event-bus/default")

    with pytest.raises(events.exceptions.ResourceAlreadyExistsException) as ei:
        events.create_event_bus(Name=name)
    assert_error(ei, "ResourceAlreadyExistsException", 400)
    assert ei.value.response["Error"]["Message"] == f"Event bus {name} already exists."
    with pytest.raises(events.exceptions.ResourceAlreadyExistsException):
        events.create_event_bus(Name="default")

    # Rules on the bus go with it.
    events.put_rule(Name="r", EventBusName=name, EventPattern=json.dumps({"source": ["x"]}))
    events.delete_event_bus(Name=name)
    with pytest.raises(events.exceptions.ResourceNotFoundException) as ei:
        events.describe_event_bus(Name=name)
    assert ei.value.response["Error"]["Message"] == f"Event bus {name} does not exist."
    with pytest.raises(events.exceptions.ResourceNotFoundException):
        events.list_rules(EventBusName=name)
    # Deleting again is no error; the default bus cannot be deleted.
    events.delete_event_bus(Name=name)
    with pytest.raises(events.exceptions.ClientError) as ei:
        events.delete_event_bus(Name="default")
    assert_error(ei, "ValidationException", 400)


def test_rule_and_target_crud_and_tags(events, lam):
    fn, fn_arn = make_recorder(lam)
    bus = unique_name("bus")
    bus_arn = events.create_event_bus(Name=bus, Tags=[{"Key": "team", "Value": "shop"}])["EventBusArn"]
    pattern = json.dumps({"source": ["shop"]})
    rule_arn = events.put_rule(Name="orders", EventBusName=bus, EventPattern=pattern, Description="d",
                               Tags=[{"Key": "k", "Value": "v"}])["RuleArn"]
    assert rule_arn.endswith(f":rule/{bus}/orders")
    d = events.describe_rule(Name="orders", EventBusName=bus)
    assert d["Arn"] == rule_arn and d["EventPattern"] == pattern and d["State"] == "ENABLED"
    assert d["EventBusName"] == bus and d["Description"] == "d" and "ScheduleExpression" not in d

    r = events.put_targets(Rule="orders", EventBusName=bus, Targets=[
        {"Id": "fn", "Arn": fn_arn, "InputPath": "$.detail",
         "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 120}},
        {"Id": "q", "Arn": "arn:aws:sns:us-east-1:123456789012:topic"},
    ])
    assert r["FailedEntryCount"] == 1 and r["FailedEntries"][0]["TargetId"] == "q", r
    targets = events.list_targets_by_rule(Rule="orders", EventBusName=bus)["Targets"]
    assert targets == [{"Id": "fn", "Arn": fn_arn, "InputPath": "$.detail",
                        "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 120}}]

    assert events.list_rule_names_by_target(TargetArn=fn_arn, EventBusName=bus)["RuleNames"] == ["orders"]
    assert events.list_rule_names_by_target(TargetArn=fn_arn)["RuleNames"] == []

    events.disable_rule(Name="orders", EventBusName=bus)
    assert events.describe_rule(Name="orders", EventBusName=bus)["State"] == "DISABLED"
    events.enable_rule(Name="orders", EventBusName=bus)
    rules = events.list_rules(EventBusName=bus)["Rules"]
    assert [(x["Name"], x["State"]) for x in rules] == [("orders", "ENABLED")]
    # Updating a rule keeps its targets.
    events.put_rule(Name="orders", EventBusName=bus, EventPattern=json.dumps({"source": ["shop", "b"]}))
    assert len(events.list_targets_by_rule(Rule="orders", EventBusName=bus)["Targets"]) == 1

    assert {t["Key"]: t["Value"] for t in events.list_tags_for_resource(ResourceARN=rule_arn)["Tags"]} == {"k": "v"}
    events.tag_resource(ResourceARN=rule_arn, Tags=[{"Key": "a", "Value": "1"}])
    events.untag_resource(ResourceARN=rule_arn, TagKeys=["k"])
    assert events.list_tags_for_resource(ResourceARN=rule_arn)["Tags"] == [{"Key": "a", "Value": "1"}]
    assert events.list_tags_for_resource(ResourceARN=bus_arn)["Tags"] == [{"Key": "team", "Value": "shop"}]

    with pytest.raises(events.exceptions.ClientError) as ei:
        events.delete_rule(Name="orders", EventBusName=bus)
    assert_error(ei, "ValidationException", 400)
    assert ei.value.response["Error"]["Message"] == "Rule can't be deleted since it has targets."
    events.remove_targets(Rule="orders", EventBusName=bus, Ids=["fn"])
    events.delete_rule(Name="orders", EventBusName=bus)
    assert events.list_rules(EventBusName=bus)["Rules"] == []
    # Deleting a rule that is gone succeeds, as on AWS.
    events.delete_rule(Name="orders", EventBusName=bus)
    events.delete_event_bus(Name=bus)


def test_list_rules_paginates(events):
    bus = unique_name("bus")
    events.create_event_bus(Name=bus)
    for i in range(5):
        events.put_rule(Name=f"r{i}", EventBusName=bus, EventPattern=json.dumps({"source": [str(i)]}))
    page = events.list_rules(EventBusName=bus, Limit=2)
    assert [r["Name"] for r in page["Rules"]] == ["r0", "r1"] and page["NextToken"]
    names = [r["Name"] for p in events.get_paginator("list_rules").paginate(EventBusName=bus,
                                                                             PaginationConfig={"PageSize": 2})
             for r in p["Rules"]]
    assert names == [f"r{i}" for i in range(5)]
    assert [r["Name"] for r in events.list_rules(EventBusName=bus, NamePrefix="r3")["Rules"]] == ["r3"]
    events.delete_event_bus(Name=bus)


# ---------------------------------------------------------------------------------------------- delivery

def test_put_events_reaches_only_the_matching_function(server, events, lam):
    source = unique_name("shop")
    big, big_arn = make_recorder(lam)
    small, small_arn = make_recorder(lam)
    big_rule = events.put_rule(Name=unique_name("big"), EventPattern=json.dumps(
        {"source": [source], "detail": {"amount": [{"numeric": [">", 100]}]}}))["RuleArn"]
    small_rule = events.put_rule(Name=unique_name("small"), EventPattern=json.dumps(
        {"source": [source], "detail": {"amount": [{"numeric": ["<=", 100]}]}}))["RuleArn"]
    allow_rule(lam, big, big_rule)
    allow_rule(lam, small, small_rule)
    events.put_targets(Rule=big_rule.rsplit("/", 1)[1], Targets=[{"Id": "t", "Arn": big_arn}])
    events.put_targets(Rule=small_rule.rsplit("/", 1)[1], Targets=[{"Id": "t", "Arn": small_arn}])

    # Events no rule matches come first: they must reach no one.
    put(events, unique_name("elsewhere"), {"amount": 500})
    put(events, source, {"amount": "500"})
    r = events.put_events(Entries=[
        {"Source": source, "DetailType": "Order Placed", "Detail": json.dumps({"amount": 250, "n": 1}),
         "Resources": ["arn:aws:s3:::bucket"]},
        {"Source": source, "DetailType": "Order Placed", "Detail": json.dumps({"amount": 5, "n": 2})},
    ])
    assert r["FailedEntryCount"] == 0 and len(r["Entries"]) == 2
    ids = [e["EventId"] for e in r["Entries"]]

    got_big = wait_received(server, big, 1)
    got_small = wait_received(server, small, 1)
    assert [e["detail"] for e in got_big] == [{"amount": 250, "n": 1}], got_big
    assert [e["detail"] for e in got_small] == [{"amount": 5, "n": 2}], got_small
    ev = got_big[0]
    assert ev["id"] == ids[0] and ev["source"] == source and ev["detail-type"] == "Order Placed"
    assert ev["version"] == "0" and ev["region"] == REGION and ev["resources"] == ["arn:aws:s3:::bucket"]
    assert ev["account"] == account_of(big_arn)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ev["time"]), ev["time"]


def test_inputs_reach_the_function_transformed(server, events, lam):
    source = unique_name("shop")
    fn, arn = make_recorder(lam)
    rule = unique_name("inputs")
    rule_arn = events.put_rule(Name=rule, EventPattern=json.dumps({"source": [source]}))["RuleArn"]
    allow_rule(lam, fn, rule_arn)
    events.put_targets(Rule=rule, Targets=[
        {"Id": "const", "Arn": arn, "Input": json.dumps({"kind": "constant"})},
        {"Id": "path", "Arn": arn, "InputPath": "$.detail.order"},
        {"Id": "tx", "Arn": arn, "InputTransformer": {
            "InputPathsMap": {"id": "$.detail.order.id", "who": "$.detail.customer"},
            "InputTemplate": '{"kind": "transformed", "text": "order <id> for <who>", "id": <id>, '
                             '"rule": "<aws.events.rule-name>"}'}},
    ])
    put(events, source, {"order": {"id": 42, "items": 3}, "customer": "Ada"})
    got = sorted(wait_received(server, fn, 3), key=json.dumps)
    assert {"kind": "constant"} in got, got
    assert {"id": 42, "items": 3} in got, got
    assert {"kind": "transformed", "text": "order 42 for Ada", "id": 42, "rule": rule} in got, got


def test_bus_target_forwards_events(server, events, lam):
    source = unique_name("fwd")
    bus = unique_name("bus")
    bus_arn = events.create_event_bus(Name=bus)["EventBusArn"]
    fn, arn = make_recorder(lam)
    events.put_rule(Name="to-bus", EventPattern=json.dumps({"source": [source]}))
    events.put_targets(Rule="to-bus", Targets=[{"Id": "b", "Arn": bus_arn}])
    inner = events.put_rule(Name="on-bus", EventBusName=bus, EventPattern=json.dumps({"source": [source]}))["RuleArn"]
    allow_rule(lam, fn, inner)
    events.put_targets(Rule="on-bus", EventBusName=bus, Targets=[{"Id": "f", "Arn": arn}])
    put(events, source, {"hop": 1})
    got = wait_received(server, fn, 1)
    assert got[0]["detail"] == {"hop": 1} and got[0]["source"] == source
    events.remove_targets(Rule="to-bus", Ids=["b"])
    events.delete_rule(Name="to-bus")


def test_permission_is_required_and_refusals_are_visible(server, events, lam):
    source = unique_name("perm")
    fn, arn = make_recorder(lam)
    rule = unique_name("noperm")
    rule_arn = events.put_rule(Name=rule, EventPattern=json.dumps({"source": [source]}))["RuleArn"]
    events.put_targets(Rule=rule, Targets=[{"Id": "f", "Arn": arn}])
    # A permission for another rule does not count.
    allow_rule(lam, fn, rule_arn + "-other", sid="other")
    put(events, source, {"try": 1})
    deadline = time.monotonic() + 30
    while f"rule={rule_arn}" not in server.stderr() and time.monotonic() < deadline:
        time.sleep(0.2)
    refusal = [line for line in server.stderr().splitlines() if f"rule={rule_arn}" in line]
    assert refusal and "delivery refused" in refusal[0] and arn in refusal[0], server.stderr()[-3000:]
    # The refused delivery is kept as a failed event of the function, with its reason, where `updraft events` (and
    # the API it reads) shows it.
    deadline = time.monotonic() + 30
    while True:
        r = server.signed_request("GET", f"/updraft/v1/functions/{fn}/events")
        assert r.status == 200, r
        summary = r.json()
        if summary["Failed"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # the refusal is logged just before the item is ended
    assert summary["Failed"] == 1 and summary["Pending"] == 0, summary
    [failed] = summary["Events"]
    assert failed["source"] == rule_arn, failed
    assert "events.amazonaws.com" in failed["last_error"] and rule_arn in failed["last_error"], failed

    allow_rule(lam, fn, rule_arn)
    put(events, source, {"try": 2})
    got = wait_received(server, fn, 1)
    # Only the event after AddPermission arrived: the refused one was not delivered later.
    assert [e["detail"]["try"] for e in got] == [2], got


PATTERNS = [
    {"detail": {"state": ["running"]}},
    {"detail": {"state": [{"prefix": "run"}]}},
    {"detail": {"state": [{"suffix": "ing"}]}},
    {"detail": {"state": [{"anything-but": ["running", "stopped"]}]}},
    {"detail": {"state": [{"anything-but": {"prefix": "st"}}]}},
    {"detail": {"count": [{"numeric": [">", 0, "<=", 5]}]}},
    {"detail": {"count": [{"numeric": [">", 5]}]}},
    {"detail": {"missing": [{"exists": False}]}},
    {"detail": {"state": [{"exists": False}]}},
    {"detail": {"state": [{"equals-ignore-case": "RUNNING"}]}},
    {"detail": {"path": [{"wildcard": "logs/*.txt"}]}},
    {"detail": {"path": [{"wildcard": "*.png"}]}},
    {"detail": {"ip": [{"cidr": "10.0.0.0/24"}]}},
    {"detail": {"ip": [{"cidr": "192.168.0.0/16"}]}},
    {"detail": {"tags": ["b"]}},
    {"detail": {"$or": [{"state": ["stopped"]}, {"count": [3]}]}},
    {"detail": {"$or": [{"state": ["stopped"]}, {"count": [4]}]}},
    {"detail-type": ["Order Placed"], "resources": ["arn:aws:s3:::other"]},
]


def test_test_event_pattern_agrees_with_delivery(server, events, lam):
    source = unique_name("agree")
    fn, arn = make_recorder(lam)
    rules = {}
    for i, p in enumerate([{}] + PATTERNS):
        pattern = {"source": [source], **p}
        name = f"{source}-{i}"
        rule_arn = events.put_rule(Name=name, EventPattern=json.dumps(pattern))["RuleArn"]
        allow_rule(lam, fn, rule_arn, sid=f"r{i}")
        events.put_targets(Rule=name, Targets=[{"Id": "f", "Arn": arn, "InputTransformer": {
            "InputTemplate": '{"rule": "<aws.events.rule-name>", "event": <aws.events.event>}'}}])
        rules[name] = pattern
    detail = {"state": "running", "count": 3, "path": "logs/app.txt", "ip": "10.0.0.7", "tags": ["a", "b"]}
    put(events, source, detail, Resources=["arn:aws:s3:::bucket"])
    # Rule 0 matches everything from the source, so at least one delivery is certain; wait for all the
    # matches TestEventPattern predicts, then compare both ways.
    first = wait_received(server, fn, 1)[0]["event"]
    expected = {name for name, p in rules.items()
                if events.test_event_pattern(EventPattern=json.dumps(p), Event=json.dumps(first))["Result"]}
    assert len(expected) > 5 and len(expected) < len(rules), expected
    got = wait_received(server, fn, len(expected))
    # Let any unexpected deliveries arrive too, then insist on the exact set.
    time.sleep(2)
    delivered = {e["rule"] for e in received(server, fn)}
    assert delivered == expected, (delivered ^ expected, got)


def test_test_event_pattern(events):
    event = {"id": "1", "account": "123456789012", "source": "shop", "time": "2026-01-01T00:00:00Z",
             "region": REGION, "detail-type": "x", "resources": [], "detail": {"n": 5}}
    assert events.test_event_pattern(EventPattern=json.dumps({"detail": {"n": [{"numeric": [">", 1]}]}}),
                                     Event=json.dumps(event))["Result"] is True
    assert events.test_event_pattern(EventPattern=json.dumps({"source": ["other"]}),
                                     Event=json.dumps(event))["Result"] is False
    with pytest.raises(events.exceptions.InvalidEventPatternException) as ei:
        events.test_event_pattern(EventPattern='{"source": "shop"}', Event=json.dumps(event))
    assert_error(ei, "InvalidEventPatternException", 400)
    assert ei.value.response["Error"]["Message"].startswith("Event pattern is not valid. Reason: ")
    bad = dict(event)
    del bad["id"]
    with pytest.raises(events.exceptions.ClientError) as ei:
        events.test_event_pattern(EventPattern=json.dumps({"source": ["shop"]}), Event=json.dumps(bad))
    assert_error(ei, "ValidationException", 400)
    assert ei.value.response["Error"]["Message"] == "Parameter Event is not valid."


# ---------------------------------------------------------------------------------------------- errors

def test_errors_store_nothing(events, events_raw):
    name = unique_name("bad")
    for pattern in ['{"source": "shop"}', "not json", "{}", '{"detail": {}}', '{"source": []}', '{"n": [{"numeric": [">", "x"]}]}',
                    '{"n": [{"bogus": 1}]}', '[1]']:
        with pytest.raises(events.exceptions.InvalidEventPatternException) as ei:
            events.put_rule(Name=name, EventPattern=pattern)
        assert_error(ei, "InvalidEventPatternException", 400)
    for expr in ["rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "cron(* * * * * *)",
                 "cron(0 0 ? * ? *)", "cron(0 25 * * ? *)", "cron(0 0 * *)", "every day"]:
        with pytest.raises(events.exceptions.ClientError) as ei:
            events.put_rule(Name=name, ScheduleExpression=expr)
        err = assert_error(ei, "ValidationException", 400)
        assert err.response["Error"]["Message"] == "Parameter ScheduleExpression is not valid.", expr
    with pytest.raises(events.exceptions.ClientError) as ei:
        events.put_rule(Name=name)
    assert_error(ei, "ValidationException", 400)
    with pytest.raises(events.exceptions.ClientError) as ei:
        events_raw.put_rule(Name="bad name!", EventPattern="{}")
    assert_error(ei, "ValidationException", 400)
    assert name not in [r["Name"] for r in events.list_rules(NamePrefix=name)["Rules"]]

    with pytest.raises(events.exceptions.ResourceNotFoundException) as ei:
        events.put_rule(Name=name, EventBusName="no-such-bus", EventPattern=json.dumps({"source": ["x"]}))
    assert_error(ei, "ResourceNotFoundException", 400)
    assert ei.value.response["Error"]["Message"] == "Event bus no-such-bus does not exist."
    with pytest.raises(events.exceptions.ResourceNotFoundException) as ei:
        events.describe_rule(Name=name)
    assert ei.value.response["Error"]["Message"] == f"Rule {name} does not exist on EventBus default."
    for call in (lambda: events.put_targets(Rule=name, Targets=[{"Id": "a", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:f"}]),
                 lambda: events.list_targets_by_rule(Rule=name),
                 lambda: events.enable_rule(Name=name),
                 lambda: events.disable_rule(Name=name),
                 lambda: events.remove_targets(Rule=name, Ids=["a"]),
                 lambda: events.list_tags_for_resource(ResourceARN=f"arn:aws:events:us-east-1:123456789012:rule/{name}")):
        with pytest.raises(events.exceptions.ResourceNotFoundException):
            call()
    bus = unique_name("bus")
    events.create_event_bus(Name=bus)
    with pytest.raises(events.exceptions.ClientError) as ei:
        events.put_rule(Name=name, EventBusName=bus, ScheduleExpression="rate(1 minute)")
    assert_error(ei, "ValidationException", 400)
    assert events.list_rules(EventBusName=bus)["Rules"] == []
    events.delete_event_bus(Name=bus)

    # Target inputs are checked before anything is stored.
    events.put_rule(Name=name, EventPattern=json.dumps({"source": ["x"]}))
    with pytest.raises(events.exceptions.ClientError) as ei:
        events.put_targets(Rule=name, Targets=[{"Id": "a", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
                                                "Input": "{}", "InputPath": "$.detail"}])
    assert_error(ei, "ValidationException", 400)
    assert events.list_targets_by_rule(Rule=name)["Targets"] == []
    events.delete_rule(Name=name)


def test_put_events_entry_errors_and_size_limit(events):
    r = events.put_events(Entries=[
        {"Source": "ok", "DetailType": "t", "Detail": "{}"},
        {"DetailType": "t", "Detail": "{}"},
        {"Source": "s", "DetailType": "t", "Detail": "[1, 2]"},
        {"Source": "s", "DetailType": "t", "Detail": "{}", "EventBusName": "no-such-bus"},
    ])
    assert r["FailedEntryCount"] == 3, r
    ok, missing, malformed, nobus = r["Entries"]
    assert "EventId" in ok and "ErrorCode" not in ok
    assert missing["ErrorCode"] == "InvalidArgument"
    assert missing["ErrorMessage"] == "Parameter Source is not valid. Reason: Source is a required argument."
    assert malformed == {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
    assert nobus["ErrorCode"] == "ResourceNotFoundException"
    # 256 KB of entries is the limit.
    near = json.dumps({"x": "a" * (256 * 1024 - 200)})
    assert events.put_events(Entries=[{"Source": "s", "DetailType": "t", "Detail": near}])["FailedEntryCount"] == 0
    over = json.dumps({"x": "a" * (256 * 1024)})
    with pytest.raises(events.exceptions.ClientError) as ei:
        events.put_events(Entries=[{"Source": "s", "DetailType": "t", "Detail": over}])
    assert_error(ei, "ValidationException", 400)


def test_aws_cli(aws_cli, server):
    name = unique_name("cli")
    arn = json.loads(aws_cli("events", "put-rule", "--name", name, "--event-pattern",
                             json.dumps({"source": ["cli"]})).stdout)["RuleArn"]
    assert arn.endswith(f":rule/{name}")
    listed = json.loads(aws_cli("events", "list-rules", "--name-prefix", name).stdout)["Rules"]
    assert [r["Name"] for r in listed] == [name]
    out = json.loads(aws_cli("events", "put-events", "--entries",
                             json.dumps([{"Source": "cli", "DetailType": "t", "Detail": "{}"}])).stdout)
    assert out["FailedEntryCount"] == 0
    event = {"id": "1", "account": "123456789012", "source": "cli", "time": "2026-01-01T00:00:00Z",
             "region": REGION, "detail-type": "t", "resources": [], "detail": {}}
    res = json.loads(aws_cli("events", "test-event-pattern", "--event-pattern", json.dumps({"source": ["cli"]}),
                             "--event", json.dumps(event)).stdout)
    assert res["Result"] is True
    bad = aws_cli("events", "describe-rule", "--name", name + "-none", check=False)
    assert bad.returncode != 0 and "ResourceNotFoundException" in bad.stderr
    aws_cli("events", "delete-rule", "--name", name)
