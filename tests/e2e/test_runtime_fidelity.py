"""Runtime fidelity: a runtime id runs on an interpreter of exactly its version when the host has one
(found on PATH, installed with `updraft runtime install`, or named with `--runtime ID=PATH`), otherwise on
the nearest version with a note in `updraft deploy`, `updraft doctor`, the server log and the function's log
stream; `--strict-runtimes` refuses such a function instead."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import BIN, ROLE, UpdraftServer, assert_error, invoke, package_zip, unique_name

NODE_VERSION_JS = "export const handler = async () => ({ version: process.version, exe: process.execPath });\n"
PY_VERSION = (
    "import sys\n"
    "def handler(e, c):\n"
    "    return {'version': '%d.%d.%d' % sys.version_info[:3], 'exe': sys.executable}\n"
)
# A network failure of npm (no registry), as opposed to any other failure of the install, which must fail the
# test.
NETWORK_ERRORS = re.compile(r"ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNREFUSED|ECONNRESET|ENETUNREACH|network", re.I)


def cli(*args: str, server: UpdraftServer | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
    argv = [str(BIN), *args]
    if server is not None:
        env["UPDRAFT_ACCESS_KEY_ID"] = server.access_key
        env["UPDRAFT_SECRET_ACCESS_KEY"] = server.secret_key
        argv += ["--endpoint", server.endpoint]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}"
    return proc


def doctor(data_dir: Path, *extra: str) -> dict[str, dict]:
    proc = cli("doctor", "--json", "--data-dir", str(data_dir), *extra)
    # Exit code 2 means degraded isolation, which is not what this file checks.
    assert proc.returncode in (0, 2), proc.stderr
    return {r["id"]: r for r in json.loads(proc.stdout)["runtimes"]}


@pytest.fixture
def own_server(tmp_path):
    """A server whose data directory can be prepared before it starts."""
    made: list[UpdraftServer] = []

    def make(extra_args: tuple[str, ...] = (), root: Path | None = None) -> UpdraftServer:
        srv = UpdraftServer(root or tmp_path / f"srv{len(made)}", extra_args=extra_args)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.stop()


def host_node_major() -> int | None:
    node = shutil.which("node")
    if node is None:
        return None
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    return int(out.strip().lstrip("v").split(".")[0])


def test_nodejs22_runs_on_node_22_after_runtime_install(own_server, tmp_path):
    srv = own_server()
    major = host_node_major()
    folder = tmp_path / "fn"
    folder.mkdir()
    (folder / "index.mjs").write_text(NODE_VERSION_JS)
    name = unique_name("node22")

    if major is not None and major != 22:
        # Before the install: the function runs on the host's Node.js, and everyone is told.
        srv.start()
        deployed = ok(cli("deploy", str(folder), "--name", name, "--runtime", "nodejs22.x", "--handler",
                          "index.handler", server=srv))
        assert f"nodejs22.x runs on Node.js v{major}." in deployed.stdout, deployed.stdout
        assert "warning:" in deployed.stderr
        lam = srv.client()
        res = invoke(lam, name, LogType="Tail")
        assert res.status == 200 and res.function_error is None, res
        assert res.json()["version"].startswith(f"v{major}."), res
        report_at = res.log.index("REPORT RequestId:")
        assert "RUNTIME_NOTE nodejs22.x runs on Node.js" in res.log[report_at:], res.log
        assert "nodejs22.x runs on Node.js" in srv.stderr()
        doc = cli("doctor", "--data-dir", str(srv.data_dir))
        assert doc.returncode in (0, 2), doc.stderr  # 2: degraded isolation, not checked here
        assert re.search(r"nodejs22\.x\s+NEAREST", doc.stdout), doc.stdout
        assert f"NOTE: nodejs22.x runs on Node.js v{major}." in doc.stdout
        srv.stop()

    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: `updraft runtime install` fetches Node.js releases with npm")
    # Downloads are cached in ~/.cache/updraft/node (UPDRAFT_CACHE_DIR elsewhere), which CI keeps between runs.
    env_cache = os.environ.get("UPDRAFT_CACHE_DIR")
    install = cli("runtime", "install", "nodejs22.x", "--data-dir", str(srv.data_dir),
                  *(["--cache-dir", env_cache] if env_cache else []), timeout=900)
    if install.returncode != 0 and NETWORK_ERRORS.search(install.stderr):
        pytest.skip(f"the npm registry cannot be reached, so Node.js 22 cannot be installed: {install.stderr[-500:]}")
    ok(install)
    assert re.search(r"installed nodejs22\.x = Node\.js v22\.\d+\.\d+", install.stdout), install.stdout

    runtimes = doctor(srv.data_dir)
    assert runtimes["nodejs22.x"]["exact"] is True, runtimes["nodejs22.x"]
    assert runtimes["nodejs22.x"]["source"] == "installed"
    assert runtimes["nodejs22.x"]["version"].startswith("v22.")
    assert runtimes["nodejs22.x"]["note"] is None

    srv.start()
    lam = srv.client()
    if major is None or major == 22:
        lam.create_function(FunctionName=name, Runtime="nodejs22.x", Role=ROLE, Handler="index.handler",
                            Code={"ZipFile": package_zip({"index.mjs": NODE_VERSION_JS})})
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    res = invoke(lam, name, LogType="Tail")
    assert res.status == 200 and res.function_error is None, res
    assert res.json()["version"].startswith("v22."), res
    assert res.json()["exe"] == str(srv.data_dir.resolve() / "runtimes/installed/node22/bin/node")
    assert "RUNTIME_NOTE" not in res.log, res.log
    # A deploy now says nothing about versions.
    redeploy = ok(cli("deploy", str(folder), "--name", name, "--runtime", "nodejs22.x", "--handler",
                      "index.handler", server=srv))
    assert "NOTE" not in redeploy.stdout and "warning" not in redeploy.stderr, redeploy


def test_strict_runtimes_refuse_a_nearer_version(own_server):
    srv = own_server(extra_args=("--strict-runtimes",))
    runtimes = doctor(srv.data_dir)
    nearest = [r for r in runtimes.values() if r["available"] and not r["exact"]]
    exact = [r for r in runtimes.values() if r["available"] and r["exact"] and r["id"].startswith("python")]
    if not nearest:
        pytest.skip("every Python and Node.js runtime id has an exact interpreter on this host: none to refuse")
    srv.start()
    lam = srv.client()
    missing = nearest[0]["id"]
    handler = "index.handler" if missing.startswith("nodejs") else "app.handler"
    code = package_zip({"index.mjs": NODE_VERSION_JS} if missing.startswith("nodejs") else {"app.py": PY_VERSION})
    with pytest.raises(ClientError) as e:
        lam.create_function(FunctionName=unique_name("strict"), Runtime=missing, Role=ROLE, Handler=handler,
                            Code={"ZipFile": code})
    err = assert_error(e, "InvalidParameterValueException", 400)
    assert missing in err.response["Error"]["Message"]
    assert "--strict-runtimes" in err.response["Error"]["Message"]

    # A function whose runtime is there exactly is created, and an update to a missing one is refused.
    if exact:
        name = unique_name("strict")
        lam.create_function(FunctionName=name, Runtime=exact[0]["id"], Role=ROLE, Handler="app.handler",
                            Code={"ZipFile": package_zip({"app.py": PY_VERSION})})
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        got = invoke(lam, name)
        assert got.status == 200 and got.function_error is None, got
        assert got.json()["version"] == exact[0]["version"]
        if missing.startswith("python"):
            with pytest.raises(ClientError) as e:
                lam.update_function_configuration(FunctionName=name, Runtime=missing)
            assert_error(e, "InvalidParameterValueException", 400)


def real_python() -> tuple[str, str]:
    """The real executable and version of the host's python3."""
    py = shutil.which("python3")
    assert py, "python3 is needed by the Python runtime tests"
    out = subprocess.run(
        [py, "-c", "import os, sys; print(os.path.realpath(sys.executable)); print('%d.%d.%d' % sys.version_info[:3])"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.split()
    return out[0], out[1]


def test_runtime_override_names_the_interpreter(own_server):
    exe, version = real_python()
    minor = int(version.split(".")[1])
    # An id of another minor than the interpreter: only the operator's word makes it run there.
    other = f"python3.{minor + 1 if minor < 13 else minor - 1}"
    srv = own_server(extra_args=("--runtime", f"{other}={exe}", "--strict-runtimes"))
    runtimes = doctor(srv.data_dir, "--runtime", f"{other}={exe}")
    assert runtimes[other]["source"] == "--runtime"
    assert runtimes[other]["interpreter"] == exe
    assert "as --runtime says" in runtimes[other]["note"]
    srv.start()
    lam = srv.client()
    name = unique_name("override")
    lam.create_function(FunctionName=name, Runtime=other, Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": package_zip({"app.py": PY_VERSION})})
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    got = invoke(lam, name)
    assert got.status == 200 and got.function_error is None, got
    assert got.json() == {"version": version, "exe": exe}


def test_bad_runtime_override_is_refused_at_start(tmp_path):
    proc = subprocess.run([str(BIN), "serve", "--data-dir", str(tmp_path), "--runtime", "ruby3.3=/usr/bin/ruby"],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode != 0
    assert "ruby3.3" in proc.stderr
