"""SigV4 edge cases against the real front door: what a replaying, forging or sloppy client
cannot get past (the security suite's signature part)."""

from __future__ import annotations

import datetime
from unittest import mock
from urllib.parse import quote

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest

from conftest import REGION, create_function, send_raw, unique_name


def _signed(server, method="GET", path="/2015-03-31/functions", *, region=REGION, service="lambda",
            when=None, headers=None, body=b""):
    req = AWSRequest(method=method, url=server.endpoint + path, data=body, headers=headers or {})
    if when is None:
        SigV4Auth(server.credentials(), service, region).add_auth(req)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            SigV4Auth(server.credentials(), service, region).add_auth(req)
    return req.prepare()


def _send(prepared, **override_headers):
    headers = dict(prepared.headers.items())
    headers.update(override_headers)
    return send_raw(prepared.method, prepared.url, prepared.body, headers)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def test_a_fresh_signature_passes(server):
    assert _send(_signed(server)).status == 200


@pytest.mark.parametrize("minutes", [-16, 16], ids=["past", "future"])
def test_replay_outside_the_skew_window_is_rejected(server, minutes):
    resp = _send(_signed(server, when=_now() + datetime.timedelta(minutes=minutes)))
    assert resp.status == 403 and resp.error_type == "InvalidSignatureException", resp
    assert b"Signature" in resp.body


def test_inside_the_skew_window_is_accepted(server):
    assert _send(_signed(server, when=_now() - datetime.timedelta(minutes=10))).status == 200


def test_wrong_region_in_scope_is_rejected(server):
    resp = _send(_signed(server, region="eu-west-1"))
    assert resp.status == 403 and resp.error_type == "InvalidSignatureException", resp


def test_wrong_service_in_scope_is_rejected(server):
    resp = _send(_signed(server, service="s3"))
    assert resp.status == 403 and resp.error_type == "InvalidSignatureException", resp


def test_scope_date_must_match_request_date(server):
    prepared = _signed(server)
    auth = prepared.headers["Authorization"]
    today = prepared.headers["X-Amz-Date"][:8]
    other = (datetime.datetime.strptime(today, "%Y%m%d") - datetime.timedelta(days=1)).strftime("%Y%m%d")
    resp = _send(prepared, Authorization=auth.replace(f"/{today}/", f"/{other}/"))
    assert resp.status in (400, 403), resp
    assert resp.error_type in ("InvalidSignatureException", "IncompleteSignatureException"), resp


def test_host_must_be_signed(server):
    prepared = _signed(server)
    auth = prepared.headers["Authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0]
    assert "host" in signed.split(";")
    without_host = ";".join(h for h in signed.split(";") if h != "host")
    resp = _send(prepared, Authorization=auth.replace(f"SignedHeaders={signed}", f"SignedHeaders={without_host}"))
    assert resp.status in (400, 403), resp
    assert resp.error_type in ("IncompleteSignatureException", "InvalidSignatureException"), resp


def test_x_amz_date_must_be_signed(server):
    prepared = _signed(server)
    auth = prepared.headers["Authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0]
    without_date = ";".join(h for h in signed.split(";") if h != "x-amz-date")
    resp = _send(prepared, Authorization=auth.replace(f"SignedHeaders={signed}", f"SignedHeaders={without_date}"))
    assert resp.status in (400, 403), resp
    assert resp.error_type in ("IncompleteSignatureException", "InvalidSignatureException"), resp


def test_changed_host_breaks_the_signature(server):
    resp = _send(_signed(server), Host=f"localhost:{server.port}")
    assert resp.status == 403 and resp.error_type == "InvalidSignatureException", resp


def test_one_changed_signature_character_is_rejected(server):
    prepared = _signed(server)
    auth = prepared.headers["Authorization"]
    last = auth[-1]
    flipped = auth[:-1] + ("0" if last != "0" else "1")
    resp = _send(prepared, Authorization=flipped)
    assert resp.status == 403 and resp.error_type == "InvalidSignatureException", resp


def test_lambda_arn_paths_are_double_encoded(server, lam):
    """botocore signs ARN paths (with ':') double-encoded; Updraft canonicalises the same way."""
    name = unique_name("arn")
    arn = create_function(lam, name)["FunctionArn"]
    prepared = _signed(server, path=f"/2015-03-31/functions/{quote(arn, safe='')}/configuration")
    resp = _send(prepared)
    assert resp.status == 200, resp
    assert resp.json()["FunctionArn"] == arn


@pytest.mark.parametrize("expires", [0, 604801])
def test_presign_expiry_outside_bounds_is_rejected(server, expires):
    req = AWSRequest(method="GET", url=server.endpoint + "/2015-03-31/functions")
    SigV4QueryAuth(server.credentials(), "lambda", REGION, expires=3600).add_auth(req)
    url = req.url.replace("X-Amz-Expires=3600", f"X-Amz-Expires={expires}")
    resp = send_raw("GET", url)
    assert resp.status in (400, 403), resp


def test_expired_presigned_url_is_rejected(server):
    req = AWSRequest(method="GET", url=server.endpoint + "/2015-03-31/functions")
    with mock.patch("botocore.auth.get_current_datetime", return_value=_now() - datetime.timedelta(minutes=5)):
        SigV4QueryAuth(server.credentials(), "lambda", REGION, expires=60).add_auth(req)
    resp = send_raw("GET", req.url)
    assert resp.status == 403 and resp.error_type == "InvalidSignatureException", resp
    assert b"expired" in resp.body.lower()
