"""Java functions (issue 17): handlers compiled here with the host's javac against the documented
`aws-lambda-java-core` signatures (tests/functions/java/core), deployed as a zip of classes with a
dependency in lib/ or as one fat jar, and run on Updraft's own Java runtime client."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import FUNCTIONS, ROLE, assert_error, invoke, invoke_ok, unique_name

JAVA = FUNCTIONS / "java"
RUNTIME = "java17"


def _javac(out: Path, sources: list[Path], classpath: list[Path]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["javac", "-encoding", "UTF-8", "-d", str(out)]
    if classpath:
        cmd += ["-cp", ":".join(str(p) for p in classpath)]
    proc = subprocess.run(cmd + [str(s) for s in sources], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(files.items()):
            zf.writestr(name, data)
    return buf.getvalue()


class Built:
    """The compiled test functions, packaged the two ways Lambda accepts Java code."""

    def __init__(self, root: Path):
        core, greeter, events, example = (root / d for d in ("core", "greeter", "events", "example"))
        _javac(core, sorted((JAVA / "core").rglob("*.java")), [])
        _javac(greeter, sorted((JAVA / "lib" / "greeter").rglob("*.java")), [])
        _javac(events, sorted((JAVA / "events").rglob("*.java")), [])
        _javac(example, sorted((JAVA / "src").rglob("*.java")), [core, greeter, events])
        manifest = {"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\r\n\r\n"}
        self.greeter_jar = _zip({**manifest, **_files(greeter)})
        classes = {**_files(example), **_files(events)}
        # A zip of classes with its dependency as lib/greeter.jar.
        self.zip = _zip({**classes, "lib/greeter.jar": self.greeter_jar})
        # One fat jar: the dependency unpacked into it, and (as shaded jars do) a copy of
        # aws-lambda-java-core's interfaces, which the runtime's own definitions take precedence over.
        self.fat_jar = _zip({**manifest, **classes, **_files(greeter), **_files(core)})


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    if shutil.which("javac") is None:
        pytest.skip("javac is not installed (scripts/ci-deps.sh installs a JDK)")
    return Built(tmp_path_factory.mktemp("java-build"))


@pytest.fixture(scope="module")
def java_fn(built, deploy):
    """deploy_java(handler, package=zip, **create_kwargs) -> function name (runtime java17)."""

    def make(handler: str, package: bytes | None = None, **kwargs) -> str:
        kwargs.setdefault("Timeout", 30)
        return deploy(built.zip if package is None else package, handler=handler, runtime=RUNTIME, **kwargs)

    return make


def test_request_handler_of_map_to_string_keeps_static_state_warm(lam, java_fn):
    name = java_fn("example.Hello")
    first = invoke(lam, name, {"name": "Ada"}, LogType="Tail")
    assert first.status == 200 and first.function_error is None, first
    text = first.json()
    assert text.startswith("Hello, Ada! call 1 of JVM "), text
    jvm = text.rsplit(" ", 1)[1]
    assert "hello from the logger" in first.log and "hello from System.out" in first.log, first.log
    second = invoke_ok(lam, name, {})
    assert second == f"Hello, world! call 2 of JVM {jvm}"


def test_pojo_in_and_out(lam, java_fn):
    name = java_fn("example.PojoHandler")
    out = invoke_ok(lam, name, {
        "name": "Grace", "age": 41, "height": 1.68, "member": True, "tags": ["navy", "cobol"],
        "scores": {"a": 3, "b": 4}, "address": {"city": "Arlington", "zip": "22201"}, "ignored": [1, 2],
    })
    assert out == {
        "message": "Grace (1.68 m) from Arlington scored 7",
        "nextAge": 42,
        "tags": ["navy", "cobol"],
        "member": False,
    }


def test_request_stream_handler_gets_and_returns_raw_bytes(lam, java_fn):
    name = java_fn("example.Upper")
    res = invoke(lam, name, raw=b'{"say": "hello"}')
    assert res.status == 200 and res.function_error is None, res
    assert res.body == b'{"SAY": "HELLO"}'


def test_method_handlers_of_each_shape(lam, java_fn):
    assert invoke_ok(lam, java_fn("example.Methods::shout"), "hi") == "HI!"
    assert invoke_ok(lam, java_fn("example.Methods::sum"), [1, 2, 3, 4]) == 10
    res = invoke(lam, java_fn("example.Methods::echo"), raw=b'{"x":1}')
    assert res.body == b'[{"x":1}]', res
    name = java_fn("example.Methods::context", MemorySize=512,
                   Environment={"Variables": {"JAVA_TOOL_OPTIONS": "-Dupdraft.test=1"}})
    res = invoke(lam, name, {"k": [1, "two", None, True]})
    assert res.status == 200 and res.function_error is None, res
    ctx = res.json()
    assert ctx["awsRequestId"] == res.request_id
    assert ctx["functionName"] == name
    assert ctx["functionVersion"] == "$LATEST"
    assert ctx["invokedFunctionArn"].endswith(f":function:{name}")
    assert ctx["memoryLimitInMB"] == 512
    assert ctx["logGroupName"] == f"/aws/lambda/{name}"
    assert ctx["logStreamName"]
    assert 0 < ctx["remaining"] <= 30_000
    assert ctx["logger"] == "present"
    assert ctx["event"] == {"k": [1, "two", None, True]}
    assert ctx["javaToolOptions"] == "-Dupdraft.test=1"
    # The heap is 85% of MemorySize, as Lambda sizes it (the JVM reports a little less).
    assert 400 <= ctx["maxHeapMb"] <= 436, ctx["maxHeapMb"]


def test_exception_error_shape(lam, java_fn):
    name = java_fn("example.Fail")
    res = invoke(lam, name, {"why": "testing"}, LogType="Tail")
    assert res.status == 200 and res.function_error == "Unhandled", res
    body = res.json()
    assert body["errorType"] == "java.lang.IllegalStateException"
    assert body["errorMessage"] == "boom: testing"
    assert body["stackTrace"][0].startswith("example.Fail.handleRequest(Fail.java:"), body
    assert all(isinstance(line, str) for line in body["stackTrace"])
    assert body["cause"]["errorType"] == "java.lang.NumberFormatException"
    assert "not a number" in body["cause"]["errorMessage"]
    assert "java.lang.IllegalStateException: boom: testing" in res.log
    # The environment survives a handled exception.
    assert invoke(lam, name, {"why": "again"}).json()["errorMessage"] == "boom: again"


def test_zip_with_a_dependency_in_lib(lam, java_fn):
    assert invoke_ok(lam, java_fn("example.UsesLib"), {"name": "Ada"}) == "Greetings, Ada, from a jar in lib/"


def test_fat_jar_with_its_own_copy_of_the_core_interfaces(lam, built, java_fn):
    name = java_fn("example.UsesLib", package=built.fat_jar)
    assert invoke_ok(lam, name, {"name": "Linus"}) == "Greetings, Linus, from a jar in lib/"
    hello = java_fn("example.Hello", package=built.fat_jar)
    assert invoke_ok(lam, hello, {"name": "jar"}).startswith("Hello, jar! call 1")


def test_sqs_event_bound_by_field_name(lam, java_fn):
    event = {"Records": [{
        "messageId": "m-1", "receiptHandle": "r", "body": "payload",
        "attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1700000000000"},
        "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1",
    }]}
    assert invoke_ok(lam, java_fn("example.Sqs"), event) == ["m-1:payload:arn:aws:sqs:us-east-1:123456789012:q:2"]


def test_scheduled_event_bound_by_field_name(lam, java_fn):
    event = {"version": "0", "id": "e-1", "detail-type": "Scheduled Event", "source": "aws.events",
             "account": "123456789012", "time": "2024-01-02T03:04:05Z", "region": "us-east-1",
             "resources": ["arn:aws:events:us-east-1:123456789012:rule/r"], "detail": {}}
    assert invoke_ok(lam, java_fn("example.Scheduled"), event) == (
        "Scheduled Event|aws.events|1704164645|[arn:aws:events:us-east-1:123456789012:rule/r]|{}")


@pytest.mark.parametrize("handler, error_type, message", [
    ("example.Missing", "java.lang.ClassNotFoundException", "Class not found: example.Missing"),
    ("example.Methods::nothing", "java.lang.NoSuchMethodException",
     "No public method named nothing with appropriate method signature found on class example.Methods"),
    ("example.BadInit", "java.lang.ExceptionInInitializerError",
     "java.lang.IllegalArgumentException: cannot start: missing configuration"),
])
def test_handler_that_cannot_be_loaded(lam, java_fn, handler, error_type, message):
    name = java_fn(handler)
    res = invoke(lam, name, {})
    assert res.status == 200 and res.function_error == "Unhandled", res
    body = res.json()
    assert body["errorType"] == error_type, body
    assert body["errorMessage"] == message, body


def test_jar_that_is_not_a_zip_is_refused(lam):
    with pytest.raises(ClientError) as e:
        lam.create_function(FunctionName=unique_name("jar"), Runtime=RUNTIME, Role=ROLE,
                            Handler="example.Hello", Code={"ZipFile": b"PK\x03\x04 this is not a jar"})
    assert_error(e, "InvalidParameterValueException", 400)


def test_system_exit_is_an_exit_error(lam, java_fn):
    res = invoke(lam, java_fn("example.Exit"), {})
    assert res.function_error == "Unhandled", res
    body = res.json()
    assert body["errorType"] == "Runtime.ExitError", body
    assert "exit status 3" in body["errorMessage"], body


def test_heap_exhaustion_replaces_the_environment(lam, java_fn):
    name = java_fn("example.Hog", MemorySize=256)
    before = invoke_ok(lam, name, {"ping": 1})
    res = invoke(lam, name, {})
    assert res.function_error == "Unhandled", res
    body = res.json()
    assert body["errorType"] == "Runtime.OutOfMemory", body
    assert "Java heap space" in body["errorMessage"], body
    after = invoke_ok(lam, name, {"ping": 1})
    assert after.startswith("alive ") and after != before, (before, after)


def test_a_java_id_without_a_jdk_is_an_invalid_runtime(server_factory):
    srv = server_factory(extra_args=("--runtime", "java21=/nonexistent/jdk/bin/java"))
    lam = srv.client()
    name = unique_name("nojdk")
    lam.create_function(FunctionName=name, Runtime="java21", Role=ROLE, Handler="example.Hello",
                        Code={"ZipFile": _zip({"example/Hello.class": b"\xca\xfe\xba\xbe"})})
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=name, Payload=b"{}")
    err = assert_error(e, "InvalidRuntimeException", 502)
    assert "java21" in err.response["Error"]["Message"]
