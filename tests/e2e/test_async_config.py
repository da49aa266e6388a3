"""Event invoke configurations (`Put/Get/Update/Delete/ListFunctionEventInvokeConfig(s)`) with boto3 and the aws CLI:
Lambda's shapes, defaults, merging, validation errors, and destinations that must be refused with nothing stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from async_helpers import RECORDER, WORKER, deploy
from conftest import REGION, UpdraftServer, assert_error, make_zip, unique_name


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = UpdraftServer(tmp_path_factory.mktemp("updraft-async-config"))
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client()


@pytest.fixture(scope="module")
def lam_raw(srv):
    return srv.client(validate=False)


def account_of(lam, name: str) -> str:
    return lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"].split(":")[4]


def test_put_get_update_list_delete(lam):
    name, arn = deploy(lam, WORKER, "crud")
    dest, dest_arn = deploy(lam, RECORDER, "crud-dest")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.get_function_event_invoke_config(FunctionName=name)
    err = assert_error(e, "ResourceNotFoundException", 404)
    assert err.response["Error"]["Message"] == f"The function {arn}:$LATEST doesn't have an EventInvokeConfig"

    put = lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1,
                                               DestinationConfig={"OnSuccess": {"Destination": dest_arn}})
    assert put["FunctionArn"] == f"{arn}:$LATEST"
    assert put["MaximumRetryAttempts"] == 1
    assert "MaximumEventAgeInSeconds" not in put
    assert put["DestinationConfig"] == {"OnSuccess": {"Destination": dest_arn}, "OnFailure": {}}
    assert put["LastModified"].year >= 2024

    got = lam.get_function_event_invoke_config(FunctionName=name)
    for k in ("FunctionArn", "MaximumRetryAttempts", "DestinationConfig"):
        assert got[k] == put[k], k

    # Update keeps what it does not name.
    upd = lam.update_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=3600)
    assert upd["MaximumRetryAttempts"] == 1 and upd["MaximumEventAgeInSeconds"] == 3600
    assert upd["DestinationConfig"]["OnSuccess"] == {"Destination": dest_arn}
    # Put replaces the whole configuration.
    again = lam.put_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=120)
    assert again["MaximumEventAgeInSeconds"] == 120
    assert "MaximumRetryAttempts" not in again
    assert again["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}

    # One per qualifier.
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    alias_cfg = lam.put_function_event_invoke_config(FunctionName=name, Qualifier="live", MaximumRetryAttempts=0)
    assert alias_cfg["FunctionArn"] == f"{arn}:live"
    listed = lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert sorted(c["FunctionArn"] for c in listed) == sorted([f"{arn}:$LATEST", f"{arn}:live"])
    page = lam.list_function_event_invoke_configs(FunctionName=name, MaxItems=1)
    assert len(page["FunctionEventInvokeConfigs"]) == 1 and page["NextMarker"]
    rest = lam.list_function_event_invoke_configs(FunctionName=name, Marker=page["NextMarker"])
    assert len(rest["FunctionEventInvokeConfigs"]) == 1 and "NextMarker" not in rest
    assert lam.get_function_event_invoke_config(FunctionName=f"{name}:live")["MaximumRetryAttempts"] == 0

    lam.delete_function_event_invoke_config(FunctionName=name, Qualifier="live")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.delete_function_event_invoke_config(FunctionName=name, Qualifier="live")
    assert_error(e, "ResourceNotFoundException", 404)
    lam.delete_function_event_invoke_config(FunctionName=name)
    assert lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"] == []


def test_update_of_a_missing_config_and_configs_of_missing_functions(lam):
    name, arn = deploy(lam, WORKER, "missing")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.update_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    err = assert_error(e, "ResourceNotFoundException", 404)
    assert err.response["Error"]["Message"] == f"The function {arn}:$LATEST doesn't have an EventInvokeConfig"
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.put_function_event_invoke_config(FunctionName=unique_name("nope"), MaximumRetryAttempts=1)
    assert_error(e, "ResourceNotFoundException", 404)
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.put_function_event_invoke_config(FunctionName=name, Qualifier="no-such-alias", MaximumRetryAttempts=1)
    assert_error(e, "ResourceNotFoundException", 404)


def test_deleting_the_function_deletes_its_configs(lam):
    name, _ = deploy(lam, WORKER, "gone")
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    lam.delete_function(FunctionName=name)
    deploy_again = lam.create_function(
        FunctionName=name, Runtime="python3.12", Role="arn:aws:iam::123456789012:role/r", Handler="app.handler",
        Code={"ZipFile": make_zip()})
    assert deploy_again["FunctionName"] == name
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName=name)


@pytest.mark.parametrize("params, field, constraint", [
    ({"MaximumRetryAttempts": 3}, "maximumRetryAttempts", "Member must have value less than or equal to 2"),
    ({"MaximumRetryAttempts": -1}, "maximumRetryAttempts", "Member must have value greater than or equal to 0"),
    ({"MaximumEventAgeInSeconds": 59}, "maximumEventAgeInSeconds",
     "Member must have value greater than or equal to 60"),
    ({"MaximumEventAgeInSeconds": 21601}, "maximumEventAgeInSeconds",
     "Member must have value less than or equal to 21600"),
])
def test_range_validation(lam, lam_raw, params, field, constraint):
    name, _ = deploy(lam, WORKER, "range")
    with pytest.raises(lam_raw.exceptions.ClientError) as e:
        lam_raw.put_function_event_invoke_config(FunctionName=name, **params)
    err = assert_error(e, "ValidationException", 400)
    value = list(params.values())[0]
    assert err.response["Error"]["Message"] == (
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName=name)


def test_a_config_must_set_something(lam):
    name, _ = deploy(lam, WORKER, "empty")
    for op in (lam.put_function_event_invoke_config, lam.update_function_event_invoke_config):
        with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
            op(FunctionName=name)
        err = assert_error(e, "InvalidParameterValueException", 400)
        assert err.response["Error"]["Message"] == (
            "You must specify at least one of error handling or destination setting.")


def test_malformed_destinations_are_refused_and_nothing_is_stored(srv, lam, lam_raw):
    name, arn = deploy(lam, WORKER, "dests")
    account = account_of(lam, name)
    missing = f"arn:aws:lambda:{REGION}:{account}:function:{unique_name('absent')}"
    cases = [
        # A function that does not exist.
        ({"OnSuccess": {"Destination": missing}}, "InvalidParameterValueException",
         f"The destination ARN {missing} is invalid."),
        # The function itself.
        ({"OnFailure": {"Destination": arn}}, "InvalidParameterValueException",
         "You can't specify the function as a destination for itself."),
        # A service Lambda does not deliver to.
        ({"OnSuccess": {"Destination": f"arn:aws:dynamodb:{REGION}:{account}:table/t"}},
         "InvalidParameterValueException",
         f"The provided destination config DestinationConfig(onSuccess=OnSuccess(destination=arn:aws:dynamodb:"
         f"{REGION}:{account}:table/t), onFailure=null) is invalid."),
        # Not an ARN at all.
        ({"OnFailure": {"Destination": "not-an-arn"}}, "ValidationException", None),
    ]
    for dest, code, message in cases:
        with pytest.raises(lam_raw.exceptions.ClientError) as e:
            lam_raw.put_function_event_invoke_config(FunctionName=name, DestinationConfig=dest)
        err = assert_error(e, code, 400)
        if message:
            assert err.response["Error"]["Message"] == message, dest
        with pytest.raises(lam.exceptions.ResourceNotFoundException):
            lam.get_function_event_invoke_config(FunctionName=name)
    # Queues, topics and event buses are accepted (as on Lambda, a queue need not exist yet: a delivery to a missing
    # one fails then, visibly).
    sqs = f"arn:aws:sqs:{REGION}:{account}:q"
    ok = lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnFailure": {"Destination": sqs}})
    assert ok["DestinationConfig"]["OnFailure"] == {"Destination": sqs}
    bus = f"arn:aws:events:{REGION}:{account}:event-bus/default"
    ok = lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": bus}})
    assert ok["DestinationConfig"]["OnSuccess"] == {"Destination": bus}


def test_another_accounts_function_needs_its_permission(srv, lam):
    r = srv.signed_request("POST", "/updraft/admin/v1/accounts", json.dumps({"Name": "dest-owner"}).encode())
    assert r.status == 201, r
    other = r.json()
    lam_other = srv.client(access_key=other["AccessKeyId"], secret_key=other["SecretAccessKey"])
    dest, dest_arn = deploy(lam_other, RECORDER, "xacct")
    name, _ = deploy(lam, WORKER, "xsrc")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": dest_arn}})
    err = assert_error(e, "InvalidParameterValueException", 400)
    assert err.response["Error"]["Message"] == f"The destination ARN {dest_arn} is invalid."
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName=name)
    # Once the destination's owner grants the caller's account, it is accepted.
    lam_other.add_permission(FunctionName=dest, StatementId="from-src", Action="lambda:InvokeFunction",
                             Principal=account_of(lam, name))
    ok = lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": dest_arn}})
    assert ok["DestinationConfig"]["OnSuccess"] == {"Destination": dest_arn}


def test_aws_cli_round_trip(srv, lam):
    name, arn = deploy(lam, WORKER, "awscli")
    ak, sk = srv.keys()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=ak, AWS_SECRET_ACCESS_KEY=sk, AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_MAX_ATTEMPTS="1", AWS_PAGER="")

    def aws(*args, check=True):
        proc = subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", srv.endpoint, "--region", REGION,
                               "--output", "json", "lambda", *args], capture_output=True, text=True, env=env,
                              timeout=60)
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    out = json.loads(aws("put-function-event-invoke-config", "--function-name", name,
                         "--maximum-retry-attempts", "0", "--maximum-event-age-in-seconds", "600").stdout)
    assert out["FunctionArn"] == f"{arn}:$LATEST" and out["MaximumEventAgeInSeconds"] == 600
    got = json.loads(aws("get-function-event-invoke-config", "--function-name", name).stdout)
    assert got["MaximumRetryAttempts"] == 0
    listed = json.loads(aws("list-function-event-invoke-configs", "--function-name", name).stdout)
    assert [c["FunctionArn"] for c in listed["FunctionEventInvokeConfigs"]] == [f"{arn}:$LATEST"]
    bad = aws("put-function-event-invoke-config", "--function-name", name, "--maximum-retry-attempts", "5",
              check=False)
    assert bad.returncode != 0 and "ValidationException" in bad.stderr, bad.stderr
    aws("delete-function-event-invoke-config", "--function-name", name)
    gone = aws("get-function-event-invoke-config", "--function-name", name, check=False)
    assert gone.returncode != 0 and "ResourceNotFoundException" in gone.stderr
    queued = json.loads(aws("invoke", "--function-name", name, "--invocation-type", "Event",
                            "--payload", '{"a": 1}', "/dev/null").stdout)
    assert queued["StatusCode"] == 202
