"""The Telemetry API (issue 21): an extension subscribes to the platform and function streams
and its listener inside the environment receives batches with Lambda's record types and shapes.
The extension is internal (started by the function's AWS_LAMBDA_EXEC_WRAPPER script).
"""

from __future__ import annotations

import json

from conftest import create_function, invoke_ok, package_zip, unique_name

TELEMETRY_EXT = r'''
import http.client, http.server, json, os, threading, time

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
SLOW = os.environ.get("TEL_SLOW") == "1"
PORT = 4243


def call(method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(API, timeout=None)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


class Listener(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if SLOW:
            time.sleep(30)
        with open("/tmp/telemetry.jsonl", "a") as f:
            for record in json.loads(body):
                f.write(json.dumps(record) + "\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Listener)
threading.Thread(target=server.serve_forever, daemon=True).start()
status, headers, body = call("POST", "/2020-01-01/extension/register", json.dumps({"events": ["INVOKE"]}),
                             {"Lambda-Extension-Name": "telemetry-probe"})
ext_id = headers["lambda-extension-identifier"]
results = {}
sub = {"schemaVersion": "2022-12-13", "types": ["platform", "function"],
       "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
       "destination": {"protocol": "HTTP", "URI": f"http://sandbox.localdomain:{PORT}"}}
bad = dict(sub, buffering={"maxItems": 5, "maxBytes": 262144, "timeoutMs": 25})
results["bad"] = call("PUT", "/2022-07-01/telemetry", json.dumps(bad), {"Lambda-Extension-Identifier": ext_id})[:1]
results["stranger"] = call("PUT", "/2022-07-01/telemetry", json.dumps(sub), {"Lambda-Extension-Identifier": "nobody"})[:1]
status, _, body = call("PUT", "/2022-07-01/telemetry", json.dumps(sub), {"Lambda-Extension-Identifier": ext_id})
results["ok"] = [status, body.decode()]
status, _, body = call("PUT", "/2020-08-15/logs", json.dumps(sub), {"Lambda-Extension-Identifier": ext_id})
results["logs_api"] = [status]
with open("/tmp/telemetry-subscribe.json", "w") as f:
    json.dump(results, f)
open("/tmp/ext-telemetry-probe-ready", "w").close()
while True:
    call("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": ext_id})
'''

WRAPPER = """#!/bin/sh
"$1" /var/task/ext.py &
i=0
while [ ! -e /tmp/ext-telemetry-probe-ready ] && [ $i -lt 300 ]; do sleep 0.01; i=$((i+1)); done
exec "$@"
"""

HANDLER = """
import json, time

def handler(event, context):
    for i in range(event.get("lines", 1)):
        print(f"hello from {context.aws_request_id} line {i}")
    time.sleep(event.get("settle", 0))
    try:
        with open("/tmp/telemetry.jsonl") as f:
            records = [json.loads(l) for l in f]
    except FileNotFoundError:
        records = []
    with open("/tmp/telemetry-subscribe.json") as f:
        subscribe = json.load(f)
    return {"request_id": context.aws_request_id, "records": records, "subscribe": subscribe}
"""


def deploy(lam, **env) -> str:
    name = unique_name("tel")
    create_function(lam, name, package_zip({"app.py": HANDLER, "ext.py": TELEMETRY_EXT, "wrapper.sh": WRAPPER},
                                           executable=("wrapper.sh",)),
                    Timeout=30, Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/wrapper.sh", **env}})
    return name


def test_subscriber_gets_platform_records_and_function_lines(lam):
    name = deploy(lam)
    first = invoke_ok(lam, name, {})
    assert first["subscribe"]["ok"] == [200, '"OK"'], first["subscribe"]
    assert first["subscribe"]["bad"] == [400], first["subscribe"]
    assert first["subscribe"]["stranger"] == [403], first["subscribe"]
    assert first["subscribe"]["logs_api"] == [200], first["subscribe"]
    second = invoke_ok(lam, name, {"settle": 0.3})
    records = second["records"]
    types = [r["type"] for r in records]
    # The init phase's records reach a subscriber that subscribed during init.
    assert "platform.initStart" in types and "platform.initReport" in types, types
    rid = first["request_id"]
    by_type = {}
    for r in records:
        if isinstance(r["record"], dict) and r["record"].get("requestId") == rid:
            by_type[r["type"]] = r
    assert set(by_type) >= {"platform.start", "platform.runtimeDone", "platform.report"}, types
    report = by_type["platform.report"]["record"]
    assert report["status"] == "success"
    assert report["metrics"]["memorySizeMB"] == 128
    assert report["metrics"]["billedDurationMs"] >= 1
    assert "initDurationMs" in report["metrics"]
    assert by_type["platform.start"]["record"]["version"] == "$LATEST"
    assert by_type["platform.runtimeDone"]["record"]["metrics"]["durationMs"] >= 0
    assert all(r["time"].endswith("Z") and "T" in r["time"] for r in records)
    lines = [r["record"] for r in records if r["type"] == "function"]
    assert any(f"hello from {rid} line 0" in line for line in lines), lines


def test_a_flooded_slow_subscriber_does_not_hold_invocations(lam):
    name = deploy(lam, TEL_SLOW="1")
    invoke_ok(lam, name, {})
    # 50,000 lines to a subscriber that takes 30 s per batch: records beyond its queue are
    # dropped, the invocations go on.
    out = invoke_ok(lam, name, {"lines": 50_000})
    assert out["request_id"]
    assert invoke_ok(lam, name, {})["request_id"]
