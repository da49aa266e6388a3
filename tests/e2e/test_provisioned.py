"""Provisioned concurrency, end to end: the four configuration operations as boto3 calls them, and
environments that are initialised ahead of the first invocation, across a restart too."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from conftest import (
    assert_error,
    create_function,
    invoke,
    make_zip,
    unique_name,
)

READY_WITHIN_S = 20
APP = make_zip({
    "app.py": (
        "import os\n"
        "def handler(event, context):\n"
        "    return {'init': os.environ.get('AWS_LAMBDA_INITIALIZATION_TYPE'),\n"
        "            'version': os.environ.get('AWS_LAMBDA_FUNCTION_VERSION')}\n"
    )
})


def published(lam) -> str:
    """A function with version 1 published; returns its name."""
    name = unique_name("prov")
    create_function(lam, name, APP)
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    return name


def wait_ready(lam, name: str, qualifier: str) -> dict:
    deadline = time.monotonic() + READY_WITHIN_S
    last = None
    while time.monotonic() < deadline:
        last = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        assert last["Status"] in ("IN_PROGRESS", "READY"), last
        if last["Status"] == "READY":
            return last
        time.sleep(0.2)
    raise AssertionError(f"not READY within {READY_WITHIN_S}s: {last}")


def test_version_config_lifecycle(lam):
    name = published(lam)
    try:
        put = lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2
        )
        assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert put["RequestedProvisionedConcurrentExecutions"] == 2
        assert put["Status"] in ("IN_PROGRESS", "READY")
        assert put["LastModified"]

        got = wait_ready(lam, name, "1")
        assert got["AllocatedProvisionedConcurrentExecutions"] == 2
        assert got["RequestedProvisionedConcurrentExecutions"] == 2
        assert got["AvailableProvisionedConcurrentExecutions"] == 2
        assert "StatusReason" not in got

        # The first invocation finds an environment that was initialised ahead of it.
        res = invoke(lam, name, Qualifier="1", LogType="Tail")
        assert res.status == 200 and res.function_error is None, res
        assert res.json() == {"init": "provisioned-concurrency", "version": "1"}
        assert res.executed_version == "1"
        assert "REPORT RequestId" in res.log, res.log
        assert "Init Duration" not in res.log, res.log
        # $LATEST is not provisioned.
        latest = invoke(lam, name, LogType="Tail")
        assert latest.json()["init"] == "on-demand", latest

        listed = lam.list_provisioned_concurrency_configs(FunctionName=name)
        items = listed["ProvisionedConcurrencyConfigs"]
        assert len(items) == 1
        assert items[0]["FunctionArn"].endswith(f":function:{name}:1")
        assert items[0]["RequestedProvisionedConcurrentExecutions"] == 2
        assert "NextMarker" not in listed

        deleted = lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
        assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
        with pytest.raises(ClientError) as e:
            lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
        assert_error(e, "ProvisionedConcurrencyConfigNotFoundException", 404)
        assert lam.list_provisioned_concurrency_configs(FunctionName=name)[
            "ProvisionedConcurrencyConfigs"] == []
    finally:
        lam.delete_function(FunctionName=name)


def test_alias_config_and_refusals(lam, lam_raw):
    name = published(lam)
    try:
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
        with pytest.raises(ClientError) as e:
            lam.put_provisioned_concurrency_config(
                FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1
            )
        assert_error(e, "InvalidParameterValueException", 400)
        with pytest.raises(ClientError) as e:
            lam.put_provisioned_concurrency_config(
                FunctionName=name, Qualifier="9", ProvisionedConcurrentExecutions=1
            )
        assert_error(e, "ResourceNotFoundException", 404)
        with pytest.raises(ClientError) as e:
            lam_raw.put_provisioned_concurrency_config(
                FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=0
            )
        assert_error(e, "ValidationException", 400)
        with pytest.raises(ClientError) as e:
            lam.put_provisioned_concurrency_config(
                FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=5000
            )
        assert_error(e, "InvalidParameterValueException", 400)
        with pytest.raises(ClientError) as e:
            lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
        assert_error(e, "ProvisionedConcurrencyConfigNotFoundException", 404)

        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1
        )
        # The alias and the version it points to cannot both have a configuration.
        with pytest.raises(ClientError) as e:
            lam.put_provisioned_concurrency_config(
                FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
            )
        assert_error(e, "ResourceConflictException", 409)
        wait_ready(lam, name, "live")
        res = invoke(lam, name, Qualifier="live", LogType="Tail")
        assert res.json()["init"] == "provisioned-concurrency", res
        assert "Init Duration" not in res.log, res.log
        items = lam.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
        assert [i["FunctionArn"].rsplit(":", 1)[1] for i in items] == ["live"]
    finally:
        lam.delete_function(FunctionName=name)


def test_configs_survive_a_restart(server_factory):
    srv = server_factory()
    lam = srv.client()
    name = published(lam)
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    wait_ready(lam, name, "1")
    assert srv.restart() == 0
    lam = srv.client()
    got = wait_ready(lam, name, "1")
    assert got["RequestedProvisionedConcurrentExecutions"] == 1
    res = invoke(lam, name, Qualifier="1", LogType="Tail")
    assert res.json()["init"] == "provisioned-concurrency", res
    assert "Init Duration" not in res.log, res.log
