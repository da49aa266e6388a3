"""Front door hardening: request bodies are read only after the request head is authenticated, within
a size limit, a read deadline and a node-wide budget of body bytes; a Lambda request must sign its
payload (only S3 accepts `UNSIGNED-PAYLOAD`)."""

from __future__ import annotations

import hashlib
import json
import select
import socket
import threading
import time
from urllib.parse import urlparse

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from conftest import REGION, create_function, send_raw, unique_name

MIB = 1024 * 1024


def vm_kib(pid: int, field: str) -> int:
    """A `Vm*` line of /proc/<pid>/status, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def read_head(s: socket.socket, have: bytes = b"") -> bytes:
    """Reads until the end of a response head (or EOF/reset); returns what arrived."""
    data = have
    s.setblocking(True)
    s.settimeout(30)
    while b"\r\n\r\n" not in data:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        data += chunk
    return data


def read_response(s: socket.socket, have: bytes = b"") -> tuple[bytes, bytes]:
    """A whole response with a Content-Length: (head, body)."""
    data = read_head(s, have)
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        body += chunk
    return head, body


def header_of(head: bytes, name: str) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name.lower().encode():
            return v.strip().decode()
    return None


def send_body_until_answered(port: int, head: bytes, length: int,
                             chunk: int = 256 * 1024) -> tuple[bytes, bytes, int]:
    """Sends `head` then up to `length` body bytes, as a client that reads an early answer does: it
    stops sending as soon as the server answers (or hangs up). Returns (response head, response
    body, body bytes sent)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(head)
        s.setblocking(False)
        block = b"x" * chunk
        sent = 0
        early = b""
        deadline = time.monotonic() + 120  # a bound for the loop, not an assertion
        while sent < length and time.monotonic() < deadline:
            readable, writable, _ = select.select([s], [s], [], 5)
            if readable:
                try:
                    early = s.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    pass
                break
            if writable:
                try:
                    sent += s.send(block[: min(chunk, length - sent)])
                except (BlockingIOError, InterruptedError):
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    break
        resp_head, resp_body = read_response(s, early)
        return resp_head, resp_body, sent
    finally:
        s.close()


def raw_head(port: int, path: str, headers) -> bytes:
    """The head of a POST carrying botocore-signed `headers` (and the Host it signed)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def flood_head(port: int, length: int, authorization: str | None) -> bytes:
    lines = [
        "POST /2015-03-31/functions HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        "X-Amz-Date: " + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
    ]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_anonymous_large_bodies_do_not_grow_memory(server_factory):
    """Issue 22, item 1: 32 anonymous connections each sending 60 MiB are answered 403 from their
    heads; the server's peak RSS grows by less than 64 MiB (it used to buffer every body whole)."""
    srv = server_factory()
    lam = srv.client()
    assert isinstance(lam.list_functions()["Functions"], list)
    pid = srv.proc.pid
    hwm_before = vm_kib(pid, "VmHWM")

    length = 60 * MIB
    date = time.strftime("%Y%m%d", time.gmtime())
    unknown_key = (f"AWS4-HMAC-SHA256 Credential=AKIAANONYMOUS0000000/{date}/{REGION}/lambda/aws4_request, "
                   "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)
    heads = [flood_head(srv.port, length, None if i % 2 else unknown_key) for i in range(32)]
    results: list[tuple[bytes, bytes, int] | BaseException] = [b""] * len(heads)

    def one(i: int) -> None:
        try:
            results[i] = send_body_until_answered(srv.port, heads[i], length)
        except BaseException as e:  # reported below
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(heads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not any(t.is_alive() for t in threads), "a flooding client never got an answer"
    for i, r in enumerate(results):
        assert not isinstance(r, BaseException), r
        head, _body, _sent = r
        assert head.startswith(b"HTTP/1.1 403"), (i, head[:300])
        expected = "MissingAuthenticationTokenException" if i % 2 else "UnrecognizedClientException"
        assert (header_of(head, "x-amzn-ErrorType") or "").split(":")[0] == expected, head[:300]

    growth_mib = (vm_kib(pid, "VmHWM") - hwm_before) / 1024
    assert growth_mib < 64, f"server peak RSS grew by {growth_mib:.1f} MiB under the anonymous flood"
    # A valid signed request still works afterwards.
    name = unique_name()
    create_function(lam, name, wait=False)
    assert lam.get_function_configuration(FunctionName=name)["FunctionName"] == name


# ------------------------------------------------------------------------------------------- item 5

def signed_with_declared_payload(server, path: str, body: bytes, declared: str) -> tuple[str, dict[str, str]]:
    """A request signed by botocore with `declared` as its payload hash (botocore signs the
    `X-Amz-Content-SHA256` header's value when the header is there)."""
    req = AWSRequest(method="POST", url=server.endpoint + path, data=body,
                     headers={"Content-Type": "application/json", "X-Amz-Content-SHA256": declared})
    SigV4Auth(server.credentials(), "lambda", REGION).add_auth(req)
    prepared = req.prepare()
    return prepared.url, dict(prepared.headers.items())


@pytest.fixture(scope="module")
def echo_fn(server):
    lam = server.client()
    name = unique_name("unsigned")
    create_function(lam, name)
    yield name
    lam.delete_function(FunctionName=name)


@pytest.mark.parametrize("declared", ["UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"])
def test_unsigned_payload_is_refused_for_lambda(server, echo_fn, declared):
    """Issue 22, item 5: a Lambda request must sign its payload; a body swapped under a signature
    that does not cover it is refused like any bad signature."""
    path = f"/2015-03-31/functions/{echo_fn}/invocations"
    signed_body = json.dumps({"who": "signer"}).encode()
    swapped = json.dumps({"who": "attacker"}).encode()
    url, headers = signed_with_declared_payload(server, path, signed_body, declared)
    for body in (swapped, signed_body):
        resp = send_raw("POST", url, body, headers)
        assert resp.status == 403, resp
        assert resp.error_type == "InvalidSignatureException", resp
        assert resp.json().get("message"), resp

    # The same body signed with its hash is accepted, and swapping it then fails too.
    url, headers = signed_with_declared_payload(server, path, signed_body, hashlib.sha256(signed_body).hexdigest())
    ok = send_raw("POST", url, signed_body, headers)
    assert ok.status == 200, ok
    assert json.loads(ok.body) == {"who": "signer"}
    tampered = send_raw("POST", url, swapped, headers)
    assert tampered.status == 403, tampered
    assert tampered.error_type == "InvalidSignatureException", tampered


# ------------------------------------------------------------------------------------------- item 6

BODY_DEADLINE_S = 2


@pytest.fixture
def deadline_server(server_factory):
    return server_factory(extra_args=("--body-read-timeout", str(BODY_DEADLINE_S)))


def trickle(port: int, head: bytes, length: int) -> tuple[bytes, bytes, bool]:
    """Sends `head`, then one body byte every 0.2 s until the server answers (at most `length`
    bytes). Returns (response head, response body, whether the server then closed the connection)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(head)
        early = b""
        for _ in range(length):
            readable, _, _ = select.select([s], [], [], 0.2)
            if readable:
                early = s.recv(65536)
                break
            try:
                s.sendall(b" ")
            except (ConnectionResetError, BrokenPipeError):
                break
        resp_head, resp_body = read_response(s, early)
        s.settimeout(30)
        try:
            closed = s.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            closed = True
        except socket.timeout:
            closed = False
        return resp_head, resp_body, closed
    finally:
        s.close()


def test_trickled_function_url_body_is_cut_at_the_deadline(deadline_server):
    """Issue 22, item 6: a public Function URL's body must arrive within the node's body deadline;
    a trickling client is answered 408 and disconnected instead of holding the connection."""
    lam = deadline_server.client()
    name = unique_name("trickle")
    create_function(lam, name)
    cfg = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    lam.add_permission(FunctionName=name, StatementId="FunctionURLAllowPublicAccess",
                       Action="lambda:InvokeFunctionUrl", Principal="*", FunctionUrlAuthType="NONE")
    lam.add_permission(FunctionName=name, StatementId="FunctionURLAllowInvokeAction",
                       Action="lambda:InvokeFunction", Principal="*", InvokedViaFunctionUrl=True)
    url_id = urlparse(cfg["FunctionUrl"]).hostname.split(".")[0]
    length = 1000  # 200 s at the trickle's pace: far beyond the deadline
    head = (f"POST /lambda-url/{url_id}/ HTTP/1.1\r\nHost: 127.0.0.1:{deadline_server.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()
    resp_head, resp_body, closed = trickle(deadline_server.port, head, length)
    assert resp_head.startswith(b"HTTP/1.1 408"), resp_head[:300]
    assert json.loads(resp_body).get("Message"), resp_body
    assert closed, "the connection stayed open after the body deadline"


def test_trickled_lambda_api_body_is_cut_at_the_deadline(deadline_server):
    """The same deadline holds on the Lambda API (one body reader for every route)."""
    body = json.dumps({"pad": "x" * 500}).encode()
    req = AWSRequest(method="POST", url=f"{deadline_server.endpoint}/2015-03-31/functions", data=body,
                     headers={"Content-Type": "application/json"})
    SigV4Auth(deadline_server.credentials(), "lambda", REGION).add_auth(req)
    prepared = req.prepare()
    head = raw_head(deadline_server.port, "/2015-03-31/functions", prepared.headers)
    resp_head, resp_body, closed = trickle(deadline_server.port, head, len(body))
    assert resp_head.startswith(b"HTTP/1.1 408"), resp_head[:300]
    assert header_of(resp_head, "x-amzn-ErrorType") == "RequestTimeoutException", resp_head[:300]
    assert json.loads(resp_body).get("message"), resp_body
    assert closed, "the connection stayed open after the body deadline"


def test_full_body_budget_answers_too_many_requests(server_factory):
    """Issue 22, item 1: the node holds at most --body-budget-mb of request bodies; a request that
    finds no room in time is throttled with Lambda's TooManyRequestsException (429, Retry-After)."""
    srv = server_factory(extra_args=("--body-budget-mb", "70", "--body-read-timeout", "60"))
    # A signed request (known key, valid scope) announcing 60 MiB holds 60 MiB of the budget
    # while it trickles in.
    big = b"x" * (60 * MIB)
    req = AWSRequest(method="POST", url=f"{srv.endpoint}/2015-03-31/functions", data=big,
                     headers={"Content-Type": "application/json"})
    SigV4Auth(srv.credentials(), "lambda", REGION).add_auth(req)
    prepared = req.prepare()
    head = raw_head(srv.port, "/2015-03-31/functions", prepared.headers)
    holder = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    try:
        holder.sendall(head + b"x" * 1024)
        # Wait until the server has reserved the holder's share (it is reserved before reading).
        payload = json.dumps({"Tags": {"k": "v"}}).encode() + b" " * (20 * MIB)
        second = AWSRequest(method="POST", url=f"{srv.endpoint}/2015-03-31/functions", data=payload,
                            headers={"Content-Type": "application/json"})
        SigV4Auth(srv.credentials(), "lambda", REGION).add_auth(second)
        second_head = raw_head(srv.port, "/2015-03-31/functions", second.prepare().headers)
        for _ in range(50):
            resp_head, resp_body, _ = send_body_until_answered(srv.port, second_head, len(payload))
            if resp_head.startswith(b"HTTP/1.1 429"):
                break
            time.sleep(0.1)
        assert resp_head.startswith(b"HTTP/1.1 429"), resp_head[:300]
        assert header_of(resp_head, "x-amzn-ErrorType") == "TooManyRequestsException", resp_head[:300]
        assert header_of(resp_head, "retry-after") == "1", resp_head[:300]
        assert json.loads(resp_body).get("Reason") == "CallerRateLimitExceeded", resp_body
    finally:
        holder.close()
    # With the holder gone its share is released: the same request is read (and refused for
    # what it says, not throttled).
    for _ in range(50):
        resp = srv.signed_request("POST", "/2015-03-31/functions", payload)
        if resp.status != 429:
            break
        time.sleep(0.1)
    assert resp.status == 400, resp
    lam = srv.client()
    name = unique_name()
    create_function(lam, name, wait=False)
    assert lam.get_function_configuration(FunctionName=name)["FunctionName"] == name
