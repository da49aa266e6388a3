"""Control-plane hardening: numeric parameters far outside their ranges.

Every numeric parameter is sent at the edges an attacker would pick (negative, `i64::MAX`, past 64 bits) with
client-side validation off, so the server's own checks are what is tested. Each must be refused with a 400 and
change nothing; afterwards the server must keep answering both the control plane and Invoke (a panic while the
control plane's state was locked used to poison it until restart).

Error types follow the conftest convention: a value that breaks the model's `Min` is Lambda's
`ValidationException`; one that breaks a service limit (the account's concurrency) is
`InvalidParameterValueException`.
"""

from __future__ import annotations

import json

import pytest

from conftest import PARAM_ERRORS, assert_error, create_function, unique_name

I64_MAX = 2**63 - 1
# Values no 64-bit integer holds, and values that a 32-bit conversion would truncate into range.
PAST_I64 = [2**63, 2**64 + 5]
TRUNCATED_INTO_RANGE = [2**32 + 5, 2**32 + 128]


def _invoke_echo(lam, name: str) -> None:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps({"probe": name}).encode())
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp, resp
    assert json.loads(resp["Payload"].read()) == {"probe": name}


def _settings(lam) -> dict:
    return lam.get_account_settings()["AccountLimit"]


def test_reserved_concurrency_overflow_refused(lam, lam_raw):
    other = unique_name("other")
    name = unique_name()
    create_function(lam, other)
    create_function(lam, name)
    lam.put_function_concurrency(FunctionName=other, ReservedConcurrentExecutions=5)
    assert lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)[
        "ReservedConcurrentExecutions"
    ] == 3
    before = _settings(lam)
    limit = before["ConcurrentExecutions"]

    # i64::MAX + 5 overflowed the account check (a panic under the state lock in a debug build, a wrapped sum and
    # 4,294,967,295 stored by a release build); 2**32 + 5 truncated to 5 when narrowed to 32 bits; the account's
    # whole limit and one past it leave less than the 100 Lambda keeps unreserved.
    for value in [I64_MAX, I64_MAX - 4, *TRUNCATED_INTO_RANGE, limit, limit + 1]:
        with pytest.raises(lam_raw.exceptions.InvalidParameterValueException) as ei:
            lam_raw.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=value)
        err = assert_error(ei, "InvalidParameterValueException", 400)
        assert "UnreservedConcurrentExecution" in err.response["Error"]["Message"], value

    # Below the model's minimum of 0.
    for value in [-1, -(2**63)]:
        with pytest.raises(lam_raw.exceptions.ClientError) as ei:
            lam_raw.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=value)
        assert_error(ei, "ValidationException", 400)

    # Past any 64-bit integer: refused while the body is read.
    for value in PAST_I64:
        with pytest.raises(lam_raw.exceptions.ClientError) as ei:
            lam_raw.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=value)
        assert_error(ei, PARAM_ERRORS, 400)

    # Nothing changed, and the server still answers every kind of call.
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 3
    assert lam.get_function_concurrency(FunctionName=other)["ReservedConcurrentExecutions"] == 5
    assert lam.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 3}
    assert _settings(lam) == before
    _invoke_echo(lam, name)
    _invoke_echo(lam, other)
    lam.update_function_configuration(FunctionName=name, Description="still writable")
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    _invoke_echo(lam, name)

    lam.delete_function(FunctionName=name)
    lam.delete_function(FunctionName=other)
    assert _settings(lam)["UnreservedConcurrentExecutions"] == before["UnreservedConcurrentExecutions"] + 8


def test_provisioned_concurrency_out_of_range_refused(lam, lam_raw):
    name = unique_name()
    create_function(lam, name)
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    for value in [I64_MAX, *TRUNCATED_INTO_RANGE, _settings(lam)["ConcurrentExecutions"]]:
        with pytest.raises(lam_raw.exceptions.InvalidParameterValueException) as ei:
            lam_raw.put_provisioned_concurrency_config(
                FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=value
            )
        assert_error(ei, "InvalidParameterValueException", 400)
    for value in [0, -1, -(2**63)]:
        with pytest.raises(lam_raw.exceptions.ClientError) as ei:
            lam_raw.put_provisioned_concurrency_config(
                FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=value
            )
        assert_error(ei, "ValidationException", 400)
    for value in PAST_I64:
        with pytest.raises(lam_raw.exceptions.ClientError) as ei:
            lam_raw.put_provisioned_concurrency_config(
                FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=value
            )
        assert_error(ei, PARAM_ERRORS, 400)
    assert lam.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"] == []
    _invoke_echo(lam, name)
    lam.delete_function(FunctionName=name)


@pytest.mark.parametrize(
    "field,values",
    [
        ("MemorySize", [-(2**63), -1, 0, 127, 10_241, 2**32 + 128, I64_MAX, *PAST_I64]),
        ("Timeout", [-(2**63), -1, 0, 901, 2**32 + 3, I64_MAX, *PAST_I64]),
        ("EphemeralStorage", [-(2**63), -1, 511, 10_241, 2**32 + 512, I64_MAX, *PAST_I64]),
    ],
)
def test_function_sizes_out_of_range_refused(lam, lam_raw, field, values):
    name = unique_name()
    create_function(lam, name)
    before = lam.get_function_configuration(FunctionName=name)
    for value in values:
        arg = {"Size": value} if field == "EphemeralStorage" else value
        with pytest.raises(lam_raw.exceptions.ClientError) as ei:
            lam_raw.update_function_configuration(FunctionName=name, **{field: arg})
        assert_error(ei, PARAM_ERRORS, 400)
        with pytest.raises(lam_raw.exceptions.ClientError) as ei:
            create_function(lam_raw, unique_name("never"), wait=False, **{field: arg})
        assert_error(ei, PARAM_ERRORS, 400)
    after = lam.get_function_configuration(FunctionName=name)
    for key in ("MemorySize", "Timeout", "EphemeralStorage", "RevisionId", "LastModified"):
        assert after[key] == before[key], key
    _invoke_echo(lam, name)
    lam.delete_function(FunctionName=name)


def test_max_items_and_alias_weights_out_of_range_refused(lam, lam_raw):
    name = unique_name()
    create_function(lam, name)
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"VERSION": "2"}})
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert lam.publish_version(FunctionName=name)["Version"] == "2"
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")

    for value in [0, -1, 10_001, I64_MAX, *PAST_I64]:
        with pytest.raises(lam_raw.exceptions.ClientError) as ei:
            lam_raw.list_functions(MaxItems=value)
        assert_error(ei, PARAM_ERRORS, 400)
        with pytest.raises(lam_raw.exceptions.ClientError) as ei:
            lam_raw.list_versions_by_function(FunctionName=name, MaxItems=value)
        assert_error(ei, PARAM_ERRORS, 400)

    for weight in [-1e308, -0.5, 1.0000001, 1e308]:
        with pytest.raises(lam_raw.exceptions.ClientError) as ei:
            lam_raw.update_alias(
                FunctionName=name, Name="live", RoutingConfig={"AdditionalVersionWeights": {"2": weight}}
            )
        assert_error(ei, PARAM_ERRORS, 400)
    alias = lam.get_alias(FunctionName=name, Name="live")
    assert alias["FunctionVersion"] == "1"
    assert "RoutingConfig" not in alias or not alias["RoutingConfig"].get("AdditionalVersionWeights")

    # The server still answers: an invoke through the alias and a listing.
    resp = lam.invoke(FunctionName=name, Qualifier="live", Payload=b'{"ok": 1}')
    assert resp["StatusCode"] == 200 and json.loads(resp["Payload"].read()) == {"ok": 1}
    assert lam.list_functions(MaxItems=1)["Functions"]
    lam.delete_function(FunctionName=name)
