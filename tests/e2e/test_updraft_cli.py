"""Updraft's own CLI (`updraft deploy | ls | rm`) against a running server, checked through boto3."""

from __future__ import annotations

import io
import os
import subprocess
import urllib.request
import zipfile

import pytest

from conftest import BIN, unique_name


def run(server, *args: str, endpoint_env: bool = False, secret: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
    env["UPDRAFT_ACCESS_KEY_ID"] = server.access_key
    env["UPDRAFT_SECRET_ACCESS_KEY"] = secret or server.secret_key
    argv = [str(BIN), *args]
    if endpoint_env:
        env["UPDRAFT_ENDPOINT"] = server.endpoint
    else:
        argv += ["--endpoint", server.endpoint]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}"
    return proc


def package_files(location: str) -> dict[str, bytes]:
    with urllib.request.urlopen(location, timeout=30) as resp:
        data = resp.read()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "fn"
    (root / "sub").mkdir(parents=True)
    (root / "app.py").write_text("from sub.helper import VALUE\n\ndef handler(e, c):\n    return VALUE\n")
    (root / "sub" / "helper.py").write_text("VALUE = 'one'\n")
    return root


def test_deploy_creates_then_updates(server, lam, folder):
    name = unique_name("deploy")
    ok(run(server, "deploy", str(folder), "--name", name, "--runtime", "python3.12", "--handler", "app.handler",
           "--memory", "256", "--timeout", "10", "--env", "GREETING=hi"))
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    got = lam.get_function(FunctionName=name)
    cfg = got["Configuration"]
    assert cfg["Runtime"] == "python3.12"
    assert cfg["Handler"] == "app.handler"
    assert cfg["MemorySize"] == 256
    assert cfg["Timeout"] == 10
    assert cfg["Environment"] == {"Variables": {"GREETING": "hi"}}
    files = package_files(got["Code"]["Location"])
    assert files == {
        "app.py": (folder / "app.py").read_bytes(),
        "sub/helper.py": (folder / "sub" / "helper.py").read_bytes(),
    }

    # A second deploy of the same name updates the function in place.
    (folder / "sub" / "helper.py").write_text("VALUE = 'two'\n")
    ok(run(server, "deploy", str(folder), "--name", name, "--runtime", "python3.12", "--handler", "app.handler",
           "--memory", "512", "--timeout", "10", "--env", "GREETING=hello", endpoint_env=True))
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    got2 = lam.get_function(FunctionName=name)
    cfg2 = got2["Configuration"]
    assert cfg2["FunctionArn"] == cfg["FunctionArn"]
    assert cfg2["CodeSha256"] != cfg["CodeSha256"]
    assert cfg2["MemorySize"] == 512
    assert cfg2["Environment"] == {"Variables": {"GREETING": "hello"}}
    assert package_files(got2["Code"]["Location"])["sub/helper.py"] == b"VALUE = 'two'\n"
    assert [f["FunctionName"] for f in lam.list_functions(MaxItems=10000)["Functions"]].count(name) == 1


def test_ls_and_rm(server, lam, folder):
    name = unique_name("ls")
    ok(run(server, "deploy", str(folder), "--name", name, "--runtime", "python3.12", "--handler", "app.handler"))
    assert lam.get_function_configuration(FunctionName=name)["FunctionName"] == name

    listed = ok(run(server, "ls"))
    assert name in listed.stdout, listed.stdout
    listed_env = ok(run(server, "ls", endpoint_env=True))
    assert name in listed_env.stdout

    ok(run(server, "rm", name))
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)
    assert name not in ok(run(server, "ls")).stdout


def test_rm_unknown_function_fails(server):
    name = unique_name("ghost")
    proc = run(server, "rm", name)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "ResourceNotFoundException" in out or "not found" in out.lower(), out


def test_cli_with_wrong_secret_fails(server, lam, folder):
    name = unique_name("denied")
    proc = run(server, "deploy", str(folder), "--name", name, "--runtime", "python3.12", "--handler", "app.handler",
               secret="wrong-" + "0" * 34)
    assert proc.returncode != 0
    assert "InvalidSignatureException" in proc.stdout + proc.stderr
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)
