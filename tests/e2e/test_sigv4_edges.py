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


class _ScopedOn(SigV4Auth):
    """Signs correctly, but with a credential scope (and signing key) for `scope_date` instead of the
    request's own date, so only the scope-date rule can tell the request apart from a good one."""

    def __init__(self, credentials, service, region, scope_date):
        super().__init__(credentials, service, region)
        self._scope_date = scope_date

    def credential_scope(self, request):
        return "/".join([self._scope_date, self._region_name, self._service_name, "aws4_request"])

    def scope(self, request):
        return f"{self.credentials.access_key}/{self.credential_scope(request)}"

    def signature(self, string_to_sign, request):
        key = self._sign(("AWS4" + self.credentials.secret_key).encode(), self._scope_date)
        key = self._sign(key, self._region_name)
        key = self._sign(key, self._service_name)
        key = self._sign(key, "aws4_request")
        return self._sign(key, string_to_sign, hex=True)


class _Without(SigV4Auth):
    """Signs correctly over every usual header except `dropped`, which is sent but not signed."""

    def __init__(self, credentials, service, region, dropped):
        super().__init__(credentials, service, region)
        self._dropped = dropped

    def headers_to_sign(self, request):
        headers = super().headers_to_sign(request)
        if self._dropped is not None:
            assert self._dropped in headers, (self._dropped, list(headers))
            del headers[self._dropped]
        return headers


def _sign_with(server, auth, when=None, headers=None):
    req = AWSRequest(method="GET", url=server.endpoint + "/2015-03-31/functions", data=b"",
                     headers=headers or {})
    with mock.patch("botocore.auth.get_current_datetime", return_value=when or _now()):
        auth.add_auth(req)
    return req.prepare()


def _error(resp):
    return resp.json().get("message") or resp.json().get("Message") or ""


def test_scope_date_must_match_request_date(server):
    when = _now()
    today = when.strftime("%Y%m%d")
    yesterday = (when - datetime.timedelta(days=1)).strftime("%Y%m%d")
    # The same signer with the matching date passes: the request differs from a good one only in
    # the scope date, and its signature is valid for the scope it names.
    good = _sign_with(server, _ScopedOn(server.credentials(), "lambda", REGION, today), when)
    assert _send(good).status == 200
    prepared = _sign_with(server, _ScopedOn(server.credentials(), "lambda", REGION, yesterday), when)
    assert prepared.headers["X-Amz-Date"].startswith(today)
    assert f"/{yesterday}/{REGION}/lambda/aws4_request" in prepared.headers["Authorization"]
    resp = _send(prepared)
    assert resp.status == 403 and resp.error_type == "InvalidSignatureException", resp
    assert _error(resp) == (
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
        f"'{yesterday}' != '{today}'."
    ), resp


def test_a_header_left_out_of_the_signature_is_otherwise_harmless(server):
    """Control for the two tests below: the signer that leaves a header out is accepted when that
    header is one that need not be signed, so leaving out host or x-amz-date is all they change."""
    prepared = _sign_with(server, _Without(server.credentials(), "lambda", REGION, "x-updraft-extra"),
                          headers={"X-Updraft-Extra": "1"})
    signed = prepared.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
    assert signed == "host;x-amz-date", signed
    assert _send(prepared).status == 200


def test_host_must_be_signed(server):
    prepared = _sign_with(server, _Without(server.credentials(), "lambda", REGION, "host"))
    signed = prepared.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
    assert signed == "x-amz-date", signed
    resp = _send(prepared)
    assert resp.status == 400 and resp.error_type == "IncompleteSignatureException", resp
    assert _error(resp) == "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.", resp


def test_x_amz_date_must_be_signed(server):
    prepared = _sign_with(server, _Without(server.credentials(), "lambda", REGION, "x-amz-date"))
    resp = _send(prepared)
    assert resp.status == 400 and resp.error_type == "IncompleteSignatureException", resp
    assert _error(resp) == "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.", resp


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


def test_presign_expiry_inside_bounds_is_accepted(server):
    """Control for the test below: the same presigner with a valid expiry passes."""
    for expires in (1, 604800):
        req = AWSRequest(method="GET", url=server.endpoint + "/2015-03-31/functions")
        SigV4QueryAuth(server.credentials(), "lambda", REGION, expires=expires).add_auth(req)
        assert send_raw("GET", req.url).status == 200, expires


@pytest.mark.parametrize("expires", [0, 604801])
def test_presign_expiry_outside_bounds_is_rejected(server, expires):
    # Signed with the out-of-bounds expiry itself, so the signature is valid and only the bounds
    # rule can reject the request.
    req = AWSRequest(method="GET", url=server.endpoint + "/2015-03-31/functions")
    SigV4QueryAuth(server.credentials(), "lambda", REGION, expires=expires).add_auth(req)
    assert f"X-Amz-Expires={expires}&" in req.url or req.url.endswith(f"X-Amz-Expires={expires}")
    resp = send_raw("GET", req.url)
    assert resp.status == 400 and resp.error_type == "IncompleteSignatureException", resp
    assert _error(resp) == (
        f"X-Amz-Expires must be a number of seconds from 1 to 604800 (one week), not '{expires}'."
    ), resp


def test_expired_presigned_url_is_rejected(server):
    req = AWSRequest(method="GET", url=server.endpoint + "/2015-03-31/functions")
    with mock.patch("botocore.auth.get_current_datetime", return_value=_now() - datetime.timedelta(minutes=5)):
        SigV4QueryAuth(server.credentials(), "lambda", REGION, expires=60).add_auth(req)
    resp = send_raw("GET", req.url)
    assert resp.status == 403 and resp.error_type == "InvalidSignatureException", resp
    assert b"expired" in resp.body.lower()
