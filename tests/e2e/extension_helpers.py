"""A small Lambda extension written against the Extensions API, and packages that start it.

`EXTENSION` registers (name from `EXT_NAME`, events from `EXT_EVENTS`), records what it
receives in /tmp, waits `EXT_DELAY_MS` after each INVOKE before it asks for the next event
(work after the runtime's answer, as a telemetry flusher does), and prints a line on SHUTDOWN.
`EXT_MODE` picks misbehaviours: `crash` (exits while it waits for its first event, before init is over),
`init-error` (reports an init error), `stuck` (never asks for the next event after an INVOKE),
`twice` (tries to register a second time).
"""

from __future__ import annotations

import time
from pathlib import Path

EXTENSION = r'''
import http.client, json, os, sys, time

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
NAME = os.environ.get("EXT_NAME", "probe")
MODE = os.environ.get("EXT_MODE", "")
DELAY = int(os.environ.get("EXT_DELAY_MS", "0")) / 1000.0


def call(method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(API, timeout=None)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def record(name, value):
    with open(f"/tmp/ext-{NAME}-{name}", "a") as f:
        f.write(json.dumps(value) + "\n")


events = os.environ.get("EXT_EVENTS", "INVOKE,SHUTDOWN").split(",")
status, headers, body = call(
    "POST", "/2020-01-01/extension/register", json.dumps({"events": events}),
    {"Lambda-Extension-Name": NAME, "Lambda-Extension-Accept-Feature": "accountId"},
)
record("register", {"status": status, "id": headers.get("lambda-extension-identifier"), "body": json.loads(body)})
ext_id = headers.get("lambda-extension-identifier", "")
if MODE == "twice":
    status, _, body = call("POST", "/2020-01-01/extension/register", json.dumps({"events": events}),
                           {"Lambda-Extension-Name": NAME})
    record("second", {"status": status, "body": json.loads(body)})
if MODE == "crash":
    # Dies while it waits for its first event, before the init phase is over.
    import threading
    threading.Thread(target=call, args=("GET", "/2020-01-01/extension/event/next", None,
                                        {"Lambda-Extension-Identifier": ext_id}), daemon=True).start()
    time.sleep(0.2)
    open(f"/tmp/ext-{NAME}-ready", "w").close()
    os._exit(3)
open(f"/tmp/ext-{NAME}-ready", "w").close()
if MODE == "init-error":
    call("POST", "/2020-01-01/extension/init/error", json.dumps({"errorMessage": "no config", "errorType": "Extension.ConfigInvalid"}),
         {"Lambda-Extension-Identifier": ext_id, "Lambda-Extension-Function-Error-Type": "Extension.ConfigInvalid"})
    time.sleep(30)
while True:
    status, headers, body = call("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": ext_id})
    event = json.loads(body)
    event["_status"] = status
    event["_event_id"] = headers.get("lambda-extension-event-identifier")
    record("events", event)
    if event.get("eventType") == "SHUTDOWN":
        print(f"EXTENSION {NAME} SHUTDOWN {event['shutdownReason']}", flush=True)
        sys.exit(0)
    if MODE == "stuck":
        time.sleep(3600)
    time.sleep(DELAY)
'''

# Starts the extension in the background, waits until it registered, then becomes the runtime.
WRAPPER = """#!/bin/sh
"$1" /var/task/ext.py &
i=0
while [ ! -e "/tmp/ext-${EXT_NAME:-probe}-ready" ] && [ $i -lt 200 ]; do sleep 0.01; i=$((i+1)); done
exec "$@"
"""

HANDLER = """
import json, os, time

def handler(event, context):
    name = os.environ.get("EXT_NAME", "probe")
    seen = []
    deadline = time.time() + 2
    while time.time() < deadline:
        try:
            with open(f"/tmp/ext-{name}-events") as f:
                seen = [json.loads(l) for l in f]
        except FileNotFoundError:
            seen = []
        if any(e.get("requestId") == context.aws_request_id for e in seen):
            break
        time.sleep(0.01)
    def lines(kind):
        try:
            with open(f"/tmp/ext-{name}-{kind}") as f:
                return [json.loads(l) for l in f]
        except FileNotFoundError:
            return []
    return {"request_id": context.aws_request_id, "events": seen,
            "register": lines("register"), "second": lines("second")}
"""


def wrapped_package() -> dict[str, str]:
    return {"app.py": HANDLER, "ext.py": EXTENSION, "wrapper.sh": WRAPPER}


def function_logs(server, name: str) -> str:
    """Everything written to the function's log streams on disk."""
    return "".join(p.read_text(errors="replace") for p in Path(server.root).rglob("*") if p.is_file()
                   and name in str(p.parent) and "logs" in str(p))


def wait_for(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())
