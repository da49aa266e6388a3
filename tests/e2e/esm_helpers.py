"""Helpers of the event source mapping suites: queues, mappings, and what functions logged."""

from __future__ import annotations

import collections
import json
import time
import urllib.parse

from async_helpers import wait_for
from conftest import UpdraftServer, create_function, make_zip, unique_name

# Logs one line per record it is given, then succeeds.
RECORDER = (
    "import json\n"
    "def handler(event, context):\n"
    "    for r in event['Records']:\n"
    "        print('DONE ' + json.dumps(r, sort_keys=True))\n"
    "    return {}\n"
)


def deploy(lam, code: str, prefix: str = "esm", **kwargs) -> tuple[str, str]:
    """Creates a python function from one app.py; returns (name, ARN)."""
    name = unique_name(prefix)
    resp = create_function(lam, name, zip_bytes=make_zip({"app.py": code}), **kwargs)
    return name, resp["FunctionArn"]


def make_queue(sqs, prefix: str = "esmq", fifo: bool = False, **attributes) -> tuple[str, str]:
    """Creates a queue; returns (url, ARN)."""
    name = unique_name(prefix) + (".fifo" if fifo else "")
    attrs = {k: str(v) for k, v in attributes.items()}
    if fifo:
        attrs["FifoQueue"] = "true"
    url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def send_many(sqs, url: str, bodies: list[str], **extra) -> list[str]:
    """Sends bodies in batches of ten; returns the message ids in order."""
    ids = []
    for i in range(0, len(bodies), 10):
        entries = [{"Id": str(j), "MessageBody": b, **extra} for j, b in enumerate(bodies[i:i + 10])]
        r = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert not r.get("Failed"), r
        ids += [s["MessageId"] for s in sorted(r["Successful"], key=lambda s: int(s["Id"]))]
    return ids


def wait_state(lam, uuid: str, state: str, timeout: float = 30.0) -> dict:
    return wait_for(
        f"mapping {uuid} to be {state}",
        lambda: (m := lam.get_event_source_mapping(UUID=uuid))["State"] == state and m,
        timeout=timeout,
        interval=0.1,
    )


def all_log_messages(srv: UpdraftServer, name: str) -> list[str]:
    """Every log message of `name`, following `nextToken` pages."""
    out: list[str] = []
    token = None
    while True:
        path = f"/updraft/v1/functions/{name}/logs"
        if token:
            path += "?nextToken=" + urllib.parse.quote(token, safe="")
        r = srv.signed_request("GET", path)
        assert r.status == 200, r
        page = r.json()
        out += [e["message"] for e in page["events"]]
        token = page.get("nextToken")
        if not token or not page["events"]:
            return out


def done_records(srv: UpdraftServer, name: str) -> list[dict]:
    """The records a RECORDER-like function logged with `DONE `, in order."""
    return [json.loads(m[len("DONE "):]) for m in all_log_messages(srv, name) if m.startswith("DONE ")]


def counts_by_id(records: list[dict]) -> collections.Counter:
    return collections.Counter(r["messageId"] for r in records)


def queue_depth(sqs, url: str) -> int:
    a = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                        "ApproximateNumberOfMessagesDelayed"],
    )["Attributes"]
    return sum(int(v) for v in a.values())


def wait_drained(srv, sqs, url: str, name: str, expected_ids, timeout: float = 180.0) -> collections.Counter:
    """Waits until every id was logged by `name` and the queue is empty; returns the per-id counts."""
    expected = set(expected_ids)

    def check():
        got = counts_by_id(done_records(srv, name))
        return got if expected <= set(got) and queue_depth(sqs, url) == 0 else None

    return wait_for(f"{len(expected)} messages drained through {name}", check, timeout=timeout, interval=0.5)


def settle(seconds: float) -> None:
    time.sleep(seconds)
