"""A hostile function for tests/e2e/test_hardening_runtime_api.py: it attacks its own Runtime API.

It speaks raw HTTP/1.1 to AWS_LAMBDA_RUNTIME_API (127.0.0.1:9001) from inside its handler, next to
the runtime client's own connection, and reports what the server answered. Nothing here is timed:
the test judges the server by its memory and by whether it still serves, not by how fast.
"""

import os
import socket

API = os.environ.get("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
HOST, _, PORT = API.rpartition(":")
ADDR = (HOST, int(PORT))
NEXT = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: %s\r\n\r\n" % API.encode()


def _status(sock):
    """The status code the server has answered on `sock` so far (None: nothing yet, or closed)."""
    sock.setblocking(False)
    try:
        data = sock.recv(4096)
    except OSError:
        return None
    finally:
        sock.setblocking(True)
    if data.startswith(b"HTTP/1.1 "):
        return int(data[9:12])
    return None


def flood_posts(request_id, conns, body_bytes, chunk=64 * 1024):
    """Opens `conns` connections that each post a `body_bytes` answer to the current invocation,
    writing the bodies round-robin so that all of them are in flight at once, and never sends the
    last byte (so none of them can become the invocation's answer)."""
    head = (
        f"POST /2018-06-01/runtime/invocation/{request_id}/response HTTP/1.1\r\n"
        f"Host: {API}\r\nContent-Type: application/json\r\nContent-Length: {body_bytes}\r\n\r\n"
    ).encode()
    out = {"opened": 0, "connect_failed": 0, "cut_off": 0, "fully_sent": 0, "statuses": {}}
    socks = []
    for _ in range(conns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(ADDR)
            s.sendall(head)
        except OSError:
            out["connect_failed"] += 1
            s.close()
            continue
        out["opened"] += 1
        socks.append(s)
    piece = b"x" * chunk
    alive = list(socks)
    sent = 0
    while sent < body_bytes - 1 and alive:
        n = min(chunk, body_bytes - 1 - sent)
        still = []
        for s in alive:
            try:
                s.sendall(piece[:n])
                still.append(s)
            except OSError:
                # Refused (answered early, or closed because of the connection cap) or stalled.
                out["cut_off"] += 1
        alive = still
        sent += n
    out["fully_sent"] = len(alive)
    for s in socks:
        code = _status(s)
        key = str(code) if code is not None else "none"
        out["statuses"][key] = out["statuses"].get(key, 0) + 1
        s.close()
    return out


def next_loop(loops):
    """Connects, asks for the next event and hangs up, `loops` times."""
    out = {"sent": 0, "failed": 0}
    for _ in range(loops):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(ADDR)
            s.sendall(NEXT)
            out["sent"] += 1
        except OSError:
            out["failed"] += 1
        finally:
            s.close()
    return out


def handler(event, context):
    result = {"request_id": context.aws_request_id}
    if event.get("conns"):
        result["posts"] = flood_posts(
            context.aws_request_id, int(event["conns"]), int(event.get("body_mib", 5)) * 1024 * 1024
        )
    if event.get("next_loops"):
        result["next"] = next_loop(int(event["next_loops"]))
    return result
