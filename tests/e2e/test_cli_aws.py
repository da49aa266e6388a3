"""The aws CLI parses Updraft's answers."""

from __future__ import annotations

import json

from conftest import HANDLER, ROLE, RUNTIME, make_zip, sha256_b64, unique_name


def as_json(proc) -> dict:
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"aws CLI printed no JSON: {proc.stdout!r} {proc.stderr!r}") from e


def test_aws_cli_function_lifecycle(aws_cli, lam, tmp_path):
    name = unique_name("cli")
    code = make_zip()
    package = tmp_path / "function.zip"
    package.write_bytes(code)

    created = as_json(aws_cli(
        "lambda", "create-function", "--function-name", name, "--runtime", RUNTIME, "--role", ROLE,
        "--handler", HANDLER, "--zip-file", f"fileb://{package}", "--description", "from the cli",
    ))
    assert created["FunctionName"] == name
    assert created["CodeSha256"] == sha256_b64(code)
    assert created["CodeSize"] == len(code)
    assert created["Description"] == "from the cli"

    aws_cli("lambda", "wait", "function-active-v2", "--function-name", name)

    got = as_json(aws_cli("lambda", "get-function", "--function-name", name))
    assert got["Configuration"]["FunctionArn"] == created["FunctionArn"]
    assert got["Code"]["Location"].startswith("http")

    listed = as_json(aws_cli("lambda", "list-functions"))
    assert name in {f["FunctionName"] for f in listed["Functions"]}

    updated = as_json(aws_cli(
        "lambda", "update-function-configuration", "--function-name", name, "--memory-size", "256",
        "--timeout", "15", "--environment", "Variables={COLOR=blue,SIZE=2}",
    ))
    assert updated["MemorySize"] == 256
    aws_cli("lambda", "wait", "function-updated-v2", "--function-name", name)
    cfg = lam.get_function_configuration(FunctionName=name)
    assert cfg["MemorySize"] == 256
    assert cfg["Timeout"] == 15
    assert cfg["Environment"] == {"Variables": {"COLOR": "blue", "SIZE": "2"}}

    published = as_json(aws_cli("lambda", "publish-version", "--function-name", name))
    assert published["Version"] == "1"
    assert published["MemorySize"] == 256

    alias = as_json(aws_cli("lambda", "create-alias", "--function-name", name, "--name", "live",
                            "--function-version", "1"))
    assert alias["AliasArn"] == f"{created['FunctionArn']}:live"
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"

    deleted = aws_cli("lambda", "delete-function", "--function-name", name)
    # DeleteFunction answers 204 without a body; the CLI shows the status code it modeled.
    assert as_json(deleted) == {"StatusCode": 204}
    assert name not in {f["FunctionName"] for f in as_json(aws_cli("lambda", "list-functions"))["Functions"]}


def test_aws_cli_error_exit_code(aws_cli):
    name = unique_name("cli-missing")
    proc = aws_cli("lambda", "get-function", "--function-name", name, check=False)
    assert proc.returncode == 255, (proc.returncode, proc.stderr)  # aws CLI v1: the service answered an error
    assert "ResourceNotFoundException" in proc.stderr
    assert "GetFunction" in proc.stderr


def test_aws_cli_create_conflict(aws_cli, lam, tmp_path):
    name = unique_name("cli-dup")
    package = tmp_path / "function.zip"
    package.write_bytes(make_zip())
    args = ("lambda", "create-function", "--function-name", name, "--runtime", RUNTIME, "--role", ROLE,
            "--handler", HANDLER, "--zip-file", f"fileb://{package}")
    aws_cli(*args)
    proc = aws_cli(*args, check=False)
    assert proc.returncode == 255, (proc.returncode, proc.stderr)  # aws CLI v1: the service answered an error
    assert "ResourceConflictException" in proc.stderr
