"""Bounded reads and durable storage: paginated function logs (API and `updraft logs`), streamed code
downloads, and a code store that survives being killed at every step of storing a package.

The crash-point test needs a debug build of `updraft` (the one the suite runs by default): debug builds read
`UPDRAFT_FAILPOINT=<step>` and end the process at that step of storing code, exiting with status 86 without
running any clean-up, which leaves the disk as a `kill -9` would.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from conftest import BIN, ROLE, UpdraftServer, invoke_ok, make_zip, sha256_b64, unique_name

FAILPOINT_EXIT = 86
# The steps of storing a package, in the order the code store reaches them.
FAILPOINTS = (
    "code-store:after-extract",
    "code-store:after-zip-rename",
    "code-store:after-tree-rename",
    "code-store:after-marker",
)


# ------------------------------------------------------------------------------------------------ logs

CHATTY = """
import sys

def handler(event, context):
    n, size, tag = event["lines"], event["size"], event["tag"]
    for i in range(n):
        print(f"{tag} line {i:05d} " + "x" * size)
    sys.stdout.flush()
    return {"printed": n}
"""


def logs_page(server: UpdraftServer, name: str, **params) -> tuple[int, dict]:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    path = f"/updraft/v1/functions/{name}/logs" + (f"?{query}" if query else "")
    resp = server.signed_request("GET", path)
    return resp.status, (resp.json() if resp.body else {})


def all_pages(server: UpdraftServer, name: str, limit: int | None = None) -> tuple[list[dict], int]:
    events: list[dict] = []
    token = None
    pages = 0
    while True:
        status, body = logs_page(server, name, since_ms=0, limit=limit, nextToken=token)
        assert status == 200, body
        pages += 1
        if limit is not None:
            assert len(body["events"]) <= limit
        events.extend(body["events"])
        token = body.get("nextToken")
        if token is None:
            return events, pages
        assert body["events"], "a page that promises more must not be empty"
        assert pages < 10_000, "pagination does not end"


def run_cli(server: UpdraftServer, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
    env["UPDRAFT_ACCESS_KEY_ID"] = server.access_key
    env["UPDRAFT_SECRET_ACCESS_KEY"] = server.secret_key
    proc = subprocess.run([str(BIN), *args, "--endpoint", server.endpoint], capture_output=True, text=True,
                          env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\nstdout:{proc.stdout[-2000:]}\nstderr:{proc.stderr}"
    return proc


def test_logs_are_paginated(server, lam, deploy):
    name = deploy({"app.py": CHATTY}, Timeout=60)
    # Three invocations of 2,500 lines of ~300 bytes: about 2.3 MB of log, more than two 1 MB pages.
    invocations = 3
    lines = 2_500
    for k in range(invocations):
        assert invoke_ok(lam, name, {"lines": lines, "size": 280, "tag": f"inv{k}"}) == {"printed": lines}
    expected = [f"inv{k} line {i:05d} " + "x" * 280 for k in range(invocations) for i in range(lines)]

    # Default page size: bounded by bytes, so the log comes back in several pages.
    status, first = logs_page(server, name, since_ms=0)
    assert status == 200
    assert "nextToken" in first, "a 2 MB log must not come back in one page"
    assert sum(len(e["message"]) for e in first["events"]) <= 1 << 20

    for limit in (None, 997):
        events, pages = all_pages(server, name, limit)
        messages = [e["message"] for e in events]
        printed = [m for m in messages if m.startswith("inv")]
        # Whole, in order, nothing twice and nothing missing.
        assert printed == expected, (limit, len(printed), len(expected))
        assert sum(m.startswith("START RequestId:") for m in messages) == invocations
        assert sum(m.startswith("REPORT RequestId:") for m in messages) == invocations
        stamps = [e["timestamp_ms"] for e in events]
        assert stamps == sorted(stamps)
        keys = [(e["timestamp_ms"], e["stream"], e["message"]) for e in events]
        assert len(set(keys)) == len(keys)
        if limit is None:
            assert pages >= 3, pages
        else:
            assert pages == -(-len(events) // limit), (pages, len(events))

    # The CLI follows the pages and prints every message, one per line, as before.
    out = run_cli(server, "logs", name, "--since", "1h").stdout.splitlines()
    assert [m for m in out if m.startswith("inv")] == expected
    assert sum(m.startswith("REPORT RequestId:") for m in out) == invocations

    # Pagination parameters are checked.
    status, body = logs_page(server, name, limit=0)
    assert status == 400 and "limit" in json.dumps(body), body
    status, body = logs_page(server, name, limit=10_001)
    assert status == 400, body
    status, body = logs_page(server, name, nextToken="not-a-token")
    assert status == 400 and "nextToken" in json.dumps(body), body


def test_code_downloads_stream_the_whole_zip(server, lam):
    # About 3 MB of incompressible content: many chunks of the streamed body.
    package = make_zip({"app.py": "def handler(e, c):\n    return e\n", "blob.bin": os.urandom(3 << 20)})
    name = unique_name("dl")
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": package})
    try:
        location = lam.get_function(FunctionName=name)["Code"]["Location"]
        with urllib.request.urlopen(location, timeout=60) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/zip"
            assert int(resp.headers["Content-Length"]) == len(package)
            data = resp.read()
        assert data == package
    finally:
        lam.delete_function(FunctionName=name)


# ---------------------------------------------------------------------------------------- crash points

class FailpointServer(UpdraftServer):
    """A server whose next start runs with `UPDRAFT_FAILPOINT` set to `failpoint` (when not None)."""

    failpoint: str | None = None

    def _env(self) -> dict[str, str]:
        env = super()._env()
        if self.failpoint is not None:
            env["UPDRAFT_FAILPOINT"] = self.failpoint
        return env


def code_dir(srv: UpdraftServer) -> Path:
    return srv.data_dir / "code"


def tree_files(tree: Path) -> dict[str, bytes]:
    return {p.relative_to(tree).as_posix(): p.read_bytes() for p in sorted(tree.rglob("*")) if p.is_file()}


def zip_files(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}


def assert_store_consistent(srv: UpdraftServer) -> None:
    """Every tree is complete (marked, with its zip, holding exactly the zip's files); nothing is left in tmp."""
    code = code_dir(srv)
    assert list((code / "tmp").iterdir()) == []
    trees = sorted(p.name for p in (code / "trees").iterdir())
    markers = sorted(p.name for p in (code / "complete").iterdir())
    assert trees == markers, (trees, markers)
    for sha in trees:
        zip_path = code / "zips" / f"{sha}.zip"
        assert zip_path.is_file(), f"tree {sha} without its zip"
        assert tree_files(code / "trees" / sha) == zip_files(zip_path.read_bytes())
    for z in (code / "zips").iterdir():
        assert (code / "trees" / z.name.removesuffix(".zip")).is_dir(), f"zip {z.name} without its tree"


def package(marker: str) -> bytes:
    return make_zip({
        "app.py": f"from lib.helper import VALUE\n\ndef handler(e, c):\n    return {{'marker': {marker!r}, 'v': VALUE}}\n",
        "lib/__init__.py": "",
        "lib/helper.py": "VALUE = 42\n",
    })


def create(client, name: str, zip_bytes: bytes) -> dict:
    return client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                                  Code={"ZipFile": zip_bytes})


def wait_exit(srv: UpdraftServer, timeout: float = 30) -> int:
    assert srv.proc is not None
    try:
        return srv.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"server still running after failpoint {srv.failpoint}\n{srv.logs()}") from None


@pytest.mark.parametrize("step", FAILPOINTS)
def test_code_store_crash_points(tmp_path, step):
    srv = FailpointServer(tmp_path / "srv")
    try:
        srv.failpoint = step
        srv.start()
        lam = srv.client()
        name = unique_name("crash")
        zip_bytes = package(step)
        sha_hex = hashlib.sha256(zip_bytes).hexdigest()
        with pytest.raises((ConnectionClosedError, EndpointConnectionError, ReadTimeoutError)):
            create(lam, name, zip_bytes)
        code = wait_exit(srv)
        assert code == FAILPOINT_EXIT, f"exit {code}: failpoints need a debug build\n{srv.logs()}"
        assert f"failpoint {step} reached" in srv.stderr()

        # What the crash left, step by step (the order the code store promises).
        c = code_dir(srv)
        zip_there = (c / "zips" / f"{sha_hex}.zip").is_file()
        tree = c / "trees" / sha_hex
        marker = c / "complete" / sha_hex
        assert zip_there == (step != "code-store:after-extract")
        assert tree.is_dir() == (step in ("code-store:after-tree-rename", "code-store:after-marker"))
        assert marker.is_file() == (step == "code-store:after-marker")
        if step == "code-store:after-extract":
            assert list((c / "tmp").iterdir()), "the extracted tree should be left in tmp"
        if step == "code-store:after-tree-rename":
            # A tree without its marker is never trusted: make it visibly half-written.
            (tree / "lib" / "helper.py").unlink()
            (tree / "stray.txt").write_text("half-written")

        srv.failpoint = None
        srv.proc = None
        srv.start()
        lam = srv.client()
        # The crash came before the function was recorded: it does not exist, and the store is whole.
        with pytest.raises(ClientError) as e:
            lam.get_function(FunctionName=name)
        assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
        assert_store_consistent(srv)
        if step != "code-store:after-extract":
            # The zip had been committed: the tree was (re)built from it at start-up.
            assert tree_files(tree) == zip_files(zip_bytes)
            assert not (tree / "stray.txt").exists()

        # The same package stores and runs normally now.
        resp = create(lam, name, zip_bytes)
        assert resp["CodeSha256"] == sha256_b64(zip_bytes)
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        assert invoke_ok(lam, name) == {"marker": step, "v": 42}
        assert_store_consistent(srv)
    finally:
        srv.stop()


def test_kill_after_create_and_unmarked_tree_rebuilt(tmp_path):
    """A function whose CreateFunction answered survives `kill -9`; a tree that lost its marker is rebuilt."""
    srv = FailpointServer(tmp_path / "srv")
    try:
        srv.start()
        lam = srv.client()
        name = unique_name("kill")
        zip_bytes = package("kill")
        create(lam, name, zip_bytes)
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(timeout=30)
        srv.proc = None

        sha_hex = hashlib.sha256(zip_bytes).hexdigest()
        tree = code_dir(srv) / "trees" / sha_hex
        # As if the tree had been torn: no marker, a file missing, a file that does not belong.
        (code_dir(srv) / "complete" / sha_hex).unlink()
        (tree / "app.py").unlink()
        (tree / "stray.txt").write_text("x")
        srv.start()
        assert "rebuilt a code tree from its zip" in srv.stderr() + srv.stdout()
        lam = srv.client()
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        assert invoke_ok(lam, name) == {"marker": "kill", "v": 42}
        assert_store_consistent(srv)
        assert not (tree / "stray.txt").exists()
    finally:
        srv.stop()
