"""Acknowledged sends survive `kill -9`: a send is answered only after its group commit."""

from __future__ import annotations

import signal
import threading
import time

from conftest import unique_name


def test_kill_9_after_acknowledged_sends_loses_nothing(server_factory):
    srv = server_factory()
    sqs = srv.client("sqs")
    url = sqs.create_queue(QueueName=unique_name("dur"))["QueueUrl"]
    fifo = sqs.create_queue(QueueName=unique_name("dur") + ".fifo",
                            Attributes={"FifoQueue": "true"})["QueueUrl"]
    acked: list[str] = []
    lock = threading.Lock()

    def sender(t: int) -> None:
        c = srv.client("sqs")
        for b in range(10):
            r = c.send_message_batch(QueueUrl=url, Entries=[
                {"Id": f"m{i}", "MessageBody": f"t{t}-b{b}-m{i}"} for i in range(10)])
            assert not r.get("Failed")
            with lock:
                acked.extend(f"t{t}-b{b}-m{i}" for i in range(10))

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(5):
        sqs.send_message(QueueUrl=fifo, MessageBody=f"f{i}", MessageGroupId="g", MessageDeduplicationId=f"f{i}")
    # One received and deleted before the crash must stay deleted.
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"][0]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got["ReceiptHandle"])
    expected = set(acked) - {got["Body"]}

    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait()
    srv.proc = None
    srv.start()

    sqs = srv.client("sqs")
    seen: set[str] = set()
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300).get("Messages", [])
        if not msgs:
            break
        seen.update(m["Body"] for m in msgs)
    assert seen == expected, f"lost {len(expected - seen)}, unexpected {len(seen - expected)}"
    order = []
    while True:
        msgs = sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            break
        order += [m["Body"] for m in msgs]
        for m in msgs:
            sqs.delete_message(QueueUrl=fifo, ReceiptHandle=m["ReceiptHandle"])
    assert order == [f"f{i}" for i in range(5)]


def test_sigterm_ends_long_polls_instead_of_waiting_for_them(server_factory):
    srv = server_factory()
    sqs = srv.client("sqs")
    url = sqs.create_queue(QueueName=unique_name("poll"))["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="kept")
    # Hold the message in flight so the poll below finds nothing and waits.
    sqs.receive_message(QueueUrl=url, VisibilityTimeout=300)
    result = {}

    def poll():
        try:
            result["r"] = srv.client("sqs").receive_message(QueueUrl=url, WaitTimeSeconds=20)
        except Exception as e:  # the connection may close as the server exits
            result["e"] = e

    t = threading.Thread(target=poll)
    t.start()
    # Give the poll time to reach the server, then stop: `stop` fails the test unless the server exits
    # within 10 s, well before the 20 s poll would have ended.
    time.sleep(2)
    assert srv.stop() == 0
    t.join(30)
    assert not t.is_alive()
    # The poll was answered (empty) by the stopping server, not cut off.
    assert "e" not in result, result
    assert "Messages" not in result["r"]
    srv.start()
    # The in-flight message survived the restart, still in flight.
    a = srv.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert a["ApproximateNumberOfMessagesNotVisible"] == "1"
