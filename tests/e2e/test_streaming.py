"""InvokeWithResponseStream end to end: boto3's `invoke_with_response_stream` (which parses the AWS
event stream with botocore's own decoder) against Node.js functions that stream with
`awslambda.streamifyResponse` and a Python function that answers buffered.

Checked: the events (PayloadChunk per chunk, one InvokeComplete), that chunks arrive while the function
is still running (time to first byte well before the end), errors after the first byte and timeouts in
InvokeComplete's ErrorCode/ErrorDetails, LogResult, the response headers, DryRun and the errors shared
with Invoke.
"""

from __future__ import annotations

import base64
import json
import re
import time

import pytest
from botocore.exceptions import ClientError

from conftest import assert_error, unique_name

STREAM_JS = """
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  if (event.op === "fail") {
    responseStream.write("partial");
    await sleep(100);
    throw new TypeError("broke mid-stream");
  }
  if (event.op === "hang") {
    responseStream.write("x");
    await sleep(60000);
  }
  if (event.op === "echo") {
    responseStream.setContentType("application/json");
    responseStream.write(JSON.stringify(event));
    responseStream.end();
    return;
  }
  console.log("streaming a and b");
  responseStream.write("a");
  await sleep(1000);
  // The host's wall clock (shared with the test) when "b" is written: a test can tell whether "a"
  // reached it before that.
  console.log(`writing b at ${Date.now()}`);
  responseStream.write("b");
  responseStream.end();
});
"""

BUFFERED_PY = """
def handler(event, context):
    if event.get("fail"):
        raise ValueError("buffered failure")
    print("buffered handler ran")
    return {"hello": event.get("who", "world"), "n": list(range(5))}
"""


@pytest.fixture(scope="module")
def streamer(deploy) -> str:
    return deploy({"index.mjs": STREAM_JS}, handler="index.handler", runtime="nodejs20.x", Timeout=3)


@pytest.fixture(scope="module")
def buffered(deploy) -> str:
    return deploy({"app.py": BUFFERED_PY}, handler="app.handler", runtime="python3.12")


def stream_events(lam, name: str, event=None, **kwargs):
    """Invokes with response streaming; returns (response, [(kind, value, seconds since the call,
    wall-clock milliseconds at arrival)])."""
    t0 = time.monotonic()
    resp = lam.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps(event or {}).encode(), **kwargs
    )
    events = []
    for ev in resp["EventStream"]:
        at, wall_ms = time.monotonic() - t0, time.time() * 1000
        if "PayloadChunk" in ev:
            events.append(("chunk", ev["PayloadChunk"]["Payload"], at, wall_ms))
        elif "InvokeComplete" in ev:
            events.append(("complete", ev["InvokeComplete"], at, wall_ms))
        else:
            events.append(("other", ev, at, wall_ms))
    return resp, events


def body_of(events) -> bytes:
    return b"".join(v for kind, v, *_ in events if kind == "chunk")


def completion(events) -> dict:
    kinds = [kind for kind, *_ in events]
    assert kinds.count("complete") == 1 and kinds[-1] == "complete", events
    return events[-1][1]


def _b_written_at_ms(events) -> float:
    log = base64.b64decode(completion(events)["LogResult"]).decode()
    stamps = re.findall(r"writing b at (\d+)", log)
    assert len(stamps) == 1, log
    return float(stamps[0])


def test_chunks_arrive_as_the_function_writes_them(lam, streamer):
    resp, events = stream_events(lam, streamer, LogType="Tail")
    assert resp["StatusCode"] == 200
    assert resp["ExecutedVersion"] == "$LATEST"
    assert resp["ResponseStreamContentType"] == "application/vnd.amazon.eventstream"
    assert resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    chunks = [(v, wall) for kind, v, _, wall in events if kind == "chunk"]
    assert [v for v, _ in chunks] == [b"a", b"b"], events
    complete = completion(events)
    assert "ErrorCode" not in complete, complete
    # The function pauses 1 s between its chunks, so the call cannot end sooner.
    assert events[-1][2] > 1.0, events
    # Streamed, not buffered: "a" reached the client before the function wrote "b" (an ordering
    # of one wall clock, shared by the host and the environment, not a time limit).
    assert chunks[0][1] < _b_written_at_ms(events), events

    # Warm, the same.
    _, events = stream_events(lam, streamer, LogType="Tail")
    assert events[0][0] == "chunk" and events[0][1] == b"a", events
    assert events[0][3] < _b_written_at_ms(events), events


def test_log_tail_comes_with_invoke_complete(lam, streamer):
    _, events = stream_events(lam, streamer, LogType="Tail")
    assert body_of(events) == b"ab"
    log = base64.b64decode(completion(events)["LogResult"]).decode()
    assert "START RequestId: " in log and "REPORT RequestId: " in log, log
    assert "streaming a and b" in log, log


def test_an_error_after_the_first_byte_ends_the_stream(lam, streamer):
    _, events = stream_events(lam, streamer, {"op": "fail"})
    assert body_of(events) == b"partial"
    complete = completion(events)
    assert complete["ErrorCode"] == "TypeError", complete
    details = json.loads(complete["ErrorDetails"])
    assert details["errorType"] == "TypeError"
    assert details["errorMessage"] == "broke mid-stream"
    # The environment survives a handler error.
    _, events = stream_events(lam, streamer, {"op": "echo", "k": 1})
    assert json.loads(body_of(events)) == {"op": "echo", "k": 1}


def test_a_timeout_ends_the_stream(lam, streamer):
    _, events = stream_events(lam, streamer, {"op": "hang"})
    # Ended by the 3 s timeout, long before the handler's 60 s sleep would have ended it.
    assert events[-1][2] < 30, events
    assert body_of(events) == b"x"
    complete = completion(events)
    assert complete["ErrorCode"] == "Sandbox.Timedout", complete
    assert "Task timed out after 3.00 seconds" in complete["ErrorDetails"]


def test_buffered_functions_answer_through_the_stream(lam, buffered):
    resp, events = stream_events(lam, buffered, {"who": "stream"})
    assert resp["StatusCode"] == 200
    assert json.loads(body_of(events)) == {"hello": "stream", "n": [0, 1, 2, 3, 4]}
    assert "ErrorCode" not in completion(events)

    _, events = stream_events(lam, buffered, {"fail": True})
    assert body_of(events) == b""
    complete = completion(events)
    assert complete["ErrorCode"]
    assert json.loads(complete["ErrorDetails"])["errorMessage"] == "buffered failure"


def test_streamed_responses_through_plain_invoke(lam, streamer):
    resp = lam.invoke(FunctionName=streamer, Payload=b"{}")
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp
    assert resp["Payload"].read() == b"ab"


def test_qualifiers_and_dry_run(lam, buffered):
    version = lam.publish_version(FunctionName=buffered)["Version"]
    resp, events = stream_events(lam, buffered, Qualifier=version)
    assert resp["ExecutedVersion"] == version
    assert json.loads(body_of(events))["hello"] == "world"
    resp = lam.invoke_with_response_stream(FunctionName=buffered, InvocationType="DryRun", Payload=b"{}")
    assert resp["StatusCode"] == 204


def test_errors_match_invoke(lam, buffered):
    with pytest.raises(ClientError) as e:
        lam.invoke_with_response_stream(FunctionName=unique_name("missing"), Payload=b"{}")
    assert_error(e, "ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as e:
        lam.invoke_with_response_stream(FunctionName=buffered, Payload=b"{not json")
    assert_error(e, "InvalidRequestContentException", 400)
    with pytest.raises(ClientError) as e:
        lam.invoke_with_response_stream(FunctionName=buffered, Payload=b"{}", ClientContext="%%%")
    assert_error(e, "InvalidParameterValueException", 400)
