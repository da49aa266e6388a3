"""The Extensions API (issue 21), proven with an internal extension that the function's own
`AWS_LAMBDA_EXEC_WRAPPER` script starts before the runtime (a supported Lambda mechanism).
External extensions from layers use the same API: see test_extensions_layer.py.
"""

from __future__ import annotations

import re
import time

from conftest import create_function, invoke, invoke_ok, package_zip, unique_name
from extension_helpers import function_logs, wait_for, wrapped_package

POST_RE = re.compile(r"PostRuntimeExtensionsDuration: (\d+\.\d\d) ms")


def deploy(lam, timeout: int = 10, **env) -> str:
    name = unique_name("ext")
    variables = {"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/wrapper.sh", **{k: str(v) for k, v in env.items()}}
    create_function(lam, name, package_zip(wrapped_package(), executable=("wrapper.sh",)),
                    Timeout=timeout, Environment={"Variables": variables})
    return name


def test_extension_registers_and_sees_each_invoke(lam, server):
    name = deploy(lam)
    first = invoke_ok(lam, name, {})
    reg = first["register"][0]
    assert reg["status"] == 200
    assert re.fullmatch(r"[0-9a-f-]{36}", reg["id"]), reg
    assert reg["body"]["functionName"] == name
    assert reg["body"]["functionVersion"] == "$LATEST"
    assert reg["body"]["handler"] == "app.handler"
    assert re.fullmatch(r"\d{12}", reg["body"]["accountId"]), reg

    second = invoke_ok(lam, name, {})
    invokes = [e for e in second["events"] if e["eventType"] == "INVOKE"]
    assert [e["requestId"] for e in invokes] == [first["request_id"], second["request_id"]]
    ev = invokes[-1]
    assert ev["_status"] == 200 and ev["_event_id"]
    assert ev["invokedFunctionArn"].endswith(f":function:{name}")
    assert ev["deadlineMs"] > time.time() * 1000
    assert ev["tracing"]["type"] == "X-Amzn-Trace-Id" and ev["tracing"]["value"].startswith("Root=")


def test_extension_work_after_the_answer_delays_completion(lam):
    name = deploy(lam, EXT_DELAY_MS=400)
    invoke_ok(lam, name, {})
    out = invoke(lam, name, {}, LogType="Tail")
    assert out.status == 200 and out.function_error is None, out
    post = POST_RE.search(out.log)
    assert post, out.log
    # The extension slept 400 ms after the INVOKE before asking for more.
    assert float(post.group(1)) >= 300, out.log
    billed = int(re.search(r"Billed Duration: (\d+) ms", out.log).group(1))
    assert billed >= float(post.group(1)), out.log


def test_extension_gets_shutdown_on_scale_down(lam, server):
    name = deploy(lam)
    invoke_ok(lam, name, {})
    lam.delete_function(FunctionName=name)
    assert wait_for(lambda: f"EXTENSION probe SHUTDOWN spindown" in function_logs(server, name), 10), \
        function_logs(server, name)[-2000:]


def test_registering_twice_is_refused(lam):
    name = deploy(lam, EXT_MODE="twice")
    out = invoke_ok(lam, name, {})
    assert out["register"][0]["status"] == 200
    assert out["second"][0]["status"] == 403
    assert out["second"][0]["body"]["errorType"] == "Extension.AlreadyRegistered"


def test_extension_crash_in_init_fails_the_init(lam):
    name = deploy(lam, EXT_MODE="crash")
    out = invoke(lam, name, {})
    assert out.function_error == "Unhandled", out
    assert out.json()["errorType"] in ("Extension.Crash",), out


def test_extension_init_error_fails_the_init(lam):
    name = deploy(lam, EXT_MODE="init-error")
    out = invoke(lam, name, {})
    assert out.function_error == "Unhandled", out
    assert out.json()["errorType"] == "Extension.ConfigInvalid", out


def test_extension_that_never_asks_for_next_times_the_invocation_out(lam):
    name = deploy(lam, timeout=2, EXT_MODE="stuck")
    first = invoke(lam, name, {}, LogType="Tail")
    # The answer itself arrives; the invocation then runs out of time waiting for the extension.
    assert first.status == 200 and first.function_error is None, first
    assert "Status: timeout" in first.log, first.log
    # The environment was replaced: the next invocation starts a fresh one.
    second = invoke_ok(lam, name, {})
    assert [e["requestId"] for e in second["events"] if e["eventType"] == "INVOKE"] == [second["request_id"]]
