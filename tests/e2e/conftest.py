"""End-to-end suite for Updraft's Lambda control plane.

The suite drives the real `updraft` binary over HTTP with boto3, the aws CLI and Updraft's own CLI, and
checks the answers against the behaviour of AWS Lambda (the botocore service model and the AWS docs).

Running it
----------
    cargo build                                   # builds target/debug/updraft
    python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt
    .venv/bin/python -m pytest tests/e2e -q

Environment:
    UPDRAFT_BIN   path of the binary under test (default: <repo>/target/debug/updraft)

How servers are run
-------------------
Each server is `updraft serve --listen 127.0.0.1:<free port> --data-dir <tmp dir>`, started with the root
credentials in `UPDRAFT_ACCESS_KEY_ID` / `UPDRAFT_SECRET_ACCESS_KEY` (or without them, to exercise credential
generation). A server is ready when `GET /health` answers 200 (30 s at most). It is stopped with SIGTERM and must
exit within 10 s. Its stdout and stderr go to files; the tail of both is attached to the report of every failed
test.

- `server` (session): the shared server most tests use. Tests never depend on each other: every test creates
  functions with unique names (`unique_name()`).
- `server_factory` (function): starts private servers (credential generation, persistence across restarts);
  `UpdraftServer.restart()` stops a server and starts it again on the same port and data directory.

Error expectations
------------------
Errors are checked three ways: boto3's modeled exception class (`client.exceptions.X`), the HTTP status code and
the `x-amzn-ErrorType` header, always the one exact code Lambda answers: `ValidationException` ("1 validation
error detected") for a malformed value (pattern, enum, length), `InvalidParameterValueException` for numeric
ranges such as MemorySize and Timeout and for service limits. (`PARAM_ERRORS`, accepting either, cannot tell
the two apart; no test here uses it.) Hostile packages (path traversal, absolute
paths, symlinks leaving the package, zip bombs) are rejected by Updraft with `InvalidParameterValueException`.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path
from typing import Iterator

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("UPDRAFT_BIN", REPO / "target" / "debug" / "updraft"))
REGION = "us-east-1"
ACCESS_KEY_ID = "AKIAUPDRAFTTEST00001"
ROLE = "arn:aws:iam::123456789012:role/lambda-role"
RUNTIME = "python3.12"
HANDLER = "app.handler"
PARAM_ERRORS = {"InvalidParameterValueException", "ValidationException"}
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10

# Every server started in this session with the test that started it, so a failed test's report can carry
# the logs of the shared server and of its own private servers.
_SERVERS: list["UpdraftServer"] = []
_CURRENT_TEST: list[str] = [""]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_name(prefix: str = "fn") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_zip(files: dict[str, bytes | str] | None = None) -> bytes:
    """A deployment package built in memory (default: app.py whose handler echoes its event)."""
    if files is None:
        files = {"app.py": "def handler(e, c):\n    return e\n"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class UpdraftServer:
    """One `updraft serve` process on a loopback port with its own data directory."""

    def __init__(self, root: Path, with_credentials: bool = True, extra_args: tuple[str, ...] = ()):
        self.root = root
        self.extra_args = tuple(extra_args)
        self.data_dir = root / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = root / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.with_credentials = with_credentials
        self.access_key = ACCESS_KEY_ID if with_credentials else None
        self.secret_key = uuid.uuid4().hex + uuid.uuid4().hex[:8] if with_credentials else None
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._stdout_path: Path | None = None
        self._stderr_path: Path | None = None
        self.started_by = _CURRENT_TEST[0]
        self.shared = False
        _SERVERS.append(self)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
        env.setdefault("RUST_LOG", "info")
        if self.with_credentials:
            env["UPDRAFT_ACCESS_KEY_ID"] = self.access_key
            env["UPDRAFT_SECRET_ACCESS_KEY"] = self.secret_key
        return env

    def start(self) -> None:
        if not BIN.exists():
            pytest.fail(f"updraft binary not found at {BIN} (build it with `cargo build` or set UPDRAFT_BIN)")
        self.starts += 1
        self._stdout_path = self.log_dir / f"stdout.{self.starts}.log"
        self._stderr_path = self.log_dir / f"stderr.{self.starts}.log"
        with open(self._stdout_path, "wb") as out, open(self._stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [str(BIN), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir),
                 *self.extra_args],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=self._env(),
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"updraft serve exited with {self.proc.returncode} before it was healthy\n{self.logs()}"
                )
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
                    last_error = f"status {resp.status}"
            except urllib.error.HTTPError as e:
                last_error = f"status {e.code}"
            except OSError as e:
                last_error = repr(e)
            time.sleep(0.1)
        self.proc.kill()
        self.proc.wait()
        pytest.fail(f"updraft serve not healthy after {START_TIMEOUT_S}s ({last_error})\n{self.logs()}")

    def stop(self) -> int:
        """SIGTERM, then wait: graceful shutdown must finish within STOP_TIMEOUT_S. Returns the exit code."""
        if self.proc is None:
            return 0
        proc, self.proc = self.proc, None
        if proc.poll() is not None:
            return proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"updraft serve did not exit within {STOP_TIMEOUT_S}s of SIGTERM\n{self.logs()}"
            ) from None

    def restart(self) -> int:
        """Stops the server and starts it again on the same port and data directory; returns the exit code."""
        code = self.stop()
        self.start()
        return code

    def stdout(self) -> str:
        return self._read_all("stdout")

    def stderr(self) -> str:
        return self._read_all("stderr")

    def output_of_start(self, n: int) -> str:
        """stdout and stderr of the n-th start (1-based) of this server."""
        return "".join(
            (self.log_dir / f"{which}.{n}.log").read_text(errors="replace") for which in ("stdout", "stderr")
        )

    def _read_all(self, which: str) -> str:
        return "".join(
            p.read_text(errors="replace") for p in sorted(self.log_dir.glob(f"{which}.*.log"))
        )

    def logs(self, tail: int = 6000) -> str:
        parts = []
        for p in sorted(self.log_dir.glob("*.log")):
            text = p.read_text(errors="replace")
            parts.append(f"--- {p.name} ({self.endpoint}) ---\n{text[-tail:]}")
        return "\n".join(parts)

    def credentials_file(self) -> Path:
        return self.data_dir / "credentials"

    def keys(self) -> tuple[str, str]:
        """The root keys: the ones given in the environment, or the generated ones from the credentials file."""
        if self.with_credentials:
            return self.access_key, self.secret_key
        cp = configparser.ConfigParser()
        cp.read(self.credentials_file())
        return cp["default"]["aws_access_key_id"], cp["default"]["aws_secret_access_key"]

    def client(self, service: str = "lambda", access_key: str | None = None, secret_key: str | None = None,
               validate: bool = True, retries: int = 1):
        ak, sk = self.keys()
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=access_key or ak,
            aws_secret_access_key=secret_key or sk,
            config=Config(
                parameter_validation=validate,
                retries={"max_attempts": retries, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )

    def credentials(self) -> Credentials:
        ak, sk = self.keys()
        return Credentials(ak, sk)

    def signed_request(self, method: str, path: str, body: bytes | None = None,
                       headers: dict[str, str] | None = None, credentials: Credentials | None = None,
                       body_to_send: bytes | None = None) -> "RawResponse":
        """Sends a SigV4-signed request built by hand (for inputs boto3 refuses to send)."""
        headers = dict(headers or {})
        if body and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        req = AWSRequest(method=method, url=self.endpoint + path, data=body or b"", headers=headers)
        SigV4Auth(credentials or self.credentials(), "lambda", REGION).add_auth(req)
        prepared = req.prepare()
        data = prepared.body if body_to_send is None else body_to_send
        return send_raw(method, prepared.url, data, dict(prepared.headers.items()))


class RawResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def error_type(self) -> str:
        return self.headers.get("x-amzn-errortype", "").split(":")[0]

    def __repr__(self) -> str:
        return f"RawResponse({self.status}, {self.headers}, {self.body[:500]!r})"


def send_raw(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> RawResponse:
    req = urllib.request.Request(url, data=body if body else None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return RawResponse(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as e:
        return RawResponse(e.code, dict(e.headers.items()), e.read())


def assert_error(exc_info, code: str | set[str], status: int) -> ClientError:
    """Checks a ClientError's code, HTTP status and x-amzn-ErrorType header; returns the error."""
    err = exc_info.value if hasattr(exc_info, "value") else exc_info
    assert isinstance(err, ClientError), f"expected ClientError, got {err!r}"
    codes = {code} if isinstance(code, str) else set(code)
    actual = err.response["Error"]["Code"]
    assert actual in codes, f"error code {actual!r} not in {sorted(codes)}: {err.response}"
    meta = err.response["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == status, f"status {meta['HTTPStatusCode']} != {status}: {err.response}"
    header = meta["HTTPHeaders"].get("x-amzn-errortype", "")
    assert header.split(":")[0] == actual, f"x-amzn-ErrorType {header!r} != {actual!r}"
    assert err.response["Error"].get("Message"), f"error without a message: {err.response}"
    return err


def create_function(client, name: str | None = None, zip_bytes: bytes | None = None, wait: bool = True,
                    **kwargs) -> dict:
    """Creates a function (python3.12, app.handler) and waits until it is Active."""
    name = name or unique_name()
    params = {
        "FunctionName": name,
        "Runtime": RUNTIME,
        "Role": ROLE,
        "Handler": HANDLER,
        "Code": {"ZipFile": zip_bytes if zip_bytes is not None else make_zip()},
    }
    params.update(kwargs)
    resp = client.create_function(**params)
    if wait:
        client.get_waiter("function_active_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
    return resp


def account_of(arn: str) -> str:
    return arn.split(":")[4]


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[UpdraftServer]:
    srv = UpdraftServer(tmp_path_factory.mktemp("updraft-shared"))
    srv.shared = True
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def lam(server):
    """boto3 Lambda client of the shared server."""
    return server.client()


@pytest.fixture(scope="session")
def lam_raw(server):
    """boto3 Lambda client that sends what it is given (no client-side parameter validation)."""
    return server.client(validate=False)


@pytest.fixture
def server_factory(tmp_path) -> Iterator:
    started: list[UpdraftServer] = []

    def make(with_credentials: bool = True, extra_args: tuple[str, ...] = ()) -> UpdraftServer:
        srv = UpdraftServer(
            tmp_path / f"server{len(started)}", with_credentials=with_credentials, extra_args=extra_args
        )
        started.append(srv)
        srv.start()
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def aws_cli(server):
    """Runs the aws CLI of this interpreter against the shared server."""

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=server.access_key,
            AWS_SECRET_ACCESS_KEY=server.secret_key,
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
            AWS_MAX_ATTEMPTS="1",
            AWS_PAGER="",
        )
        cmd = [sys.executable, "-m", "awscli", "--endpoint-url", server.endpoint, "--region", REGION,
               "--output", "json", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
        if check:
            assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}"
        return proc

    return run


def pytest_runtest_setup(item):
    _CURRENT_TEST[0] = item.nodeid


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for srv in _SERVERS:
        if (srv.shared or srv.started_by == item.nodeid) and srv.log_dir.exists():
            report.sections.append((f"updraft server {srv.endpoint} logs", srv.logs()))


# ------------------------------------------------------------------ invocation (test_invoke, test_isolation)
#
# Functions that really run: their sources live in tests/functions/ (one package directory each), the
# packages that need building (awslambdaric, the Rust `lambda_runtime` function) are built once into
# tests/functions/.build/ and reused by later runs.

FUNCTIONS = REPO / "tests" / "functions"
FUNCTIONS_BUILD = FUNCTIONS / ".build"
LATEST = "$LATEST"
UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def package_zip(files: dict[str, bytes | str], executable: tuple[str, ...] = ("bootstrap",)) -> bytes:
    """A deployment package with Unix modes: entries named in `executable` are 0755, the rest 0644."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so external_attr carries the mode
            mode = 0o755 if name.rsplit("/", 1)[-1] in executable else 0o644
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, content)
    return buf.getvalue()


def dir_zip(directory: Path, executable: tuple[str, ...] = ("bootstrap",)) -> bytes:
    """The files below `directory` (caches excluded) as a deployment package."""
    files = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files[path.relative_to(directory).as_posix()] = path.read_bytes()
    return package_zip(files, executable)


class Invoked:
    """One Invoke answer, decoded."""

    def __init__(self, resp: dict):
        self.raw = resp
        self.status: int = resp["StatusCode"]
        self.function_error: str | None = resp.get("FunctionError")
        self.executed_version: str | None = resp.get("ExecutedVersion")
        self.headers: dict[str, str] = resp["ResponseMetadata"]["HTTPHeaders"]
        self.request_id: str | None = self.headers.get("x-amzn-requestid")
        self.body: bytes = resp["Payload"].read() if "Payload" in resp else b""
        tail = resp.get("LogResult")
        self.log: str | None = base64.b64decode(tail).decode("utf-8", "replace") if tail is not None else None
        self.log_bytes: int = len(base64.b64decode(tail)) if tail is not None else 0

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return (f"Invoked(status={self.status}, function_error={self.function_error!r}, "
                f"version={self.executed_version!r}, request_id={self.request_id!r}, body={self.body[:800]!r}, "
                f"log={(self.log or '')[-1500:]!r})")


_NO_EVENT = object()


def invoke(client, name: str, event=_NO_EVENT, *, raw: bytes | None = None, **kwargs) -> Invoked:
    """Invokes synchronously with a JSON event ({} by default, or raw bytes); returns the decoded answer."""
    payload = raw if raw is not None else json.dumps({} if event is _NO_EVENT else event).encode()
    return Invoked(client.invoke(FunctionName=name, Payload=payload, **kwargs))


def invoke_ok(client, name: str, event=_NO_EVENT, **kwargs):
    """Invokes and insists on success; returns the JSON result."""
    res = invoke(client, name, event, **kwargs)
    assert res.status == 200 and res.function_error is None, res
    return res.json()


@pytest.fixture(scope="session")
def deploy(server, lam):
    """Creates Active functions on the shared server; all of them are deleted when the session ends.

    deploy(package, handler="app.handler", runtime="python3.12", name=None, **create_function_kwargs) -> name
    where `package` is zip bytes, a directory of tests/functions, or a {path: content} dict.
    """
    created: list[str] = []

    def make(package, handler: str = HANDLER, runtime: str = RUNTIME, name: str | None = None, **kwargs) -> str:
        if isinstance(package, Path):
            code = dir_zip(package)
        elif isinstance(package, dict):
            code = package_zip(package)
        else:
            code = package
        name = name or unique_name("inv")
        create_function(lam, name, code, Runtime=runtime, Handler=handler, **kwargs)
        created.append(name)
        return name

    yield make
    for name in created:
        try:
            lam.delete_function(FunctionName=name)
        except ClientError:
            pass


@pytest.fixture(scope="session")
def awslambdaric_package() -> bytes:
    """A provided.al2023 package running AWS's own Python runtime client (awslambdaric from PyPI).

    pip installs it for the `python3` on PATH, the interpreter the server finds and shows in every
    environment, so the compiled parts match. Cached in tests/functions/.build/awslambdaric.
    """
    src = FUNCTIONS / "awslambdaric"
    target = FUNCTIONS_BUILD / "awslambdaric"
    stamp = target / ".complete"
    if not stamp.exists():
        import shutil
        python = shutil.which("python3") or sys.executable
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        proc = subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
             "--only-binary=:all:", "--target", str(target), "awslambdaric"],
            capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, f"pip install awslambdaric failed:\n{proc.stdout}\n{proc.stderr}"
        stamp.write_text("ok\n")
    files = {}
    for path in sorted(target.rglob("*")):
        if path.is_file() and path != stamp and "__pycache__" not in path.parts:
            files[path.relative_to(target).as_posix()] = path.read_bytes()
    for path in src.iterdir():
        files[path.name] = path.read_bytes()
    return package_zip(files)


@pytest.fixture(scope="session")
def rust_hello_package() -> bytes:
    """A provided.al2023 package whose bootstrap is built with AWS's Rust `lambda_runtime` crate."""
    proc = subprocess.run(
        ["bash", str(FUNCTIONS / "build-rust-hello.sh")], capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, f"build-rust-hello.sh failed:\n{proc.stdout}\n{proc.stderr}"
    bootstrap = Path(proc.stdout.strip().splitlines()[-1])
    return package_zip({"bootstrap": bootstrap.read_bytes()})
