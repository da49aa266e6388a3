"""Everything the control plane stores survives a graceful restart on the same data directory."""

from __future__ import annotations

import urllib.request

from conftest import create_function, make_zip, sha256_b64, unique_name

WAIT = {"Delay": 1, "MaxAttempts": 30}


def snapshot(lam, name: str, arn: str) -> dict:
    def strip(resp: dict) -> dict:
        resp = dict(resp)
        resp.pop("ResponseMetadata", None)
        return resp

    versions = lam.list_versions_by_function(FunctionName=name)["Versions"]
    return {
        "latest": strip(lam.get_function_configuration(FunctionName=name)),
        "v1": strip(lam.get_function_configuration(FunctionName=name, Qualifier="1")),
        "versions": versions,
        "aliases": lam.list_aliases(FunctionName=name)["Aliases"],
        "tags": lam.list_tags(Resource=arn)["Tags"],
        "concurrency": strip(lam.get_function_concurrency(FunctionName=name)),
        "count": lam.get_account_settings()["AccountUsage"]["FunctionCount"],
    }


def test_state_survives_restart(server_factory):
    srv = server_factory()
    lam = srv.client()
    name = unique_name("persist")
    code_v1 = make_zip({"app.py": "def handler(e, c):\n    return 1\n"})
    code_v2 = make_zip({"app.py": "def handler(e, c):\n    return 2\n"})
    arn = create_function(lam, name, code_v1, Tags={"team": "core"}, MemorySize=256,
                          Environment={"Variables": {"MODE": "persist"}})["FunctionArn"]
    assert lam.publish_version(FunctionName=name, Description="one")["Version"] == "1"
    lam.update_function_code(FunctionName=name, ZipFile=code_v2)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
    assert lam.publish_version(FunctionName=name)["Version"] == "2"
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="2",
                     RoutingConfig={"AdditionalVersionWeights": {"1": 0.25}})
    lam.tag_resource(Resource=arn, Tags={"env": "test"})
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)

    before = snapshot(lam, name, arn)
    assert before["latest"]["CodeSha256"] == sha256_b64(code_v2)
    assert before["v1"]["CodeSha256"] == sha256_b64(code_v1)
    assert [v["Version"] for v in before["versions"]] == ["$LATEST", "1", "2"]
    assert before["tags"] == {"team": "core", "env": "test"}
    assert before["concurrency"] == {"ReservedConcurrentExecutions": 3}

    exit_code = srv.restart()
    assert exit_code == 0, f"graceful shutdown should exit 0, got {exit_code}\n{srv.logs()}"

    lam = srv.client()
    after = snapshot(lam, name, arn)
    assert after == before

    got = lam.get_function(FunctionName=name, Qualifier="1")
    with urllib.request.urlopen(got["Code"]["Location"], timeout=30) as resp:
        assert resp.read() == code_v1
    alias = lam.get_alias(FunctionName=name, Name="live")
    assert alias["FunctionVersion"] == "2"
    assert alias["RoutingConfig"] == {"AdditionalVersionWeights": {"1": 0.25}}

    # Numbering continues after the restart.
    lam.update_function_configuration(FunctionName=name, Timeout=11)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
    assert lam.publish_version(FunctionName=name)["Version"] == "3"
