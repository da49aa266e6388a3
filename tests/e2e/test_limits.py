"""Hostile clients at the front door: slow request heads, oversized headers, connection floods
and slow bodies are bounded by limits and timeouts instead of tying up the node."""

import socket
import time

import pytest

HEADER_TIMEOUT = 2


def _connect(srv) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
    return s


def _closed_within(s: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed `s` (EOF or reset), or None if it stayed open."""
    start = time.monotonic()
    s.settimeout(seconds)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return time.monotonic() - start
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - start
    except socket.timeout:
        return None


def _health(s: socket.socket) -> bytes:
    s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    s.settimeout(15)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    return head


@pytest.fixture
def limited(server_factory):
    return server_factory(
        extra_args=("--header-read-timeout", str(HEADER_TIMEOUT), "--max-connections", "4")
    )


def test_slow_request_head_is_cut_off(limited):
    s = _connect(limited)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: local")  # never finishes the head
    took = _closed_within(s, HEADER_TIMEOUT + 6)
    assert took is not None, "server kept a connection with an unfinished request head open"
    assert took < HEADER_TIMEOUT + 5


def test_oversized_headers_are_refused(limited):
    s = _connect(limited)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
    s.settimeout(10)
    try:
        answer = s.recv(4096)
    except (ConnectionResetError, BrokenPipeError):
        answer = b""
    # Either a 431 answer or a closed connection; never a 200.
    assert not answer.startswith(b"HTTP/1.1 200"), answer[:100]
    if answer:
        assert answer.startswith(b"HTTP/1.1 431"), answer[:100]


def test_connection_flood_does_not_starve_the_node(limited):
    idle = [_connect(limited) for _ in range(4)]  # every connection slot held by a silent client
    time.sleep(0.3)
    start = time.monotonic()
    s = _connect(limited)
    answer = _health(s)
    took = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
    # The silent clients are dropped at the header deadline, which frees a slot.
    assert took < HEADER_TIMEOUT + 5
    for c in idle:
        c.close()
    # With the slots free a new connection is served too.
    s2 = _connect(limited)
    assert _health(s2).startswith(b"HTTP/1.1 200")


def test_keep_alive_connection_serves_many_requests(limited):
    s = _connect(limited)
    for _ in range(20):
        assert _health(s).startswith(b"HTTP/1.1 200")
