"""Updraft's Python runtime client.

Speaks the Lambda Runtime API (2018-06-01) on AWS_LAMBDA_RUNTIME_API: imports the
handler named by _HANDLER from LAMBDA_TASK_ROOT, then loops forever fetching the next
event, calling the handler and posting its result or error. Handler resolution, the
context object, error bodies and log lines follow Lambda's own Python runtime so that
functions behave the same here as there.

Standard library only: this file is copied to /var/runtime and started as
`python3 /var/runtime/bootstrap.py`.
"""

import decimal
import http.client
import importlib
import json
import logging
import math
import os
import socket
import sys
import time
import traceback

API_VERSION = "2018-06-01"
NEXT_PATH = "/%s/runtime/invocation/next" % API_VERSION
THIS_FILE = os.path.abspath(__file__)

# Error types the runtime itself reports, named as Lambda names them.
MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
UNMARSHAL_ERROR = "Runtime.UnmarshalError"
MARSHAL_ERROR = "Runtime.MarshalError"
CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

# The request id that log records of the root logger carry; "" outside an invocation.
_current_request_id = ""


class RuntimeFault(Exception):
    """A failure the runtime reports with one of Lambda's `Runtime.*` error types."""

    def __init__(self, error_type, message, stack_trace=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack_trace = stack_trace or []


class RuntimeApiError(Exception):
    """The Runtime API answered with an unexpected status."""


# ---------------------------------------------------------------------------
# Runtime API client
# ---------------------------------------------------------------------------


class _Headers(dict):
    """Response headers by lower-case name; `get` ignores case like http.client's."""

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name):
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name):
        return dict.__contains__(self, name.lower())


class _Response:
    __slots__ = ("status", "headers")

    def __init__(self, status, headers):
        self.status = status
        self.headers = headers


class RuntimeApiClient:
    """One keep-alive HTTP/1.1 connection to the Runtime API, reused for every call.

    Reusing the connection saves a TCP handshake on each of the two calls per
    invocation. The requests are written and the answers parsed here, directly on the
    socket: the Runtime API's answers are small and simple, and http.client's general
    machinery (header parsing through the email package, buffered file objects) costs
    more than the rest of a warm invocation's work in this process.
    """

    def __init__(self, address, socket_path=None):
        host, _, port = address.rpartition(":")
        if not host:
            host, port = address, "80"
        self._host = host
        self._port = int(port)
        # Tried first when given; TCP takes over for good if it cannot be connected.
        self._socket_path = socket_path
        self._sock = None
        self._buf = bytearray()

    def _connection(self):
        if self._sock is None:
            # No timeout: /next is a long poll that may wait for minutes.
            sock = None
            if self._socket_path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(self._socket_path)
                except OSError:
                    sock.close()
                    sock = None
                    self._socket_path = None
            if sock is None:
                sock = socket.create_connection((self._host, self._port))
                # Small requests must not wait for the peer's delayed ACK (Nagle).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self._buf = bytearray()
        return self._sock

    def _close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._buf = bytearray()

    def _encode(self, method, path, body=b"", headers=None):
        head = ["%s %s HTTP/1.1\r\nHost: %s:%d\r\n" % (method, path, self._host, self._port)]
        if method != "GET" or body:
            head.append("Content-Length: %d\r\n" % len(body))
        for name, value in (headers or {}).items():
            head.append("%s: %s\r\n" % (name, value))
        head.append("\r\n")
        return "".join(head).encode("latin-1") + body

    def _request(self, method, path, body=None, headers=None):
        """Sends one request and reads the whole answer.

        A stale keep-alive connection fails on first use; the request is then sent
        once more on a fresh connection.
        """
        return self._send(self._encode(method, path, body or b"", headers))

    def _send(self, data):
        """Writes `data` and reads the first answer, once more on a fresh connection when a
        stale keep-alive connection fails on first use."""
        for attempt in (0, 1):
            sock = self._connection()
            try:
                sock.sendall(data)
                return self._read_response()
            except (http.client.HTTPException, ConnectionError, BrokenPipeError):
                self._close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def _fill(self):
        chunk = self._sock.recv(65536)
        if not chunk:
            raise http.client.RemoteDisconnected("Runtime API closed the connection")
        self._buf += chunk

    def _read_response(self):
        buf = self._buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buf) > 1 << 20:
                raise http.client.HTTPException("response head too large")
            self._fill()
            buf = self._buf
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        del buf[: end + 4]
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise http.client.BadStatusLine(lines[0])
        status = int(parts[1])
        headers = _Headers()
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        elif "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            # No length: the body runs to the end of the connection.
            while True:
                chunk = self._sock.recv(65536)
                if not chunk:
                    break
                self._buf += chunk
            body = bytes(self._buf)
            self._buf = bytearray()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self._close()
        return _Response(status, headers), body

    def _read_exact(self, n):
        while len(self._buf) < n:
            self._fill()
        body = bytes(self._buf[:n])
        del self._buf[:n]
        return body

    def _read_line(self):
        while True:
            i = self._buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self._buf[:i])
                del self._buf[: i + 2]
                return line
            self._fill()

    def _read_chunked(self):
        body = bytearray()
        while True:
            size = int(self._read_line().split(b";")[0].strip(), 16)
            if size == 0:
                break
            body += self._read_exact(size)
            self._read_line()
        while self._read_line():
            pass  # trailers
        return bytes(body)

    def next_invocation(self):
        resp, body = self._request("GET", NEXT_PATH)
        return self._next_answer(resp, body)

    @staticmethod
    def _next_answer(resp, body):
        if resp.status != 200:
            raise RuntimeApiError(
                "GET /runtime/invocation/next answered %d: %r" % (resp.status, body[:512])
            )
        return resp.headers, body

    def finish_and_next(self, outcome):
        """Posts an invocation's outcome and asks for the next invocation in the same write.

        The two requests are pipelined on the connection: the platform answers the post
        first, then the long-polling /next. One send and one wake-up of the platform per
        invocation instead of two round trips.
        """
        path, body, headers = outcome
        resp, answer = self._send(self._encode("POST", path, body, headers) + self._encode("GET", NEXT_PATH))
        self._check_post(path, resp, answer)
        if self._sock is None:
            # The post's answer closed the connection: /next goes on a new one.
            return self.next_invocation()
        try:
            resp, answer = self._read_response()
        except (http.client.HTTPException, ConnectionError, BrokenPipeError):
            self._close()
            return self.next_invocation()
        return self._next_answer(resp, answer)

    @staticmethod
    def response_outcome(request_id, body, content_type):
        """What finish_and_next posts for a result."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        return (
            "/%s/runtime/invocation/%s/response" % (API_VERSION, request_id),
            body,
            {"Content-Type": content_type},
        )

    @staticmethod
    def error_outcome(request_id, error_body, error_type):
        """What finish_and_next posts for an error."""
        if isinstance(error_body, str):
            error_body = error_body.encode("utf-8")
        return (
            "/%s/runtime/invocation/%s/error" % (API_VERSION, request_id),
            error_body,
            {
                "Content-Type": "application/json",
                "Lambda-Runtime-Function-Error-Type": error_type,
            },
        )

    def post_init_error(self, error_body, error_type):
        self._post(
            "/%s/runtime/init/error" % API_VERSION,
            error_body,
            {
                "Content-Type": "application/json",
                "Lambda-Runtime-Function-Error-Type": error_type,
            },
        )

    def _post(self, path, body, headers):
        if isinstance(body, str):
            body = body.encode("utf-8")
        resp, data = self._request("POST", path, body=body, headers=headers)
        self._check_post(path, resp, data)

    @staticmethod
    def _check_post(path, resp, data):
        if resp.status >= 300:
            # The platform refused what we sent (e.g. payload too large); it has
            # already recorded the outcome, so say why and carry on.
            sys.stderr.write(
                "updraft runtime: POST %s answered %d: %s\n"
                % (path, resp.status, data[:512].decode("utf-8", "replace"))
            )


# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------


def _ensure_ascii():
    """Lambda's python3.12 and later runtimes emit non-ASCII characters as they are."""
    env = os.environ.get("AWS_EXECUTION_ENV", "")
    prefix = "AWS_Lambda_python3."
    if env.startswith(prefix):
        try:
            return int(env[len(prefix) :]) < 12
        except ValueError:
            return True
    return True


class _Encoder(json.JSONEncoder):
    """Encodes Decimal (as boto3 returns for DynamoDB numbers) as a JSON number."""

    def default(self, o):
        if isinstance(o, decimal.Decimal):
            if o.is_nan():
                return math.nan
            if o == o.to_integral_value():
                return int(o)
            return float(o)
        return super().default(o)


_ENCODER = _Encoder(ensure_ascii=_ensure_ascii())
_PLAIN_ENCODER = json.JSONEncoder()


def to_json(value):
    return _PLAIN_ENCODER.encode(value)


def marshal_response(result):
    if isinstance(result, (bytes, bytearray)):
        return bytes(result), "application/unknown"
    try:
        return _ENCODER.encode(result), "application/json"
    except Exception as e:  # any failure of the user's object is a marshal error
        raise RuntimeFault(MARSHAL_ERROR, "Unable to marshal response: %s" % e)


def unmarshal_event(body):
    if not body.strip():
        # Lambda hands an empty invoke payload to the function as an empty object.
        return {}
    try:
        return json.loads(body)
    except Exception as e:
        raise RuntimeFault(UNMARSHAL_ERROR, "Unable to unmarshal input: %s" % e)


# ---------------------------------------------------------------------------
# Context object
# ---------------------------------------------------------------------------


class CognitoIdentity:
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __init__(self, identity_id=None, pool_id=None):
        self.cognito_identity_id = identity_id
        self.cognito_identity_pool_id = pool_id

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.cognito_identity_id,
            self.cognito_identity_pool_id,
        )


class Client:
    __slots__ = [
        "installation_id",
        "app_title",
        "app_version_name",
        "app_version_code",
        "app_package_name",
    ]

    def __init__(self, fields):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    def __repr__(self):
        return "Client([%s])" % ",".join("%s=%s" % (n, getattr(self, n)) for n in self.__slots__)


class ClientContext:
    __slots__ = ["custom", "env", "client"]

    def __init__(self, fields):
        self.custom = fields.get("custom")
        self.env = fields.get("env")
        client = fields.get("client")
        self.client = Client(client) if isinstance(client, dict) else None

    def __repr__(self):
        return "ClientContext([custom=%s,env=%s,client=%s])" % (self.custom, self.env, self.client)


class LambdaContext:
    """The `context` argument of a handler, with the attributes Lambda documents."""

    def __init__(self, request_id, deadline_ms, invoked_function_arn, client_context, identity):
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        # A string, as Lambda's own runtime gives it (it comes from the environment).
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.client_context = ClientContext(client_context) if isinstance(client_context, dict) else None
        identity = identity if isinstance(identity, dict) else {}
        self.identity = CognitoIdentity(
            identity.get("cognitoIdentityId"), identity.get("cognitoIdentityPoolId")
        )
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        remaining = self._deadline_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,"
            "function_name=%s,memory_limit_in_mb=%s,function_version=%s,"
            "invoked_function_arn=%s,client_context=%s,identity=%s])"
            % (
                self.aws_request_id,
                self.log_group_name,
                self.log_stream_name,
                self.function_name,
                self.memory_limit_in_mb,
                self.function_version,
                self.invoked_function_arn,
                self.client_context,
                self.identity,
            )
        )


def _parse_json_header(value, name):
    if not value:
        return None
    try:
        return json.loads(value)
    except Exception as e:
        raise RuntimeFault(CONTEXT_UNMARSHAL_ERROR, "Unable to parse %s JSON: %s" % (name, e))


def _parse_deadline(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# ---------------------------------------------------------------------------
# Errors and logging
# ---------------------------------------------------------------------------


def make_error(message, error_type, stack_trace, request_id):
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id or "",
        "stackTrace": stack_trace or [],
    }


def user_frames(tb):
    """The traceback without the leading frames of this file, formatted like Lambda's.

    Each element is `  File "<path>", line N, in <name>\\n    <source>\\n`.
    """
    frames = traceback.extract_tb(tb)
    for i, frame in enumerate(frames):
        if os.path.abspath(frame.filename) != THIS_FILE:
            frames = frames[i:]
            break
    else:
        frames = []
    return traceback.format_list(frames)


def error_from_exception(exc, request_id):
    if isinstance(exc, RuntimeFault):
        return make_error(exc.message, exc.error_type, exc.stack_trace, request_id)
    return make_error(str(exc), type(exc).__name__, user_frames(exc.__traceback__), request_id)


def log_error(error):
    """Writes `[ERROR] Type: message` and the traceback, as Lambda logs an unhandled error (with
    `LogFormat: JSON`, one JSON record at level ERROR)."""
    if json_logs():
        record = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "level": "ERROR",
            "message": error["errorMessage"],
            "logger": "root",
            "requestId": error["requestId"] or _current_request_id,
            "errorType": error["errorType"],
            "errorMessage": error["errorMessage"],
            "stackTrace": error["stackTrace"],
        }
        sys.stdout.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    line = "[ERROR]"
    if error["errorType"]:
        line += " " + error["errorType"]
    if error["errorMessage"]:
        if error["errorType"]:
            line += ":"
        line += " " + error["errorMessage"]
    lines = [line, "Traceback (most recent call last):"]
    for element in error["stackTrace"]:
        lines.extend(element.splitlines() or [""])
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _current_request_id
        return True


class _LambdaLogHandler(logging.Handler):
    """Writes each record as one `[LEVEL]\\t<UTC time>\\t<request id>\\t<message>` line."""

    def emit(self, record):
        try:
            sys.stdout.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


# Attributes every LogRecord has; anything else came from `extra=` and joins a JSON record.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "aws_request_id"}


class _JsonFormatter(logging.Formatter):
    """One JSON object per record, as Lambda's Python runtime writes with `LogFormat: JSON`:
    `timestamp`, `level`, `message`, `logger`, `requestId`, the record's `extra` fields, and for
    an exception `errorType`, `errorMessage`, `stackTrace` and `location`."""

    def format(self, record):
        out = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname,
            "message": record.getMessage() if not isinstance(record.msg, dict) or record.args else record.msg,
            "logger": record.name,
            "requestId": getattr(record, "aws_request_id", None) or _current_request_id,
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and key not in out:
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            etype, evalue, tb = record.exc_info
            out["errorType"] = etype.__name__
            out["errorMessage"] = str(evalue)
            out["stackTrace"] = traceback.format_tb(tb)
            out["location"] = "%s:%s:%s" % (record.pathname, record.funcName, record.lineno)
        return json.dumps(out, default=str, ensure_ascii=False)


def json_logs():
    return os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"


def setup_logging():
    if json_logs():
        formatter = _JsonFormatter()
    else:
        formatter = logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
            "%Y-%m-%dT%H:%M:%S",
        )
        formatter.converter = time.gmtime
    handler = _LambdaLogHandler()
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    if level in ("TRACE", "DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "FATAL"):
        root.setLevel({"WARN": "WARNING", "FATAL": "CRITICAL", "TRACE": "DEBUG"}.get(level, level))


def setup_streams():
    """Flushes stdout/stderr at every line so log lines reach the platform at once."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass


def flush_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


# ---------------------------------------------------------------------------
# Handler loading
# ---------------------------------------------------------------------------


def setup_sys_path(task_root, runtime_dir):
    """Function code first, then layers (/opt), then the interpreter's own paths, as on Lambda."""
    here = os.path.dirname(THIS_FILE)
    # Python put this file's directory first; user code must win over it.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") not in (here, runtime_dir)]
    layer_site = "/opt/python/lib/python%d.%d/site-packages" % sys.version_info[:2]
    for i, path in enumerate((task_root, layer_site, "/opt/python")):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(i, path)
    sys.path.append(runtime_dir)


def load_handler(handler):
    try:
        module_name, function_name = handler.rsplit(".", 1)
    except ValueError as e:
        raise RuntimeFault(MALFORMED_HANDLER_NAME, "Bad handler '%s': %s" % (handler, e))
    if not module_name or not function_name:
        raise RuntimeFault(MALFORMED_HANDLER_NAME, "Bad handler '%s'" % handler)

    if module_name.split(".")[0] in sys.builtin_module_names:
        raise RuntimeFault(
            BUILT_IN_MODULE_CONFLICT,
            "Cannot use built-in module %s as a handler module" % module_name,
        )
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as e:
        raise RuntimeFault(
            IMPORT_MODULE_ERROR, "Unable to import module '%s': %s" % (module_name, e)
        )
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise RuntimeFault(
            USER_CODE_SYNTAX_ERROR,
            "Syntax error in module '%s': %s" % (module_name, e),
            trace,
        )

    try:
        return getattr(module, function_name)
    except AttributeError:
        raise RuntimeFault(
            HANDLER_NOT_FOUND,
            "Handler '%s' missing on module '%s'" % (function_name, module_name),
        )


# ---------------------------------------------------------------------------
# Invocation loop
# ---------------------------------------------------------------------------


# os.environ's own mapping. Assigning to os.environ calls setenv(3), and glibc keeps every
# distinct value it was ever given (getenv's callers may still hold the old one): a new trace id
# per invocation would leak about 140 bytes each time, never freed, until the environment runs
# out of memory. The trace id is therefore written to the mapping only: os.environ and
# os.getenv see it, as handlers and the X-Ray SDK read it; the C environment (getenv(3) in
# extensions, children started without an explicit env) does not.
_ENVIRON_DATA = getattr(os.environ, "_data", None)
_TRACE_VAR = "_X_AMZN_TRACE_ID"
_TRACE_KEY = os.environ.encodekey(_TRACE_VAR) if _ENVIRON_DATA is not None else None


def set_trace_id(trace_id):
    """Makes os.environ["_X_AMZN_TRACE_ID"] the invocation's trace id (removed when it has none)."""
    if _ENVIRON_DATA is None:
        # An os.environ without the mapping this relies on: the plain, leaking way.
        if trace_id:
            os.environ[_TRACE_VAR] = trace_id
        else:
            os.environ.pop(_TRACE_VAR, None)
        return
    if trace_id:
        _ENVIRON_DATA[_TRACE_KEY] = os.environ.encodevalue(trace_id)
    else:
        _ENVIRON_DATA.pop(_TRACE_KEY, None)


def handle_invocation(handler, headers, body):
    """Runs one invocation; returns the outcome to post (RuntimeApiClient.finish_and_next)."""
    global _current_request_id
    request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
    _current_request_id = request_id

    set_trace_id(headers.get("Lambda-Runtime-Trace-Id"))

    try:
        context = LambdaContext(
            request_id,
            _parse_deadline(headers.get("Lambda-Runtime-Deadline-Ms")),
            headers.get("Lambda-Runtime-Invoked-Function-Arn"),
            _parse_json_header(headers.get("Lambda-Runtime-Client-Context"), "Client Context"),
            _parse_json_header(headers.get("Lambda-Runtime-Cognito-Identity"), "Cognito Identity"),
        )
        event = unmarshal_event(body)
        result = handler(event, context)
        payload, content_type = marshal_response(result)
    except Exception as e:
        error = error_from_exception(e, request_id)
        log_error(error)
        flush_streams()
        return RuntimeApiClient.error_outcome(request_id, to_json(error), error["errorType"])

    # Everything the invocation printed must reach the platform before it closes the
    # invocation's log with END.
    flush_streams()
    return RuntimeApiClient.response_outcome(request_id, payload, content_type)


def await_assignment():
    """In a pre-warmed environment, waits for the function this environment is given.

    The platform starts the interpreter and this client before any function is known, with
    an empty /var/task and a generic environment. The assignment (JSON: argv, env as
    [name, value] pairs, cwd) arrives on the descriptor named by _UPDRAFT_ASSIGNMENT_FD once
    the function's code is mounted; from then on this process is that function's runtime.
    """
    fd = os.environ.get("_UPDRAFT_ASSIGNMENT_FD")
    if fd is None:
        return
    fd = int(fd)
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    assignment = json.loads(b"".join(chunks))
    # The platform started this process with a subset of the function's variables; what else
    # is set now, Python added itself at start-up (LC_CTYPE by locale coercion), as it would
    # have in an environment started for the function.
    del os.environ["_UPDRAFT_ASSIGNMENT_FD"]
    os.environ.update(dict(assignment["env"]))
    # The code was mounted over the directory this process started in.
    os.chdir(assignment["cwd"])
    importlib.invalidate_caches()


def runtime_api_socket_path():
    """The Runtime API's Unix socket named by _UPDRAFT_RUNTIME_API_SOCKET, or None. `@name`
    is the abstract socket `name` padded with NULs to the whole of sun_path (108 bytes), as
    Node.js addresses abstract sockets. The same API as AWS_LAMBDA_RUNTIME_API without
    TCP/IP's work on every message."""
    named = os.environ.get("_UPDRAFT_RUNTIME_API_SOCKET")
    if not named:
        return None
    if named.startswith("@"):
        return ("\0" + named[1:]).ljust(108, "\0")
    return named


def warm_up():
    """In a pre-warmed environment, runs once what the first connection to the Runtime API
    would otherwise load and initialise after the function arrived (about half of what is
    left of a cold start here). Port 9 and the abstract socket below have no listener in
    the environment's network."""
    if os.environ.get("_UPDRAFT_ASSIGNMENT_FD") is None:
        return
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=1).close()
    except OSError:
        pass
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect("\0updraft-warm-up")
    except OSError:
        pass


def main():
    warm_up()
    await_assignment()
    setup_streams()
    setup_logging()

    api = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not api:
        sys.stderr.write("updraft runtime: AWS_LAMBDA_RUNTIME_API is not set\n")
        sys.exit(1)
    client = RuntimeApiClient(api, runtime_api_socket_path())

    task_root = os.environ.get("LAMBDA_TASK_ROOT") or "/var/task"
    runtime_dir = os.path.abspath(os.environ.get("LAMBDA_RUNTIME_DIR") or os.path.dirname(THIS_FILE))
    setup_sys_path(task_root, runtime_dir)

    try:
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except Exception as e:
        error = error_from_exception(e, "")
        log_error(error)
        flush_streams()
        client.post_init_error(to_json(error), error["errorType"])
        sys.exit(1)

    outcome = None
    while True:
        try:
            if outcome is None:
                headers, body = client.next_invocation()
            else:
                headers, body = client.finish_and_next(outcome)
        except (OSError, http.client.HTTPException, RuntimeApiError) as e:
            # Without the Runtime API this environment has nothing left to do.
            sys.stderr.write("updraft runtime: cannot fetch the next invocation: %s\n" % e)
            sys.exit(1)
        outcome = handle_invocation(handler, headers, body)


if __name__ == "__main__":
    main()
