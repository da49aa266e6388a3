"""Function URLs with `InvokeMode: RESPONSE_STREAM`, end to end, read incrementally with http.client.

A streamed response that opens with `awslambda.HttpResponseStream.from(stream, {statusCode, headers, cookies})`
(content type `application/vnd.awslambda.http-integration-response`: JSON prelude, 8 NUL bytes, body) becomes that
status, those headers and Set-Cookie lines, then the body as the function writes it. A streamed response without
a prelude is a 200 with the runtime's content type. A failure before the first byte is a 502; a failure after it
cuts the body short. A buffered function's answer is passed on as it is (in this mode Lambda does not read it as a
payload format 2.0 response description).
"""

from __future__ import annotations

import http.client
import json
import re
import time
from urllib.parse import urlparse

import pytest

STREAM_JS = r"""
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const op = (event.queryStringParameters || {}).op || "http";
  if (op === "boom") {
    throw new Error("failed before any byte");
  }
  if (op === "plain") {
    responseStream.write("a");
    await sleep(1000);
    // Ends with the host's wall clock (shared with the test) when the second write happened.
    responseStream.write(`b\u0000c@${Date.now()}`);
    responseStream.end();
    return;
  }
  if (op === "typed") {
    responseStream.setContentType("text/plain; charset=utf-8");
    responseStream.write("typed text");
    responseStream.end();
    return;
  }
  if (op === "midway") {
    responseStream.write("partial");
    await sleep(300);
    throw new TypeError("broke mid-stream");
  }
  if (op === "path") {
    responseStream = awslambda.HttpResponseStream.from(responseStream, {
      statusCode: 200,
      headers: { "content-type": "application/json" },
    });
    responseStream.write(JSON.stringify({ path: event.rawPath, method: event.requestContext.http.method }));
    responseStream.end();
    return;
  }
  responseStream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201,
    headers: { "x-a": "b", "content-type": "text/plain" },
    cookies: ["c=d"],
  });
  responseStream.write("a");
  await sleep(1000);
  responseStream.write(`b@${Date.now()}`);
  responseStream.end();
});
"""

BUFFERED_PY = r"""
def handler(event, context):
    q = event.get("queryStringParameters") or {}
    if q.get("op") == "boom":
        raise RuntimeError("buffered failure")
    return {"statusCode": 418, "headers": {"X-Custom": "yes"}, "body": "teapot"}
"""


def public(lam, name: str) -> None:
    """The two statements Lambda's console adds for a public URL: since October 2025 a function URL needs both
    lambda:InvokeFunctionUrl and lambda:InvokeFunction (the latter conditioned on lambda:InvokedViaFunctionUrl)."""
    lam.add_permission(FunctionName=name, StatementId="FunctionURLAllowPublicAccess",
                       Action="lambda:InvokeFunctionUrl", Principal="*", FunctionUrlAuthType="NONE")
    lam.add_permission(FunctionName=name, StatementId="FunctionURLAllowInvokeAction",
                       Action="lambda:InvokeFunction", Principal="*", InvokedViaFunctionUrl=True)


def url_id(cfg) -> str:
    return urlparse(cfg["FunctionUrl"]).hostname.split(".")[0]


@pytest.fixture(scope="module")
def stream_url(deploy, lam):
    name = deploy({"index.mjs": STREAM_JS}, handler="index.handler", runtime="nodejs20.x", Timeout=10)
    cfg = lam.create_function_url_config(
        FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM",
        Cors={"AllowOrigins": ["https://app.example.com"], "ExposeHeaders": ["x-a"]},
    )
    public(lam, name)
    return cfg


@pytest.fixture(scope="module")
def buffered_url(deploy, lam):
    name = deploy({"app.py": BUFFERED_PY})
    cfg = lam.create_function_url_config(FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM")
    public(lam, name)
    return cfg


class Timed:
    """One URL request read incrementally: status, headers, body and when the body's bytes came."""

    def __init__(self, server, cfg, path: str, headers: dict[str, str] | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        t0 = time.monotonic()
        conn.request("GET", f"/lambda-url/{url_id(cfg)}{path}", headers=headers or {})
        resp = conn.getresponse()
        self.status = resp.status
        self.msg = resp.msg
        self.first_byte_at: float | None = None
        self.first_byte_wall_ms: float | None = None
        body = b""
        while True:
            piece = resp.read1(65536)
            if not piece:
                break
            if self.first_byte_at is None:
                self.first_byte_at = time.monotonic() - t0
                self.first_byte_wall_ms = time.time() * 1000
            body += piece
        self.total = time.monotonic() - t0
        self.body = body
        conn.close()

    def header(self, name: str) -> str | None:
        return self.msg.get(name)

    def __repr__(self) -> str:
        return (f"Timed(status={self.status}, headers={dict(self.msg.items())}, body={self.body[:300]!r}, "
                f"first_byte_at={self.first_byte_at}, total={self.total})")


def warm(server, cfg) -> None:
    r = Timed(server, cfg, "/?op=typed")
    assert r.status == 200, r


def written_before_second_write(r: Timed, body: bytes) -> None:
    """The body is `body` and a wall-clock stamp taken when the function wrote its second piece:
    the first byte reached the client before that (streamed, not buffered; an ordering of one
    clock shared by the host and the environment, not a time limit)."""
    m = re.fullmatch(re.escape(body) + rb"@(\d+)", r.body)
    assert m, r
    assert r.first_byte_wall_ms is not None and r.first_byte_wall_ms < int(m.group(1)), r
    # The function pauses 1 s between its writes, so the answer cannot end sooner.
    assert r.total > 1.0, r


def test_prelude_status_headers_cookies_and_incremental_body(server, stream_url):
    warm(server, stream_url)
    r = Timed(server, stream_url, "/")
    assert r.status == 201, r
    assert r.header("x-a") == "b"
    assert r.header("content-type") == "text/plain"
    assert r.msg.get_all("set-cookie") == ["c=d"]
    assert r.header("x-amzn-requestid")
    written_before_second_write(r, b"ab")


def test_stream_without_prelude_is_a_200_with_the_runtime_content_type(server, stream_url):
    warm(server, stream_url)
    r = Timed(server, stream_url, "/?op=plain")
    assert r.status == 200, r
    # The Node runtime's default content type of streamed responses.
    assert r.header("content-type") == "application/octet-stream"
    written_before_second_write(r, b"ab\x00c")
    typed = Timed(server, stream_url, "/?op=typed")
    assert typed.status == 200 and typed.body == b"typed text", typed
    assert typed.header("content-type") == "text/plain; charset=utf-8"


def test_request_reaches_the_function_as_payload_v2(server, stream_url):
    r = Timed(server, stream_url, "/some/path?op=path")
    assert r.status == 200, r
    assert r.header("content-type") == "application/json"
    assert json.loads(r.body) == {"path": "/some/path", "method": "GET"}


def test_error_before_the_first_byte_is_502(server, stream_url):
    r = Timed(server, stream_url, "/?op=boom")
    assert r.status == 502, r
    assert json.loads(r.body) == {"Message": "Internal Server Error"}


def test_error_after_the_first_byte_cuts_the_body_short(server, stream_url):
    r = Timed(server, stream_url, "/?op=midway")
    assert r.status == 200, r
    assert r.body == b"partial", r
    # The environment survives the handler error.
    again = Timed(server, stream_url, "/?op=typed")
    assert again.status == 200 and again.body == b"typed text", again


def test_cors_headers_on_streamed_responses(server, stream_url):
    r = Timed(server, stream_url, "/?op=typed", headers={"Origin": "https://app.example.com"})
    assert r.status == 200, r
    assert r.header("access-control-allow-origin") == "https://app.example.com"
    assert r.header("access-control-expose-headers") == "x-a"
    other = Timed(server, stream_url, "/?op=typed", headers={"Origin": "https://evil.example"})
    assert other.header("access-control-allow-origin") is None


def test_buffered_function_behind_a_streaming_url(server, buffered_url):
    r = Timed(server, buffered_url, "/")
    assert r.status == 200, r
    # The answer is the body as it is: not read as a statusCode/headers/body description.
    assert json.loads(r.body) == {"statusCode": 418, "headers": {"X-Custom": "yes"}, "body": "teapot"}
    assert r.header("x-custom") is None
    failed = Timed(server, buffered_url, "/?op=boom")
    assert failed.status == 502, failed
    assert json.loads(failed.body) == {"Message": "Internal Server Error"}
