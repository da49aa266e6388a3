"""The queue service over SQS's query protocol (form-encoded `Action=`, XML answers): signed form posts built
with botocore's SigV4Auth, the way older SDKs and many existing tools talk to SQS."""

from __future__ import annotations

import base64
import json
import time

import pytest

from conftest import unique_name
from sqs_support import NS, QueryClient, error_code, md5_hex, md5_of_attributes, q, qall


@pytest.fixture(scope="module")
def qc(server):
    return QueryClient(server)


def create(qc, name=None, **attributes) -> str:
    params = {"QueueName": name or unique_name("qq")}
    for i, (k, v) in enumerate(attributes.items(), 1):
        params[f"Attribute.{i}.Name"] = k
        params[f"Attribute.{i}.Value"] = str(v)
    status, root = qc.call("CreateQueue", params)
    assert status == 200, root
    return q(root, "QueueUrl")


def path_of(url: str) -> str:
    return "/" + "/".join(url.split("/")[-2:])


def attributes(qc, url) -> dict:
    status, root = qc.call("GetQueueAttributes", {"QueueUrl": url, "AttributeName.1": "All"})
    assert status == 200
    return {a.find(f"{NS}Name").text: a.find(f"{NS}Value").text for a in qall(root, "Attribute")}


def test_create_send_receive_delete(qc, server):
    url = create(qc, VisibilityTimeout=40)
    assert url.startswith(server.endpoint + "/")
    status, root = qc.call("SendMessage", {
        "QueueUrl": url, "MessageBody": "hello & <xml> \u00e9",
        "MessageAttribute.1.Name": "City", "MessageAttribute.1.Value.DataType": "String",
        "MessageAttribute.1.Value.StringValue": "Any City",
        "MessageAttribute.2.Name": "Blob", "MessageAttribute.2.Value.DataType": "Binary",
        "MessageAttribute.2.Value.BinaryValue": base64.b64encode(b"\x00\x01bin").decode(),
    })
    assert status == 200, root
    want_attrs = {"City": {"DataType": "String", "StringValue": "Any City"},
                  "Blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01bin"}}
    assert q(root, "MD5OfMessageBody") == md5_hex("hello & <xml> \u00e9".encode())
    assert q(root, "MD5OfMessageAttributes") == md5_of_attributes(want_attrs)
    assert root.tag == f"{NS}SendMessageResponse"
    assert q(root, "RequestId")
    # Posted to the queue's own URL path, without QueueUrl, as the older SDKs do.
    status, root = qc.call("ReceiveMessage", {"MaxNumberOfMessages": "10", "AttributeName.1": "All",
                                              "MessageAttributeName.1": "All"}, path=path_of(url))
    assert status == 200, root
    msgs = qall(root, "Message")
    assert len(msgs) == 1
    m = msgs[0]
    assert q(m, "Body") == "hello & <xml> \u00e9"
    assert q(m, "MD5OfBody") == md5_hex("hello & <xml> \u00e9".encode())
    assert q(m, "MD5OfMessageAttributes") == md5_of_attributes(want_attrs)
    sysattrs = {a.find(f"{NS}Name").text: a.find(f"{NS}Value").text for a in m.findall(f"{NS}Attribute")}
    assert sysattrs["ApproximateReceiveCount"] == "1"
    got_attrs = {}
    for a in m.findall(f"{NS}MessageAttribute"):
        v = a.find(f"{NS}Value")
        got_attrs[a.find(f"{NS}Name").text] = {c.tag.replace(NS, ""): c.text for c in v}
    assert got_attrs["City"] == {"DataType": "String", "StringValue": "Any City"}
    assert base64.b64decode(got_attrs["Blob"]["BinaryValue"]) == b"\x00\x01bin"
    status, root = qc.call("DeleteMessage", {"QueueUrl": url, "ReceiptHandle": q(m, "ReceiptHandle")})
    assert status == 200 and root.tag == f"{NS}DeleteMessageResponse"
    a = attributes(qc, url)
    assert a["VisibilityTimeout"] == "40"
    assert a["ApproximateNumberOfMessages"] == "0" and a["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_batches_and_get_requests(qc):
    url = create(qc)
    params = {"QueueUrl": url}
    for i in range(1, 4):
        params[f"SendMessageBatchRequestEntry.{i}.Id"] = f"e{i}"
        params[f"SendMessageBatchRequestEntry.{i}.MessageBody"] = f"body {i}"
    status, root = qc.call("SendMessageBatch", params)
    assert status == 200, root
    entries = qall(root, "SendMessageBatchResultEntry")
    assert {q(e, "Id"): q(e, "MD5OfMessageBody") for e in entries} == {
        f"e{i}": md5_hex(f"body {i}".encode()) for i in range(1, 4)}
    # The query protocol over GET, as some tools send it.
    status, root = qc.call("ReceiveMessage", {"QueueUrl": url, "MaxNumberOfMessages": "10"}, method="GET")
    assert status == 200, root
    handles = [q(m, "ReceiptHandle") for m in qall(root, "Message")]
    assert len(handles) == 3
    params = {"QueueUrl": url}
    for i, h in enumerate(handles, 1):
        params[f"DeleteMessageBatchRequestEntry.{i}.Id"] = f"d{i}"
        params[f"DeleteMessageBatchRequestEntry.{i}.ReceiptHandle"] = h
    status, root = qc.call("DeleteMessageBatch", params)
    assert status == 200
    assert len(qall(root, "DeleteMessageBatchResultEntry")) == 3
    status, root = qc.call("SendMessageBatch", {
        "QueueUrl": url,
        "SendMessageBatchRequestEntry.1.Id": "same", "SendMessageBatchRequestEntry.1.MessageBody": "a",
        "SendMessageBatchRequestEntry.2.Id": "same", "SendMessageBatchRequestEntry.2.MessageBody": "b"})
    assert status == 400
    assert error_code(root) == "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"


def test_errors_are_xml_error_responses(qc):
    status, root = qc.call("GetQueueUrl", {"QueueName": unique_name("missing")})
    assert status == 400
    assert root.tag == f"{NS}ErrorResponse"
    assert error_code(root) == "AWS.SimpleQueueService.NonExistentQueue"
    assert q(root, "Type") == "Sender"
    url = create(qc)
    status, root = qc.call("SendMessage", {"QueueUrl": url, "MessageBody": "bad \x01"})
    assert status == 400 and error_code(root) == "InvalidMessageContents"
    status, root = qc.call("DeleteMessage", {"QueueUrl": url, "ReceiptHandle": "forged-handle"})
    assert status == 400 and error_code(root) == "ReceiptHandleIsInvalid"
    status, root = qc.call("CreateQueue", {"QueueName": unique_name("qq"), "Attribute.1.Name": "Nope",
                                           "Attribute.1.Value": "1"})
    assert status == 400 and error_code(root) == "InvalidAttributeName"
    status, root = qc.call("NoSuchAction", {})
    assert status == 400 and error_code(root) == "InvalidAction"


def test_fifo_without_group_id(qc):
    url = create(qc, unique_name("qf") + ".fifo", FifoQueue="true", ContentBasedDeduplication="true")
    status, root = qc.call("SendMessage", {"QueueUrl": url, "MessageBody": "x"})
    assert status == 400 and error_code(root) == "MissingParameter"
    status, root = qc.call("SendMessage", {"QueueUrl": url, "MessageBody": "x", "MessageGroupId": "g"})
    assert status == 200 and q(root, "SequenceNumber")


def test_list_tags_purge_and_delete(qc):
    prefix = unique_name("ql")
    urls = [create(qc, f"{prefix}-{i}") for i in range(2)]
    status, root = qc.call("ListQueues", {"QueueNamePrefix": prefix})
    assert status == 200 and [u.text for u in qall(root, "QueueUrl")] == sorted(urls)
    status, _ = qc.call("TagQueue", {"QueueUrl": urls[0], "Tag.1.Key": "team", "Tag.1.Value": "core"})
    assert status == 200
    status, root = qc.call("ListQueueTags", {"QueueUrl": urls[0]})
    assert {q(t, "Key"): q(t, "Value") for t in qall(root, "Tag")} == {"team": "core"}
    qc.call("SendMessage", {"QueueUrl": urls[0], "MessageBody": "x"})
    status, _ = qc.call("PurgeQueue", {"QueueUrl": urls[0]})
    assert status == 200 and attributes(qc, urls[0])["ApproximateNumberOfMessages"] == "0"
    status, _ = qc.call("DeleteQueue", {"QueueUrl": urls[1]})
    assert status == 200
    status, root = qc.call("GetQueueAttributes", {"QueueUrl": urls[1], "AttributeName.1": "All"})
    assert status == 400 and error_code(root) == "AWS.SimpleQueueService.NonExistentQueue"


def test_redrive_policy_over_query(qc):
    dlq = create(qc)
    arn = attributes(qc, dlq)["QueueArn"]
    src = create(qc, RedrivePolicy=json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "1"}))
    qc.call("SendMessage", {"QueueUrl": src, "MessageBody": "poison"})
    status, root = qc.call("ReceiveMessage", {"QueueUrl": src, "VisibilityTimeout": "0"})
    assert len(qall(root, "Message")) == 1
    status, root = qc.call("ReceiveMessage", {"QueueUrl": src})
    assert qall(root, "Message") == []
    assert attributes(qc, dlq)["ApproximateNumberOfMessages"] == "1"
    status, root = qc.call("StartMessageMoveTask", {"SourceArn": arn})
    assert status == 200 and q(root, "TaskHandle")
    deadline = time.monotonic() + 60
    while True:
        status, root = qc.call("ListMessageMoveTasks", {"SourceArn": arn})
        if q(root, "Status") != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert q(root, "Status") == "COMPLETED"
    assert attributes(qc, src)["ApproximateNumberOfMessages"] == "1"


def test_authentication_failure_is_an_xml_error(server):
    from botocore.credentials import Credentials

    ak, _ = server.keys()

    class WrongSecret:
        endpoint = server.endpoint

        @staticmethod
        def credentials():
            return Credentials(ak, "0" * 40)

    status, root = QueryClient(WrongSecret).call("ListQueues")
    assert status == 403
    assert root.tag == f"{NS}ErrorResponse"
    assert error_code(root) == "SignatureDoesNotMatch"
