"""Resource policies (AddPermission, GetPolicy, RemovePermission) and Function URL configuration CRUD."""

from __future__ import annotations

import json

import pytest

from conftest import assert_error, create_function, unique_name


@pytest.fixture
def fn(lam):
    name = unique_name("pol")
    create_function(lam, name)
    yield name
    lam.delete_function(FunctionName=name)


def test_add_get_remove_permission_shapes(lam, fn):
    arn = lam.get_function(FunctionName=fn)["Configuration"]["FunctionArn"]
    account = arn.split(":")[4]
    r = lam.add_permission(FunctionName=fn, StatementId="public", Action="lambda:InvokeFunctionUrl",
                           Principal="*", FunctionUrlAuthType="NONE")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert json.loads(r["Statement"]) == {
        "Sid": "public", "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunctionUrl",
        "Resource": arn, "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}},
    }
    s3 = json.loads(lam.add_permission(
        FunctionName=fn, StatementId="s3", Action="lambda:InvokeFunction", Principal="s3.amazonaws.com",
        SourceArn="arn:aws:s3:::my-bucket", SourceAccount=account)["Statement"])
    assert s3["Principal"] == {"Service": "s3.amazonaws.com"}
    assert s3["Condition"] == {"StringEquals": {"AWS:SourceAccount": account},
                               "ArnLike": {"AWS:SourceArn": "arn:aws:s3:::my-bucket"}}
    other = json.loads(lam.add_permission(FunctionName=fn, StatementId="acct", Action="lambda:*",
                                          Principal="210987654321")["Statement"])
    assert other["Principal"] == {"AWS": "arn:aws:iam::210987654321:root"} and "Condition" not in other
    got = lam.get_policy(FunctionName=fn)
    policy = json.loads(got["Policy"])
    assert policy["Version"] == "2012-10-17" and policy["Id"] == "default"
    assert [s["Sid"] for s in policy["Statement"]] == ["public", "s3", "acct"]
    assert got["RevisionId"]
    lam.remove_permission(FunctionName=fn, StatementId="s3", RevisionId=got["RevisionId"])
    assert [s["Sid"] for s in json.loads(lam.get_policy(FunctionName=fn)["Policy"])["Statement"]] == ["public", "acct"]
    lam.remove_permission(FunctionName=fn, StatementId="public")
    lam.remove_permission(FunctionName=fn, StatementId="acct")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.get_policy(FunctionName=fn)
    assert_error(e, "ResourceNotFoundException", 404)


def test_permission_errors(lam, lam_raw, fn):
    lam.add_permission(FunctionName=fn, StatementId="dup", Action="lambda:InvokeFunction", Principal="*")
    with pytest.raises(lam.exceptions.ResourceConflictException) as e:
        lam.add_permission(FunctionName=fn, StatementId="dup", Action="lambda:InvokeFunction", Principal="*")
    assert_error(e, "ResourceConflictException", 409)
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.remove_permission(FunctionName=fn, StatementId="missing")
    assert_error(e, "ResourceNotFoundException", 404)
    with pytest.raises(lam.exceptions.PreconditionFailedException) as e:
        lam.add_permission(FunctionName=fn, StatementId="rev", Action="lambda:InvokeFunction", Principal="*",
                           RevisionId="not-the-revision")
    assert_error(e, "PreconditionFailedException", 412)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.add_permission(FunctionName=fn, StatementId="latest", Action="lambda:InvokeFunction", Principal="*",
                           Qualifier="$LATEST")
    assert_error(e, "InvalidParameterValueException", 400)
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.add_permission(FunctionName=fn, StatementId="v9", Action="lambda:InvokeFunction", Principal="*",
                           Qualifier="9")
    assert_error(e, "ResourceNotFoundException", 404)
    with pytest.raises(Exception) as e:
        lam_raw.add_permission(FunctionName=fn, StatementId="bad sid", Action="lambda:InvokeFunction", Principal="*")
    assert_error(e, "ValidationException", 400)
    with pytest.raises(Exception) as e:
        lam_raw.add_permission(FunctionName=fn, StatementId="badp", Action="lambda:InvokeFunction", Principal="nobody")
    assert_error(e, "InvalidParameterValueException", 400)
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.add_permission(FunctionName=unique_name("none"), StatementId="x", Action="lambda:InvokeFunction",
                           Principal="*")
    assert_error(e, "ResourceNotFoundException", 404)


def test_qualified_policy(lam, fn):
    lam.publish_version(FunctionName=fn)
    r = json.loads(lam.add_permission(FunctionName=fn, StatementId="v1", Action="lambda:InvokeFunction",
                                      Principal="*", Qualifier="1")["Statement"])
    assert r["Resource"].endswith(f":function:{fn}:1")
    assert len(json.loads(lam.get_policy(FunctionName=fn, Qualifier="1")["Policy"])["Statement"]) == 1
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName=fn)


def test_url_config_crud(lam, fn, server):
    created = lam.create_function_url_config(FunctionName=fn, AuthType="AWS_IAM",
                                             Cors={"AllowOrigins": ["*"], "MaxAge": 10})
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["AuthType"] == "AWS_IAM" and created["InvokeMode"] == "BUFFERED"
    assert created["Cors"] == {"AllowOrigins": ["*"], "MaxAge": 10}
    assert created["FunctionArn"].endswith(f":function:{fn}")
    assert created["FunctionUrl"].endswith(f".lambda-url.us-east-1.localhost:{server.port}/")
    assert created["CreationTime"]
    got = lam.get_function_url_config(FunctionName=fn)
    assert got["FunctionUrl"] == created["FunctionUrl"] and got["LastModifiedTime"]
    with pytest.raises(lam.exceptions.ResourceConflictException) as e:
        lam.create_function_url_config(FunctionName=fn, AuthType="NONE")
    assert_error(e, "ResourceConflictException", 409)
    updated = lam.update_function_url_config(FunctionName=fn, AuthType="NONE", InvokeMode="RESPONSE_STREAM")
    assert updated["FunctionUrl"] == created["FunctionUrl"], "the URL never changes"
    assert updated["AuthType"] == "NONE" and updated["InvokeMode"] == "RESPONSE_STREAM"
    assert updated["Cors"] == {"AllowOrigins": ["*"], "MaxAge": 10}
    lam.delete_function_url_config(FunctionName=fn)
    for call in (lam.get_function_url_config, lam.delete_function_url_config):
        with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
            call(FunctionName=fn)
        assert_error(e, "ResourceNotFoundException", 404)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.update_function_url_config(FunctionName=fn, AuthType="NONE")


def test_url_config_errors(lam, lam_raw, fn):
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.create_function_url_config(FunctionName=fn, Qualifier="nosuchalias", AuthType="NONE")
    assert_error(e, "ResourceNotFoundException", 404)
    with pytest.raises(Exception) as e:
        lam_raw.create_function_url_config(FunctionName=fn, Qualifier="1", AuthType="NONE")
    assert_error(e, "ValidationException", 400)
    with pytest.raises(Exception) as e:
        lam_raw.create_function_url_config(FunctionName=fn, AuthType="OPEN")
    assert_error(e, "ValidationException", 400)
    with pytest.raises(Exception) as e:
        lam_raw.create_function_url_config(FunctionName=fn, AuthType="NONE", Cors={"MaxAge": 100000})
    assert_error(e, "ValidationException", 400)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.create_function_url_config(FunctionName=unique_name("none"), AuthType="NONE")


def test_list_url_configs_paginates(lam, fn):
    lam.publish_version(FunctionName=fn)
    aliases = [f"a{i}" for i in range(4)]
    for a in aliases:
        lam.create_alias(FunctionName=fn, Name=a, FunctionVersion="1")
        lam.create_function_url_config(FunctionName=fn, Qualifier=a, AuthType="NONE")
    lam.create_function_url_config(FunctionName=fn, AuthType="NONE")
    first = lam.list_function_url_configs(FunctionName=fn, MaxItems=2)
    assert len(first["FunctionUrlConfigs"]) == 2 and first["NextMarker"]
    pages = lam.get_paginator("list_function_url_configs").paginate(
        FunctionName=fn, PaginationConfig={"PageSize": 2})
    arns = [c["FunctionArn"] for p in pages for c in p["FunctionUrlConfigs"]]
    assert len(arns) == 5 and len(set(arns)) == 5
    assert sorted(a.rsplit(":", 1)[-1] for a in arns if a.count(":") == 7) == aliases
    urls = {c["FunctionUrl"] for p in lam.get_paginator("list_function_url_configs").paginate(FunctionName=fn)
            for c in p["FunctionUrlConfigs"]}
    assert len(urls) == 5
    # Deleting an alias deletes its URL.
    lam.delete_alias(FunctionName=fn, Name="a0")
    assert len(lam.list_function_url_configs(FunctionName=fn)["FunctionUrlConfigs"]) == 4


def test_policy_over_20_kb_is_refused(lam, fn):
    """Lambda limits a function's resource-based policy to 20 KB: the statement that would pass it is refused
    with PolicyLengthExceededException, and the policy stays as it was."""
    added = 0
    source = "arn:aws:s3:::" + "b" * 40
    with pytest.raises(lam.exceptions.PolicyLengthExceededException) as e:
        for i in range(200):
            lam.add_permission(FunctionName=fn, StatementId=f"s3-{i:03d}", Action="lambda:InvokeFunction",
                               Principal="s3.amazonaws.com", SourceArn=f"{source}{i}")
            added += 1
    err = assert_error(e, "PolicyLengthExceededException", 400)
    size = int(err.response["Error"]["Message"].split("(")[1].split(")")[0])
    assert size > 20480
    assert err.response["Error"]["Message"] == f"The final policy size ({size}) is bigger than the limit (20480)."
    policy = lam.get_policy(FunctionName=fn)["Policy"]
    assert len(json.loads(policy)["Statement"]) == added
    assert 20480 - 300 < len(policy) <= 20480
    # Room made by removing a statement can be used again.
    lam.remove_permission(FunctionName=fn, StatementId="s3-000")
    lam.add_permission(FunctionName=fn, StatementId="again", Action="lambda:InvokeFunction",
                       Principal="s3.amazonaws.com", SourceArn=f"{source}x")
