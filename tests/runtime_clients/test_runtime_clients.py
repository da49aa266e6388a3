"""Black-box tests of Updraft's Python and Node.js runtime clients.

Each test starts the real client (`python3 bootstrap.py` / `node bootstrap.mjs`) against a
fake Lambda Runtime API (2018-06-01) served from this file. The fake serves queued events
on GET /runtime/invocation/next and records every POST the client makes (path, headers,
body, trailers of chunked bodies), so tests assert the exact wire traffic and log lines.

Run: python3 -m pytest tests/runtime_clients -q
"""

import json
import os
import queue
import re
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNTIMES = REPO / "crates" / "engine" / "runtimes"
NEXT_PATH = "/2018-06-01/runtime/invocation/next"
# The interpreter that runs the Python client; set it to check another Python version.
PYTHON = os.environ.get("UPDRAFT_TEST_PYTHON") or sys.executable


@dataclass
class Event:
    request_id: str
    body: bytes
    headers: dict


@dataclass
class Post:
    path: str
    headers: dict  # lower-cased names
    body: bytes
    trailers: dict = field(default_factory=dict)  # lower-cased names
    at: float = 0.0

    def json(self):
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        if self.connection.family == socket.AF_UNIX:
            with self.server.api.lock:
                self.server.api.unix_connections += 1
            return
        # Headers and body go out in separate writes; without this, Nagle's algorithm and
        # the client's delayed ACK add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.api.lock:
            self.server.api.connections += 1

    def do_GET(self):
        api = self.server.api
        if self.path != NEXT_PATH:
            self._reply(404, b'{"errorType":"NotFound"}')
            return
        with api.lock:
            api.next_calls += 1
        while True:
            try:
                event = api.events.get(timeout=0.05)
                break
            except queue.Empty:
                if api.closed:
                    self.close_connection = True
                    return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        for name, value in event.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(event.body)))
        self.end_headers()
        self.wfile.write(event.body)
        self.wfile.flush()

    def do_POST(self):
        trailers = {}
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body, trailers = self._read_chunked()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.api.posts.put(Post(self.path, headers, body, trailers, time.monotonic()))
        self._reply(202, b'{"status":"OK"}')

    def _read_chunked(self):
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                break
            body += self.rfile.read(size)
            self.rfile.readline()
        trailers = {}
        while True:
            line = self.rfile.readline().decode()
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            trailers[name.strip().lower()] = value.strip()
        return body, trailers

    def _reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client killed at the end of a test resets its connection; that is expected.
        pass


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


def abstract_address(name):
    """The abstract socket `name` as the platform binds it: padded with NULs to the whole
    of sun_path."""
    return ("\0" + name).ljust(108, "\0")


class FakeRuntimeApi:
    """The fake Runtime API on TCP and, with `unix_name`, also on that abstract Unix socket
    (what the platform names in _UPDRAFT_RUNTIME_API_SOCKET)."""

    def __init__(self, unix_name=None):
        self.events = queue.Queue()
        self.posts = queue.Queue()
        self.lock = threading.Lock()
        self.connections = 0
        self.unix_connections = 0
        self.next_calls = 0
        self.closed = False
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.api = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.unix_server = None
        if unix_name is not None:
            self.unix_server = _UnixServer(abstract_address(unix_name), _Handler)
            self.unix_server.api = self
            threading.Thread(target=self.unix_server.serve_forever, daemon=True).start()

    @property
    def address(self):
        host, port = self.server.server_address
        return "%s:%d" % (host, port)

    def push(self, payload=None, request_id=None, deadline_ms=None, raw_body=None, extra_headers=None):
        request_id = request_id or str(uuid.uuid4())
        if deadline_ms is None:
            deadline_ms = int(time.time() * 1000) + 30_000
        headers = {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:fn",
            "Lambda-Runtime-Trace-Id": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
        }
        headers.update(extra_headers or {})
        body = raw_body if raw_body is not None else json.dumps(payload).encode()
        self.events.put(Event(request_id, body, headers))
        return request_id

    def wait_post(self, timeout=10.0):
        try:
            return self.posts.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the runtime client posted nothing within %.1fs" % timeout)

    def close(self):
        self.closed = True
        self.server.shutdown()
        self.server.server_close()
        if self.unix_server is not None:
            self.unix_server.shutdown()
            self.unix_server.server_close()


class Session:
    """One runtime client process talking to one fake Runtime API."""

    def __init__(self, api, proc, task_root, runtime_dir):
        self.api = api
        self.proc = proc
        self.task_root = task_root
        self.runtime_dir = runtime_dir
        self._output = None

    def invoke(self, payload=None, timeout=10.0, **kwargs):
        """Queues one event and returns (request id, the POST that answered it)."""
        request_id = self.api.push(payload, **kwargs)
        post = self.api.wait_post(timeout)
        return request_id, post

    def wait_exit(self, timeout=10.0):
        return self.proc.wait(timeout=timeout)

    def output(self):
        """Stops the client (if still running) and returns (stdout, stderr)."""
        if self._output is None:
            if self.proc.poll() is None:
                self.proc.kill()
            out, err = self.proc.communicate(timeout=10)
            self._output = (out.decode(), err.decode())
        return self._output


FUNCTION_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "fn",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
    "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]0123456789abcdef",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "TZ": ":UTC",
}


@pytest.fixture
def launch(tmp_path):
    """launch(kind, handler, files, env=None, unix_name=None) -> Session, for kind "python" or
    "node"; with `unix_name` the fake API also listens on that abstract Unix socket."""
    sessions = []
    apis = []

    def _launch(kind, handler, files, env=None, unix_name=None):
        base = tmp_path / ("env%d" % len(sessions))
        task_root = base / "task"
        runtime_dir = base / "runtime"
        task_root.mkdir(parents=True)
        runtime_dir.mkdir(parents=True)
        for name, text in files.items():
            target = task_root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        # Run a copy, as the platform does from /var/runtime, so nothing depends on the repo layout.
        if kind == "python":
            script = runtime_dir / "bootstrap.py"
            shutil.copy(RUNTIMES / "python" / "bootstrap.py", script)
            argv = [PYTHON, str(script)]
        elif kind == "node":
            script = runtime_dir / "bootstrap.mjs"
            shutil.copy(RUNTIMES / "node" / "bootstrap.mjs", script)
            node = shutil.which("node")
            assert node, "node is required for the Node.js runtime client tests"
            argv = [node, str(script)]
        else:
            raise ValueError(kind)

        api = FakeRuntimeApi(unix_name)
        apis.append(api)
        child_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": str(task_root),
            "LAMBDA_RUNTIME_DIR": str(runtime_dir),
        }
        child_env.update(FUNCTION_ENV)
        child_env.update(env or {})
        proc = subprocess.Popen(
            argv,
            cwd=task_root,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        session = Session(api, proc, task_root, runtime_dir)
        sessions.append(session)
        return session

    yield _launch

    for session in sessions:
        session.output()
    for api in apis:
        api.close()


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

ISO_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def child_python_version():
    major, minor = child_python("import sys; print(sys.version_info[0], sys.version_info[1])").split()
    return int(major), int(minor)


def child_python(code):
    return subprocess.run([PYTHON, "-c", code], capture_output=True, check=True, text=True).stdout


def assert_frame(frame, expected):
    assert frame.startswith(expected), frame
    assert re.fullmatch(r"( *[~^]+\n)?", frame[len(expected):]), frame


def child_syntax_error(source, filename):
    code = """
import json
try:
    compile(%r, %r, "exec")
except SyntaxError as e:
    print(json.dumps([str(e), e.lineno, e.text]))
""" % (source, filename)
    return json.loads(child_python(code))


def response_path(request_id):
    return "/2018-06-01/runtime/invocation/%s/response" % request_id


def error_path(request_id):
    return "/2018-06-01/runtime/invocation/%s/error" % request_id


INIT_ERROR_PATH = "/2018-06-01/runtime/init/error"


def assert_no_more_posts(api, wait=0.3):
    try:
        extra = api.posts.get(timeout=wait)
    except queue.Empty:
        return
    raise AssertionError("unexpected extra post: %r" % (extra,))


# ---------------------------------------------------------------------------
# Python
# ---------------------------------------------------------------------------

PY_APP = '''\
import os

def handler(event, context):
    print("got", event["name"])
    return {"hello": event["name"], "n": 1.5, "list": [1, None, True]}
'''


def test_python_sync_handler_result(launch):
    s = launch("python", "app.handler", {"app.py": PY_APP})
    rid, post = s.invoke({"name": "world"})
    assert post.path == response_path(rid)
    assert post.headers["content-type"] == "application/json"
    assert post.json() == {"hello": "world", "n": 1.5, "list": [1, None, True]}
    assert_no_more_posts(s.api)
    assert s.api.next_calls == 2  # and it is waiting for the next event
    out, _ = s.output()
    assert "got world\n" in out


def test_python_none_result_and_empty_event(launch):
    s = launch("python", "app.handler", {"app.py": "def handler(event, context):\n    assert event == {}, event\n"})
    rid, post = s.invoke(raw_body=b"")
    assert post.path == response_path(rid)
    assert post.body == b"null"


def test_python_context_fields(launch):
    code = '''\
import os, time

def handler(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.3)
    second = context.get_remaining_time_in_millis()
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "identity": [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
        "client_context": None if context.client_context is None else {
            "custom": context.client_context.custom,
            "env": context.client_context.env,
            "installation_id": context.client_context.client.installation_id,
        },
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
        "first": first,
        "second": second,
    }
'''
    s = launch("python", "app.handler", {"app.py": code})
    deadline = int(time.time() * 1000) + 5000
    client_context = {"custom": {"k": "v"}, "env": {"platform": "x"}, "client": {"installation_id": "inst"}}
    identity = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    rid, post = s.invoke(
        {},
        deadline_ms=deadline,
        extra_headers={
            "Lambda-Runtime-Client-Context": json.dumps(client_context),
            "Lambda-Runtime-Cognito-Identity": json.dumps(identity),
        },
    )
    body = post.json()
    first, second = body.pop("first"), body.pop("second")
    assert body == {
        "function_name": "fn",
        "function_version": "$LATEST",
        "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:fn",
        "memory_limit_in_mb": "256",
        "aws_request_id": rid,
        "log_group_name": "/aws/lambda/fn",
        "log_stream_name": "2024/01/01/[$LATEST]0123456789abcdef",
        "identity": ["id-1", "pool-1"],
        "client_context": {"custom": {"k": "v"}, "env": {"platform": "x"}, "installation_id": "inst"},
        "trace": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
    }
    assert isinstance(first, int)
    assert 3000 < first <= 5000
    assert first - second >= 290

    # A deadline already passed reads as zero, never negative; absent headers give
    # None client_context and an identity with None fields.
    rid, post = s.invoke({}, deadline_ms=int(time.time() * 1000) - 1000)
    body = post.json()
    assert body["first"] == 0 and body["second"] == 0
    assert body["client_context"] is None
    assert body["identity"] == [None, None]


def test_python_exception_posts_error(launch):
    code = '''\
def helper():
    raise ValueError("boom")

def handler(event, context):
    return helper()
'''
    s = launch("python", "app.handler", {"app.py": code})
    rid, post = s.invoke({})
    app = str(s.task_root / "app.py")
    assert post.path == error_path(rid)
    assert post.headers["lambda-runtime-function-error-type"] == "ValueError"
    assert post.headers["content-type"] == "application/json"
    body = post.json()
    trace = body.pop("stackTrace")
    assert body == {"errorMessage": "boom", "errorType": "ValueError", "requestId": rid}
    # Frames as traceback.format_list renders them (as Lambda does): only the user's, and
    # Python 3.11+ may add a line of carets under the failing expression.
    assert len(trace) == 2
    line5, line2 = trace
    assert_frame(line5, '  File "%s", line 5, in handler\n    return helper()\n' % app)
    assert_frame(line2, '  File "%s", line 2, in helper\n    raise ValueError("boom")\n' % app)
    out, _ = s.output()
    expected_log = "[ERROR] ValueError: boom\nTraceback (most recent call last):\n" + line5 + line2
    assert expected_log in out


def test_python_error_then_next_invocation_still_served(launch):
    code = '''\
def handler(event, context):
    if event.get("fail"):
        raise KeyError("k")
    return "ok"
'''
    s = launch("python", "app.handler", {"app.py": code})
    rid, post = s.invoke({"fail": True})
    assert post.path == error_path(rid)
    assert post.json()["errorType"] == "KeyError"
    assert post.json()["errorMessage"] == "'k'"
    rid, post = s.invoke({})
    assert post.path == response_path(rid)
    assert post.body == b'"ok"'


def test_python_marshal_error(launch):
    s = launch("python", "app.handler", {"app.py": "def handler(event, context):\n    return {1, 2}\n"})
    rid, post = s.invoke({})
    assert post.path == error_path(rid)
    assert post.headers["lambda-runtime-function-error-type"] == "Runtime.MarshalError"
    assert post.json() == {
        "errorMessage": "Unable to marshal response: Object of type set is not JSON serializable",
        "errorType": "Runtime.MarshalError",
        "requestId": rid,
        "stackTrace": [],
    }


def _assert_python_init_error(s, error_type, message, stack_trace=None):
    post = s.api.wait_post()
    assert post.path == INIT_ERROR_PATH
    assert post.headers["lambda-runtime-function-error-type"] == error_type
    assert post.json() == {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": "",
        "stackTrace": stack_trace if stack_trace is not None else [],
    }
    assert s.wait_exit() == 1
    assert s.api.next_calls == 0
    out, _ = s.output()
    assert "[ERROR] %s: %s\nTraceback (most recent call last):\n" % (error_type, message) in out


def test_python_import_module_error(launch):
    s = launch("python", "missing.handler", {"app.py": PY_APP})
    _assert_python_init_error(
        s, "Runtime.ImportModuleError", "Unable to import module 'missing': No module named 'missing'"
    )


def test_python_import_error_inside_user_module(launch):
    s = launch("python", "app.handler", {"app.py": "import notinstalled_dep\n"})
    _assert_python_init_error(
        s,
        "Runtime.ImportModuleError",
        "Unable to import module 'app': No module named 'notinstalled_dep'",
    )


def test_python_handler_not_found(launch):
    s = launch("python", "app.nothere", {"app.py": PY_APP})
    _assert_python_init_error(s, "Runtime.HandlerNotFound", "Handler 'nothere' missing on module 'app'")


def test_python_malformed_handler(launch):
    s = launch("python", "app", {"app.py": PY_APP})
    _assert_python_init_error(
        s,
        "Runtime.MalformedHandlerName",
        "Bad handler 'app': not enough values to unpack (expected 2, got 1)",
    )


def test_python_syntax_error(launch):
    source = "def handler(event, context):\n    return (\n"
    s = launch("python", "app.handler", {"app.py": source})
    path = str(s.task_root / "app.py")
    message, lineno, text = child_syntax_error(source, path)
    _assert_python_init_error(
        s,
        "Runtime.UserCodeSyntaxError",
        "Syntax error in module 'app': %s" % message,
        ['  File "%s" Line %s\n    %s' % (path, lineno, text)],
    )


def test_python_error_during_module_init(launch):
    s = launch("python", "app.handler", {"app.py": "x = 1\nraise RuntimeError('no config')\n"})
    post = s.api.wait_post()
    assert post.path == INIT_ERROR_PATH
    assert post.headers["lambda-runtime-function-error-type"] == "RuntimeError"
    body = post.json()
    assert body["errorType"] == "RuntimeError"
    assert body["errorMessage"] == "no config"
    assert body["requestId"] == ""
    # The frames end in the user's module, and none is from the runtime client itself.
    assert body["stackTrace"][-1] == '  File "%s", line 2, in <module>\n    raise RuntimeError(\'no config\')\n' % (
        s.task_root / "app.py"
    )
    assert not any("bootstrap.py" in frame for frame in body["stackTrace"])
    assert s.wait_exit() == 1


def test_python_nested_package_handler(launch):
    files = {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "",
        "pkg/sub/mod.py": "def func(event, context):\n    return {'where': __name__}\n",
    }
    for handler in ("pkg/sub/mod.func", "pkg.sub.mod.func"):
        s = launch("python", handler, files)
        rid, post = s.invoke({})
        assert post.path == response_path(rid)
        assert post.json() == {"where": "pkg.sub.mod"}


def test_python_dotted_package_handler(launch):
    files = {
        "pkg/__init__.py": "",
        "pkg/mod.py": "def func(event, context):\n    return {'where': __name__}\n",
    }
    s = launch("python", "pkg.mod.func", files)
    rid, post = s.invoke({})
    assert post.path == response_path(rid)
    assert post.json() == {"where": "pkg.mod"}


def test_python_sys_path(launch):
    code = "import sys\ndef handler(event, context):\n    return sys.path\n"
    s = launch("python", "app.handler", {"app.py": code})
    rid, post = s.invoke({})
    path = post.json()
    layer_site = "/opt/python/lib/python%d.%d/site-packages" % child_python_version()
    assert path[:3] == [str(s.task_root), layer_site, "/opt/python"]
    # The runtime's own directory stays reachable, but after everything else.
    assert path[-1] == str(s.runtime_dir)
    assert path.count(str(s.runtime_dir)) == 1


def test_python_warm_reuse_and_single_connection(launch):
    code = '''\
COUNT = 0

def handler(event, context):
    global COUNT
    COUNT += 1
    return COUNT
'''
    s = launch("python", "app.handler", {"app.py": code})
    results = []
    for _ in range(3):
        rid, post = s.invoke({})
        assert post.path == response_path(rid)
        results.append(post.json())
    assert results == [1, 2, 3]
    assert s.api.connections == 1


COUNTER_HANDLERS = {
    "python": ("app.handler", {"app.py": "N = 0\ndef handler(event, context):\n    global N\n    N += 1\n    return N\n"}),
    "node": ("index.handler", {"index.js": "let n = 0;\nexports.handler = async () => ++n;\n"}),
}


@pytest.mark.parametrize("kind", ["python", "node"])
def test_clients_prefer_the_runtime_api_unix_socket(launch, kind):
    name = "updraft-test-%s" % uuid.uuid4().hex
    handler, files = COUNTER_HANDLERS[kind]
    s = launch(kind, handler, files, env={"_UPDRAFT_RUNTIME_API_SOCKET": "@" + name}, unix_name=name)
    for expected in (1, 2, 3):
        rid, post = s.invoke({})
        assert post.path == response_path(rid)
        assert post.json() == expected
    # Every exchange went over the one Unix connection; TCP was never used.
    assert s.api.unix_connections == 1
    assert s.api.connections == 0


@pytest.mark.parametrize("kind", ["python", "node"])
def test_clients_fall_back_to_tcp_without_the_unix_socket(launch, kind):
    handler, files = COUNTER_HANDLERS[kind]
    missing = "@updraft-test-missing-%s" % uuid.uuid4().hex
    s = launch(kind, handler, files, env={"_UPDRAFT_RUNTIME_API_SOCKET": missing})
    for expected in (1, 2):
        rid, post = s.invoke({})
        assert post.path == response_path(rid)
        assert post.json() == expected
    assert s.api.connections == 1
    assert s.api.unix_connections == 0


def test_python_logging_format(launch):
    code = '''\
import logging
logger = logging.getLogger()
logger.setLevel(logging.INFO)
logging.info("during init")

def handler(event, context):
    logger.info("hello %s", "there")
    logger.debug("not shown")
    print("plain print")
    return 1
'''
    s = launch("python", "app.handler", {"app.py": code})
    rid, post = s.invoke({})
    assert post.path == response_path(rid)
    out, _ = s.output()
    assert re.search(r"^\[INFO\]\t%s\t\tduring init$" % ISO_MS, out, re.M), out
    assert re.search(r"^\[INFO\]\t%s\t%s\thello there$" % (ISO_MS, re.escape(rid)), out, re.M), out
    assert "not shown" not in out
    assert "plain print\n" in out


def test_python_logs_flushed_before_response(launch):
    # Output written without a newline must still reach the platform before the response.
    code = "import sys\ndef handler(event, context):\n    sys.stdout.write('partial')\n    sys.stderr.write('err-partial')\n    return 1\n"
    s = launch("python", "app.handler", {"app.py": code})
    s.invoke({})
    # The response has arrived: the output must already be in the pipes (flushed before the
    # response was posted), read now without waiting and without stopping the process.
    got_out, got_err = _drain(s.proc.stdout), _drain(s.proc.stderr)
    assert b"partial" in got_out, got_out
    assert b"err-partial" in got_err, got_err


def test_python_bytes_result_posted_raw(launch):
    s = launch("python", "app.handler", {"app.py": "def handler(event, context):\n    return b'\\x00raw'\n"})
    rid, post = s.invoke({})
    assert post.path == response_path(rid)
    assert post.body == b"\x00raw"


# ---------------------------------------------------------------------------
# Node.js
# ---------------------------------------------------------------------------


def node_log_lines(out, request_id, level):
    prefix = re.compile(r"^%s\t%s\t%s\t" % (ISO_MS, re.escape(str(request_id)), level))
    return [line[prefix.match(line).end():] for line in out.split("\n") if prefix.match(line)]


def test_node_commonjs_handler(launch):
    code = "exports.handler = async (event) => ({ hello: event.name, kind: typeof require });\n"
    s = launch("node", "index.handler", {"index.js": code})
    rid, post = s.invoke({"name": "world"})
    assert post.path == response_path(rid)
    assert post.headers["content-type"] == "application/json"
    assert post.json() == {"hello": "world", "kind": "function"}


def test_node_esm_mjs_handler(launch):
    code = "export const handler = async (event) => ({ esm: typeof require === 'undefined', v: event.v });\n"
    s = launch("node", "index.handler", {"index.mjs": code})
    rid, post = s.invoke({"v": 7})
    assert post.path == response_path(rid)
    assert post.json() == {"esm": True, "v": 7}


def test_node_type_module_package_js(launch):
    files = {
        "package.json": json.dumps({"type": "module"}),
        "app.js": "export async function handler(event) { return { esm: typeof require === 'undefined' }; }\n",
    }
    s = launch("node", "app.handler", files)
    rid, post = s.invoke({})
    assert post.path == response_path(rid)
    assert post.json() == {"esm": True}


def test_node_cjs_extension(launch):
    s = launch("node", "index.handler", {"index.cjs": "module.exports.handler = async () => 'cjs';\n"})
    rid, post = s.invoke({})
    assert post.json() == "cjs"


def test_node_js_preferred_over_mjs(launch):
    files = {
        "index.js": "exports.handler = async () => 'js';\n",
        "index.mjs": "export const handler = async () => 'mjs';\n",
    }
    s = launch("node", "index.handler", files)
    rid, post = s.invoke({})
    assert post.json() == "js"


def test_node_nested_and_directory_handlers(launch):
    files = {"lib/mod.js": "exports.api = { v1: { get: async () => 'nested' } };\n"}
    s = launch("node", "lib/mod.api.v1.get", files)
    rid, post = s.invoke({})
    assert post.path == response_path(rid)
    assert post.json() == "nested"


def test_node_async_handler_undefined_is_null(launch):
    s = launch("node", "index.handler", {"index.js": "exports.handler = async () => {};\n"})
    rid, post = s.invoke({})
    assert post.path == response_path(rid)
    assert post.body == b"null"


def test_node_callback_handler(launch):
    code = "exports.handler = (event, context, callback) => { setTimeout(() => callback(null, { cb: event.x }), 20); };\n"
    s = launch("node", "index.handler", {"index.js": code})
    rid, post = s.invoke({"x": 3})
    assert post.path == response_path(rid)
    assert post.json() == {"cb": 3}


def _drain(stream) -> bytes:
    """What the child has written to `stream` so far, without waiting for more."""
    import select

    got = b""
    while select.select([stream], [], [], 0)[0]:
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            break
        got += chunk
    return got


def test_node_callback_waits_for_empty_event_loop(launch):
    # Node writes to a pipe synchronously, so whether "timer fired" is in the child's stdout when
    # the response arrives tells which came first: an ordering, not a stopwatch. The timer is long
    # (2 s) so that a response that does not wait is sent well before it even on a loaded machine.
    code = '''\
exports.handler = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = event.wait;
  setTimeout(() => console.log('timer fired ' + event.n), 2000);
  callback(null, 'done');
};
'''
    s = launch("node", "index.handler", {"index.js": code})
    rid, post = s.invoke({"wait": True, "n": 1})
    assert post.path == response_path(rid) and post.json() == "done"
    out = _drain(s.proc.stdout)
    assert b"timer fired 1" in out, f"response posted before the event loop was empty: {out!r}"

    rid, post = s.invoke({"wait": False, "n": 2})
    assert post.path == response_path(rid) and post.json() == "done"
    out = _drain(s.proc.stdout)
    assert b"timer fired 2" not in out, f"response waited for the event loop although told not to: {out!r}"


def test_node_sync_handler_without_callback_returns_null(launch):
    s = launch("node", "index.handler", {"index.js": "exports.handler = function (event, context) { return 42; };\n"})
    rid, post = s.invoke({})
    assert post.path == response_path(rid)
    assert post.body == b"null"


def test_node_only_first_completion_counts(launch):
    code = '''\
exports.handler = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  callback(null, 'first');
  callback(null, 'second');
  context.succeed('third');
  context.fail(new Error('fourth'));
};
'''
    s = launch("node", "index.handler", {"index.js": code})
    rid, post = s.invoke({})
    assert post.path == response_path(rid) and post.json() == "first"
    assert_no_more_posts(s.api)
    rid, post = s.invoke({})
    assert post.path == response_path(rid) and post.json() == "first"


def test_node_context_succeed_and_fail(launch):
    code = '''\
exports.handler = function (event, context) {
  if (event.ok) context.succeed({ legacy: true });
  else context.fail(new Error('legacy fail'));
};
'''
    s = launch("node", "index.handler", {"index.js": code})
    rid, post = s.invoke({"ok": True})
    assert post.path == response_path(rid) and post.json() == {"legacy": True}
    rid, post = s.invoke({"ok": False})
    assert post.path == error_path(rid)
    assert post.json()["errorMessage"] == "legacy fail"


def _assert_node_error(s, rid, post, error_type, message, line_fragment):
    assert post.path == error_path(rid)
    assert post.headers["lambda-runtime-function-error-type"] == error_type
    assert post.headers["content-type"] == "application/json"
    body = post.json()
    assert sorted(body) == ["errorMessage", "errorType", "trace"]
    assert body["errorType"] == error_type
    assert body["errorMessage"] == message
    assert body["trace"][0] == "%s: %s" % (error_type, message)
    assert body["trace"][1].startswith("    at ")
    assert line_fragment in body["trace"][1]
    return body


def test_node_thrown_error_shape_and_log(launch):
    code = "exports.handler = async (event) => {\n  throw new TypeError('bad input');\n};\n"
    s = launch("node", "index.handler", {"index.js": code})
    rid, post = s.invoke({})
    body = _assert_node_error(s, rid, post, "TypeError", "bad input", "%s:2:" % (s.task_root / "index.js"))
    out, _ = s.output()
    lines = node_log_lines(out, rid, "ERROR")
    assert len(lines) == 1, out
    assert lines[0].startswith("Invoke Error \t{")
    logged = json.loads(lines[0][len("Invoke Error \t"):].split("\n")[0])
    assert logged["errorType"] == "TypeError"
    assert logged["errorMessage"] == "bad input"
    assert logged["stack"] == body["trace"]


def test_node_sync_throw_and_callback_error(launch):
    code = '''\
exports.handler = (event, context, callback) => {
  if (event.mode === 'throw') throw new RangeError('sync');
  callback(new Error('via callback'));
};
'''
    s = launch("node", "index.handler", {"index.js": code})
    rid, post = s.invoke({"mode": "throw"})
    _assert_node_error(s, rid, post, "RangeError", "sync", "index.js:2:")
    rid, post = s.invoke({"mode": "cb"})
    _assert_node_error(s, rid, post, "Error", "via callback", "index.js:3:")


def test_node_non_error_rejection(launch):
    s = launch("node", "index.handler", {"index.js": "exports.handler = async () => { throw 'plain string'; };\n"})
    rid, post = s.invoke({})
    assert post.path == error_path(rid)
    assert post.headers["lambda-runtime-function-error-type"] == "string"
    assert post.json() == {"errorType": "string", "errorMessage": "plain string", "trace": []}


def test_node_unstringifiable_result(launch):
    code = "exports.handler = async () => { const o = {}; o.self = o; return o; };\n"
    s = launch("node", "index.handler", {"index.js": code})
    rid, post = s.invoke({})
    assert post.path == error_path(rid)
    assert post.json()["errorMessage"] == "Unable to stringify response body"


def test_node_uncaught_exception_during_invoke(launch):
    code = "exports.handler = async () => { setTimeout(() => { throw new Error('late'); }, 10); return new Promise(() => {}); };\n"
    s = launch("node", "index.handler", {"index.js": code})
    rid, post = s.invoke({})
    _assert_node_error(s, rid, post, "Error", "late", "index.js:1:")
    assert s.wait_exit() == 129


def _assert_node_init_error(s, error_type, message_check, trace_starts_with_message=True):
    post = s.api.wait_post()
    assert post.path == INIT_ERROR_PATH
    assert post.headers["lambda-runtime-function-error-type"] == error_type
    assert post.headers["content-type"] == "application/json"
    body = post.json()
    assert sorted(body) == ["errorMessage", "errorType", "trace"]
    assert body["errorType"] == error_type
    message_check(body["errorMessage"])
    if trace_starts_with_message:
        assert body["trace"][0] == "%s: %s" % (error_type, body["errorMessage"].split("\n")[0])
    assert s.wait_exit() == 129
    assert s.api.next_calls == 0
    out, _ = s.output()
    lines = node_log_lines(out, "undefined", "ERROR")
    assert lines and lines[0].startswith("Uncaught Exception \t{"), out
    return body


def test_node_import_module_error(launch):
    s = launch("node", "missing.handler", {"index.js": "exports.handler = async () => 1;\n"})

    def check(message):
        assert message == "Error: Cannot find module 'missing'\nRequire stack:\n- %s" % (s.runtime_dir / "bootstrap.mjs")

    _assert_node_init_error(s, "Runtime.ImportModuleError", check)


def test_node_handler_not_found(launch):
    s = launch("node", "index.nope", {"index.js": "exports.handler = async () => 1;\n"})

    def check(message):
        assert message == "index.nope is undefined or not exported"

    _assert_node_init_error(s, "Runtime.HandlerNotFound", check)


def test_node_handler_not_a_function(launch):
    s = launch("node", "index.value", {"index.js": "exports.value = 5;\n"})

    def check(message):
        assert message == "index.value is not a function"

    _assert_node_init_error(s, "Runtime.HandlerNotFound", check)


def test_node_malformed_handler(launch):
    s = launch("node", "index", {"index.js": "exports.handler = async () => 1;\n"})

    def check(message):
        assert message == "Bad handler"

    _assert_node_init_error(s, "Runtime.MalformedHandlerName", check)


def test_node_relative_handler_rejected(launch):
    s = launch("node", "../index.handler", {"index.js": "exports.handler = async () => 1;\n"})

    def check(message):
        assert message == (
            "'../index.handler' is not a valid handler name. Use absolute paths when specifying root "
            "directories in handler names."
        )

    _assert_node_init_error(s, "Runtime.MalformedHandlerName", check)


def test_node_syntax_error(launch):
    s = launch("node", "index.handler", {"index.js": "exports.handler = async () => {\n"})

    def check(message):
        assert message == "SyntaxError: Unexpected end of input"

    body = _assert_node_init_error(s, "Runtime.UserCodeSyntaxError", check, trace_starts_with_message=False)
    # The trace is the parser's: it names the file and line that failed.
    assert body["trace"][0] == "%s:2" % (s.task_root / "index.js")
    assert "SyntaxError: Unexpected end of input" in body["trace"]


def test_node_error_thrown_at_module_init(launch):
    s = launch("node", "index.handler", {"index.js": "throw new Error('no config');\n"})

    def check(message):
        assert message == "no config"

    body = _assert_node_init_error(s, "Error", check)
    assert "%s:1:" % (s.task_root / "index.js") in body["trace"][1]


def test_python_trace_id_is_set_without_setenv():
    # glibc's setenv(3) keeps every distinct value it was given: a new trace id per invocation
    # written to the real environment would grow the runtime by ~140 bytes per invocation.
    code = '''\
import importlib.util, os, resource, subprocess, sys
spec = importlib.util.spec_from_file_location("bootstrap", sys.argv[1])
bootstrap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bootstrap)
trace = "Root=1-00000001-aaaaaaaaaaaaaaaaaaaaaaaa;Parent=1111111111111111;Sampled=1"
bootstrap.set_trace_id(trace)
child = subprocess.run(["/bin/sh", "-c", 'printf %s "$_X_AMZN_TRACE_ID"'], env=os.environ,
                       capture_output=True, text=True).stdout
seen = [os.environ.get("_X_AMZN_TRACE_ID") == trace, os.getenv("_X_AMZN_TRACE_ID") == trace, child == trace]
bootstrap.set_trace_id(None)
seen.append("_X_AMZN_TRACE_ID" not in os.environ)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for i in range(300000):
    bootstrap.set_trace_id("Root=1-%08x-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=0" % i)
grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(seen, grew)
'''
    out = subprocess.run([PYTHON, "-c", code, str(RUNTIMES / "python" / "bootstrap.py")],
                         capture_output=True, text=True, check=True).stdout
    seen, grew = out.rsplit(" ", 1)
    assert seen == "[True, True, True, True]", out
    # Through setenv(3) this would be ~40 MiB.
    assert float(grew) < 15, out


def test_node_trace_id_changes_per_invocation_without_setenv(launch):
    # glibc's setenv(3) keeps every distinct value it was given: a new trace id per invocation
    # written to the real environment would grow the runtime by ~140 bytes per invocation.
    code = '''\
const { execFileSync } = require('child_process');
exports.handler = async (event) => {
  const seen = {
    trace: process.env._X_AMZN_TRACE_ID,
    has: '_X_AMZN_TRACE_ID' in process.env,
    listed: Object.keys(process.env).includes('_X_AMZN_TRACE_ID'),
    child: execFileSync('/bin/sh', ['-c', 'printf %s "$_X_AMZN_TRACE_ID"']).toString(),
    path: typeof process.env.PATH,
  };
  if (event.churn) {
    const before = process.memoryUsage().rss;
    for (let i = 0; i < event.churn; i++) process.env._X_AMZN_TRACE_ID = 'Root=1-' + i.toString(16).padStart(8, '0') + '-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=0';
    seen.grewMiB = (process.memoryUsage().rss - before) / 1048576;
  }
  return seen;
};
'''
    s = launch("node", "index.handler", {"index.js": code})
    trace_a = "Root=1-00000001-aaaaaaaaaaaaaaaaaaaaaaaa;Parent=1111111111111111;Sampled=1"
    trace_b = "Root=1-00000002-bbbbbbbbbbbbbbbbbbbbbbbb;Parent=2222222222222222;Sampled=0"
    _, post = s.invoke({}, extra_headers={"Lambda-Runtime-Trace-Id": trace_a})
    assert post.json() == {"trace": trace_a, "has": True, "listed": True, "child": trace_a, "path": "string"}
    _, post = s.invoke({"churn": 500000}, timeout=60, extra_headers={"Lambda-Runtime-Trace-Id": trace_b})
    body = post.json()
    grew = body.pop("grewMiB")
    assert body == {"trace": trace_b, "has": True, "listed": True, "child": trace_b, "path": "string"}
    # Through setenv(3) this would be ~70 MiB.
    assert grew < 35, grew


def test_node_context_fields_and_remaining_time(launch):
    code = '''\
exports.handler = async (event, context) => {
  const first = context.getRemainingTimeInMillis();
  await new Promise((r) => setTimeout(r, 300));
  const second = context.getRemainingTimeInMillis();
  return {
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    invokedFunctionArn: context.invokedFunctionArn,
    memoryLimitInMB: context.memoryLimitInMB,
    awsRequestId: context.awsRequestId,
    logGroupName: context.logGroupName,
    logStreamName: context.logStreamName,
    identity: context.identity === undefined ? 'absent' : context.identity,
    clientContext: context.clientContext === undefined ? 'absent' : context.clientContext,
    waits: context.callbackWaitsForEmptyEventLoop,
    trace: process.env._X_AMZN_TRACE_ID,
    first, second,
  };
};
'''
    s = launch("node", "index.handler", {"index.js": code})
    deadline = int(time.time() * 1000) + 5000
    identity = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    client_context = {"custom": {"k": "v"}, "env": {"platform": "x"}}
    rid, post = s.invoke(
        {},
        deadline_ms=deadline,
        extra_headers={
            "Lambda-Runtime-Cognito-Identity": json.dumps(identity),
            "Lambda-Runtime-Client-Context": json.dumps(client_context),
        },
    )
    body = post.json()
    first, second = body.pop("first"), body.pop("second")
    assert body == {
        "functionName": "fn",
        "functionVersion": "$LATEST",
        "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:fn",
        "memoryLimitInMB": "256",
        "awsRequestId": rid,
        "logGroupName": "/aws/lambda/fn",
        "logStreamName": "2024/01/01/[$LATEST]0123456789abcdef",
        "identity": identity,
        "clientContext": client_context,
        "waits": True,
        "trace": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
    }
    assert 3000 < first <= 5000
    assert first - second >= 290

    rid, post = s.invoke({})
    body = post.json()
    assert body["identity"] == "absent" and body["clientContext"] == "absent"


def test_node_console_format(launch):
    code = '''\
console.log('at init');
exports.handler = async () => {
  console.log('hello %d', 42);
  console.warn('careful');
  console.error('bad', { a: 1 });
  return 1;
};
'''
    s = launch("node", "index.handler", {"index.js": code})
    rid, post = s.invoke({})
    assert post.path == response_path(rid)
    out, _ = s.output()
    assert node_log_lines(out, "undefined", "INFO") == ["at init"]
    assert node_log_lines(out, rid, "INFO") == ["hello 42"]
    assert node_log_lines(out, rid, "WARN") == ["careful"]
    assert node_log_lines(out, rid, "ERROR") == ["bad { a: 1 }"]


def test_node_log_level_filter(launch):
    code = "exports.handler = async () => { console.debug('dbg'); console.info('inf'); console.error('err'); return 1; };\n"
    s = launch("node", "index.handler", {"index.js": code}, env={"AWS_LAMBDA_LOG_LEVEL": "ERROR"})
    rid, _ = s.invoke({})
    out, _ = s.output()
    assert node_log_lines(out, rid, "ERROR") == ["err"]
    assert "dbg" not in out and "inf" not in out


def test_node_warm_reuse_and_single_connection(launch):
    code = "let n = 0;\nexports.handler = async () => ++n;\n"
    s = launch("node", "index.handler", {"index.js": code})
    results = []
    for _ in range(3):
        rid, post = s.invoke({})
        assert post.path == response_path(rid)
        results.append(post.json())
    assert results == [1, 2, 3]
    assert s.api.connections == 1


def test_node_empty_event_is_empty_object(launch):
    s = launch("node", "index.handler", {"index.js": "exports.handler = async (e) => e;\n"})
    rid, post = s.invoke(raw_body=b"")
    assert post.json() == {}


def test_node_streaming_response(launch):
    code = '''\
exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream.setContentType('text/plain');
  responseStream.write('hello ');
  await new Promise((r) => setTimeout(r, 10));
  responseStream.write(context.awsRequestId);
  responseStream.end();
});
'''
    s = launch("node", "index.handler", {"index.js": code})
    rid, post = s.invoke({})
    assert post.path == response_path(rid)
    assert post.headers["lambda-runtime-function-response-mode"] == "streaming"
    assert post.headers["transfer-encoding"] == "chunked"
    assert post.headers["content-type"] == "text/plain"
    assert post.body == ("hello " + rid).encode()
    assert "lambda-runtime-function-error-type" not in post.trailers
    # The environment goes on serving invocations afterwards.
    rid, post = s.invoke({})
    assert post.body == ("hello " + rid).encode()


def test_node_streaming_error_after_first_byte_goes_to_trailers(launch):
    code = '''\
exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.write('partial');
  await new Promise((r) => setTimeout(r, 10));
  throw new Error('mid-stream');
});
'''
    s = launch("node", "index.handler", {"index.js": code})
    rid, post = s.invoke({})
    assert post.path == response_path(rid)
    assert post.body == b"partial"
    assert post.trailers["lambda-runtime-function-error-type"] == "Error"
    import base64

    error = json.loads(base64.b64decode(post.trailers["lambda-runtime-function-error-body"]))
    assert error["errorType"] == "Error" and error["errorMessage"] == "mid-stream"


def test_node_http_response_stream_prelude(launch):
    code = '''\
exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const s = awslambda.HttpResponseStream.from(responseStream, { statusCode: 201, headers: { a: 'b' } });
  s.write('body');
  s.end();
});
'''
    s = launch("node", "index.handler", {"index.js": code})
    rid, post = s.invoke({})
    assert post.headers["content-type"] == "application/vnd.awslambda.http-integration-response"
    assert post.body == b'{"statusCode":201,"headers":{"a":"b"}}' + b"\x00" * 8 + b"body"
