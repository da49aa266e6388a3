"""Helpers the asynchronous-invocation suites share: fast retry flags, reading what functions logged."""

from __future__ import annotations

import json
import time

from conftest import UpdraftServer, create_function, make_zip, unique_name

# Retry intervals short enough for tests; production defaults are one minute and one second.
FAST_FLAGS = (
    "--async-retry-interval-ms", "300",
    "--async-backoff-initial-ms", "100",
    "--async-backoff-max-ms", "1000",
)

# Prints every event it receives on one line, so tests read it back through the logs route.
RECORDER = (
    "import json\n"
    "def handler(event, context):\n"
    "    print('RECORD ' + json.dumps(event, sort_keys=True))\n"
    "    return {'recorded': True}\n"
)

# Logs its request id, then answers with its event (or fails when asked to).
WORKER = (
    "import json\n"
    "def handler(event, context):\n"
    "    print('ATTEMPT ' + context.aws_request_id + ' ' + json.dumps(event, sort_keys=True))\n"
    "    if event.get('fail'):\n"
    "        raise RuntimeError('failing on purpose: ' + str(event['fail']))\n"
    "    return {'echo': event}\n"
)


def deploy(lam, code: str, prefix: str = "fn", **kwargs) -> tuple[str, str]:
    """Creates a python function from one app.py; returns (name, ARN)."""
    name = unique_name(prefix)
    resp = create_function(lam, name, zip_bytes=make_zip({"app.py": code}), **kwargs)
    return name, resp["FunctionArn"]


def log_events(srv: UpdraftServer, name: str) -> list[dict]:
    r = srv.signed_request("GET", f"/updraft/v1/functions/{name}/logs")
    assert r.status == 200, r
    return r.json()["events"]


def lines(srv: UpdraftServer, name: str, marker: str) -> list[dict]:
    """Log events of `name` whose message starts with `marker` + a space."""
    return [e for e in log_events(srv, name) if e["message"].startswith(marker + " ")]


def records(srv: UpdraftServer, name: str) -> list[dict]:
    """The events a RECORDER function received, in order."""
    return [json.loads(e["message"][len("RECORD "):]) for e in lines(srv, name, "RECORD")]


def wait_for(what: str, fn, timeout: float = 60.0, interval: float = 0.25):
    """Polls `fn` until it returns something truthy; fails with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def event_summary(srv: UpdraftServer, name: str) -> dict:
    r = srv.signed_request("GET", f"/updraft/v1/functions/{name}/events")
    assert r.status == 200, r
    return r.json()
