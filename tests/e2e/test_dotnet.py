"""C# functions (issue 17): handlers compiled here with Mono's mcs against the documented
`Amazon.Lambda.Core` signatures (tests/functions/dotnet/ref), shipped as the handler assembly
alone, and run by Updraft's own C# runtime client on Mono."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FUNCTIONS, invoke, invoke_ok

DOTNET = FUNCTIONS / "dotnet"
RUNTIME = "dotnet8"


def _mcs(out: Path, sources: list[Path], refs: list[Path], target: str = "library") -> None:
    cmd = ["mcs", "-nologo", f"-target:{target}", f"-out:{out}", *[f"-r:{r}" for r in refs],
           *[str(s) for s in sources]]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def handlers_dll(tmp_path_factory) -> bytes:
    if shutil.which("mcs") is None:
        pytest.skip("mcs is not installed (scripts/ci-deps.sh installs Mono's mono-devel)")
    d = tmp_path_factory.mktemp("dotnet-build")
    core, ser, out = d / "Amazon.Lambda.Core.dll", d / "Amazon.Lambda.Serialization.SystemTextJson.dll", d / "Handlers.dll"
    _mcs(core, [DOTNET / "ref" / "Core.cs"], [])
    _mcs(ser, [DOTNET / "ref" / "Serializer.cs"], [core])
    _mcs(out, sorted((DOTNET / "src").glob("*.cs")), [core, ser])
    return out.read_bytes()


@pytest.fixture(scope="module")
def cs_fn(handlers_dll, deploy):
    def make(method: str, **kwargs) -> str:
        kwargs.setdefault("Timeout", 30)
        return deploy({"Handlers.dll": handlers_dll}, handler=f"Handlers::Example.Functions::{method}",
                      runtime=RUNTIME, **kwargs)

    return make


def test_sync_handler_with_context_keeps_static_state(lam, cs_fn):
    name = cs_fn("Hello", MemorySize=256)
    res = invoke(lam, name, {"name": "Ada"}, LogType="Tail")
    assert res.status == 200 and res.function_error is None, res
    assert res.json() == f"Hello, Ada! call 1 in {name} (256 MB, {res.request_id})"
    assert "hello from the logger" in res.log and "hello from Console" in res.log, res.log
    again = invoke(lam, name, {})
    assert again.json() == f"Hello, world! call 2 in {name} (256 MB, {again.request_id})"


def test_poco_in_and_out(lam, cs_fn):
    out = invoke_ok(lam, cs_fn("Pojo"), {"name": "Grace", "age": 41, "tags": ["a", "b", "c"],
                                          "home": {"city": "Arlington"}, "unknown": True})
    assert out == {"Message": "Grace from Arlington", "NextAge": 42, "Tags": 3}


def test_async_task_of_poco(lam, cs_fn):
    assert invoke_ok(lam, cs_fn("PojoAsync"), {"Name": "Linus", "Age": 20}) == {
        "Message": "later, Linus", "NextAge": 22, "Tags": 0}


def test_streams_in_and_out(lam, cs_fn):
    res = invoke(lam, cs_fn("Raw"), raw=b'{"say": "hi"}')
    assert res.status == 200 and res.function_error is None, res
    assert res.body == b'{"SAY": "HI"}'


def test_exception_error_shape(lam, cs_fn):
    res = invoke(lam, cs_fn("Fail"), {"why": "testing"})
    assert res.function_error == "Unhandled", res
    body = res.json()
    assert body["errorType"] == "InvalidOperationException", body
    assert body["errorMessage"] == "boom: testing"
    assert any("Example.Functions.Fail" in line for line in body["stackTrace"]), body
    assert body["cause"]["errorType"] == "FormatException", body


def test_async_exception_is_unwrapped(lam, cs_fn):
    res = invoke(lam, cs_fn("FailAsync"), {})
    assert res.function_error == "Unhandled", res
    body = res.json()
    assert body["errorType"] == "ArgumentException", body
    assert body["errorMessage"] == "async boom"


def test_missing_type_and_method_fail_init(lam, handlers_dll, deploy):
    for handler, error_type in [("Handlers::Example.Nope::Hello", "Runtime.TypeNotFound"),
                                ("Handlers::Example.Functions::Nope", "Runtime.MethodNotFound"),
                                ("Missing::Example.Functions::Hello", "Runtime.AssemblyNotFound")]:
        name = deploy({"Handlers.dll": handlers_dll}, handler=handler, runtime=RUNTIME)
        res = invoke(lam, name, {})
        assert res.function_error == "Unhandled", res
        assert res.json()["errorType"] == error_type, res
