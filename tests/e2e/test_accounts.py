"""Accounts: the root account's admin API and CLI, isolation between accounts, and secrets at rest.

One private server serves the whole module (so its data directory can be inspected and it can be
restarted); accounts are created through `updraft account ... --format json` and through the signed
admin API, then each deploys with boto3 using its own keys.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import subprocess

import pytest
from botocore.credentials import Credentials

from conftest import (
    BIN,
    UpdraftServer,
    assert_error,
    create_function,
    invoke_ok,
    unique_name,
)

ADMIN = "/updraft/admin/v1/accounts"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = UpdraftServer(tmp_path_factory.mktemp("updraft-accounts"))
    s.start()
    yield s
    s.stop()


def cli(srv: UpdraftServer, *args: str, keys: tuple[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    ak, sk = keys or srv.keys()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPDRAFT_", "AWS_"))}
    env.update(UPDRAFT_ENDPOINT=srv.endpoint, UPDRAFT_ACCESS_KEY_ID=ak, UPDRAFT_SECRET_ACCESS_KEY=sk)
    proc = subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env, timeout=60)
    if check:
        assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def admin(srv: UpdraftServer, method: str, path: str = "", body: dict | None = None,
          keys: tuple[str, str] | None = None):
    creds = Credentials(*keys) if keys else None
    data = json.dumps(body).encode() if body is not None else None
    return srv.signed_request(method, ADMIN + path, data, credentials=creds)


def check_new_key(d: dict) -> None:
    assert re.fullmatch(r"[1-9][0-9]{11}", d["AccountId"]), d
    assert re.fullmatch(r"AKIA[A-Z2-7]{16}", d["AccessKeyId"]), d
    assert len(d["SecretAccessKey"]) == 40, d


def create_via_cli(srv: UpdraftServer, name: str) -> dict:
    out = cli(srv, "account", "create", "--name", name, "--format", "json").stdout
    assert out.count("\n") == 1, out
    d = json.loads(out)
    assert list(d) == ["AccountId", "AccessKeyId", "SecretAccessKey"], out
    assert out.strip() == json.dumps(d), out
    check_new_key(d)
    return d


def create_via_api(srv: UpdraftServer, name: str) -> dict:
    r = admin(srv, "POST", body={"Name": name})
    assert r.status == 201, r
    d = r.json()
    check_new_key(d)
    return d


def keys_of(d: dict) -> tuple[str, str]:
    return d["AccessKeyId"], d["SecretAccessKey"]


def lam_for(srv: UpdraftServer, keys: tuple[str, str]):
    return srv.client(access_key=keys[0], secret_key=keys[1])


@pytest.fixture(scope="module")
def two(srv):
    """Two accounts (one made by the CLI, one by the API), each with an invoked function."""
    a = create_via_cli(srv, "team-a")
    b = create_via_api(srv, "team-b")
    assert a["AccountId"] != b["AccountId"] != srv.keys()[0]
    for acct in (a, b):
        lam = lam_for(srv, keys_of(acct))
        acct["lam"] = lam
        acct["fn"] = unique_name("acct")
        resp = create_function(lam, acct["fn"])
        assert resp["FunctionArn"].split(":")[4] == acct["AccountId"]
        assert invoke_ok(lam, acct["fn"], {"from": acct["fn"]}) == {"from": acct["fn"]}
    return a, b


def test_accounts_are_listed_without_secrets(srv, two):
    a, b = two
    r = admin(srv, "GET")
    assert r.status == 200, r
    listed = {x["AccountId"]: x for x in r.json()["Accounts"]}
    assert listed[a["AccountId"]]["Name"] == "team-a"
    assert listed[b["AccountId"]]["Status"] == "Enabled"
    assert sum(1 for x in listed.values() if x["Root"]) == 1
    for acct in (a, b):
        assert acct["SecretAccessKey"] not in r.body.decode()
    out = cli(srv, "account", "ls").stdout
    assert a["AccountId"] in out and "team-b" in out and "(root)" in out
    keys = admin(srv, "GET", f"/{a['AccountId']}/keys")
    assert keys.status == 200, keys
    assert [k["AccessKeyId"] for k in keys.json()["AccessKeys"]] == [a["AccessKeyId"]]
    assert a["SecretAccessKey"] not in keys.body.decode()


def test_each_account_lists_only_its_own_functions(srv, two):
    a, b = two
    names_a = {f["FunctionName"] for f in a["lam"].list_functions()["Functions"]}
    names_b = {f["FunctionName"] for f in b["lam"].list_functions()["Functions"]}
    assert names_a == {a["fn"]} and names_b == {b["fn"]}
    root_names = {f["FunctionName"] for f in srv.client().list_functions()["Functions"]}
    assert a["fn"] not in root_names and b["fn"] not in root_names
    out = json.loads(cli(srv, "ls", "--json", keys=keys_of(b)).stdout)
    assert [f["FunctionName"] for f in out] == [b["fn"]]


def test_other_accounts_function_by_name_does_not_exist(srv, two):
    a, b = two
    lam = b["lam"]
    for call in (
        lambda: lam.get_function(FunctionName=a["fn"]),
        lambda: lam.get_function_configuration(FunctionName=a["fn"]),
        lambda: lam.invoke(FunctionName=a["fn"], Payload=b"{}"),
        lambda: lam.delete_function(FunctionName=a["fn"]),
    ):
        with pytest.raises(lam.exceptions.ResourceNotFoundException) as ei:
            call()
        assert_error(ei, "ResourceNotFoundException", 404)
    # Still there for its owner.
    assert a["lam"].get_function(FunctionName=a["fn"])["Configuration"]["FunctionName"] == a["fn"]


def test_other_accounts_function_by_arn_is_access_denied(srv, two):
    a, b = two
    arn = a["lam"].get_function(FunctionName=a["fn"])["Configuration"]["FunctionArn"]
    lam = b["lam"]
    for call in (
        lambda: lam.get_function(FunctionName=arn),
        lambda: lam.invoke(FunctionName=arn, Payload=b"{}"),
        lambda: lam.delete_function(FunctionName=arn),
    ):
        with pytest.raises(lam.exceptions.ClientError) as ei:
            call()
        assert_error(ei, "AccessDeniedException", 403)
    assert a["lam"].get_function(FunctionName=arn)["Configuration"]["FunctionArn"] == arn


def test_cross_account_invoke_needs_a_resource_policy(srv, two):
    a, b = two
    owner = a["lam"]
    fn = unique_name("shared")
    arn = create_function(owner, fn)["FunctionArn"]
    with pytest.raises(b["lam"].exceptions.ClientError) as ei:
        b["lam"].invoke(FunctionName=arn, Payload=b'{"x": 1}')
    assert_error(ei, "AccessDeniedException", 403)
    # A grant to a third party does not open the function to b.
    owner.add_permission(FunctionName=fn, StatementId="other", Action="lambda:InvokeFunction",
                         Principal="111122223333")
    with pytest.raises(b["lam"].exceptions.ClientError) as ei:
        b["lam"].invoke(FunctionName=arn, Payload=b"{}")
    assert_error(ei, "AccessDeniedException", 403)
    owner.add_permission(FunctionName=fn, StatementId="team-b", Action="lambda:InvokeFunction",
                         Principal=b["AccountId"])
    assert invoke_ok(b["lam"], arn, {"x": 1}) == {"x": 1}
    # The grant is for Invoke only: b still cannot read or delete the function.
    with pytest.raises(b["lam"].exceptions.ClientError) as ei:
        b["lam"].get_function(FunctionName=arn)
    assert_error(ei, "AccessDeniedException", 403)
    owner.remove_permission(FunctionName=fn, StatementId="team-b")
    with pytest.raises(b["lam"].exceptions.ClientError) as ei:
        b["lam"].invoke(FunctionName=arn, Payload=b"{}")
    assert_error(ei, "AccessDeniedException", 403)
    owner.delete_function(FunctionName=fn)


def test_logs_of_other_accounts_function_are_not_found(srv, two):
    a, b = two
    own = cli(srv, "logs", a["fn"], keys=keys_of(a)).stdout
    assert "START RequestId" in own, own
    other = cli(srv, "logs", a["fn"], keys=keys_of(b), check=False)
    assert other.returncode != 0
    assert "ResourceNotFoundException" in other.stderr, other.stderr
    assert "START" not in other.stdout
    r = srv.signed_request("GET", f"/updraft/v1/functions/{a['fn']}/logs", credentials=Credentials(*keys_of(b)))
    assert r.status == 404 and r.error_type == "ResourceNotFoundException", r


def test_non_root_keys_cannot_use_admin_api(srv, two):
    a, _ = two
    k = keys_of(a)
    for method, path, body in (
        ("GET", "", None),
        ("POST", "", {"Name": "sneaky"}),
        ("POST", f"/{a['AccountId']}/keys", None),
        ("GET", f"/{a['AccountId']}/keys", None),
        ("DELETE", f"/{a['AccountId']}/keys/{a['AccessKeyId']}", None),
        ("POST", f"/{a['AccountId']}/disable", None),
    ):
        r = admin(srv, method, path, body, keys=k)
        assert r.status == 403 and r.error_type == "AccessDeniedException", (method, path, r)
    proc = cli(srv, "account", "ls", keys=k, check=False)
    assert proc.returncode != 0 and "AccessDeniedException" in proc.stderr, proc.stderr
    # Nothing changed: the account still works and has one key.
    assert a["lam"].list_functions()["Functions"]
    assert len(admin(srv, "GET", f"/{a['AccountId']}/keys").json()["AccessKeys"]) == 1


def test_unsigned_admin_request_is_refused(srv):
    from conftest import send_raw
    r = send_raw("GET", srv.endpoint + ADMIN)
    assert r.status == 403, r


def test_admin_errors(srv):
    r = admin(srv, "POST", body={"Name": ""})
    assert r.status == 400 and r.error_type == "InvalidParameterValueException", r
    r = admin(srv, "POST", body={})
    assert r.status == 400 and r.error_type == "InvalidParameterValueException", r
    r = admin(srv, "POST", "/999999999999/keys")
    assert r.status == 404 and r.error_type == "ResourceNotFoundException", r
    root = next(x for x in admin(srv, "GET").json()["Accounts"] if x["Root"])
    r = admin(srv, "POST", f"/{root['AccountId']}/disable")
    assert r.status == 409 and r.error_type == "ResourceConflictException", r


def test_key_create_and_delete_take_effect_at_once(srv):
    d = create_via_api(srv, "keys")
    acct = d["AccountId"]
    out = cli(srv, "account", "key", "create", acct, "--format", "json").stdout
    second = json.loads(out)
    check_new_key(second)
    assert second["AccountId"] == acct and second["AccessKeyId"] != d["AccessKeyId"]
    assert lam_for(srv, keys_of(second)).list_functions()["Functions"] == []
    listed = cli(srv, "account", "key", "ls", acct).stdout
    assert d["AccessKeyId"] in listed and second["AccessKeyId"] in listed
    assert second["SecretAccessKey"] not in listed

    cli(srv, "account", "key", "rm", acct, d["AccessKeyId"])
    old = lam_for(srv, keys_of(d))
    with pytest.raises(old.exceptions.ClientError) as ei:
        old.list_functions()
    assert_error(ei, "UnrecognizedClientException", 403)
    # The other key of the account still works.
    assert lam_for(srv, keys_of(second)).list_functions()["Functions"] == []
    r = admin(srv, "DELETE", f"/{acct}/keys/{d['AccessKeyId']}")
    assert r.status == 404 and r.error_type == "ResourceNotFoundException", r


def test_disabled_account_keys_are_refused_and_functions_kept(srv):
    d = create_via_cli(srv, "to-disable")
    lam = lam_for(srv, keys_of(d))
    name = unique_name("dis")
    create_function(lam, name)
    extra = create_via_api_key(srv, d["AccountId"])

    out = cli(srv, "account", "disable", d["AccountId"]).stdout
    assert d["AccountId"] in out
    for keys in (keys_of(d), keys_of(extra)):
        c = lam_for(srv, keys)
        with pytest.raises(c.exceptions.ClientError) as ei:
            c.list_functions()
        assert_error(ei, "UnrecognizedClientException", 403)
        with pytest.raises(c.exceptions.ClientError) as ei:
            c.invoke(FunctionName=name, Payload=b"{}")
        assert_error(ei, "UnrecognizedClientException", 403)
    listed = {x["AccountId"]: x for x in admin(srv, "GET").json()["Accounts"]}
    assert listed[d["AccountId"]]["Status"] == "Disabled"
    r = admin(srv, "POST", f"/{d['AccountId']}/keys")
    assert r.status == 409 and r.error_type == "ResourceConflictException", r
    with sqlite3.connect(f"file:{srv.data_dir / 'updraft.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT name FROM functions WHERE account_id = ?", (d["AccountId"],)).fetchall()
    assert rows == [(name,)]


def create_via_api_key(srv: UpdraftServer, account_id: str) -> dict:
    r = admin(srv, "POST", f"/{account_id}/keys")
    assert r.status == 201, r
    return r.json()


def test_keys_survive_restart_and_secrets_are_sealed(srv, two):
    a, b = two
    master = srv.data_dir / "master.key"
    assert stat.S_IMODE(master.stat().st_mode) == 0o600
    assert srv.restart() == 0
    for acct in (a, b):
        lam = lam_for(srv, keys_of(acct))
        assert [f["FunctionName"] for f in lam.list_functions()["Functions"]] == [acct["fn"]]
        assert invoke_ok(lam, acct["fn"], {"again": 1}) == {"again": 1}
    # Stopped, so the WAL is checkpointed into updraft.db; check every database file anyway.
    assert srv.stop() == 0
    try:
        files = sorted(srv.data_dir.glob("updraft.db*"))
        assert srv.data_dir / "updraft.db" in files
        for f in files:
            data = f.read_bytes()
            for acct in (a, b):
                assert acct["SecretAccessKey"].encode() not in data, f
                assert acct["AccessKeyId"].encode() in data or f.name != "updraft.db", f
        assert master.read_bytes().strip() not in (srv.data_dir / "updraft.db").read_bytes()
    finally:
        srv.start()
    assert a["lam"].list_functions()["Functions"]
