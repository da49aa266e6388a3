"""Lifecycle of functions, versions, aliases, tags and concurrency through boto3, as on AWS Lambda."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

from conftest import (
    HANDLER,
    ROLE,
    RUNTIME,
    account_of,
    assert_error,
    create_function,
    make_zip,
    sha256_b64,
    unique_name,
)

ARN_RE = re.compile(r"^arn:aws:lambda:us-east-1:(\d{12}):function:([A-Za-z0-9_-]+)$")
LAST_MODIFIED_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
WAIT = {"Delay": 1, "MaxAttempts": 30}


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200
        return resp.read()


def test_create_function_response_fields(lam):
    name = unique_name()
    code = make_zip()
    resp = lam.create_function(
        FunctionName=name, Runtime=RUNTIME, Role=ROLE, Handler=HANDLER, Code={"ZipFile": code},
        Description="first function",
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert UUID_RE.match(resp["ResponseMetadata"]["RequestId"]), resp["ResponseMetadata"]
    assert resp["FunctionName"] == name
    m = ARN_RE.match(resp["FunctionArn"])
    assert m, resp["FunctionArn"]
    assert m.group(2) == name
    assert resp["Runtime"] == RUNTIME
    assert resp["Role"] == ROLE
    assert resp["Handler"] == HANDLER
    assert resp["CodeSize"] == len(code)
    assert resp["CodeSha256"] == sha256_b64(code)
    assert resp["Description"] == "first function"
    assert resp["Timeout"] == 3
    assert resp["MemorySize"] == 128
    assert LAST_MODIFIED_RE.match(resp["LastModified"]), resp["LastModified"]
    assert resp["Version"] == "$LATEST"
    # As in AWS, CreateFunction answers before the function is ready.
    assert resp["State"] == "Pending", resp
    assert resp["StateReasonCode"] == "Creating", resp
    assert UUID_RE.match(resp["RevisionId"]), resp["RevisionId"]
    assert resp["PackageType"] == "Zip"
    assert resp["Architectures"] == ["x86_64"]
    assert resp["EphemeralStorage"] == {"Size": 512}
    assert resp["TracingConfig"] == {"Mode": "PassThrough"}
    assert resp["LoggingConfig"]["LogFormat"] == "Text"
    assert resp["LoggingConfig"]["LogGroup"] == f"/aws/lambda/{name}"

    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=WAIT)
    cfg = lam.get_function_configuration(FunctionName=name)
    assert cfg["State"] == "Active"
    assert cfg["LastUpdateStatus"] == "Successful"
    assert cfg["CodeSha256"] == resp["CodeSha256"]
    assert cfg["CodeSize"] == len(code)
    assert cfg["FunctionArn"] == resp["FunctionArn"]


def test_get_function_code_location_downloads_the_package(lam):
    name = unique_name()
    code = make_zip({"app.py": "def handler(e, c):\n    return {'n': 1}\n", "lib/util.py": "X = 1\n"})
    created = create_function(lam, name, code)
    got = lam.get_function(FunctionName=name)
    assert got["Configuration"]["FunctionName"] == name
    assert got["Configuration"]["FunctionArn"] == created["FunctionArn"]
    assert got["Configuration"]["CodeSha256"] == sha256_b64(code)
    assert got["Code"]["RepositoryType"] == "S3"
    location = got["Code"]["Location"]
    assert location.startswith("http"), location
    # The location is a time-limited URL that works without signing the request.
    assert download(location) == code

    # A forged signature does not open the package.
    head, sig = location.rsplit("X-Amz-Signature=", 1)
    forged = head + "X-Amz-Signature=" + ("0" if sig[0] != "0" else "1") + sig[1:]
    with pytest.raises(urllib.error.HTTPError) as ei:
        download(forged)
    assert ei.value.code == 403
    # Nor does the signature of one package open another.
    other = create_function(lam, zip_bytes=make_zip({"app.py": "def handler(e, c):\n    return 'other'\n"}))
    other_location = lam.get_function(FunctionName=other["FunctionName"])["Code"]["Location"]
    swapped = other_location.split("?", 1)[0] + "?" + location.split("?", 1)[1]
    with pytest.raises(urllib.error.HTTPError) as ei:
        download(swapped)
    assert ei.value.code == 403


def test_addressing_by_name_partial_arn_and_full_arn(lam):
    name = unique_name()
    created = create_function(lam, name)
    arn = created["FunctionArn"]
    partial = f"{account_of(arn)}:function:{name}"
    for ident in (name, partial, arn):
        cfg = lam.get_function_configuration(FunctionName=ident)
        assert cfg["FunctionName"] == name, ident
        assert cfg["FunctionArn"] == arn, ident
        latest = lam.get_function_configuration(FunctionName=ident, Qualifier="$LATEST")
        assert latest["Version"] == "$LATEST", ident
        assert latest["FunctionName"] == name, ident
        got = lam.get_function(FunctionName=ident)
        assert got["Configuration"]["FunctionName"] == name
    # A qualifier may also be part of the ARN.
    cfg = lam.get_function_configuration(FunctionName=f"{arn}:$LATEST")
    assert cfg["Version"] == "$LATEST"
    assert cfg["FunctionName"] == name


def test_list_functions_pagination(lam):
    prefix = unique_name("page")
    names = {f"{prefix}-{i}" for i in range(5)}
    for n in sorted(names):
        create_function(lam, n, wait=False)

    # Manual paging with Marker / NextMarker.
    seen: list[str] = []
    marker = None
    pages = 0
    while True:
        kwargs = {"MaxItems": 2}
        if marker:
            kwargs["Marker"] = marker
        page = lam.list_functions(**kwargs)
        pages += 1
        assert len(page["Functions"]) <= 2
        seen.extend(f["FunctionName"] for f in page["Functions"])
        marker = page.get("NextMarker")
        if not marker:
            break
        assert len(page["Functions"]) == 2, "a page before the last must be full"
        assert pages < 10000
    assert len(seen) == len(set(seen)), f"duplicates across pages: {seen}"
    assert names <= set(seen)
    assert pages >= 3

    # The paginator walks the same pages.
    paged = []
    for page in lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 2}):
        assert len(page["Functions"]) <= 2
        paged.extend(f["FunctionName"] for f in page["Functions"])
    assert names <= set(paged)
    assert len(paged) == len(set(paged))


def test_list_functions_all_versions(lam):
    name = unique_name()
    create_function(lam, name)
    v1 = lam.publish_version(FunctionName=name)
    assert v1["Version"] == "1"
    latest_only = [f for f in _all_functions(lam) if f["FunctionName"] == name]
    assert [f["Version"] for f in latest_only] == ["$LATEST"]
    every = [f for f in _all_functions(lam, FunctionVersion="ALL") if f["FunctionName"] == name]
    assert sorted(f["Version"] for f in every) == ["$LATEST", "1"]
    by_version = {f["Version"]: f for f in every}
    assert by_version["1"]["FunctionArn"] == v1["FunctionArn"]
    assert v1["FunctionArn"].endswith(f":function:{name}:1")


def _all_functions(lam, **kwargs) -> list[dict]:
    out = []
    for page in lam.get_paginator("list_functions").paginate(**kwargs):
        out.extend(page["Functions"])
    return out


def test_update_function_code_and_publish(lam):
    name = unique_name()
    created = create_function(lam, name)
    new_code = make_zip({"app.py": "def handler(e, c):\n    return 'v2'\n"})
    assert sha256_b64(new_code) != created["CodeSha256"]

    with pytest.raises(lam.exceptions.PreconditionFailedException) as ei:
        lam.update_function_code(FunctionName=name, ZipFile=new_code, RevisionId="00000000-0000-0000-0000-000000000000")
    assert_error(ei, "PreconditionFailedException", 412)
    assert lam.get_function_configuration(FunctionName=name)["CodeSha256"] == created["CodeSha256"]

    current = lam.get_function_configuration(FunctionName=name)["RevisionId"]
    updated = lam.update_function_code(FunctionName=name, ZipFile=new_code, Publish=True, RevisionId=current)
    assert updated["Version"] == "1"
    assert updated["CodeSha256"] == sha256_b64(new_code)
    assert updated["CodeSize"] == len(new_code)
    assert updated["FunctionArn"].endswith(f":function:{name}:1")
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
    latest = lam.get_function(FunctionName=name)
    assert latest["Configuration"]["CodeSha256"] == sha256_b64(new_code)
    assert latest["Configuration"]["LastUpdateStatus"] == "Successful"
    assert latest["Configuration"]["RevisionId"] != created["RevisionId"]
    assert download(latest["Code"]["Location"]) == new_code
    v1 = lam.get_function(FunctionName=name, Qualifier="1")
    assert v1["Configuration"]["Version"] == "1"
    assert download(v1["Code"]["Location"]) == new_code


def test_update_function_configuration(lam):
    name = unique_name()
    created = create_function(lam, name)
    resp = lam.update_function_configuration(
        FunctionName=name,
        Handler="main.entry",
        Runtime="python3.11",
        MemorySize=512,
        Timeout=30,
        Environment={"Variables": {"GREETING": "hello", "LEVEL": "3"}},
        Description="updated",
        EphemeralStorage={"Size": 1024},
        LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG", "SystemLogLevel": "WARN"},
    )
    assert resp["Handler"] == "main.entry"
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
    cfg = lam.get_function_configuration(FunctionName=name)
    assert cfg["Handler"] == "main.entry"
    assert cfg["Runtime"] == "python3.11"
    assert cfg["MemorySize"] == 512
    assert cfg["Timeout"] == 30
    assert cfg["Environment"] == {"Variables": {"GREETING": "hello", "LEVEL": "3"}}
    assert cfg["Description"] == "updated"
    assert cfg["EphemeralStorage"] == {"Size": 1024}
    assert cfg["LoggingConfig"]["LogFormat"] == "JSON"
    assert cfg["LoggingConfig"]["ApplicationLogLevel"] == "DEBUG"
    assert cfg["LoggingConfig"]["SystemLogLevel"] == "WARN"
    assert cfg["LoggingConfig"]["LogGroup"] == f"/aws/lambda/{name}"
    assert cfg["RevisionId"] != created["RevisionId"]
    assert cfg["CodeSha256"] == created["CodeSha256"]
    assert cfg["LastModified"] >= created["LastModified"]

    # Fields not mentioned in an update keep their values.
    lam.update_function_configuration(FunctionName=name, Timeout=5)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
    cfg2 = lam.get_function_configuration(FunctionName=name)
    assert cfg2["Timeout"] == 5
    assert cfg2["MemorySize"] == 512
    assert cfg2["Environment"] == {"Variables": {"GREETING": "hello", "LEVEL": "3"}}

    with pytest.raises(lam.exceptions.PreconditionFailedException) as ei:
        lam.update_function_configuration(FunctionName=name, Timeout=6, RevisionId=created["RevisionId"])
    assert_error(ei, "PreconditionFailedException", 412)
    assert lam.get_function_configuration(FunctionName=name)["Timeout"] == 5


def test_publish_version(lam):
    name = unique_name()
    created = create_function(lam, name, Description="d0")

    with pytest.raises(lam.exceptions.InvalidParameterValueException) as ei:
        lam.publish_version(FunctionName=name, CodeSha256=sha256_b64(b"something else"))
    assert_error(ei, "InvalidParameterValueException", 400)
    with pytest.raises(lam.exceptions.PreconditionFailedException) as ei:
        lam.publish_version(FunctionName=name, RevisionId="00000000-0000-0000-0000-000000000000")
    assert_error(ei, "PreconditionFailedException", 412)
    assert [v["Version"] for v in _versions(lam, name)] == ["$LATEST"]

    current = lam.get_function_configuration(FunctionName=name)["RevisionId"]
    v1 = lam.publish_version(FunctionName=name, Description="first", CodeSha256=created["CodeSha256"],
                             RevisionId=current)
    assert v1["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert v1["Version"] == "1"
    assert v1["Description"] == "first"
    assert v1["CodeSha256"] == created["CodeSha256"]
    assert v1["FunctionArn"] == f"{created['FunctionArn']}:1"
    lam.get_waiter("published_version_active").wait(FunctionName=name, Qualifier="1", WaiterConfig=WAIT)
    assert lam.get_function_configuration(FunctionName=name, Qualifier="1")["State"] == "Active"

    # Nothing changed since version 1: AWS hands back version 1 again instead of a new version.
    again = lam.publish_version(FunctionName=name)
    assert again["Version"] == "1"

    lam.update_function_configuration(FunctionName=name, Timeout=7)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
    v2 = lam.publish_version(FunctionName=name)
    assert v2["Version"] == "2"
    assert v2["Timeout"] == 7
    assert lam.get_function_configuration(FunctionName=name, Qualifier="1")["Timeout"] == 3

    versions = _versions(lam, name)
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]
    assert versions[1]["Description"] == "first"
    assert versions[2]["Timeout"] == 7


def _versions(lam, name: str) -> list[dict]:
    out = []
    for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=name):
        out.extend(page["Versions"])
    return out


def test_aliases(lam):
    name = unique_name()
    created = create_function(lam, name)
    arn = created["FunctionArn"]
    lam.publish_version(FunctionName=name)
    lam.update_function_configuration(FunctionName=name, Timeout=4)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
    assert lam.publish_version(FunctionName=name)["Version"] == "2"

    alias = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1", Description="prod")
    assert alias["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert alias["AliasArn"] == f"{arn}:live"
    assert alias["Name"] == "live"
    assert alias["FunctionVersion"] == "1"
    assert alias["Description"] == "prod"
    assert UUID_RE.match(alias["RevisionId"])

    with pytest.raises(lam.exceptions.ResourceConflictException) as ei:
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion="2")
    assert_error(ei, "ResourceConflictException", 409)
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as ei:
        lam.create_alias(FunctionName=name, Name="ghost", FunctionVersion="99")
    assert_error(ei, "ResourceNotFoundException", 404)

    got = lam.get_alias(FunctionName=name, Name="live")
    assert got["AliasArn"] == f"{arn}:live"
    assert got["FunctionVersion"] == "1"
    assert got["RevisionId"] == alias["RevisionId"]

    # The alias resolves to its version for GetFunction.
    via_alias = lam.get_function(FunctionName=name, Qualifier="live")
    assert via_alias["Configuration"]["Version"] == "1"
    via_alias_arn = lam.get_function_configuration(FunctionName=f"{arn}:live")
    assert via_alias_arn["Version"] == "1"

    lam.create_alias(FunctionName=name, Name="beta", FunctionVersion="$LATEST")
    listed = lam.list_aliases(FunctionName=name)["Aliases"]
    assert sorted(a["Name"] for a in listed) == ["beta", "live"]
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name, FunctionVersion="1")["Aliases"]] == ["live"]

    # Weighted routing: 30 % to version 1, the rest to version 2.
    updated = lam.update_alias(
        FunctionName=name, Name="live", FunctionVersion="2",
        RoutingConfig={"AdditionalVersionWeights": {"1": 0.3}}, RevisionId=got["RevisionId"],
    )
    assert updated["FunctionVersion"] == "2"
    assert updated["RoutingConfig"] == {"AdditionalVersionWeights": {"1": 0.3}}
    assert updated["RevisionId"] != got["RevisionId"]
    assert updated["Description"] == "prod"
    assert lam.get_alias(FunctionName=name, Name="live")["RoutingConfig"] == {"AdditionalVersionWeights": {"1": 0.3}}

    with pytest.raises(lam.exceptions.PreconditionFailedException) as ei:
        lam.update_alias(FunctionName=name, Name="live", Description="x", RevisionId=got["RevisionId"])
    assert_error(ei, "PreconditionFailedException", 412)

    # Deleting a version an alias points to is refused.
    with pytest.raises(lam.exceptions.ResourceConflictException) as ei:
        lam.delete_function(FunctionName=name, Qualifier="2")
    assert_error(ei, "ResourceConflictException", 409)
    assert lam.get_function_configuration(FunctionName=name, Qualifier="2")["Version"] == "2"

    delete = lam.delete_alias(FunctionName=name, Name="beta")
    assert delete["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as ei:
        lam.get_alias(FunctionName=name, Name="beta")
    assert_error(ei, "ResourceNotFoundException", 404)
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name)["Aliases"]] == ["live"]


def test_alias_invalid_routing(lam, lam_raw):
    name = unique_name()
    create_function(lam, name)
    lam.publish_version(FunctionName=name)
    lam.update_function_configuration(FunctionName=name, Timeout=4)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
    lam.publish_version(FunctionName=name)

    with pytest.raises(lam_raw.exceptions.ClientError) as ei:
        lam_raw.create_alias(FunctionName=name, Name="over", FunctionVersion="2",
                             RoutingConfig={"AdditionalVersionWeights": {"1": 1.5}})
    assert_error(ei, {"InvalidParameterValueException", "ValidationException"}, 400)

    with pytest.raises(lam.exceptions.InvalidParameterValueException) as ei:
        lam.create_alias(FunctionName=name, Name="self", FunctionVersion="1",
                         RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}})
    assert_error(ei, "InvalidParameterValueException", 400)

    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_alias(FunctionName=name, Name="over")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_alias(FunctionName=name, Name="self")


def test_tags(lam):
    name = unique_name()
    created = create_function(lam, name, Tags={"team": "core", "env": "test"})
    arn = created["FunctionArn"]
    assert lam.list_tags(Resource=arn)["Tags"] == {"team": "core", "env": "test"}
    assert lam.get_function(FunctionName=name)["Tags"] == {"team": "core", "env": "test"}

    resp = lam.tag_resource(Resource=arn, Tags={"env": "prod", "owner": "ops"})
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.list_tags(Resource=arn)["Tags"] == {"team": "core", "env": "prod", "owner": "ops"}

    resp = lam.untag_resource(Resource=arn, TagKeys=["team", "absent"])
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.list_tags(Resource=arn)["Tags"] == {"env": "prod", "owner": "ops"}

    missing = arn.replace(name, unique_name("missing"))
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as ei:
        lam.list_tags(Resource=missing)
    assert_error(ei, "ResourceNotFoundException", 404)


def test_function_concurrency(lam):
    name = unique_name()
    create_function(lam, name)
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)

    unreserved = lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    put = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=7)
    assert put["ReservedConcurrentExecutions"] == 7
    assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == unreserved - 7
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 7
    assert lam.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 7}

    # Lambda keeps at least 100 executions unreserved for the account.
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as ei:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=unreserved - 50)
    assert_error(ei, "InvalidParameterValueException", 400)
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 7

    deleted = lam.delete_function_concurrency(FunctionName=name)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    got = lam.get_function_concurrency(FunctionName=name)
    got.pop("ResponseMetadata")
    assert got == {}
    assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == unreserved


def test_account_settings(lam):
    before = lam.get_account_settings()
    limit = before["AccountLimit"]
    assert limit["ConcurrentExecutions"] == 1000
    assert limit["CodeSizeZipped"] == 52428800
    assert limit["CodeSizeUnzipped"] == 262144000
    assert limit["TotalCodeSize"] == 80530636800  # 75 GB, AWS's default quota
    names = [f["FunctionName"] for page in lam.get_paginator("list_functions").paginate()
             for f in page["Functions"]]
    reserved = 0
    for name in names:
        reserved += lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions", 0)
    assert limit["UnreservedConcurrentExecutions"] == limit["ConcurrentExecutions"] - reserved
    usage = before["AccountUsage"]
    assert usage["FunctionCount"] == len(names)

    code = make_zip({"app.py": "def handler(e, c):\n    return 'account'\n"})
    create_function(lam, zip_bytes=code, wait=False)
    after = lam.get_account_settings()["AccountUsage"]
    assert after["FunctionCount"] == usage["FunctionCount"] + 1
    assert after["TotalCodeSize"] == usage["TotalCodeSize"] + len(code)


def test_delete_version_then_function(lam):
    name = unique_name()
    created = create_function(lam, name)
    lam.publish_version(FunctionName=name)

    resp = lam.delete_function(FunctionName=name, Qualifier="1")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as ei:
        lam.get_function(FunctionName=name, Qualifier="1")
    assert_error(ei, "ResourceNotFoundException", 404)
    assert lam.get_function(FunctionName=name)["Configuration"]["CodeSha256"] == created["CodeSha256"]
    assert [v["Version"] for v in _versions(lam, name)] == ["$LATEST"]

    lam.delete_function(FunctionName=name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as ei:
        lam.get_function(FunctionName=name)
    assert_error(ei, "ResourceNotFoundException", 404)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.delete_function(FunctionName=name)
    assert name not in {f["FunctionName"] for f in _all_functions(lam)}


def test_create_with_publish(lam):
    name = unique_name()
    resp = lam.create_function(FunctionName=name, Runtime=RUNTIME, Role=ROLE, Handler=HANDLER,
                               Code={"ZipFile": make_zip()}, Publish=True)
    assert resp["Version"] == "1"
    assert resp["FunctionArn"].endswith(f":function:{name}:1")
    lam.get_waiter("published_version_active").wait(FunctionName=name, Qualifier="1", WaiterConfig=WAIT)
    assert [v["Version"] for v in _versions(lam, name)] == ["$LATEST", "1"]
