"""Bucket notifications: to a Python function (S3's record shape, prefix/suffix filters), to a
queue (with S3's test event), to EventBridge; the configuration's validation; and function code
read from the object store (Create/UpdateFunctionCode with S3Bucket/S3Key/S3ObjectVersion)."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from botocore.exceptions import ClientError

from async_helpers import RECORDER, deploy, records, wait_for
from conftest import invoke_ok, make_zip, unique_name
from s3_helpers import make_bucket, s3_client


@pytest.fixture(scope="module")
def s3(server):
    return s3_client(server)


def allow_s3(lam, fn: str, bucket: str, account: str) -> None:
    lam.add_permission(FunctionName=fn, StatementId="s3", Action="lambda:InvokeFunction",
                       Principal="s3.amazonaws.com", SourceArn=f"arn:aws:s3:::{bucket}", SourceAccount=account)


def err(e) -> tuple[str, int]:
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_pipeline_event_reaches_a_python_function_with_filters(server, lam, s3):
    """The processing pipeline as far as it runs today: `input/x.csv` lands, the function is
    started with S3's record; objects outside the filter start nothing."""
    name, arn = deploy(lam, RECORDER, prefix="s3rec")
    account = arn.split(":")[4]
    b = make_bucket(s3)
    allow_s3(lam, name, b, account)
    s3.put_bucket_notification_configuration(Bucket=b, NotificationConfiguration={
        "LambdaFunctionConfigurations": [{
            "Id": "csv-in", "LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "input/"},
                                               {"Name": "suffix", "Value": ".csv"}]}}}]})
    got = s3.get_bucket_notification_configuration(Bucket=b)["LambdaFunctionConfigurations"]
    assert got[0]["LambdaFunctionArn"] == arn and got[0]["Id"] == "csv-in"
    rules = {r["Name"].lower(): r["Value"] for r in got[0]["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": "input/", "suffix": ".csv"}
    s3.put_object(Bucket=b, Key="input/skip.txt", Body=b"no")
    s3.put_object(Bucket=b, Key="output/skip.csv", Body=b"no")
    put = s3.put_object(Bucket=b, Key="input/x y.csv", Body=b"a,b\n1,2\n")
    recs = wait_for("the notified function's event", lambda: records(server, name))
    assert len(recs) == 1
    r = recs[0]["Records"][0]
    assert r["eventVersion"] == "2.1" and r["eventSource"] == "aws:s3"
    assert r["awsRegion"] == "us-east-1" and r["eventName"] == "ObjectCreated:Put"
    assert r["eventTime"].endswith("Z")
    assert r["userIdentity"]["principalId"]
    assert r["requestParameters"]["sourceIPAddress"] == "127.0.0.1"
    s3r = r["s3"]
    assert s3r["s3SchemaVersion"] == "1.0" and s3r["configurationId"] == "csv-in"
    assert s3r["bucket"] == {"name": b, "ownerIdentity": {"principalId": account}, "arn": f"arn:aws:s3:::{b}"}
    assert s3r["object"]["key"] == "input/x+y.csv"
    assert urllib.parse.unquote_plus(s3r["object"]["key"]) == "input/x y.csv"
    assert s3r["object"]["size"] == 8 and s3r["object"]["eTag"] == put["ETag"].strip('"')
    assert s3r["object"]["sequencer"]
    # A copy and a multipart upload into the prefix notify too; a delete does not (not configured).
    s3.copy_object(Bucket=b, Key="input/copy.csv", CopySource={"Bucket": b, "Key": "input/x y.csv"})
    s3.delete_object(Bucket=b, Key="input/copy.csv")
    names = wait_for("the copy's event", lambda: [x["Records"][0]["eventName"] for x in records(server, name)]
                     if len(records(server, name)) >= 2 else None)
    assert names == ["ObjectCreated:Put", "ObjectCreated:Copy"]


def test_function_without_permission_is_refused(lam, s3):
    _, arn = deploy(lam, RECORDER, prefix="s3deny")
    b = make_bucket(s3)
    with pytest.raises(ClientError) as e:
        s3.put_bucket_notification_configuration(Bucket=b, NotificationConfiguration={
            "LambdaFunctionConfigurations": [{"LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    assert err(e) == ("InvalidArgument", 400)
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(Bucket=b)


def test_overlapping_and_unknown_configurations_are_refused(lam, s3):
    name, arn = deploy(lam, RECORDER, prefix="s3ovl")
    b = make_bucket(s3)
    allow_s3(lam, name, b, arn.split(":")[4])

    def cfg(prefix, events=("s3:ObjectCreated:*",)):
        return {"LambdaFunctionArn": arn, "Events": list(events),
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}}

    with pytest.raises(ClientError) as e:
        s3.put_bucket_notification_configuration(Bucket=b, NotificationConfiguration={
            "LambdaFunctionConfigurations": [cfg("in/"), cfg("in/sub/", ("s3:ObjectCreated:Put",))]})
    assert err(e) == ("InvalidArgument", 400)
    assert "overlap" in e.value.response["Error"]["Message"]
    s3.put_bucket_notification_configuration(Bucket=b, NotificationConfiguration={
        "LambdaFunctionConfigurations": [cfg("in/"), cfg("out/"), cfg("in/", ("s3:ObjectRemoved:*",))]})
    assert len(s3.get_bucket_notification_configuration(Bucket=b)["LambdaFunctionConfigurations"]) == 3
    with pytest.raises(ClientError) as e:
        s3.put_bucket_notification_configuration(Bucket=b, NotificationConfiguration={
            "LambdaFunctionConfigurations": [cfg("x/", ("s3:ObjectTeleported:*",))]})
    assert err(e) == ("InvalidArgument", 400)
    # An empty configuration removes every notification.
    s3.put_bucket_notification_configuration(Bucket=b, NotificationConfiguration={})
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(Bucket=b)


def test_notification_to_a_queue_with_test_event(server, s3):
    sqs = server.client("sqs")
    url = sqs.create_queue(QueueName=unique_name("s3q"))["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    b = make_bucket(s3)
    s3.put_bucket_notification_configuration(Bucket=b, NotificationConfiguration={
        "QueueConfigurations": [{"Id": "q", "QueueArn": qarn, "Events": ["s3:ObjectRemoved:*"]}]})

    def receive():
        out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for m in out:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in out]

    test = wait_for("the test event", receive)
    assert test[0]["Event"] == "s3:TestEvent" and test[0]["Bucket"] == b and test[0]["Service"] == "Amazon S3"
    s3.put_object(Bucket=b, Key="gone", Body=b"x")
    s3.delete_object(Bucket=b, Key="gone")
    msgs = wait_for("the delete event", receive)
    r = msgs[0]["Records"][0]
    assert r["eventName"] == "ObjectRemoved:Delete" and r["s3"]["object"]["key"] == "gone"
    assert "size" not in r["s3"]["object"]
    # A queue that does not exist is refused.
    with pytest.raises(ClientError) as e:
        s3.put_bucket_notification_configuration(Bucket=b, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": qarn + "-missing", "Events": ["s3:ObjectCreated:*"]}]})
    assert err(e) == ("InvalidArgument", 400)


def test_notification_to_eventbridge(server, lam, s3):
    events = server.client("events")
    name, arn = deploy(lam, RECORDER, prefix="s3eb")
    b = make_bucket(s3)
    rule = unique_name("s3rule")
    rule_arn = events.put_rule(Name=rule, EventPattern=json.dumps({
        "source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": [b]}}}))["RuleArn"]
    lam.add_permission(FunctionName=name, StatementId="eb", Action="lambda:InvokeFunction",
                       Principal="events.amazonaws.com", SourceArn=rule_arn)
    events.put_targets(Rule=rule, Targets=[{"Id": "fn", "Arn": arn}])
    s3.put_bucket_notification_configuration(Bucket=b, NotificationConfiguration={"EventBridgeConfiguration": {}})
    assert "EventBridgeConfiguration" in s3.get_bucket_notification_configuration(Bucket=b)
    s3.put_object(Bucket=b, Key="data/e.json", Body=b"{}")
    got = wait_for("the EventBridge event", lambda: records(server, name))
    ev = got[0]
    assert ev["source"] == "aws.s3" and ev["detail-type"] == "Object Created"
    assert ev["detail"]["bucket"]["name"] == b
    assert ev["detail"]["object"]["key"] == "data/e.json" and ev["detail"]["object"]["size"] == 2
    assert ev["detail"]["reason"] == "PutObject"


def test_function_code_from_the_object_store(server, lam, s3):
    b = make_bucket(s3)
    v1 = make_zip({"app.py": "def handler(e, c):\n    return 'from-s3-v1'\n"})
    v2 = make_zip({"app.py": "def handler(e, c):\n    return 'from-s3-v2'\n"})
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    ver1 = s3.put_object(Bucket=b, Key="pkg/fn.zip", Body=v1)["VersionId"]
    s3.put_object(Bucket=b, Key="pkg/fn.zip", Body=v2)
    name = unique_name("s3code")
    lam.create_function(FunctionName=name, Runtime="python3.11", Role="arn:aws:iam::123456789012:role/r",
                        Handler="app.handler", Code={"S3Bucket": b, "S3Key": "pkg/fn.zip", "S3ObjectVersion": ver1})
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    try:
        assert invoke_ok(lam, name) == "from-s3-v1"
        lam.update_function_code(FunctionName=name, S3Bucket=b, S3Key="pkg/fn.zip")
        lam.get_waiter("function_updated_v2").wait(FunctionName=name)
        assert invoke_ok(lam, name) == "from-s3-v2"
        with pytest.raises(ClientError) as e:
            lam.update_function_code(FunctionName=name, S3Bucket=b, S3Key="pkg/missing.zip")
        assert err(e) == ("InvalidParameterValueException", 400)
        assert "NoSuchKey" in e.value.response["Error"]["Message"]
    finally:
        lam.delete_function(FunctionName=name)
