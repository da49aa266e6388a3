"""SigV4 authentication at the front door, and root credentials generated on first start."""

from __future__ import annotations

import configparser
import datetime
import hashlib
import json
import re
import stat
from unittest import mock
from urllib.parse import quote

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest

from conftest import (
    ACCESS_KEY_ID,
    REGION,
    assert_error,
    create_function,
    send_raw,
    unique_name,
)


def test_health_needs_no_auth(server):
    resp = send_raw("GET", server.endpoint + "/health")
    assert resp.status == 200


def test_wrong_secret_is_invalid_signature(server, lam):
    bad = server.client(secret_key="not-the-secret-" + "0" * 25)
    with pytest.raises(bad.exceptions.ClientError) as ei:
        bad.list_functions()
    assert_error(ei, "InvalidSignatureException", 403)


def test_unknown_access_key_is_unrecognized_client(server):
    bad = server.client(access_key="AKIAUNKNOWNKEY000000")
    with pytest.raises(bad.exceptions.ClientError) as ei:
        bad.list_functions()
    assert_error(ei, "UnrecognizedClientException", 403)


def test_wrong_secret_cannot_create(server, lam):
    bad = server.client(secret_key="wrong-secret-" + "1" * 27)
    name = unique_name()
    with pytest.raises(bad.exceptions.ClientError) as ei:
        create_function(bad, name, wait=False)
    assert_error(ei, "InvalidSignatureException", 403)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)


def test_unsigned_request_is_rejected(server):
    resp = send_raw("GET", server.endpoint + "/2015-03-31/functions")
    assert resp.status == 403, resp
    assert resp.error_type == "MissingAuthenticationTokenException", resp
    payload = resp.json()
    message = payload.get("message") or payload.get("Message")
    assert message == "Missing Authentication Token", resp


def test_signature_dated_20_minutes_ago_is_rejected(server):
    past = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
    req = AWSRequest(method="GET", url=server.endpoint + "/2015-03-31/functions")
    with mock.patch("botocore.auth.get_current_datetime", return_value=past):
        SigV4Auth(server.credentials(), "lambda", REGION).add_auth(req)
    prepared = req.prepare()
    assert prepared.headers["X-Amz-Date"] == past.strftime("%Y%m%dT%H%M%SZ")
    resp = send_raw("GET", prepared.url, None, dict(prepared.headers.items()))
    assert resp.status == 403, resp
    assert resp.error_type == "InvalidSignatureException", resp

    # The same request signed now passes, so the date alone made the difference.
    fresh = server.signed_request("GET", "/2015-03-31/functions")
    assert fresh.status == 200, fresh


def test_presigned_get_function(server, lam):
    name = unique_name()
    create_function(lam, name, wait=False)
    req = AWSRequest(method="GET", url=f"{server.endpoint}/2015-03-31/functions/{name}")
    SigV4QueryAuth(server.credentials(), "lambda", REGION, expires=300).add_auth(req)
    assert "X-Amz-Signature=" in req.url
    resp = send_raw("GET", req.url)
    assert resp.status == 200, resp
    assert resp.json()["Configuration"]["FunctionName"] == name

    # Changing the signed URL breaks the signature.
    other = req.url.replace(f"/functions/{name}", f"/functions/{name}x")
    bad = send_raw("GET", other)
    assert bad.status == 403, bad
    assert bad.error_type == "InvalidSignatureException", bad


def _tag_request(server, arn: str, signed_body: bytes, sent_body: bytes, declare_hash: bool):
    headers = {"Content-Type": "application/json"}
    if declare_hash:
        headers["X-Amz-Content-SHA256"] = hashlib.sha256(signed_body).hexdigest()
    # Encoded as boto3 encodes it.
    return server.signed_request("POST", f"/2017-03-31/tags/{quote(arn, safe='')}", signed_body, headers=headers,
                                 body_to_send=sent_body)


@pytest.mark.parametrize("declare_hash", [False, True], ids=["body-hash-in-signature", "x-amz-content-sha256"])
def test_body_tampered_after_signing_is_rejected(server, lam, declare_hash):
    name = unique_name()
    arn = create_function(lam, name, wait=False)["FunctionArn"]
    signed = json.dumps({"Tags": {"stage": "one"}}).encode()
    tampered = json.dumps({"Tags": {"stage": "two"}}).encode()
    assert len(signed) == len(tampered)

    resp = _tag_request(server, arn, signed, tampered, declare_hash)
    assert resp.status == 403, resp
    assert lam.list_tags(Resource=arn)["Tags"] == {}

    # The untampered request is accepted.
    ok = _tag_request(server, arn, signed, signed, declare_hash)
    assert ok.status == 204, ok
    assert lam.list_tags(Resource=arn)["Tags"] == {"stage": "one"}


# ---------------------------------------------------------------------------------------------- generated keys

def test_credentials_generated_on_first_start(server_factory):
    srv = server_factory(with_credentials=False)
    path = srv.credentials_file()
    assert path.is_file(), f"{path} missing"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)

    cp = configparser.ConfigParser()
    cp.read(path)
    assert "default" in cp, path.read_text()
    key_id = cp["default"]["aws_access_key_id"]
    secret = cp["default"]["aws_secret_access_key"]
    assert re.fullmatch(r"[A-Z0-9]{16,128}", key_id), key_id
    assert len(secret) >= 30, "secret too short"
    assert key_id != ACCESS_KEY_ID

    output = srv.stdout() + srv.stderr()
    assert str(path) in output, f"server did not say where its credentials are:\n{output}"
    assert key_id in output, f"server did not say which key to use:\n{output}"

    lam = srv.client()
    assert isinstance(lam.list_functions()["Functions"], list)
    arn = create_function(lam, unique_name(), wait=False)["FunctionArn"]
    account = arn.split(":")[4]

    wrong = srv.client(secret_key=secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    with pytest.raises(wrong.exceptions.ClientError) as ei:
        wrong.list_functions()
    assert_error(ei, "InvalidSignatureException", 403)

    srv.restart()
    # The secret is printed once, when it is generated, not at every start.
    assert secret not in srv.output_of_start(2)
    cp2 = configparser.ConfigParser()
    cp2.read(path)
    assert cp2["default"]["aws_access_key_id"] == key_id
    assert cp2["default"]["aws_secret_access_key"] == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lam2 = srv.client()
    got = lam2.get_function_configuration(FunctionName=arn)
    assert got["FunctionArn"] == arn
    assert got["FunctionArn"].split(":")[4] == account
    new_arn = create_function(lam2, unique_name(), wait=False)["FunctionArn"]
    assert new_arn.split(":")[4] == account


def test_env_credentials_do_not_write_a_credentials_file(server):
    assert not server.credentials_file().exists()
