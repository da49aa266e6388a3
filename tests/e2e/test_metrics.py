"""Prometheus `/metrics`: parses with prometheus_client's parser, moves with invocations, and is
readable only by the root account on the front door (or on the operator's `--metrics-listen`).
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from conftest import UpdraftServer, create_function, free_port, invoke, package_zip, send_raw, unique_name

HANDLER_SRC = """
import time

def handler(event, context):
    time.sleep(event.get("sleep_ms", 0) / 1000)
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"ok": True}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    port = free_port()
    s = UpdraftServer(tmp_path_factory.mktemp("updraft-metrics"),
                      extra_args=("--metrics-listen", f"127.0.0.1:{port}"))
    s.metrics_port = port
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client(retries=0)


def scrape(srv: UpdraftServer) -> dict[tuple[str, tuple], float]:
    r = srv.signed_request("GET", "/metrics")
    assert r.status == 200, r
    samples = {}
    for fam in text_string_to_metric_families(r.body.decode()):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name: str, **labels) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == w for k, w in labels.items()))


def wait_for(srv, name: str, want: float, **labels) -> dict:
    deadline = time.monotonic() + 15
    while True:
        s = scrape(srv)
        if value(s, name, **labels) >= want:
            return s
        assert time.monotonic() < deadline, (name, labels, value(s, name, **labels))
        time.sleep(0.1)


def test_metrics_parse_and_move_with_invocations(srv, lam):
    name = unique_name("met")
    create_function(lam, name, package_zip({"app.py": HANDLER_SRC}), MemorySize=128, Timeout=1)
    before = scrape(srv)
    assert value(before, "updraft_invocations_total", function=name) == 0
    for _ in range(4):
        assert invoke(lam, name, {"sleep_ms": 20}).function_error is None
    assert invoke(lam, name, {"fail": True}).function_error == "Unhandled"
    s = wait_for(srv, "updraft_invocations_total", 5, function=name)
    assert value(s, "updraft_invocations_total", function=name, outcome="success", source="sync") == 4
    assert value(s, "updraft_invocations_total", function=name, outcome="function-error") == 1
    assert value(s, "updraft_errors_total", function=name) == 1
    assert value(s, "updraft_cold_starts_total", function=name) == 1
    assert value(s, "updraft_duration_seconds_count", function=name, version="$LATEST") == 5
    # Each of the four slept 20 ms.
    assert value(s, "updraft_duration_seconds_sum", function=name) >= 0.08
    assert value(s, "updraft_init_duration_seconds_count", function=name) == 1
    # The environment is idle and still counted.
    assert value(s, "updraft_environments", function=name, state="idle") >= 1
    assert value(s, "updraft_concurrent_executions", function=name) == 0
    assert value(s, "updraft_memory_budget_mib") > 0
    assert value(s, "updraft_memory_in_use_mib") >= 128
    assert value(s, "updraft_open_connections") >= 1
    # Throttles.
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=name, Payload=b"{}")
    assert e.value.response["Error"]["Code"] == "TooManyRequestsException"
    s = wait_for(srv, "updraft_throttles_total", 1, function=name)
    assert value(s, "updraft_invocations_total", function=name, outcome="throttle") == 1
    assert value(s, "updraft_errors_total", function=name) == 1


def test_busy_environments_count_as_concurrent_executions(srv, lam):
    name = unique_name("met")
    create_function(lam, name, package_zip({"app.py": HANDLER_SRC}), MemorySize=128, Timeout=10)
    import threading

    t = threading.Thread(target=lambda: invoke(lam, name, {"sleep_ms": 3000}))
    t.start()
    try:
        wait_for(srv, "updraft_concurrent_executions", 1, function=name)
    finally:
        t.join()
    s = wait_for(srv, "updraft_environments", 1, function=name, state="idle")
    assert value(s, "updraft_concurrent_executions", function=name) == 0


def test_metrics_need_root_credentials_on_the_front_door(srv):
    r = send_raw("GET", srv.endpoint + "/metrics")
    assert r.status == 403, r
    made = srv.signed_request("POST", "/updraft/admin/v1/accounts", json.dumps({"Name": "met-b"}).encode())
    assert made.status == 201, made
    b = made.json()
    r = srv.signed_request("GET", "/metrics", credentials=Credentials(b["AccessKeyId"], b["SecretAccessKey"]))
    assert r.status == 403 and r.error_type == "AccessDeniedException", r


def test_the_metrics_listener_serves_a_scraper(srv, lam):
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"updraft_invocations", "updraft_duration_seconds", "updraft_environments"} <= names, names
    # Only /metrics is there.
    r = send_raw("GET", f"http://127.0.0.1:{srv.metrics_port}/2015-03-31/functions")
    assert r.status == 404, r


def test_each_source_is_counted_under_its_own_label(srv, lam):
    """Invocations are labelled by what made them: a direct Invoke (`sync`), an `Event` invoke (`async`)
    and an event source mapping's batches (`event-source`)."""
    name = unique_name("msrc")
    create_function(lam, name, package_zip({"app.py": HANDLER_SRC}), MemorySize=128, Timeout=1)
    assert invoke(lam, name, {}).function_error is None
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")
    sqs = srv.client("sqs")
    url = sqs.create_queue(QueueName=unique_name("msrcq"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mapping = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=1)
    sqs.send_message(QueueUrl=url, MessageBody="one")
    s = wait_for(srv, "updraft_invocations_total", 3, function=name)
    lam.delete_event_source_mapping(UUID=mapping["UUID"])
    assert value(s, "updraft_invocations_total", function=name, source="sync") == 1
    assert value(s, "updraft_invocations_total", function=name, source="async") == 1
    assert value(s, "updraft_invocations_total", function=name, source="event-source") == 1
