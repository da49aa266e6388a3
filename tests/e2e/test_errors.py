"""Error answers of the control plane: AWS error codes, HTTP status codes and x-amzn-ErrorType headers."""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import stat
import zipfile

import pytest

from conftest import (
    HANDLER,
    ROLE,
    RUNTIME,
    assert_error,
    create_function,
    make_zip,
    unique_name,
)


def base_params(name: str, **overrides) -> dict:
    params = {
        "FunctionName": name,
        "Runtime": RUNTIME,
        "Role": ROLE,
        "Handler": HANDLER,
        "Code": {"ZipFile": make_zip()},
    }
    params.update(overrides)
    return params


def assert_absent(lam, name: str) -> None:
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)


def test_unknown_function_is_resource_not_found(lam):
    name = unique_name("nobody")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as ei:
        lam.get_function(FunctionName=name)
    err = assert_error(ei, "ResourceNotFoundException", 404)
    assert name in err.response["Error"]["Message"]
    for call in (
        lambda: lam.get_function_configuration(FunctionName=name),
        lambda: lam.update_function_configuration(FunctionName=name, Timeout=5),
        lambda: lam.publish_version(FunctionName=name),
        lambda: lam.delete_function(FunctionName=name),
        lambda: lam.list_versions_by_function(FunctionName=name),
        lambda: lam.get_function_concurrency(FunctionName=name),
    ):
        with pytest.raises(lam.exceptions.ResourceNotFoundException) as ei:
            call()
        assert_error(ei, "ResourceNotFoundException", 404)


def test_unknown_version_is_resource_not_found(lam):
    name = unique_name()
    create_function(lam, name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as ei:
        lam.get_function(FunctionName=name, Qualifier="42")
    assert_error(ei, "ResourceNotFoundException", 404)
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as ei:
        lam.get_function(FunctionName=name, Qualifier="noalias")
    assert_error(ei, "ResourceNotFoundException", 404)


def test_create_twice_is_resource_conflict(lam):
    name = unique_name()
    first = create_function(lam, name)
    with pytest.raises(lam.exceptions.ResourceConflictException) as ei:
        lam.create_function(**base_params(name, Description="second"))
    assert_error(ei, "ResourceConflictException", 409)
    cfg = lam.get_function_configuration(FunctionName=name)
    assert cfg["Description"] == ""
    assert cfg["CodeSha256"] == first["CodeSha256"]


BIG_ENV = {f"VAR_{i:03d}": "x" * 40 for i in range(120)}  # about 5.8 KB, over Lambda's 4 KB


# Lambda answers a malformed value (pattern, enum) with ValidationException and "1 validation error
# detected", but numeric ranges and service limits with InvalidParameterValueException, even where
# the model also states the range (MemorySize, Timeout, EphemeralStorage).
@pytest.mark.parametrize(
    "overrides, code",
    [
        pytest.param({"MemorySize": 100}, "InvalidParameterValueException", id="memory-100"),
        pytest.param({"MemorySize": 20000}, "InvalidParameterValueException", id="memory-20000"),
        pytest.param({"Timeout": 0}, "InvalidParameterValueException", id="timeout-0"),
        pytest.param({"Timeout": 901}, "InvalidParameterValueException", id="timeout-901"),
        pytest.param({"Runtime": "cobol1"}, "InvalidParameterValueException", id="runtime-cobol1"),
        pytest.param({"Handler": "bad handler"}, "ValidationException", id="handler-with-space"),
        pytest.param({"Role": "lambda-role"}, "ValidationException", id="role-not-arn"),
        pytest.param({"Environment": {"Variables": BIG_ENV}}, "InvalidParameterValueException", id="env-over-4kb"),
        pytest.param({"Environment": {"Variables": {"1BAD": "x"}}}, "ValidationException", id="env-bad-name"),
        pytest.param({"EphemeralStorage": {"Size": 100}}, "InvalidParameterValueException", id="ephemeral-100"),
        pytest.param({"EphemeralStorage": {"Size": 20000}}, "InvalidParameterValueException", id="ephemeral-20000"),
    ],
)
def test_create_with_invalid_parameter(lam, lam_raw, overrides, code):
    name = unique_name()
    with pytest.raises(lam_raw.exceptions.ClientError) as ei:
        lam_raw.create_function(**base_params(name, **overrides))
    assert_error(ei, code, 400)
    assert_absent(lam, name)


def test_create_with_bad_function_name(lam, lam_raw):
    with pytest.raises(lam_raw.exceptions.ClientError) as ei:
        lam_raw.create_function(**base_params("bad name!"))
    assert_error(ei, "ValidationException", 400)
    assert "bad name!" not in {f["FunctionName"] for f in lam.list_functions(MaxItems=10000)["Functions"]}


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"MemorySize": 20000}, id="memory"),
        pytest.param({"Timeout": 901}, id="timeout"),
        pytest.param({"Runtime": "cobol1"}, id="runtime"),
        pytest.param({"Environment": {"Variables": BIG_ENV}}, id="env"),
    ],
)
def test_update_with_invalid_parameter_changes_nothing(lam, lam_raw, overrides):
    name = unique_name()
    create_function(lam, name)
    before = lam.get_function_configuration(FunctionName=name)
    with pytest.raises(lam_raw.exceptions.ClientError) as ei:
        lam_raw.update_function_configuration(FunctionName=name, **overrides)
    assert_error(ei, "InvalidParameterValueException", 400)
    after = lam.get_function_configuration(FunctionName=name)
    for key in ("MemorySize", "Timeout", "Runtime", "RevisionId", "LastModified"):
        assert after[key] == before[key], key
    assert "Environment" not in after or after["Environment"].get("Variables", {}) == {}


def test_function_name_too_long_is_validation_exception(server, lam):
    name = "a" * 200
    body = json.dumps(
        {"FunctionName": name, "Runtime": RUNTIME, "Role": ROLE, "Handler": HANDLER,
         "Code": {"ZipFile": base64.b64encode(make_zip()).decode()}}
    ).encode()
    resp = server.signed_request("POST", "/2015-03-31/functions", body)
    assert resp.status == 400, resp
    assert resp.error_type == "ValidationException", resp
    payload = resp.json()
    assert payload.get("message") or payload.get("Message"), resp
    names = {f["FunctionName"] for f in lam.list_functions(MaxItems=10000)["Functions"]}
    assert name not in names


def test_malformed_json_body_is_a_clear_400(server):
    resp = server.signed_request("POST", "/2015-03-31/functions", b'{"FunctionName": "broken", "Runtime": ')
    assert resp.status == 400, resp
    assert resp.error_type, f"no x-amzn-ErrorType header: {resp}"
    payload = resp.json()
    message = payload.get("message") or payload.get("Message")
    assert isinstance(message, str) and message, resp


def test_wrong_revision_id_is_precondition_failed(lam):
    name = unique_name()
    create_function(lam, name)
    with pytest.raises(lam.exceptions.PreconditionFailedException) as ei:
        lam.update_function_configuration(FunctionName=name, Timeout=9, RevisionId="11111111-2222-3333-4444-555555555555")
    assert_error(ei, "PreconditionFailedException", 412)
    assert lam.get_function_configuration(FunctionName=name)["Timeout"] == 3


def test_zip_over_50_mb_is_request_entity_too_large(server, lam):
    name = unique_name()
    big = io.BytesIO()
    with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("app.py", "def handler(e, c):\n    return e\n")
        zf.writestr("blob.bin", os.urandom(51 * 1024 * 1024))
    client = server.client(retries=1)
    with pytest.raises(client.exceptions.ClientError) as ei:
        client.create_function(**base_params(name, Code={"ZipFile": big.getvalue()}))
    assert_error(ei, "RequestEntityTooLargeException", 413)
    assert_absent(lam, name)


# ---------------------------------------------------------------------------------------------- hostile packages

def _zip_with(entries: list[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("app.py", "def handler(e, c):\n    return e\n")
        for info, data in entries:
            zf.writestr(info, data)
    return buf.getvalue()


def traversal_zip() -> bytes:
    return _zip_with([(zipfile.ZipInfo("../../evil.py"), b"print('escaped')\n")])


def absolute_zip() -> bytes:
    return _zip_with([(zipfile.ZipInfo("/etc/evil"), b"owned\n")])


def symlink_zip() -> bytes:
    info = zipfile.ZipInfo("passwd")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return _zip_with([(info, b"/etc/passwd")])


@functools.lru_cache(maxsize=1)
def bomb_zip() -> bytes:
    """300 MB of zeros deflated to about 300 KB: over Lambda's 250 MB unzipped limit."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("app.py", "def handler(e, c):\n    return e\n")
        info = zipfile.ZipInfo("zeros.bin")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(300):
                f.write(chunk)
    data = buf.getvalue()
    assert len(data) < 2 * 1024 * 1024
    return data


def corrupt_zip() -> bytes:
    good = make_zip()
    return good[:10] + b"\x00garbage\xff" * 20 + good[-30:]


HOSTILE = [
    pytest.param(traversal_zip, id="path-traversal"),
    pytest.param(absolute_zip, id="absolute-path"),
    pytest.param(symlink_zip, id="symlink-out"),
    pytest.param(bomb_zip, id="zip-bomb-300mb"),
    pytest.param(corrupt_zip, id="corrupt"),
    pytest.param(lambda: b"this is not a zip file at all", id="not-a-zip"),
]


@pytest.mark.parametrize("build", HOSTILE)
def test_create_rejects_hostile_package(lam, build):
    name = unique_name()
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as ei:
        lam.create_function(**base_params(name, Code={"ZipFile": build()}))
    assert_error(ei, "InvalidParameterValueException", 400)
    assert_absent(lam, name)


@pytest.mark.parametrize("build", [HOSTILE[0], HOSTILE[3]])
def test_update_code_rejects_hostile_package(lam, build):
    name = unique_name()
    created = create_function(lam, name)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as ei:
        lam.update_function_code(FunctionName=name, ZipFile=build())
    assert_error(ei, "InvalidParameterValueException", 400)
    cfg = lam.get_function_configuration(FunctionName=name)
    assert cfg["CodeSha256"] == created["CodeSha256"]
    assert cfg["CodeSize"] == created["CodeSize"]


def test_s3_code_source_is_a_clear_invalid_parameter(lam):
    name = unique_name()
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as ei:
        lam.create_function(**base_params(name, Code={"S3Bucket": "my-bucket", "S3Key": "code.zip"}))
    err = assert_error(ei, "InvalidParameterValueException", 400)
    assert "s3" in err.response["Error"]["Message"].lower()
    assert_absent(lam, name)


def test_missing_code_is_rejected(lam_raw, lam):
    name = unique_name()
    params = base_params(name)
    params["Code"] = {}
    with pytest.raises(lam_raw.exceptions.ClientError) as ei:
        lam_raw.create_function(**params)
    assert_error(ei, "InvalidParameterValueException", 400)
    assert_absent(lam, name)


def test_symlink_inside_package_is_accepted(lam):
    """Links that stay inside the package are legitimate (Lambda keeps them, e.g. node_modules/.bin)."""
    info = zipfile.ZipInfo("alias.py")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    name = unique_name()
    created = create_function(lam, name, _zip_with([(info, b"app.py")]))
    assert lam.get_function_configuration(FunctionName=name)["CodeSha256"] == created["CodeSha256"]


def test_name_length_limit_of_plain_names(lam, lam_raw):
    """A plain function name has at most 64 characters (the 140 of the model is for ARNs)."""
    longest = "n" * 52 + unique_name("")[1:]
    assert len(longest) == 64
    create_function(lam, longest, wait=False)
    assert lam.get_function_configuration(FunctionName=longest)["FunctionName"] == longest
    too_long = longest + "x"
    with pytest.raises(lam_raw.exceptions.ClientError) as ei:
        lam_raw.create_function(**base_params(too_long))
    assert_error(ei, "ValidationException", 400)
    names = {f["FunctionName"] for f in lam.list_functions(MaxItems=10000)["Functions"]}
    assert too_long not in names


def test_reserved_environment_variable_is_rejected(lam):
    name = unique_name()
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as ei:
        lam.create_function(**base_params(name, Environment={"Variables": {"AWS_REGION": "eu-west-1"}}))
    err = assert_error(ei, "InvalidParameterValueException", 400)
    assert "AWS_REGION" in err.response["Error"]["Message"]
    assert_absent(lam, name)


def test_limits_are_inclusive(lam):
    name = unique_name()
    create_function(lam, name, MemorySize=128, Timeout=1)
    lam.update_function_configuration(FunctionName=name, MemorySize=10240, Timeout=900,
                                      EphemeralStorage={"Size": 10240})
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    cfg = lam.get_function_configuration(FunctionName=name)
    assert (cfg["MemorySize"], cfg["Timeout"], cfg["EphemeralStorage"]["Size"]) == (10240, 900, 10240)


def test_dry_run_code_update_changes_nothing(lam):
    name = unique_name()
    created = create_function(lam, name)
    lam.update_function_code(FunctionName=name, ZipFile=make_zip({"app.py": "X = 'dry'\n"}), DryRun=True)
    cfg = lam.get_function_configuration(FunctionName=name)
    assert cfg["CodeSha256"] == created["CodeSha256"]
    assert cfg["CodeSize"] == created["CodeSize"]
