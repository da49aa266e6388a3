"""CloudWatch metrics: `AWS/Lambda` from invocations just made, custom metrics, validation errors and
isolation, in each of the three protocols CloudWatch's model lists.

boto3 and the aws CLI pick the protocol from the service model; each protocol is forced by a copy
of botocore's CloudWatch model whose `metadata.protocol` names it, found first through
`AWS_DATA_PATH` (the CLI) or the session's data loader (boto3). A `before-send` hook records
what went on the wire, so each test proves which protocol it spoke.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import botocore.session
import cbor2
import pytest
from botocore.awsrequest import AWSRequest
from botocore.auth import SigV4Auth
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import REGION, UpdraftServer, create_function, invoke, package_zip, send_raw, unique_name

PROTOCOLS = ("smithy-rpc-v2-cbor", "json", "query")

HANDLER_SRC = """
import time

def handler(event, context):
    time.sleep(event.get("sleep_ms", 0) / 1000)
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"ok": True}
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """One data directory per protocol, each with a CloudWatch model that names only it."""
    src_dir = Path(botocore.__file__).parent / "data" / "cloudwatch"
    version = sorted(p.name for p in src_dir.iterdir() if p.is_dir())[-1]
    src = src_dir / version / "service-2.json.gz"
    model = json.loads(gzip.decompress(src.read_bytes())) if src.exists() else json.loads(
        (src_dir / version / "service-2.json").read_text())
    out = {}
    for proto in PROTOCOLS:
        root = tmp_path_factory.mktemp(f"model-{proto}")
        m = json.loads(json.dumps(model))
        m["metadata"]["protocol"] = proto
        m["metadata"]["protocols"] = [proto]
        d = root / "cloudwatch" / version
        d.mkdir(parents=True)
        (d / "service-2.json").write_text(json.dumps(m))
        out[proto] = root
    return out


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = UpdraftServer(tmp_path_factory.mktemp("updraft-cloudwatch"))
    s.start()
    yield s
    s.stop()


class Wire:
    """What the client last sent."""

    def __init__(self):
        self.headers: dict[str, str] = {}
        self.path = ""

    def __call__(self, request, **_):
        self.headers = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}
        self.path = request.url.split("?", 1)[0].split("://", 1)[1].split("/", 1)[1]


def cw_client(srv: UpdraftServer, models, proto: str, keys: tuple[str, str] | None = None):
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, str(models[proto]))
    ak, sk = keys or srv.keys()
    client = boto3.Session(botocore_session=session).client(
        "cloudwatch", endpoint_url=srv.endpoint, region_name=REGION, aws_access_key_id=ak,
        aws_secret_access_key=sk, config=Config(retries={"total_max_attempts": 1}))
    wire = Wire()
    client.meta.events.register("before-send.cloudwatch", wire)
    client.wire = wire
    return client


def assert_spoke(client, proto: str):
    h, path = client.wire.headers, client.wire.path
    if proto == "smithy-rpc-v2-cbor":
        assert h.get("smithy-protocol") == "rpc-v2-cbor" and h.get("content-type") == "application/cbor", h
        assert path.startswith("service/GraniteServiceVersion20100801/operation/"), path
    elif proto == "json":
        assert h.get("x-amz-target", "").startswith("GraniteServiceVersion20100801."), h
        assert h.get("content-type") == "application/x-amz-json-1.0", h
    else:
        assert "x-amz-target" not in h and h.get("content-type", "").startswith("application/x-www-form-urlencoded"), h


@pytest.fixture(scope="module")
def invoked(srv):
    """A function invoked 4 times (one of them failing), and when."""
    lam = srv.client()
    name = unique_name("cw")
    create_function(lam, name, package_zip({"app.py": HANDLER_SRC}), MemorySize=128)
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    for ms in (10, 20, 30):
        assert invoke(lam, name, {"sleep_ms": ms}).function_error is None
    assert invoke(lam, name, {"fail": True}).function_error == "Unhandled"
    return name, start


def stats(client, name, start, metric="Invocations", statistics=("Sum",), dims=None):
    return client.get_metric_statistics(
        Namespace="AWS/Lambda", MetricName=metric,
        Dimensions=dims if dims is not None else [{"Name": "FunctionName", "Value": name}],
        StartTime=start, EndTime=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=2),
        Period=60, Statistics=list(statistics))


def wait_sum(client, name, start, want, metric="Invocations") -> float:
    deadline = time.monotonic() + 15
    while True:
        got = sum(p["Sum"] for p in stats(client, name, start, metric)["Datapoints"])
        if got >= want:
            return got
        assert time.monotonic() < deadline, (metric, got)
        time.sleep(0.2)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_get_metric_statistics_returns_the_invocations(srv, models, invoked, proto):
    name, start = invoked
    cw = cw_client(srv, models, proto)
    assert wait_sum(cw, name, start, 4) == 4
    assert_spoke(cw, proto)
    assert wait_sum(cw, name, start, 1, "Errors") == 1
    d = stats(cw, name, start, "Duration", ("SampleCount", "Minimum", "Maximum", "Average"))["Datapoints"]
    assert sum(p["SampleCount"] for p in d) == 4
    assert max(p["Maximum"] for p in d) >= 30
    assert all(p["Unit"] == "Milliseconds" for p in d)
    # The Resource dimension, and the account-wide series.
    assert sum(p["Sum"] for p in stats(cw, name, start, dims=[
        {"Name": "FunctionName", "Value": name}, {"Name": "Resource", "Value": name}])["Datapoints"]) == 4
    assert sum(p["Sum"] for p in stats(cw, name, start, dims=[])["Datapoints"]) >= 4
    # Unknown metrics and dimensions: empty, not errors.
    assert stats(cw, name, start, "NoSuchMetric")["Datapoints"] == []
    assert stats(cw, "no-such-function", start)["Datapoints"] == []


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_get_metric_data_with_math(srv, models, invoked, proto):
    name, start = invoked
    cw = cw_client(srv, models, proto)
    wait_sum(cw, name, start, 4)
    dims = [{"Name": "FunctionName", "Value": name}]

    def q(i, metric):
        return {"Id": i, "MetricStat": {"Metric": {"Namespace": "AWS/Lambda", "MetricName": metric,
                                                   "Dimensions": dims}, "Period": 3600, "Stat": "Sum"}}
    r = cw.get_metric_data(
        MetricDataQueries=[q("m1", "Invocations"), q("m2", "Errors"),
                           {"Id": "e1", "Expression": "m2/m1*100", "Label": "error rate"},
                           {"Id": "e2", "Expression": "m1+m2"}],
        StartTime=start - dt.timedelta(hours=1), EndTime=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=2))
    assert_spoke(cw, proto)
    res = {x["Id"]: x for x in r["MetricDataResults"]}
    assert sum(res["m1"]["Values"]) == 4 and sum(res["m2"]["Values"]) == 1
    assert res["e1"]["Values"] == [25.0] and res["e1"]["Label"] == "error rate"
    assert res["e2"]["Values"] == [5.0]
    assert res["m1"]["StatusCode"] == "Complete" and res["m1"]["Label"] == "Invocations"
    assert all(isinstance(t, dt.datetime) for t in res["m1"]["Timestamps"])


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_put_and_list_custom_metrics(srv, models, proto):
    cw = cw_client(srv, models, proto)
    ns = "App/" + unique_name("ns")
    now = dt.datetime.now(dt.timezone.utc)
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Orders", "Dimensions": [{"Name": "Shop", "Value": "north"}], "Value": 3, "Unit": "Count"},
        {"MetricName": "Orders", "Dimensions": [{"Name": "Shop", "Value": "north"}], "Values": [1, 2],
         "Counts": [1, 2], "Unit": "Count"},
        {"MetricName": "Latency", "StatisticValues": {"SampleCount": 2, "Sum": 30, "Minimum": 10, "Maximum": 20},
         "Unit": "Milliseconds", "Timestamp": now},
    ])
    assert_spoke(cw, proto)
    listed = cw.list_metrics(Namespace=ns)["Metrics"]
    assert sorted(m["MetricName"] for m in listed) == ["Latency", "Orders"]
    only = cw.list_metrics(Namespace=ns, Dimensions=[{"Name": "Shop"}])["Metrics"]
    assert [m["MetricName"] for m in only] == ["Orders"] and only[0]["Dimensions"] == [{"Name": "Shop", "Value": "north"}]
    p = cw.get_metric_statistics(Namespace=ns, MetricName="Orders", Dimensions=[{"Name": "Shop", "Value": "north"}],
                                 StartTime=now - dt.timedelta(minutes=5), EndTime=now + dt.timedelta(minutes=5),
                                 Period=600, Statistics=["Sum", "SampleCount", "Maximum"])["Datapoints"]
    assert len(p) == 1 and (p[0]["Sum"], p[0]["SampleCount"], p[0]["Maximum"]) == (8, 4, 3), p


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_validation_errors_are_cloudwatchs(srv, models, proto):
    cw = cw_client(srv, models, proto)
    now = dt.datetime.now(dt.timezone.utc)
    base = dict(Namespace="AWS/Lambda", MetricName="Invocations", StartTime=now - dt.timedelta(hours=1),
                EndTime=now, Period=60, Statistics=["Sum"])
    for change, code in (({"Period": 45}, "InvalidParameterValue"),
                         ({"StartTime": now, "EndTime": now - dt.timedelta(hours=1)}, "InvalidParameterValue"),
                         ({"StartTime": now - dt.timedelta(days=3)}, "InvalidParameterCombination")):
        with pytest.raises(ClientError) as e:
            cw.get_metric_statistics(**{**base, **change})
        assert e.value.response["Error"]["Code"] == code, (change, e.value.response)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert_spoke(cw, proto)
    with pytest.raises(ClientError) as e:
        cw.put_metric_data(Namespace="AWS/Lambda", MetricData=[{"MetricName": "x", "Value": 1}])
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        cw.put_metric_data(Namespace="App", MetricData=[{"MetricName": "x", "Value": 1, "StatisticValues": {
            "SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}}])
    assert e.value.response["Error"]["Code"] == "InvalidParameterCombination"


def test_statistics_must_be_named(srv):
    """boto3 refuses to send a GetMetricStatistics without Statistics; a raw JSON request gets CloudWatch's error."""
    now = int(time.time())
    body = json.dumps({"Namespace": "N", "MetricName": "m", "StartTime": now - 600, "EndTime": now,
                       "Period": 60}).encode()
    req = AWSRequest(method="POST", url=srv.endpoint + "/", data=body, headers={
        "X-Amz-Target": "GraniteServiceVersion20100801.GetMetricStatistics",
        "Content-Type": "application/x-amz-json-1.0"})
    SigV4Auth(srv.credentials(), "monitoring", REGION).add_auth(req)
    p = req.prepare()
    r = send_raw("POST", p.url, p.body, dict(p.headers.items()))
    assert r.status == 400, r
    assert r.headers["x-amzn-query-error"] == "InvalidParameterCombination;Sender", r
    assert r.json()["__type"].endswith("InvalidParameterCombinationException")


def test_cbor_errors_are_cbor(srv):
    req = AWSRequest(method="POST", url=srv.endpoint + "/service/GraniteServiceVersion20100801/operation/ListMetrics",
                     data=cbor2.dumps({"RecentlyActive": "PT1H"}),
                     headers={"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor",
                              "Accept": "application/cbor"})
    SigV4Auth(srv.credentials(), "monitoring", REGION).add_auth(req)
    p = req.prepare()
    r = send_raw("POST", p.url, p.body, dict(p.headers.items()))
    assert r.status == 400 and r.headers["smithy-protocol"] == "rpc-v2-cbor", r
    doc = cbor2.loads(r.body)
    assert doc["__type"].endswith("InvalidParameterValueException") and "PT3H" in doc["message"], doc


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_aws_cli_get_metric_statistics(srv, models, invoked, proto):
    name, start = invoked
    wait_sum(cw_client(srv, models, "json"), name, start, 4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    ak, sk = srv.keys()
    env.update(AWS_ACCESS_KEY_ID=ak, AWS_SECRET_ACCESS_KEY=sk, AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_MAX_ATTEMPTS="1", AWS_PAGER="",
               AWS_DATA_PATH=str(models[proto]))
    end = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cmd = [sys.executable, "-m", "awscli", "--endpoint-url", srv.endpoint, "--region", REGION, "--output", "json",
           "--debug", "cloudwatch", "get-metric-statistics", "--namespace", "AWS/Lambda",
           "--metric-name", "Invocations", "--dimensions", f"Name=FunctionName,Value={name}",
           "--start-time", start.strftime("%Y-%m-%dT%H:%M:%SZ"), "--end-time", end,
           "--period", "60", "--statistics", "Sum"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert sum(p["Sum"] for p in out["Datapoints"]) == 4, out
    marker = {"smithy-rpc-v2-cbor": "application/cbor", "json": "GraniteServiceVersion20100801.GetMetricStatistics",
              "query": "application/x-www-form-urlencoded"}[proto]
    assert marker in proc.stderr, proc.stderr[-3000:]


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_one_account_never_sees_anothers_metrics(srv, models, invoked, proto):
    name, start = invoked
    made = srv.signed_request("POST", "/updraft/admin/v1/accounts",
                              json.dumps({"Name": unique_name("cwb")}).encode())
    assert made.status == 201, made
    b = made.json()
    keys_b = (b["AccessKeyId"], b["SecretAccessKey"])
    cw_root = cw_client(srv, models, proto)
    cw_b = cw_client(srv, models, proto, keys_b)
    wait_sum(cw_root, name, start, 4)
    assert stats(cw_b, name, start)["Datapoints"] == []
    assert cw_b.list_metrics(Namespace="AWS/Lambda")["Metrics"] == []
    ns = "Private/" + unique_name("ns")
    cw_b.put_metric_data(Namespace=ns, MetricData=[{"MetricName": "Secret", "Value": 1}])
    assert [m["MetricName"] for m in cw_b.list_metrics(Namespace=ns)["Metrics"]] == ["Secret"]
    assert cw_root.list_metrics(Namespace=ns)["Metrics"] == []


def test_custom_metrics_survive_a_restart(server_factory, models):
    s = server_factory()
    cw = cw_client(s, models, "json")
    cw.put_metric_data(Namespace="Durable", MetricData=[{"MetricName": "Kept", "Value": 7}])
    lam = s.client()
    name = unique_name("cw")
    create_function(lam, name, package_zip({"app.py": HANDLER_SRC}))
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    assert invoke(lam, name, {}).function_error is None
    wait_sum(cw, name, start, 1)
    s.restart()
    cw = cw_client(s, models, "json")
    assert [m["MetricName"] for m in cw.list_metrics(Namespace="Durable")["Metrics"]] == ["Kept"]
    assert sum(p["Sum"] for p in stats(cw, name, start)["Datapoints"]) == 1


def test_requests_signed_for_another_service_are_refused(srv):
    body = json.dumps({}).encode()
    req = AWSRequest(method="POST", url=srv.endpoint + "/", data=body, headers={
        "X-Amz-Target": "GraniteServiceVersion20100801.ListMetrics",
        "Content-Type": "application/x-amz-json-1.0"})
    SigV4Auth(Credentials(*srv.keys()), "lambda", REGION).add_auth(req)
    p = req.prepare()
    r = send_raw("POST", p.url, p.body, dict(p.headers.items()))
    assert r.status == 403, r


EMF_SRC = """
import json, time

def handler(event, context):
    print(json.dumps({
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
            "Namespace": event["ns"], "Dimensions": [["service"]],
            "Metrics": [{"Name": "Orders", "Unit": "Count"}, {"Name": "Latency", "Unit": "Milliseconds"}]}]},
        "service": "cart", "Orders": event["orders"], "Latency": [10, 30],
    }))
    print(json.dumps({"_aws": "not a metric directive"}))
    return {"ok": True}
"""


@pytest.mark.parametrize("proto", ("json",))
def test_embedded_metric_format_lines_become_metrics(srv, models, proto):
    lam = srv.client()
    name = unique_name("emf")
    create_function(lam, name, package_zip({"app.py": EMF_SRC}))
    ns = "Emf/" + unique_name("ns")
    for orders in (2, 5):
        assert invoke(lam, name, {"ns": ns, "orders": orders}).function_error is None
    cw = cw_client(srv, models, proto)
    now = dt.datetime.now(dt.timezone.utc)
    deadline = time.monotonic() + 15
    while True:
        p = cw.get_metric_statistics(
            Namespace=ns, MetricName="Orders", Dimensions=[{"Name": "service", "Value": "cart"}],
            StartTime=now - dt.timedelta(minutes=10), EndTime=now + dt.timedelta(minutes=5), Period=900,
            Statistics=["Sum", "SampleCount"])["Datapoints"]
        if p and p[0]["SampleCount"] >= 2:
            break
        assert time.monotonic() < deadline, p
        time.sleep(0.2)
    assert (p[0]["Sum"], p[0]["SampleCount"], p[0]["Unit"]) == (7, 2, "Count")
    names = sorted(m["MetricName"] for m in cw.list_metrics(Namespace=ns)["Metrics"])
    assert names == ["Latency", "Orders"]
    lat = cw.get_metric_statistics(
        Namespace=ns, MetricName="Latency", Dimensions=[{"Name": "service", "Value": "cart"}],
        StartTime=now - dt.timedelta(minutes=10), EndTime=now + dt.timedelta(minutes=5), Period=900,
        Statistics=["Maximum", "SampleCount"])["Datapoints"]
    assert (lat[0]["Maximum"], lat[0]["SampleCount"]) == (30, 4)


def test_concurrent_executions_report_the_peak(srv, models):
    import threading

    lam = srv.client()
    name = unique_name("conc")
    create_function(lam, name, package_zip({"app.py": HANDLER_SRC}), Timeout=10)
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=2)
    threads = [threading.Thread(target=lambda: invoke(lam, name, {"sleep_ms": 2500})) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cw = cw_client(srv, models, "smithy-rpc-v2-cbor")
    p = stats(cw, name, start, "ConcurrentExecutions", ("Maximum",))["Datapoints"]
    assert max(x["Maximum"] for x in p) == 2, p
