"""Lambda layers: the layer API (botocore's shapes and errors), `Layers` on functions, and layer content under
`/opt` in the environment (Python site paths, Node.js `NODE_PATH`, a `provided.al2023` bootstrap from a layer),
with ordering, limits, permissions across accounts, deletion and hostile packages.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from botocore.credentials import Credentials

from conftest import (
    BIN,
    FUNCTIONS,
    REGION,
    ROLE,
    assert_error,
    create_function,
    invoke,
    invoke_ok,
    package_zip,
    sha256_b64,
    unique_name,
)

PY_APP = """
import greet

def handler(event, context):
    return {"greeting": greet.hello(event.get("name", "world")), "from": greet.__file__}
"""

ORDER_APP = """
import order, only_a

def handler(event, context):
    return {"value": order.VALUE, "only_a": only_a.A}
"""


def layer_zip(files: dict[str, str | bytes], executable: tuple[str, ...] = ("bootstrap",)) -> bytes:
    return package_zip(files, executable)


def publish(lam, files: dict[str, str | bytes], name: str | None = None, **kwargs) -> dict:
    name = name or unique_name("layer")
    return lam.publish_layer_version(LayerName=name, Content={"ZipFile": layer_zip(files)}, **kwargs)


def greet_layer(lam, **kwargs) -> dict:
    return publish(lam, {"python/greet/__init__.py": "def hello(n):\n    return f'hello {n} from a layer'\n"},
                   CompatibleRuntimes=["python3.12", "python3.11"], **kwargs)


# ---------------------------------------------------------------------------------------------- Python


def test_python_function_imports_a_library_only_a_layer_provides(lam, deploy):
    layer = greet_layer(lam, Description="greetings", LicenseInfo="MIT")
    arn = layer["LayerVersionArn"]
    assert arn == f"{layer['LayerArn']}:1" and layer["Version"] == 1
    assert layer["LayerArn"].startswith(f"arn:aws:lambda:{REGION}:") and ":layer:" in layer["LayerArn"]
    # Without the layer, the import fails as it would on Lambda.
    bare = deploy({"app.py": PY_APP})
    failed = invoke(lam, bare)
    assert failed.function_error == "Unhandled" and "greet" in failed.body.decode(), failed

    name = deploy({"app.py": PY_APP}, Layers=[arn])
    cfg = lam.get_function_configuration(FunctionName=name)
    assert cfg["Layers"] == [{"Arn": arn, "CodeSize": layer["Content"]["CodeSize"]}]
    out = invoke_ok(lam, name, {"name": "ada"})
    assert out == {"greeting": "hello ada from a layer",
                   "from": "/opt/python/greet/__init__.py"}, out


def test_layer_content_from_the_object_store(server, lam, deploy):
    from s3_helpers import bucket_name, s3_client

    s3 = s3_client(server)
    bucket = bucket_name("layers")
    s3.create_bucket(Bucket=bucket)
    zip_bytes = layer_zip({"python/greet/__init__.py": "def hello(n):\n    return f'hello {n} from a layer'\n"})
    s3.put_object(Bucket=bucket, Key="layers/greet.zip", Body=zip_bytes)
    layer = lam.publish_layer_version(LayerName=unique_name("s3layer"),
                                      Content={"S3Bucket": bucket, "S3Key": "layers/greet.zip"})
    assert layer["Content"]["CodeSha256"] == sha256_b64(zip_bytes), layer
    name = deploy({"app.py": PY_APP}, Layers=[layer["LayerVersionArn"]])
    assert invoke_ok(lam, name, {"name": "s3"})["greeting"] == "hello s3 from a layer"


def test_python_site_packages_path_and_opt_is_read_only(lam, deploy):
    import sys

    site = f"python/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"
    layer = publish(lam, {f"{site}/sitelib.py": "WHERE = 'site-packages'\n", "bin/hello-tool": "#!/bin/sh\necho tool\n",
                          "lib/libnote.txt": "x"})
    app = """
import os, subprocess, sys, sitelib

def handler(event, context):
    try:
        open("/opt/python/new.txt", "w")
        writable = True
    except OSError:
        writable = False
    return {
        "where": sitelib.WHERE,
        "path": sys.path[:3],
        "env": {k: os.environ.get(k) for k in ("PATH", "LD_LIBRARY_PATH", "PYTHONPATH")},
        "opt": sorted(os.listdir("/opt")),
        "writable": writable,
    }
"""
    name = deploy({"app.py": app}, Layers=[layer["LayerVersionArn"]])
    out = invoke_ok(lam, name)
    assert out["where"] == "site-packages"
    assert out["path"][0] == "/var/task"
    assert out["path"][1:3] == [f"/opt/{site}", "/opt/python"], out
    assert out["env"]["PATH"].split(":")[-1] == "/opt/bin", out
    assert out["env"]["LD_LIBRARY_PATH"].split(":")[-1] == "/opt/lib", out
    assert out["opt"] == ["bin", "lib", "python"]
    assert out["writable"] is False


# ---------------------------------------------------------------------------------------------- layer API


def test_layer_api_shapes_listing_and_version_numbers(lam, server):
    name = unique_name("api")
    zips = [layer_zip({"python/v.py": f"V = {i}\n"}) for i in range(3)]
    v1 = lam.publish_layer_version(LayerName=name, Content={"ZipFile": zips[0]}, CompatibleRuntimes=["python3.12"],
                                   CompatibleArchitectures=["x86_64"], Description="one", LicenseInfo="MIT")
    assert v1["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert v1["Content"]["CodeSha256"] == base64.b64encode(hashlib.sha256(zips[0]).digest()).decode()
    assert v1["Content"]["CodeSize"] == len(zips[0])
    assert v1["CompatibleRuntimes"] == ["python3.12"] and v1["CompatibleArchitectures"] == ["x86_64"]
    assert v1["Description"] == "one" and v1["LicenseInfo"] == "MIT" and v1["CreatedDate"]
    with urllib.request.urlopen(v1["Content"]["Location"], timeout=10) as r:
        assert r.read() == zips[0]
    v2 = lam.publish_layer_version(LayerName=v1["LayerArn"], Content={"ZipFile": zips[1]},
                                   CompatibleRuntimes=["nodejs20.x"], CompatibleArchitectures=["arm64"])
    assert v2["Version"] == 2 and v2["LayerArn"] == v1["LayerArn"]

    got = lam.get_layer_version(LayerName=name, VersionNumber=1)
    assert got["LayerVersionArn"] == v1["LayerVersionArn"] and got["Content"]["CodeSha256"] == v1["Content"]["CodeSha256"]
    by_arn = lam.get_layer_version_by_arn(Arn=v2["LayerVersionArn"])
    assert by_arn["Version"] == 2 and by_arn["CompatibleRuntimes"] == ["nodejs20.x"]

    versions = lam.list_layer_versions(LayerName=name)["LayerVersions"]
    assert [v["Version"] for v in versions] == [2, 1]
    assert versions[1]["LayerVersionArn"] == v1["LayerVersionArn"] and versions[1]["LicenseInfo"] == "MIT"
    assert [v["Version"] for v in lam.list_layer_versions(LayerName=name, CompatibleRuntime="python3.12")
            ["LayerVersions"]] == [1]
    assert [v["Version"] for v in lam.list_layer_versions(LayerName=name, CompatibleArchitecture="arm64")
            ["LayerVersions"]] == [2]
    page = lam.list_layer_versions(LayerName=name, MaxItems=1)
    assert [v["Version"] for v in page["LayerVersions"]] == [2] and page["NextMarker"]
    rest = lam.list_layer_versions(LayerName=name, MaxItems=1, Marker=page["NextMarker"])
    assert [v["Version"] for v in rest["LayerVersions"]] == [1] and "NextMarker" not in rest

    def listed(**kw):
        found = {}
        for p in lam.get_paginator("list_layers").paginate(PaginationConfig={"PageSize": 2}, **kw):
            for item in p["Layers"]:
                found[item["LayerName"]] = item
        return found

    everything = listed()
    assert everything[name]["LayerArn"] == v1["LayerArn"]
    assert everything[name]["LatestMatchingVersion"]["Version"] == 2
    assert listed(CompatibleRuntime="python3.12")[name]["LatestMatchingVersion"]["Version"] == 1
    assert name not in listed(CompatibleRuntime="java21")

    # Deleting is idempotent, the version is gone, and numbers are never reused.
    lam.delete_layer_version(LayerName=name, VersionNumber=2)
    lam.delete_layer_version(LayerName=name, VersionNumber=2)
    err = assert_error(pytest.raises(lam.exceptions.ResourceNotFoundException,
                                     lam.get_layer_version, LayerName=name, VersionNumber=2),
                       "ResourceNotFoundException", 404)
    assert err.response["Error"]["Message"] == "The resource you requested does not exist."
    v3 = lam.publish_layer_version(LayerName=name, Content={"ZipFile": zips[2]})
    assert v3["Version"] == 3
    assert [v["Version"] for v in lam.list_layer_versions(LayerName=name)["LayerVersions"]] == [3, 1]
    # Restarting loses nothing: checked in test_layers_survive_a_restart.


def test_layer_api_refuses_bad_input(lam, lam_raw):
    zip_ok = layer_zip({"python/x.py": "X = 1\n"})
    for bad_name in ("has space", "x" * 141):
        assert_error(pytest.raises(Exception, lam_raw.publish_layer_version, LayerName=bad_name,
                                   Content={"ZipFile": zip_ok}), "ValidationException", 400)
    assert_error(pytest.raises(Exception, lam_raw.publish_layer_version, LayerName=unique_name("bad"),
                               Content={"ZipFile": zip_ok}, CompatibleRuntimes=["cobol1"]),
                 {"InvalidParameterValueException", "ValidationException"}, 400)
    assert_error(pytest.raises(Exception, lam_raw.publish_layer_version, LayerName=unique_name("bad"),
                               Content={"ZipFile": zip_ok}, CompatibleArchitectures=["sparc"]),
                 "ValidationException", 400)
    err = assert_error(pytest.raises(Exception, lam_raw.publish_layer_version, LayerName=unique_name("s3"),
                                     Content={"S3Bucket": "b", "S3Key": "k"}), "InvalidParameterValueException", 400)
    # With S3Bucket/S3Key the package is read from this node's object store, as Lambda reads S3.
    assert "NoSuchBucket" in err.response["Error"]["Message"], err.response
    assert_error(pytest.raises(Exception, lam_raw.get_layer_version_by_arn,
                               Arn="arn:aws:lambda:us-east-1:123456789012:function:nope"), "ValidationException", 400)
    assert_error(pytest.raises(Exception, lam.get_layer_version, LayerName=unique_name("none"), VersionNumber=1),
                 "ResourceNotFoundException", 404)


HOSTILE = {
    "traversal": [("../escape.py", "x")],
    "absolute": [("/etc/evil", "x")],
    "backslash": [("..\\..\\evil", "x")],
}


def raw_zip(entries: list[tuple[str, str]], symlinks: list[tuple[str, str]] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, body in entries:
            zf.writestr(zipfile.ZipInfo(name), body)
        for name, target in symlinks:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (0o120777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def test_hostile_layer_zips_are_refused_and_nothing_is_stored(lam, server):
    def code_entries() -> set[str]:
        root = server.data_dir / "code"
        return {p.name for sub in ("zips", "trees") for p in (root / sub).iterdir()}

    before = code_entries()
    cases = [raw_zip(e) for e in HOSTILE.values()]
    cases.append(raw_zip([("python/ok.py", "x")], symlinks=[("python/link", "../../../etc/passwd")]))
    cases.append(b"this is not a zip at all")
    for body in cases:
        name = unique_name("hostile")
        err = assert_error(pytest.raises(lam.exceptions.InvalidParameterValueException, lam.publish_layer_version,
                                         LayerName=name, Content={"ZipFile": body}),
                           "InvalidParameterValueException", 400)
        assert "Could not unzip" in err.response["Error"]["Message"], err.response
        assert lam.list_layer_versions(LayerName=name)["LayerVersions"] == []
    assert code_entries() == before


# ---------------------------------------------------------------------------------------------- functions' Layers


def test_later_layers_override_earlier_ones(lam, deploy):
    a = publish(lam, {"python/order.py": "VALUE = 'a'\n", "python/only_a.py": "A = True\n"})
    b = publish(lam, {"python/order.py": "VALUE = 'b'\n", "python/only_a.py": "A = 'from b'\n"})
    c = publish(lam, {"python/order.py": "VALUE = 'c'\n"})
    ab = deploy({"app.py": ORDER_APP}, Layers=[a["LayerVersionArn"], b["LayerVersionArn"]])
    assert invoke_ok(lam, ab) == {"value": "b", "only_a": "from b"}
    ba = deploy({"app.py": ORDER_APP}, Layers=[b["LayerVersionArn"], a["LayerVersionArn"]])
    assert invoke_ok(lam, ba) == {"value": "a", "only_a": True}
    # Order is kept in the configuration, and an update replaces the list (and the environment).
    lam.update_function_configuration(FunctionName=ab, Layers=[a["LayerVersionArn"], c["LayerVersionArn"]])
    lam.get_waiter("function_updated_v2").wait(FunctionName=ab, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    cfg = lam.get_function_configuration(FunctionName=ab)
    assert [x["Arn"] for x in cfg["Layers"]] == [a["LayerVersionArn"], c["LayerVersionArn"]]
    assert invoke_ok(lam, ab) == {"value": "c", "only_a": True}
    # The function's own code wins over every layer: /var/task comes first.
    own = deploy({"app.py": ORDER_APP, "order.py": "VALUE = 'own'\n"}, Layers=[a["LayerVersionArn"]])
    assert invoke_ok(lam, own)["value"] == "own"
    # Removing every layer empties /opt.
    lam.update_function_configuration(FunctionName=ab, Layers=[])
    lam.get_waiter("function_updated_v2").wait(FunctionName=ab, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert "Layers" not in lam.get_function_configuration(FunctionName=ab)
    assert invoke(lam, ab).function_error == "Unhandled"


def test_published_versions_snapshot_their_layers(lam, deploy):
    a = publish(lam, {"python/order.py": "VALUE = 'a'\n", "python/only_a.py": "A = 1\n"})
    b = publish(lam, {"python/order.py": "VALUE = 'b'\n", "python/only_a.py": "A = 2\n"})
    name = deploy({"app.py": ORDER_APP}, Layers=[a["LayerVersionArn"]], Publish=True)
    lam.update_function_configuration(FunctionName=name, Layers=[b["LayerVersionArn"]])
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    v2 = lam.publish_version(FunctionName=name)["Version"]
    assert invoke_ok(lam, name, Qualifier="1")["value"] == "a"
    assert invoke_ok(lam, name, Qualifier=v2)["value"] == "b"
    assert [x["Arn"] for x in lam.get_function_configuration(FunctionName=name, Qualifier="1")["Layers"]] == \
        [a["LayerVersionArn"]]


def test_sixth_layer_duplicates_and_unknown_versions_are_refused(lam):
    arns = [greet_layer(lam)["LayerVersionArn"] for _ in range(6)]
    name = unique_name("six")
    err = assert_error(pytest.raises(lam.exceptions.InvalidParameterValueException, create_function, lam, name,
                                     Layers=arns), "InvalidParameterValueException", 400)
    assert "more than 5 layers" in err.response["Error"]["Message"]
    assert_error(pytest.raises(lam.exceptions.ResourceNotFoundException, lam.get_function, FunctionName=name),
                 "ResourceNotFoundException", 404)
    create_function(lam, name, Layers=arns[:5])
    assert len(lam.get_function_configuration(FunctionName=name)["Layers"]) == 5
    err = assert_error(pytest.raises(lam.exceptions.InvalidParameterValueException,
                                     lam.update_function_configuration, FunctionName=name, Layers=arns),
                       "InvalidParameterValueException", 400)
    same_layer_twice = [arns[0], arns[0][: arns[0].rindex(":")] + ":2"]
    assert_error(pytest.raises(lam.exceptions.InvalidParameterValueException,
                               lam.update_function_configuration, FunctionName=name, Layers=same_layer_twice),
                 "InvalidParameterValueException", 400)
    missing = arns[0][: arns[0].rindex(":")] + ":99"
    err = assert_error(pytest.raises(lam.exceptions.InvalidParameterValueException,
                                     lam.update_function_configuration, FunctionName=name, Layers=[missing]),
                       "InvalidParameterValueException", 400)
    assert err.response["Error"]["Message"] == f"Layer version {missing} does not exist."
    assert_error(pytest.raises(Exception, lam.update_function_configuration, FunctionName=name,
                               Layers=["arn:aws:lambda:us-east-1:123456789012:layer:x"]),
                 "ValidationException", 400)
    # Nothing refused changed the function.
    assert len(lam.get_function_configuration(FunctionName=name)["Layers"]) == 5
    lam.delete_function(FunctionName=name)


def test_incompatible_runtime_is_refused(lam):
    node_only = publish(lam, {"nodejs/node_modules/x/index.js": "module.exports = 1;\n"},
                        CompatibleRuntimes=["nodejs20.x"], CompatibleArchitectures=["x86_64"])
    name = unique_name("compat")
    err = assert_error(pytest.raises(lam.exceptions.InvalidParameterValueException, create_function, lam, name,
                                     Layers=[node_only["LayerVersionArn"]]), "InvalidParameterValueException", 400)
    assert "python3.12" in err.response["Error"]["Message"]
    arm = publish(lam, {"lib/x.so": "x"}, CompatibleArchitectures=["arm64"])
    assert_error(pytest.raises(lam.exceptions.InvalidParameterValueException, create_function, lam, name,
                               Layers=[arm["LayerVersionArn"]]), "InvalidParameterValueException", 400)
    # A layer that names no runtime suits every function.
    anything = publish(lam, {"python/anything.py": "A = 1\n"})
    create_function(lam, name, Layers=[anything["LayerVersionArn"]])
    lam.delete_function(FunctionName=name)


def zeros_zip(path: str, size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(path)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(size >> 20):
                f.write(chunk)
    return buf.getvalue()


def test_the_unzipped_limit_counts_function_and_layers(lam, deploy):
    limit = 262_144_000
    big = lam.publish_layer_version(LayerName=unique_name("big"),
                                    Content={"ZipFile": zeros_zip("data/zeros.bin", 130 << 20)})
    small_fn = deploy({"app.py": "def handler(e, c):\n    import os\n    return os.path.getsize('/opt/data/zeros.bin')\n"},
                      Layers=[big["LayerVersionArn"]])
    assert invoke_ok(lam, small_fn) == 130 << 20
    big_code = zeros_zip("blob.bin", 130 << 20)
    name = unique_name("toobig")
    err = assert_error(pytest.raises(lam.exceptions.InvalidParameterValueException, create_function, lam, name,
                                     zip_bytes=big_code, Layers=[big["LayerVersionArn"]]),
                       "InvalidParameterValueException", 400)
    msg = err.response["Error"]["Message"]
    assert f"maximum allowed size of {limit} bytes" in msg and str(2 * (130 << 20)) in msg, msg
    # The same code alone is within the limit, and adding the layer afterwards is refused too.
    create_function(lam, name, zip_bytes=big_code)
    assert_error(pytest.raises(lam.exceptions.InvalidParameterValueException, lam.update_function_configuration,
                               FunctionName=name, Layers=[big["LayerVersionArn"]]),
                 "InvalidParameterValueException", 400)
    # And so is growing the code of a function that has the layer.
    assert_error(pytest.raises(lam.exceptions.InvalidParameterValueException, lam.update_function_code,
                               FunctionName=small_fn, ZipFile=big_code), "InvalidParameterValueException", 400)
    lam.delete_function(FunctionName=name)


def test_a_deleted_layer_version_keeps_working_for_functions_using_it(lam, deploy):
    layer = greet_layer(lam)
    arn = layer["LayerVersionArn"]
    name = deploy({"app.py": PY_APP}, Layers=[arn])
    assert invoke_ok(lam, name)["greeting"] == "hello world from a layer"
    lam.delete_layer_version(LayerName=layer["LayerArn"], VersionNumber=1)
    # A new environment (the configuration changed) still gets the layer.
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"AFTER": "delete"}})
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert invoke_ok(lam, name, {"name": "again"})["greeting"] == "hello again from a layer"
    assert lam.get_function_configuration(FunctionName=name)["Layers"][0]["Arn"] == arn
    # Publishing a version keeps it too; a new function cannot add it any more.
    lam.publish_version(FunctionName=name)
    assert_error(pytest.raises(lam.exceptions.InvalidParameterValueException, create_function, lam,
                               unique_name("late"), Layers=[arn]), "InvalidParameterValueException", 400)


# ---------------------------------------------------------------------------------------------- Node.js, provided


def test_nodejs_function_requires_a_module_from_opt(lam, deploy):
    layer = publish(lam, {
        "nodejs/node_modules/shout/index.js": "module.exports = (s) => s.toUpperCase() + '!';\n",
        "nodejs/node20/node_modules/versioned/index.js": "module.exports = 'node20 path';\n",
    }, CompatibleRuntimes=["nodejs20.x"])
    app = """
const shout = require('shout');
const versioned = require('versioned');
exports.handler = async (event) => ({ said: shout(event.say), versioned, resolved: require.resolve('shout') });
"""
    name = deploy({"index.js": app}, handler="index.handler", runtime="nodejs20.x",
                  Layers=[layer["LayerVersionArn"]])
    out = invoke_ok(lam, name, {"say": "hi"})
    assert out == {"said": "HI!", "versioned": "node20 path",
                   "resolved": "/opt/nodejs/node_modules/shout/index.js"}, out


def test_provided_function_uses_a_bootstrap_from_a_layer(lam, deploy):
    runtime_layer = publish(lam, {"bootstrap": (FUNCTIONS / "shell" / "bootstrap").read_bytes()},
                            CompatibleRuntimes=["provided.al2023"])
    name = deploy({"README.txt": "the runtime comes from a layer\n"}, handler="unused", runtime="provided.al2023",
                  Layers=[runtime_layer["LayerVersionArn"]])
    out = invoke_ok(lam, name, {"n": 1})
    assert out["echo"] == {"n": 1}, out
    # The function's own bootstrap wins over the layer's.
    own = deploy({"bootstrap": "#!/bin/bash\nexec /opt/bootstrap\n"}, handler="unused", runtime="provided.al2023",
                 Layers=[runtime_layer["LayerVersionArn"]])
    assert invoke_ok(lam, own, {"n": 2})["echo"] == {"n": 2}


# ---------------------------------------------------------------------------------------------- permissions


def new_account(srv, name: str) -> dict:
    r = srv.signed_request("POST", "/updraft/admin/v1/accounts", json.dumps({"Name": name}).encode())
    assert r.status == 201, r
    d = r.json()
    d["lam"] = srv.client(access_key=d["AccessKeyId"], secret_key=d["SecretAccessKey"])
    return d


def test_layer_permissions_across_accounts(server_factory):
    srv = server_factory()
    owner = srv.client()
    b = new_account(srv, "team-b")
    c = new_account(srv, "team-c")
    layer = greet_layer(owner)
    arn, layer_arn = layer["LayerVersionArn"], layer["LayerArn"]

    # Another account can neither read nor use a private layer version.
    err = assert_error(pytest.raises(b["lam"].exceptions.ClientError, b["lam"].get_layer_version_by_arn, Arn=arn),
                       "AccessDeniedException", 403)
    assert "lambda:GetLayerVersion" in err.response["Error"]["Message"]
    fn_b = unique_name("xacct")
    assert_error(pytest.raises(b["lam"].exceptions.ClientError, create_function, b["lam"], fn_b,
                               zip_bytes=package_zip({"app.py": PY_APP}), Layers=[arn]),
                 "AccessDeniedException", 403)
    # Nor change its policy or delete it.
    assert_error(pytest.raises(b["lam"].exceptions.ClientError, b["lam"].add_layer_version_permission,
                               LayerName=layer_arn, VersionNumber=1, StatementId="me",
                               Action="lambda:GetLayerVersion", Principal=b["AccountId"]),
                 "AccessDeniedException", 403)

    # Granted to account B (as an IAM root ARN), B can use it; C still cannot.
    added = owner.add_layer_version_permission(LayerName=layer_arn.split(":")[-1], VersionNumber=1, StatementId="b",
                                               Action="lambda:GetLayerVersion",
                                               Principal=f"arn:aws:iam::{b['AccountId']}:root")
    assert added["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert json.loads(added["Statement"]) == {
        "Sid": "b", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{b['AccountId']}:root"},
        "Action": "lambda:GetLayerVersion", "Resource": arn,
    }
    assert b["lam"].get_layer_version_by_arn(Arn=arn)["Version"] == 1
    assert b["lam"].get_layer_version(LayerName=layer_arn, VersionNumber=1)["LayerVersionArn"] == arn
    create_function(b["lam"], fn_b, zip_bytes=package_zip({"app.py": PY_APP}), Layers=[arn])
    assert invoke_ok(b["lam"], fn_b)["greeting"] == "hello world from a layer"
    assert_error(pytest.raises(c["lam"].exceptions.ClientError, c["lam"].get_layer_version_by_arn, Arn=arn),
                 "AccessDeniedException", 403)

    # Conflicts, revisions, validation.
    assert_error(pytest.raises(owner.exceptions.ResourceConflictException, owner.add_layer_version_permission,
                               LayerName=layer_arn, VersionNumber=1, StatementId="b",
                               Action="lambda:GetLayerVersion", Principal="*"), "ResourceConflictException", 409)
    assert_error(pytest.raises(owner.exceptions.PreconditionFailedException, owner.add_layer_version_permission,
                               LayerName=layer_arn, VersionNumber=1, StatementId="p", RevisionId="stale",
                               Action="lambda:GetLayerVersion", Principal="*"), "PreconditionFailedException", 412)
    assert_error(pytest.raises(Exception, owner.add_layer_version_permission, LayerName=layer_arn, VersionNumber=1,
                               StatementId="bad", Action="lambda:InvokeFunction", Principal="*"),
                 "ValidationException", 400)
    assert_error(pytest.raises(owner.exceptions.ResourceNotFoundException, owner.add_layer_version_permission,
                               LayerName=layer_arn, VersionNumber=9, StatementId="x",
                               Action="lambda:GetLayerVersion", Principal="*"), "ResourceNotFoundException", 404)

    # An organization-wide grant is accepted and shown, but grants no account here (none is in an organization).
    rev = owner.get_layer_version_policy(LayerName=layer_arn, VersionNumber=1)["RevisionId"]
    org = owner.add_layer_version_permission(LayerName=layer_arn, VersionNumber=1, StatementId="org",
                                             Action="lambda:GetLayerVersion", Principal="*",
                                             OrganizationId="o-abcdefghij", RevisionId=rev)
    assert json.loads(org["Statement"])["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}
    assert_error(pytest.raises(c["lam"].exceptions.ClientError, c["lam"].get_layer_version_by_arn, Arn=arn),
                 "AccessDeniedException", 403)
    # Public: everyone.
    owner.add_layer_version_permission(LayerName=layer_arn, VersionNumber=1, StatementId="public",
                                       Action="lambda:GetLayerVersion", Principal="*")
    assert c["lam"].get_layer_version_by_arn(Arn=arn)["Version"] == 1
    policy = owner.get_layer_version_policy(LayerName=layer_arn, VersionNumber=1)
    doc = json.loads(policy["Policy"])
    assert doc["Version"] == "2012-10-17" and [s["Sid"] for s in doc["Statement"]] == ["b", "org", "public"]
    assert doc["Statement"][2]["Principal"] == "*"

    # Revoked: B's function keeps its copy, but no new function of B's can add the layer.
    owner.remove_layer_version_permission(LayerName=layer_arn, VersionNumber=1, StatementId="b",
                                          RevisionId=policy["RevisionId"])
    owner.remove_layer_version_permission(LayerName=layer_arn, VersionNumber=1, StatementId="public")
    assert_error(pytest.raises(owner.exceptions.ResourceNotFoundException, owner.remove_layer_version_permission,
                                LayerName=layer_arn, VersionNumber=1, StatementId="public"),
                 "ResourceNotFoundException", 404)
    assert_error(pytest.raises(b["lam"].exceptions.ClientError, create_function, b["lam"], unique_name("late"),
                               zip_bytes=package_zip({"app.py": PY_APP}), Layers=[arn]),
                 "AccessDeniedException", 403)
    assert invoke_ok(b["lam"], fn_b, {"name": "still"})["greeting"] == "hello still from a layer"
    owner.remove_layer_version_permission(LayerName=layer_arn, VersionNumber=1, StatementId="org")
    assert_error(pytest.raises(owner.exceptions.ResourceNotFoundException, owner.get_layer_version_policy,
                               LayerName=layer_arn, VersionNumber=1), "ResourceNotFoundException", 404)
    # Each account lists only its own layers.
    assert layer_arn in {x["LayerArn"] for x in owner.list_layers()["Layers"]}
    assert b["lam"].list_layers()["Layers"] == []


# ---------------------------------------------------------------------------------------------- storage


def stored(data_dir: Path, address: str) -> bool:
    code = data_dir / "code"
    return (code / "zips" / f"{address}.zip").exists() or (code / "trees" / address).exists()


def hex_of(code_sha256: str) -> str:
    return base64.b64decode(code_sha256).hex()


def test_layers_survive_a_restart_and_code_gc_keeps_what_functions_use(server_factory):
    srv = server_factory(extra_args=("--code-gc-interval", "1", "--code-gc-grace", "0"))
    lam = srv.client()
    used = greet_layer(lam)
    unused = publish(lam, {"python/unused.py": "U = 1\n"})
    name = unique_name("gc")
    create_function(lam, name, zip_bytes=package_zip({"app.py": PY_APP}), Layers=[used["LayerVersionArn"]])
    used_code, unused_code = hex_of(used["Content"]["CodeSha256"]), hex_of(unused["Content"]["CodeSha256"])
    opt_trees = list((srv.data_dir / "code" / "opt").iterdir())
    assert len(opt_trees) == 1, opt_trees

    lam.delete_layer_version(LayerName=used["LayerArn"], VersionNumber=1)
    lam.delete_layer_version(LayerName=unused["LayerArn"], VersionNumber=1)
    deadline = time.monotonic() + 60
    while stored(srv.data_dir, unused_code) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not stored(srv.data_dir, unused_code), "a deleted, unused layer package is collected"
    time.sleep(2.5)  # more passes: what the function uses stays
    assert stored(srv.data_dir, used_code) and opt_trees[0].is_dir()

    srv.restart()
    lam = srv.client()
    assert invoke_ok(lam, name, {"name": "restart"})["greeting"] == "hello restart from a layer"
    assert lam.get_function_configuration(FunctionName=name)["Layers"][0]["Arn"] == used["LayerVersionArn"]
    again = lam.publish_layer_version(LayerName=used["LayerArn"], Content={"ZipFile": layer_zip({"python/z.py": ""})})
    assert again["Version"] == 2, "numbers are not reused after a restart"

    lam.delete_function(FunctionName=name)
    deadline = time.monotonic() + 60
    while (stored(srv.data_dir, used_code) or opt_trees[0].exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not stored(srv.data_dir, used_code) and not opt_trees[0].exists()


# ---------------------------------------------------------------------------------------------- CLIs


def test_aws_cli_publish_layer_version(aws_cli, tmp_path, lam, deploy):
    z = tmp_path / "layer.zip"
    z.write_bytes(layer_zip({"python/greet/__init__.py": "def hello(n):\n    return f'cli {n}'\n"}))
    name = unique_name("cli")
    out = json.loads(aws_cli("lambda", "publish-layer-version", "--layer-name", name, "--zip-file", f"fileb://{z}",
                             "--compatible-runtimes", "python3.12", "python3.11", "--description", "from the cli")
                     .stdout)
    assert out["Version"] == 1 and out["CompatibleRuntimes"] == ["python3.12", "python3.11"]
    assert out["Description"] == "from the cli"
    listed = json.loads(aws_cli("lambda", "list-layer-versions", "--layer-name", name).stdout)
    assert [v["LayerVersionArn"] for v in listed["LayerVersions"]] == [out["LayerVersionArn"]]
    fn = deploy({"app.py": PY_APP}, Layers=[out["LayerVersionArn"]])
    assert invoke_ok(lam, fn, {"name": "x"})["greeting"] == "cli x"


def test_updraft_cli_layer_publish_and_deploy_with_layers(server, lam, tmp_path):
    layer_dir = tmp_path / "layer"
    (layer_dir / "python" / "greet").mkdir(parents=True)
    (layer_dir / "python" / "greet" / "__init__.py").write_text("def hello(n):\n    return f'updraft cli {n}'\n")
    (layer_dir / "bin").mkdir()
    (layer_dir / "bin" / "tool").write_text("#!/bin/sh\necho tool\n")
    (layer_dir / "bin" / "tool").chmod(0o755)
    fn_dir = tmp_path / "fn"
    fn_dir.mkdir()
    (fn_dir / "app.py").write_text(PY_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
    env.update(UPDRAFT_ENDPOINT=server.endpoint, UPDRAFT_ACCESS_KEY_ID=server.access_key,
               UPDRAFT_SECRET_ACCESS_KEY=server.secret_key)

    def cli(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, f"{args}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    layer = unique_name("clilayer")
    out = cli("layer", "publish", str(layer_dir), "--name", layer, "--runtime", "python3.12",
              "--runtime", "python3.11", "--description", "made by updraft")
    arn = re.search(r"arn:aws:lambda:\S+:layer:\S+", out.stdout).group(0)
    assert arn.endswith(f":layer:{layer}:1"), out.stdout
    got = lam.get_layer_version_by_arn(Arn=arn)
    assert got["CompatibleRuntimes"] == ["python3.12", "python3.11"] and got["Description"] == "made by updraft"
    with urllib.request.urlopen(got["Content"]["Location"], timeout=10) as r:
        names = zipfile.ZipFile(io.BytesIO(r.read())).namelist()
    assert sorted(n for n in names if not n.endswith("/")) == ["bin/tool", "python/greet/__init__.py"]

    second = cli("layer", "publish", str(layer_dir), "--name", layer).stdout
    assert f":layer:{layer}:2" in second
    name = unique_name("clifn")
    cli("deploy", str(fn_dir), "--name", name, "--runtime", "python3.12", "--handler", "app.handler",
        "--layer", arn, "--layer", publish(lam, {"python/extra.py": ""})["LayerVersionArn"])
    cfg = lam.get_function_configuration(FunctionName=name)
    assert [x["Arn"] for x in cfg["Layers"]][0] == arn and len(cfg["Layers"]) == 2
    assert invoke_ok(lam, name, {"name": "z"})["greeting"] == "updraft cli z"
    # Deploying again without --layer keeps the layers, as the code update alone does on Lambda.
    cli("deploy", str(fn_dir), "--name", name, "--runtime", "python3.12", "--handler", "app.handler")
    assert len(lam.get_function_configuration(FunctionName=name)["Layers"]) == 2
    cli("layer", "ls")
    assert layer in cli("layer", "ls").stdout
    lam.delete_function(FunctionName=name)


# ---------------------------------------------------------------------------------------------- pre-warming


def test_functions_with_layers_cold_start_from_prewarmed_environments(server_factory):
    """A pre-warmed environment is built before its function is known, with an empty /opt; the assignment that
    gives it to a function with layers mounts the layers there, so layered functions keep the pre-warm saving."""
    srv = server_factory(extra_args=("--prewarm", "1"))
    lam = srv.client()
    py_layer = greet_layer(lam)
    node_layer = publish(lam, {"nodejs/node_modules/shout/index.js": "module.exports = (s) => s + '!';\n"})
    runtime_layer = publish(lam, {"bootstrap": (FUNCTIONS / "shell" / "bootstrap").read_bytes()})
    py_app = PY_APP.replace('"from": greet.__file__', '"from": greet.__file__, "host": __import__("socket").gethostname()')
    node_app = ("const shout = require('shout');\n"
                "exports.handler = async (e) => ({ said: shout(e.say), host: require('os').hostname() });\n")
    functions = [
        (package_zip({"app.py": py_app}), "python3.12", "app.handler", py_layer, {"name": "pw"},
         lambda out: out["greeting"] == "hello pw from a layer"),
        (package_zip({"index.js": node_app}), "nodejs20.x", "index.handler", node_layer, {"say": "pw"},
         lambda out: out["said"] == "pw!"),
        (package_zip({"README.txt": "runtime in a layer\n"}), "provided.al2023", "x", runtime_layer, {"k": 1},
         lambda out: out["echo"] == {"k": 1}),
    ]

    def stats() -> dict:
        r = srv.signed_request("GET", "/updraft/admin/v1/engine/stats")
        assert r.status == 200, r
        return r.json()["PrewarmedEnvironments"]

    for code, runtime, handler, layer, event, ok in functions:
        name = unique_name("pwl")
        create_function(lam, name, code, Runtime=runtime, Handler=handler, Layers=[layer["LayerVersionArn"]])
        used = 0
        for i in range(4):
            lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"GEN": str(i)}})
            lam.get_waiter("function_updated_v2").wait(FunctionName=name,
                                                       WaiterConfig={"Delay": 1, "MaxAttempts": 30})
            deadline = time.monotonic() + 30
            while stats()["Ready"] < 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            before = stats()["Used"]
            out = invoke_ok(lam, name, event)
            assert ok(out), (runtime, out)
            used += stats()["Used"] - before
        assert used >= 1, f"{runtime}: no cold start with layers came from a pre-warmed environment"
