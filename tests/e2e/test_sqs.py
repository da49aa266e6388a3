"""The queue service over SQS's JSON protocol, driven with boto3 (what current SDKs and the aws CLI send)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from botocore.exceptions import ClientError

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from conftest import REGION, send_raw, unique_name
from sqs_support import md5_hex, md5_of_attributes


@pytest.fixture(scope="module")
def sqs(server):
    return server.client("sqs")


@pytest.fixture(scope="module")
def sqs_raw(server):
    """A client that sends what it is given (no client-side parameter validation)."""
    return server.client("sqs", validate=False)


def new_queue(sqs, fifo: bool = False, **attributes) -> str:
    name = unique_name("q") + (".fifo" if fifo else "")
    attrs = {k: str(v) for k, v in attributes.items()}
    if fifo:
        attrs["FifoQueue"] = "true"
    return sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]


def signed(server, method, path, body, headers, service):
    req = AWSRequest(method=method, url=server.endpoint + path, data=body, headers=headers)
    SigV4Auth(server.credentials(), service, REGION).add_auth(req)
    p = req.prepare()
    return send_raw(method, p.url, p.body, dict(p.headers.items()))


def attrs_of(sqs, url: str) -> dict:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def code_of(exc_info) -> str:
    return exc_info.value.response["Error"]["Code"]


ATTRS = {
    "City": {"DataType": "String", "StringValue": "Any City"},
    "Population": {"DataType": "Number", "StringValue": "1250800"},
    "Greeting": {"DataType": "Binary", "BinaryValue": b"Hello, World!"},
}


def test_create_is_idempotent_and_conflicts_on_other_attributes(server, sqs):
    name = unique_name("q")
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"]
    account = url.rstrip("/").split("/")[-2]
    assert url == f"{server.endpoint}/{account}/{name}"
    assert sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"] == url
    with pytest.raises(sqs.exceptions.QueueNameExists) as e:
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "46"})
    assert code_of(e) == "QueueAlreadyExists"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    a = attrs_of(sqs, url)
    assert a["QueueArn"] == f"arn:aws:sqs:us-east-1:{account}:{name}"
    assert a["VisibilityTimeout"] == "45"
    assert a["MaximumMessageSize"] == "1048576"
    assert a["MessageRetentionPeriod"] == "345600"


def test_unknown_queue_and_bad_attributes(sqs):
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as e:
        sqs.get_queue_url(QueueName=unique_name("missing"))
    assert code_of(e) == "AWS.SimpleQueueService.NonExistentQueue"
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=unique_name("q"), Attributes={"VisibilityTimeout": "43201"})
    assert code_of(e) == "InvalidAttributeValue"
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=unique_name("q"), Attributes={"ContentBasedDeduplication": "true"})
    assert code_of(e) == "InvalidAttributeName"
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName="bad name!")
    assert code_of(e) == "InvalidParameterValue"


def test_list_queues_prefix_and_pagination(sqs):
    prefix = unique_name("lst")
    urls = sorted(sqs.create_queue(QueueName=f"{prefix}-{i}")["QueueUrl"] for i in range(5))
    page1 = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=2)
    assert page1["QueueUrls"] == urls[:2]
    page2 = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=2, NextToken=page1["NextToken"])
    page3 = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=2, NextToken=page2["NextToken"])
    assert page2["QueueUrls"] + page3["QueueUrls"] == urls[2:]
    assert "NextToken" not in page3
    assert sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"] == urls


def test_send_receive_delete_with_attributes_and_digests(sqs):
    url = new_queue(sqs)
    body = "héllo wörld \U0001F600"
    sent = sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=ATTRS,
                            MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String",
                                                                        "StringValue": "Root=1-abc"}})
    assert sent["MD5OfMessageBody"] == md5_hex(body.encode())
    assert sent["MD5OfMessageAttributes"] == md5_of_attributes(ATTRS)
    assert "MD5OfMessageSystemAttributes" in sent
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                              MessageSystemAttributeNames=["All"])["Messages"]
    assert len(got) == 1
    m = got[0]
    assert m["MessageId"] == sent["MessageId"]
    assert m["Body"] == body
    assert m["MD5OfBody"] == md5_hex(body.encode())
    assert m["MessageAttributes"] == ATTRS
    assert m["MD5OfMessageAttributes"] == md5_of_attributes(m["MessageAttributes"])
    assert m["Attributes"]["ApproximateReceiveCount"] == "1"
    assert m["Attributes"]["AWSTraceHeader"] == "Root=1-abc"
    assert int(m["Attributes"]["SentTimestamp"]) > 0
    only_city = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)  # in flight: nothing
    assert "Messages" not in only_city
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    a = attrs_of(sqs, url)
    assert (a["ApproximateNumberOfMessages"], a["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")


def test_batch_send_and_delete(sqs):
    url = new_queue(sqs)
    entries = [{"Id": f"e{i}", "MessageBody": f"m{i}",
                "MessageAttributes": {"n": {"DataType": "Number", "StringValue": str(i)}}} for i in range(10)]
    r = sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert not r.get("Failed")
    by_id = {e["Id"]: e for e in r["Successful"]}
    for e in entries:
        assert by_id[e["Id"]]["MD5OfMessageBody"] == md5_hex(e["MessageBody"].encode())
        assert by_id[e["Id"]]["MD5OfMessageAttributes"] == md5_of_attributes(e["MessageAttributes"])
    got = []
    while len(got) < 10:
        got += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert sorted(m["Body"] for m in got) == sorted(e["MessageBody"] for e in entries)
    d = sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]}
                                                        for i, m in enumerate(got)])
    assert len(d["Successful"]) == 10 and not d.get("Failed")
    assert attrs_of(sqs, url)["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_batch_errors(sqs, sqs_raw):
    url = new_queue(sqs, MaximumMessageSize=1024)
    with pytest.raises(sqs.exceptions.BatchEntryIdsNotDistinct) as e:
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}])
    assert code_of(e) == "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
    with pytest.raises(sqs.exceptions.TooManyEntriesInBatchRequest):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": f"i{i}", "MessageBody": "x"} for i in range(11)])
    with pytest.raises(sqs.exceptions.EmptyBatchRequest):
        sqs_raw.send_message_batch(QueueUrl=url, Entries=[])
    with pytest.raises(sqs.exceptions.InvalidBatchEntryId):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "not ok!", "MessageBody": "x"}])
    # One entry too large: it alone fails, the other is stored.
    r = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "big", "MessageBody": "x" * 1025},
                                                      {"Id": "ok", "MessageBody": "fine"}])
    assert [s["Id"] for s in r["Successful"]] == ["ok"]
    assert r["Failed"][0]["Id"] == "big" and r["Failed"][0]["Code"] == "InvalidParameterValue"
    assert r["Failed"][0]["SenderFault"] is True
    assert attrs_of(sqs, url)["ApproximateNumberOfMessages"] == "1"


def test_bad_messages_are_refused_and_nothing_is_stored(sqs, server):
    url = new_queue(sqs)
    with pytest.raises(sqs.exceptions.InvalidMessageContents) as e:
        sqs.send_message(QueueUrl=url, MessageBody="bad \x00 char")
    assert code_of(e) == "InvalidMessageContents"
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x" * (1024 * 1024 + 1))
    assert code_of(e) == "InvalidParameterValue"
    assert "shorter than 1048576" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x",
                         MessageAttributes={"n": {"DataType": "Number", "StringValue": "not-a-number"}})
    assert code_of(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x",
                         MessageAttributes={"n": {"DataType": "Blob", "StringValue": "v"}})
    assert code_of(e) == "InvalidParameterValue"
    assert attrs_of(sqs, url)["ApproximateNumberOfMessages"] == "0"
    # A message of exactly the limit is accepted.
    sqs.send_message(QueueUrl=url, MessageBody="y" * (1024 * 1024))
    assert attrs_of(sqs, url)["ApproximateNumberOfMessages"] == "1"


def test_error_wire_shape(server):
    """The JSON protocol's error: __type and the query-compatible code header, as SQS sends them."""
    body = json.dumps({"QueueName": unique_name("missing")}).encode()
    r = signed(server, "POST", "/", body, {"Content-Type": "application/x-amz-json-1.0",
                                           "X-Amz-Target": "AmazonSQS.GetQueueUrl"}, "sqs")
    assert r.status == 400
    assert r.json()["__type"] == "com.amazonaws.sqs#QueueDoesNotExist"
    assert r.headers["x-amzn-query-error"] == "AWS.SimpleQueueService.NonExistentQueue;Sender"


def test_receipt_handles_forged_and_stale(sqs):
    url = new_queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="x")
    first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]
    second = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"][0]
    assert first["ReceiptHandle"] != second["ReceiptHandle"]
    forged = second["ReceiptHandle"][:-4] + ("AAAA" if not second["ReceiptHandle"].endswith("AAAA") else "BBBB")
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid) as e:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=forged)
    assert code_of(e) == "ReceiptHandleIsInvalid"
    # A handle of another queue is not valid here either.
    other = new_queue(sqs)
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=other, ReceiptHandle=second["ReceiptHandle"])
    # Stale (the message was received again since): succeeds, deletes nothing.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    assert attrs_of(sqs, url)["ApproximateNumberOfMessagesNotVisible"] == "1"
    with pytest.raises(ClientError) as e:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=5)
    assert code_of(e) == "InvalidParameterValue"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"])
    assert attrs_of(sqs, url)["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_delay_and_visibility_timeout_and_its_change(sqs):
    url = new_queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=2)
    a = attrs_of(sqs, url)
    assert a["ApproximateNumberOfMessagesDelayed"] == "1"
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    # Long polling returns it once the delay has passed.
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10, VisibilityTimeout=1)["Messages"]
    assert got[0]["Body"] == "later"
    # Invisible while in flight, visible again after the timeout.
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    again = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10, VisibilityTimeout=60)["Messages"][0]
    assert again["MessageId"] == got[0]["MessageId"]
    # Change the timeout to 0: visible at once.
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=0)
    third = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"],
                                VisibilityTimeout=60)["Messages"][0]
    assert third["Attributes"]["ApproximateReceiveCount"] == "3"
    r = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "a", "ReceiptHandle": third["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "b", "ReceiptHandle": again["ReceiptHandle"], "VisibilityTimeout": 0}])
    assert [s["Id"] for s in r["Successful"]] == ["a"]
    assert r["Failed"][0]["Id"] == "b"
    assert "Messages" in sqs.receive_message(QueueUrl=url)


def test_long_poll_returns_when_a_message_arrives(sqs):
    url = new_queue(sqs)
    result = {}

    def poll():
        t0 = time.monotonic()
        result["r"] = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20)
        result["elapsed"] = time.monotonic() - t0

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(1)
    sqs.send_message(QueueUrl=url, MessageBody="wake up")
    t.join(30)
    assert result["r"]["Messages"][0]["Body"] == "wake up"
    assert result["elapsed"] < 20, "the long poll ran its whole wait instead of returning on arrival"


def test_purge(sqs):
    url = new_queue(sqs)
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(5)])
    sqs.purge_queue(QueueUrl=url)
    assert attrs_of(sqs, url)["ApproximateNumberOfMessages"] == "0"
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    with pytest.raises(sqs.exceptions.PurgeQueueInProgress):
        sqs.purge_queue(QueueUrl=url)


def test_fifo_order_groups_and_dedup(sqs):
    url = new_queue(sqs, fifo=True)
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageDeduplicationId="d")
    assert code_of(e) == "MissingParameter"
    seqs = []
    for i in range(3):
        for g in ("a", "b"):
            r = sqs.send_message(QueueUrl=url, MessageBody=f"{g}{i}", MessageGroupId=g, MessageDeduplicationId=f"{g}{i}")
            seqs.append(int(r["SequenceNumber"]))
    assert seqs == sorted(seqs)
    dup = sqs.send_message(QueueUrl=url, MessageBody="a0 again", MessageGroupId="a", MessageDeduplicationId="a0")
    assert attrs_of(sqs, url)["ApproximateNumberOfMessages"] == "6"
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, AttributeNames=["All"])["Messages"][0]
    assert first["Body"] == "a0" and first["MessageId"] == dup["MessageId"]
    assert first["Attributes"]["MessageGroupId"] == "a"
    # Group a is blocked while a0 is in flight; b's messages come in order.
    rest = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in rest] == ["b0", "b1", "b2"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    nxt = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in nxt] == ["a1", "a2"]


def test_fifo_content_based_dedup_and_attempt_id(sqs):
    url = new_queue(sqs, fifo=True, ContentBasedDeduplication="true")
    a = sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    b = sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    assert a["MessageId"] == b["MessageId"]
    sqs.send_message(QueueUrl=url, MessageBody="other", MessageGroupId="g")
    r1 = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, ReceiveRequestAttemptId="try1")["Messages"]
    r2 = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, ReceiveRequestAttemptId="try1")["Messages"]
    assert [m["Body"] for m in r1] == ["same", "other"]
    assert [m["ReceiptHandle"] for m in r1] == [m["ReceiptHandle"] for m in r2]
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g", DelaySeconds=5)
    assert code_of(e) == "InvalidParameterValue"


def test_redrive_to_dlq_and_back_with_a_move_task(sqs):
    dlq = new_queue(sqs)
    dlq_arn = attrs_of(sqs, dlq)["QueueArn"]
    src = new_queue(sqs, RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}))
    src_arn = attrs_of(sqs, src)["QueueArn"]
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [src]
    sqs.send_message(QueueUrl=src, MessageBody="poison")
    for _ in range(2):
        assert sqs.receive_message(QueueUrl=src, VisibilityTimeout=0)["Messages"][0]["Body"] == "poison"
    # The third receive finds it past maxReceiveCount: it goes to the dead-letter queue.
    assert "Messages" not in sqs.receive_message(QueueUrl=src)
    dead = sqs.receive_message(QueueUrl=dlq, VisibilityTimeout=0, MessageSystemAttributeNames=["All"])["Messages"]
    assert dead[0]["Body"] == "poison"
    assert dead[0]["Attributes"]["DeadLetterQueueSourceArn"] == src_arn
    task = sqs.start_message_move_task(SourceArn=dlq_arn)
    assert task["TaskHandle"]
    tasks = wait_for_move_task(sqs, dlq_arn)
    assert tasks[0]["Status"] == "COMPLETED"
    assert tasks[0]["ApproximateNumberOfMessagesMoved"] == 1
    back = sqs.receive_message(QueueUrl=src, AttributeNames=["ApproximateReceiveCount"])["Messages"]
    assert back[0]["Body"] == "poison"
    assert back[0]["Attributes"]["ApproximateReceiveCount"] == "1"
    assert attrs_of(sqs, dlq)["ApproximateNumberOfMessages"] == "0"
    with pytest.raises(ClientError) as e:
        sqs.start_message_move_task(SourceArn=src_arn)
    assert code_of(e) == "InvalidParameterValue"


def wait_for_move_task(sqs, source_arn: str) -> list:
    """The source's move tasks once the newest has finished (a move task runs in the background)."""
    deadline = time.monotonic() + 60
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=source_arn)["Results"]
        if tasks[0]["Status"] not in ("RUNNING", "CANCELLING") or time.monotonic() > deadline:
            return tasks
        time.sleep(0.1)


def test_move_task_rate_and_cancel(sqs):
    dlq = new_queue(sqs)
    dlq_arn = attrs_of(sqs, dlq)["QueueArn"]
    # A source naming it makes it a dead-letter queue.
    new_queue(sqs, RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}))
    other = new_queue(sqs)
    for i in range(5):
        sqs.send_message_batch(QueueUrl=dlq, Entries=[{"Id": str(k), "MessageBody": f"{i}-{k}"} for k in range(10)])
    # One message a second: 50 seconds of work, cancelled long before it ends.
    handle = sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=attrs_of(sqs, other)["QueueArn"],
                                         MaxNumberOfMessagesPerSecond=1)["TaskHandle"]
    running = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0]
    assert running["Status"] == "RUNNING" and running["TaskHandle"] == handle
    assert running["ApproximateNumberOfMessagesToMove"] == 50
    with pytest.raises(sqs.exceptions.UnsupportedOperation):
        sqs.start_message_move_task(SourceArn=dlq_arn)
    sqs.cancel_message_move_task(TaskHandle=handle)
    done = wait_for_move_task(sqs, dlq_arn)[0]
    assert done["Status"] == "CANCELLED"
    moved = done["ApproximateNumberOfMessagesMoved"]
    assert moved < 50
    assert int(attrs_of(sqs, other)["ApproximateNumberOfMessages"]) == moved
    assert int(attrs_of(sqs, dlq)["ApproximateNumberOfMessages"]) == 50 - moved
    with pytest.raises(sqs.exceptions.ResourceNotFoundException):
        sqs.cancel_message_move_task(TaskHandle="no-such-task")


def test_tags_and_set_attributes(sqs):
    url = new_queue(sqs)
    sqs.tag_queue(QueueUrl=url, Tags={"team": "core", "env": "dev"})
    sqs.untag_queue(QueueUrl=url, TagKeys=["env"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "core"}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "3", "Policy": json.dumps({"Version": "2012-10-17", "Statement": []})})
    a = attrs_of(sqs, url)
    assert a["DelaySeconds"] == "3"
    assert json.loads(a["Policy"])["Statement"] == []
    with pytest.raises(ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"FifoQueue": "true"})
    assert code_of(e) == "InvalidAttributeValue"


def test_queues_belong_to_accounts(server, sqs):
    """Another account neither sees nor reaches a queue, unless the queue's policy names it."""
    r = signed(server, "POST", "/updraft/admin/v1/accounts", json.dumps({"Name": unique_name("acct")}).encode(),
               {"Content-Type": "application/json"}, "lambda")
    assert r.status == 201, r
    other = r.json()
    acct = other["AccountId"]
    theirs = server.client("sqs", access_key=other["AccessKeyId"], secret_key=other["SecretAccessKey"])
    url = new_queue(sqs)
    name = url.rsplit("/", 1)[1]
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        theirs.get_queue_url(QueueName=name)
    with pytest.raises(ClientError) as e:
        theirs.send_message(QueueUrl=url, MessageBody="x")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    owner = url.split("/")[-2]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{acct}:root"},
                       "Action": "sqs:SendMessage", "Resource": f"arn:aws:sqs:us-east-1:{owner}:{name}"}]})})
    theirs.send_message(QueueUrl=url, MessageBody="from a friend")
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "from a friend"
    assert name not in json.dumps(theirs.list_queues())


def test_authentication_failures_in_sqs_shape(server):
    ak, _ = server.keys()
    bad_secret = server.client("sqs", access_key=ak, secret_key="0" * 40)
    with pytest.raises(ClientError) as e:
        bad_secret.list_queues()
    assert code_of(e) == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    unknown = server.client("sqs", access_key="AKIAUNKNOWNKEY000001", secret_key="0" * 40)
    with pytest.raises(ClientError) as e:
        unknown.list_queues()
    assert code_of(e) == "InvalidClientTokenId"


def test_credentials_scoped_to_another_service_are_refused(server):
    body = json.dumps({}).encode()
    r = signed(server, "POST", "/", body, {"Content-Type": "application/x-amz-json-1.0",
                                           "X-Amz-Target": "AmazonSQS.ListQueues"}, "lambda")
    assert r.status == 403
    assert r.headers["x-amzn-query-error"] == "SignatureDoesNotMatch;Sender"
    assert "'sqs'" in r.json()["message"]


def test_aws_cli(aws_cli):
    name = unique_name("cli")
    url = json.loads(aws_cli("sqs", "create-queue", "--queue-name", name).stdout)["QueueUrl"]
    sent = json.loads(aws_cli("sqs", "send-message", "--queue-url", url, "--message-body", "from the cli",
                              "--message-attributes",
                              json.dumps({"k": {"DataType": "String", "StringValue": "v"}})).stdout)
    assert sent["MD5OfMessageBody"] == md5_hex(b"from the cli")
    got = json.loads(aws_cli("sqs", "receive-message", "--queue-url", url, "--message-attribute-names", "All",
                             "--wait-time-seconds", "1").stdout)["Messages"][0]
    assert got["Body"] == "from the cli" and got["MessageAttributes"]["k"]["StringValue"] == "v"
    aws_cli("sqs", "delete-message", "--queue-url", url, "--receipt-handle", got["ReceiptHandle"])
    missing = aws_cli("sqs", "get-queue-url", "--queue-name", unique_name("nope"), check=False)
    assert missing.returncode != 0
    assert "AWS.SimpleQueueService.NonExistentQueue" in missing.stderr


def test_redrive_policy_must_name_an_existing_queue_of_the_same_type(sqs, server):
    account = new_queue(sqs).split("/")[-2]
    missing = f"arn:aws:sqs:us-east-1:{account}:{unique_name('nope')}"
    with pytest.raises(ClientError) as e:
        new_queue(sqs, RedrivePolicy=json.dumps({"deadLetterTargetArn": missing, "maxReceiveCount": 3}))
    assert code_of(e) == "InvalidParameterValue"
    assert "Dead letter target does not exist" in e.value.response["Error"]["Message"]
    fifo_dlq_arn = attrs_of(sqs, new_queue(sqs, fifo=True))["QueueArn"]
    url = new_queue(sqs)
    with pytest.raises(ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": fifo_dlq_arn, "maxReceiveCount": 3})})
    assert code_of(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        new_queue(sqs, RedrivePolicy=json.dumps({"deadLetterTargetArn": fifo_dlq_arn, "maxReceiveCount": 0}))
    assert code_of(e) == "InvalidParameterValue"
