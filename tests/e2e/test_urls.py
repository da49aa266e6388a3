"""Function URLs end to end: real HTTP requests (urllib, http.client, curl) to URLs made with boto3.

Requests reach a URL two ways: the path form `http://127.0.0.1:<port>/lambda-url/<url-id>/<path>`, and the
host form (the `Host: <url-id>.lambda-url.us-east-1.localhost:<port>` header sent to 127.0.0.1, since wildcard
`*.localhost` names do not resolve everywhere).
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import subprocess
from urllib.parse import urlparse

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from conftest import REGION, send_raw

PY_HANDLER = r'''
import base64, json

def handler(event, context):
    q = event.get("queryStringParameters") or {}
    mode = q.get("mode", "echo")
    if mode == "boom":
        raise RuntimeError("boom")
    if mode == "bare":
        return {"hello": "world", "n": 1}
    if mode == "string":
        return "just text"
    if mode == "custom":
        return {
            "statusCode": 418,
            "headers": {"X-Custom": "yes", "Content-Type": "text/plain"},
            "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
            "body": "teapot",
        }
    if mode == "binary":
        raw = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event.get("body", "").encode()
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(raw[::-1]).decode(),
            "isBase64Encoded": True,
        }
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(event)}
'''

NODE_HANDLER = r'''
exports.handler = async (event) => {
  const q = event.queryStringParameters || {};
  if (q.mode === "bare") return { node: true, path: event.rawPath };
  return {
    statusCode: 201,
    headers: { "content-type": "application/json", "x-runtime": "node" },
    cookies: ["n=1"],
    body: JSON.stringify({ method: event.requestContext.http.method, path: event.rawPath, body: event.body }),
  };
};
'''


def public(lam, name: str) -> None:
    """The two statements Lambda's console adds for a public URL: since October 2025 a function URL needs both
    lambda:InvokeFunctionUrl and lambda:InvokeFunction (the latter conditioned on lambda:InvokedViaFunctionUrl)."""
    lam.add_permission(FunctionName=name, StatementId="FunctionURLAllowPublicAccess",
                       Action="lambda:InvokeFunctionUrl", Principal="*", FunctionUrlAuthType="NONE")
    lam.add_permission(FunctionName=name, StatementId="FunctionURLAllowInvokeAction",
                       Action="lambda:InvokeFunction", Principal="*", InvokedViaFunctionUrl=True)


@pytest.fixture(scope="module")
def py_url(deploy, lam):
    name = deploy({"app.py": PY_HANDLER})
    cfg = lam.create_function_url_config(
        FunctionName=name, AuthType="NONE",
        Cors={"AllowOrigins": ["https://app.example.com"], "AllowMethods": ["GET", "POST"],
              "AllowHeaders": ["content-type", "x-token"], "ExposeHeaders": ["x-custom"], "MaxAge": 300},
    )
    public(lam, name)
    return name, cfg


@pytest.fixture(scope="module")
def node_url(deploy, lam):
    name = deploy({"index.js": NODE_HANDLER}, handler="index.handler", runtime="nodejs20.x")
    cfg = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    public(lam, name)
    return name, cfg


def url_id(cfg) -> str:
    return urlparse(cfg["FunctionUrl"]).hostname.split(".")[0]


def path_url(server, cfg, path: str = "/") -> str:
    return f"{server.endpoint}/lambda-url/{url_id(cfg)}{path}"


def test_function_url_shape(server, py_url):
    _, cfg = py_url
    u = urlparse(cfg["FunctionUrl"])
    assert u.scheme == "http"
    assert u.hostname == f"{url_id(cfg)}.lambda-url.{REGION}.localhost"
    assert u.port == server.port and u.path == "/"
    assert len(url_id(cfg)) == 32 and url_id(cfg).isalnum() and url_id(cfg).islower()


def test_get_with_repeated_query_and_cookies(server, py_url):
    _, cfg = py_url
    r = send_raw("GET", path_url(server, cfg, "/some/path?x=1&x=2&y=h%20i"),
                 headers={"Cookie": "c1=v1; c2=v2", "X-Multi": "m", "User-Agent": "ua-test/1"})
    assert r.status == 200, r
    e = r.json()
    assert e["version"] == "2.0" and e["routeKey"] == "$default"
    assert e["rawPath"] == "/some/path"
    assert e["rawQueryString"] == "x=1&x=2&y=h%20i"
    assert e["queryStringParameters"] == {"x": "1,2", "y": "h i"}
    assert e["cookies"] == ["c1=v1", "c2=v2"]
    assert "cookie" not in e["headers"] and e["headers"]["x-multi"] == "m"
    assert all(k == k.lower() for k in e["headers"])
    ctx = e["requestContext"]
    assert ctx["apiId"] == url_id(cfg) and ctx["domainPrefix"] == url_id(cfg)
    assert ctx["http"]["method"] == "GET" and ctx["http"]["path"] == "/some/path"
    assert ctx["http"]["userAgent"] == "ua-test/1" and ctx["http"]["protocol"] == "HTTP/1.1"
    assert ctx["accountId"] == "anonymous" and ctx["stage"] == "$default"
    assert isinstance(ctx["timeEpoch"], int) and "/" in ctx["time"] and ctx["time"].endswith("+0000")
    assert "body" not in e and e["isBase64Encoded"] is False


def test_post_json_body(server, py_url):
    _, cfg = py_url
    r = send_raw("POST", path_url(server, cfg, "/"), b'{"k": "v"}', {"Content-Type": "application/json"})
    assert r.status == 200, r
    e = r.json()
    assert e["body"] == '{"k": "v"}' and e["isBase64Encoded"] is False
    assert "queryStringParameters" not in e


def test_binary_round_trip(server, py_url):
    _, cfg = py_url
    data = bytes(range(256)) * 4
    r = send_raw("POST", path_url(server, cfg, "/?mode=binary"), data, {"Content-Type": "application/octet-stream"})
    assert r.status == 200, r
    assert r.body == data[::-1]
    assert r.headers["content-type"] == "application/octet-stream"


def test_custom_status_headers_and_set_cookie(server, py_url):
    _, cfg = py_url
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", f"/lambda-url/{url_id(cfg)}/?mode=custom")
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 418 and body == b"teapot"
    assert resp.getheader("x-custom") == "yes"
    assert resp.getheader("content-type") == "text/plain"
    assert resp.msg.get_all("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert resp.getheader("x-amzn-requestid")


def test_bare_values_are_json_bodies(server, py_url):
    _, cfg = py_url
    r = send_raw("GET", path_url(server, cfg, "/?mode=bare"))
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"hello": "world", "n": 1}
    s = send_raw("GET", path_url(server, cfg, "/?mode=string"))
    assert s.status == 200 and json.loads(s.body) == "just text"


def test_function_error_is_502(server, py_url):
    _, cfg = py_url
    r = send_raw("GET", path_url(server, cfg, "/?mode=boom"))
    assert r.status == 502, r
    assert r.json() == {"Message": "Internal Server Error"}


def test_body_over_6mb_is_413(server, py_url):
    _, cfg = py_url
    r = send_raw("POST", path_url(server, cfg, "/"), b"x" * (6 * 1024 * 1024 + 1), {"Content-Type": "text/plain"})
    assert r.status == 413, r


def test_cors_preflight_and_actual_request(server, py_url):
    _, cfg = py_url
    pre = send_raw("OPTIONS", path_url(server, cfg, "/"), headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert pre.status == 200, pre
    assert pre.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "content-type" in pre.headers["access-control-allow-headers"]
    assert pre.headers["access-control-max-age"] == "300"
    assert pre.body == b"", "the platform answers preflights without running the function"
    denied = send_raw("OPTIONS", path_url(server, cfg, "/"), headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in denied.headers
    actual = send_raw("GET", path_url(server, cfg, "/?mode=custom"), headers={"Origin": "https://app.example.com"})
    assert actual.headers["access-control-allow-origin"] == "https://app.example.com"
    assert actual.headers["access-control-expose-headers"] == "x-custom"
    other = send_raw("GET", path_url(server, cfg, "/?mode=custom"), headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_host_header_form(server, py_url):
    _, cfg = py_url
    host = f"{url_id(cfg)}.lambda-url.{REGION}.localhost:{server.port}"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/via/host?a=b", headers={"Host": host})
    resp = conn.getresponse()
    e = json.loads(resp.read())
    conn.close()
    assert resp.status == 200
    assert e["rawPath"] == "/via/host" and e["queryStringParameters"] == {"a": "b"}
    assert e["requestContext"]["domainName"] == f"{url_id(cfg)}.lambda-url.{REGION}.localhost"
    assert e["headers"]["host"] == host


def test_curl_against_the_url(server, node_url):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    _, cfg = node_url
    out = subprocess.run(
        ["curl", "-sS", "-i", "-X", "PUT", "--data-binary", "hello", "-H", "Content-Type: text/plain",
         "--resolve", f"{urlparse(cfg['FunctionUrl']).hostname}:{server.port}:127.0.0.1",
         cfg["FunctionUrl"] + "node/path"],
        capture_output=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 201"), out.stdout
    assert "x-runtime: node" in head.lower() and "set-cookie: n=1" in head.lower()
    assert json.loads(body) == {"method": "PUT", "path": "/node/path", "body": "hello"}


def test_node_bare_value(server, node_url):
    _, cfg = node_url
    r = send_raw("GET", path_url(server, cfg, "/n?mode=bare"))
    assert r.status == 200 and r.json() == {"node": True, "path": "/n"}


def test_none_auth_needs_the_public_permission(server, deploy, lam):
    name = deploy({"app.py": PY_HANDLER})
    cfg = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    r = send_raw("GET", path_url(server, cfg, "/"))
    assert r.status == 403 and r.json() == {"Message": "Forbidden"}
    # A permission without the FunctionUrlAuthType condition, or for plain Invoke, is not enough.
    lam.add_permission(FunctionName=name, StatementId="invoke", Action="lambda:InvokeFunction", Principal="*")
    assert send_raw("GET", path_url(server, cfg, "/")).status == 403
    public(lam, name)
    assert send_raw("GET", path_url(server, cfg, "/")).status == 200
    lam.remove_permission(FunctionName=name, StatementId="FunctionURLAllowPublicAccess")
    assert send_raw("GET", path_url(server, cfg, "/")).status == 403


def test_none_url_needs_invoke_function_as_well(server, deploy, lam):
    """Lambda's current rule: InvokeFunctionUrl alone no longer opens a NONE URL."""
    name = deploy({"app.py": PY_HANDLER})
    cfg = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    lam.add_permission(FunctionName=name, StatementId="url", Action="lambda:InvokeFunctionUrl", Principal="*",
                       FunctionUrlAuthType="NONE")
    assert send_raw("GET", path_url(server, cfg, "/")).status == 403
    r = lam.add_permission(FunctionName=name, StatementId="via-url", Action="lambda:InvokeFunction", Principal="*",
                           InvokedViaFunctionUrl=True)
    assert json.loads(r["Statement"])["Condition"] == {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}
    assert send_raw("GET", path_url(server, cfg, "/")).status == 200
    # The InvokedViaFunctionUrl statement opens the URL only: the Invoke API stays closed to others.
    lam.remove_permission(FunctionName=name, StatementId="url")
    assert send_raw("GET", path_url(server, cfg, "/")).status == 403


def test_aws_iam_auth(server, deploy, lam):
    name = deploy({"app.py": PY_HANDLER})
    cfg = lam.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")
    url = path_url(server, cfg, "/signed?x=1")
    assert send_raw("GET", url).status == 403
    req = AWSRequest(method="POST", url=url, data=b'{"a": 1}', headers={"Content-Type": "application/json"})
    SigV4Auth(server.credentials(), "lambda", REGION).add_auth(req)
    p = req.prepare()
    r = send_raw("POST", p.url, p.body, dict(p.headers.items()))
    assert r.status == 200, r
    e = r.json()
    assert e["requestContext"]["accountId"] != "anonymous"
    assert e["requestContext"]["authorizer"]["iam"]["accessKey"] == server.keys()[0]
    # Signed for another service: refused.
    bad = AWSRequest(method="GET", url=url)
    SigV4Auth(server.credentials(), "s3", REGION).add_auth(bad)
    bp = bad.prepare()
    assert send_raw("GET", bp.url, None, dict(bp.headers.items())).status == 403


def test_alias_url_and_response_stream_mode(server, deploy, lam):
    name = deploy({"app.py": PY_HANDLER})
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    cfg = lam.create_function_url_config(FunctionName=name, Qualifier="live", AuthType="NONE",
                                         InvokeMode="RESPONSE_STREAM")
    assert cfg["FunctionArn"].endswith(f":function:{name}:live")
    assert cfg["InvokeMode"] == "RESPONSE_STREAM"
    public(lam, name)
    r = send_raw("GET", path_url(server, cfg, "/?mode=bare"))
    assert r.status == 200 and r.json() == {"hello": "world", "n": 1}


def test_unknown_url_is_forbidden(server):
    r = send_raw("GET", f"{server.endpoint}/lambda-url/{'a' * 32}/")
    assert r.status == 403
