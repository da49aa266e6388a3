"""Shared pieces of the EventBridge suites: a function that logs the events it receives, and a
reader of those log lines."""

from __future__ import annotations

import json
import time

from conftest import create_function, package_zip, unique_name

# Prints each event it receives as one line, so tests read deliveries from the function's log.
RECORDER = """
import json

def handler(event, context):
    print("EVENT " + json.dumps(event, sort_keys=True))
    return {"ok": True}
"""

# Bounds for waiting on asynchronous deliveries on a loaded machine; a test that waits this long
# has failed, a passing one returns as soon as the deliveries are there.
DELIVERY_WAIT_S = 60


def make_recorder(lam, name: str | None = None) -> tuple[str, str]:
    """Creates a recording function; returns (name, ARN)."""
    name = name or unique_name("ebfn")
    create_function(lam, name, package_zip({"app.py": RECORDER}), Runtime="python3.12", Handler="app.handler")
    arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    return name, arn


def allow_rule(lam, function: str, rule_arn: str, sid: str = "events") -> None:
    lam.add_permission(FunctionName=function, StatementId=sid, Action="lambda:InvokeFunction",
                       Principal="events.amazonaws.com", SourceArn=rule_arn)


def received(server, function: str) -> list:
    """The events `function` has logged so far, in order."""
    r = server.signed_request("GET", f"/updraft/v1/functions/{function}/logs")
    assert r.status == 200, r
    out = []
    for ev in r.json()["events"]:
        for line in ev["message"].splitlines():
            if line.startswith("EVENT "):
                out.append(json.loads(line[len("EVENT "):]))
    return out


def wait_received(server, function: str, count: int, timeout: float = DELIVERY_WAIT_S) -> list:
    """Waits until `function` has logged at least `count` events; returns them."""
    deadline = time.monotonic() + timeout
    got: list = []
    while time.monotonic() < deadline:
        got = received(server, function)
        if len(got) >= count:
            return got
        time.sleep(0.25)
    raise AssertionError(
        f"{function} received {len(got)} event(s) within {timeout}s, wanted {count}: {got}\n{server.logs()}"
    )
