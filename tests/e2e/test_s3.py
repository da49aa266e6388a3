"""The object store through boto3: buckets, objects, listings, ranges, conditions, copies,
multipart uploads, versioning, tagging, checksums, presigned URLs, hostile keys, policies."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from s3_helpers import make_bucket, s3_client


@pytest.fixture(scope="module")
def s3(server):
    return s3_client(server)


def err(exc) -> tuple[str, int]:
    e = exc.value if hasattr(exc, "value") else exc
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def test_bucket_lifecycle(s3):
    name = make_bucket(s3)
    s3.head_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert err(e) == ("BucketAlreadyOwnedByYou", 409)
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert err(e) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert err(e)[1] == 404
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=name)
    assert err(e) == ("NoSuchBucket", 404)
    assert e.value.response["Error"]["BucketName"] == name
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="Bad_Name")
    assert err(e) == ("InvalidBucketName", 400)


def test_put_get_head_with_metadata(s3):
    b = make_bucket(s3)
    body = os.urandom(3000)
    put = s3.put_object(Bucket=b, Key="dir/file.bin", Body=body, ContentType="application/x-test",
                        ContentEncoding="identity", ContentDisposition='attachment; filename="f.bin"',
                        Metadata={"color": "blue", "Owner": "me"}, CacheControl="max-age=60")
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=b, Key="dir/file.bin")
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-test"
    assert got["ContentEncoding"] == "identity"
    assert got["ContentDisposition"] == 'attachment; filename="f.bin"'
    assert got["CacheControl"] == "max-age=60"
    assert got["Metadata"] == {"color": "blue", "owner": "me"}
    assert got["ContentLength"] == 3000
    head = s3.head_object(Bucket=b, Key="dir/file.bin")
    assert head["ETag"] == put["ETag"] and head["ContentLength"] == 3000
    over = s3.get_object(Bucket=b, Key="dir/file.bin", ResponseContentType="text/plain",
                         ResponseContentDisposition="inline")
    assert over["ContentType"] == "text/plain" and over["ContentDisposition"] == "inline"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=b, Key="nope")
    assert err(e) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=b, Key="nope")
    assert err(e)[1] == 404


def test_large_object_streams_both_ways(s3):
    b = make_bucket(s3)
    body = os.urandom(9 * 1024 * 1024 + 17)
    s3.put_object(Bucket=b, Key="big", Body=body)
    got = s3.get_object(Bucket=b, Key="big")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()


def test_ranges(s3):
    b = make_bucket(s3)
    body = bytes(range(256)) * 4
    s3.put_object(Bucket=b, Key="r", Body=body)
    r = s3.get_object(Bucket=b, Key="r", Range="bytes=10-19")
    assert r["Body"].read() == body[10:20]
    assert r["ContentRange"] == f"bytes 10-19/{len(body)}"
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert s3.get_object(Bucket=b, Key="r", Range="bytes=-5")["Body"].read() == body[-5:]
    assert s3.get_object(Bucket=b, Key="r", Range="bytes=1000-")["Body"].read() == body[1000:]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=b, Key="r", Range="bytes=5000-6000")
    assert err(e) == ("InvalidRange", 416)
    big = os.urandom(2 * 1024 * 1024)
    s3.put_object(Bucket=b, Key="big", Body=big)
    assert s3.get_object(Bucket=b, Key="big", Range="bytes=1000000-1999999")["Body"].read() == big[1000000:2000000]


def test_conditional_reads_and_writes(s3):
    b = make_bucket(s3)
    etag = s3.put_object(Bucket=b, Key="c", Body=b"v1")["ETag"]
    assert s3.get_object(Bucket=b, Key="c", IfMatch=etag)["Body"].read() == b"v1"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=b, Key="c", IfMatch='"0000"')
    assert err(e) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=b, Key="c", IfNoneMatch=etag)
    assert err(e)[1] == 304
    last = s3.head_object(Bucket=b, Key="c")["LastModified"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=b, Key="c", IfModifiedSince=last)
    assert err(e)[1] == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=b, Key="c", IfUnmodifiedSince=last.replace(year=2001))
    assert err(e) == ("PreconditionFailed", 412)
    # Conditional write: only if absent.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=b, Key="c", Body=b"v2", IfNoneMatch="*")
    assert err(e) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=b, Key="c")["Body"].read() == b"v1"
    s3.put_object(Bucket=b, Key="new", Body=b"n", IfNoneMatch="*")
    assert s3.get_object(Bucket=b, Key="new")["Body"].read() == b"n"


def test_listings_with_delimiter_pagination_and_url_encoding(s3):
    b = make_bucket(s3)
    keys = [f"logs/2024/{i:03}.txt" for i in range(7)] + ["logs/2025/a.txt", "readme", "a b+c", "docs/x"]
    for k in keys:
        s3.put_object(Bucket=b, Key=k, Body=k.encode())
    top = s3.list_objects_v2(Bucket=b, Delimiter="/")
    assert [c["Prefix"] for c in top["CommonPrefixes"]] == ["docs/", "logs/"]
    assert [o["Key"] for o in top["Contents"]] == ["a b+c", "readme"]
    assert top["KeyCount"] == 4
    sub = s3.list_objects_v2(Bucket=b, Prefix="logs/", Delimiter="/")
    assert [c["Prefix"] for c in sub["CommonPrefixes"]] == ["logs/2024/", "logs/2025/"]
    seen = []
    token = None
    pages = 0
    while True:
        kw = {"Bucket": b, "Prefix": "logs/", "MaxKeys": 3}
        if token:
            kw["ContinuationToken"] = token
        page = s3.list_objects_v2(**kw)
        pages += 1
        seen += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert pages == 3
    assert seen == sorted(k for k in keys if k.startswith("logs/"))
    after = s3.list_objects_v2(Bucket=b, StartAfter="logs/2024/005.txt", Prefix="logs/")
    assert [o["Key"] for o in after["Contents"]] == ["logs/2024/006.txt", "logs/2025/a.txt"]
    # The paginator (encoding-type=url under the hood) round-trips odd keys.
    all_keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=b, PaginationConfig={"PageSize": 2}) for o in p.get("Contents", [])]
    assert all_keys == sorted(keys)
    v1 = s3.list_objects(Bucket=b, Delimiter="/", MaxKeys=2)
    assert v1["IsTruncated"] and v1["NextMarker"]
    v1b = s3.list_objects(Bucket=b, Delimiter="/", Marker=v1["NextMarker"])
    assert len(v1.get("Contents", [])) + len(v1.get("CommonPrefixes", [])) + len(v1b.get("Contents", [])) + len(v1b.get("CommonPrefixes", [])) == 4
    assert v1b["Contents"][0]["Owner"]["DisplayName"]


def test_copy_and_metadata_directive(s3):
    b = make_bucket(s3)
    s3.put_object(Bucket=b, Key="src", Body=b"copy me", ContentType="text/plain", Metadata={"a": "1"})
    s3.copy_object(Bucket=b, Key="dst", CopySource={"Bucket": b, "Key": "src"})
    got = s3.get_object(Bucket=b, Key="dst")
    assert got["Body"].read() == b"copy me"
    assert got["Metadata"] == {"a": "1"} and got["ContentType"] == "text/plain"
    s3.copy_object(Bucket=b, Key="dst2", CopySource=f"{b}/src", MetadataDirective="REPLACE",
                   Metadata={"b": "2"}, ContentType="text/csv")
    got = s3.get_object(Bucket=b, Key="dst2")
    assert got["Metadata"] == {"b": "2"} and got["ContentType"] == "text/csv"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=b, Key="src", CopySource={"Bucket": b, "Key": "src"})
    assert err(e) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=b, Key="x", CopySource={"Bucket": b, "Key": "missing"})
    assert err(e) == ("NoSuchKey", 404)


def test_delete_objects(s3):
    b = make_bucket(s3)
    for k in ["a", "b", "c"]:
        s3.put_object(Bucket=b, Key=k, Body=b"1")
    r = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}, {"Key": "zz"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["a", "b", "zz"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=b)["Contents"]] == ["c"]


def test_multipart_upload_20mb_byte_for_byte(s3):
    b = make_bucket(s3)
    data = os.urandom(20 * 1024 * 1024 + 12345)
    part = 5 * 1024 * 1024
    up = s3.create_multipart_upload(Bucket=b, Key="mp/big.bin", ContentType="application/octet-stream")
    uid = up["UploadId"]
    assert uid in [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=b).get("Uploads", [])]
    parts = []
    for i, off in enumerate(range(0, len(data), part), start=1):
        r = s3.upload_part(Bucket=b, Key="mp/big.bin", UploadId=uid, PartNumber=i, Body=data[off:off + part])
        parts.append({"PartNumber": i, "ETag": r["ETag"]})
    listed = s3.list_parts(Bucket=b, Key="mp/big.bin", UploadId=uid)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3, 4, 5]
    done = s3.complete_multipart_upload(Bucket=b, Key="mp/big.bin", UploadId=uid, MultipartUpload={"Parts": parts})
    md5s = b"".join(hashlib.md5(data[o:o + part]).digest() for o in range(0, len(data), part))
    assert done["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-5"'
    got = s3.get_object(Bucket=b, Key="mp/big.bin")
    assert got["ContentLength"] == len(data)
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(data).digest()
    assert s3.list_multipart_uploads(Bucket=b).get("Uploads", []) == []


def test_multipart_refusals(s3):
    b = make_bucket(s3)
    uid = s3.create_multipart_upload(Bucket=b, Key="m")["UploadId"]
    e1 = s3.upload_part(Bucket=b, Key="m", UploadId=uid, PartNumber=1, Body=b"small")["ETag"]
    e2 = s3.upload_part(Bucket=b, Key="m", UploadId=uid, PartNumber=2, Body=b"last")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=b, Key="m", UploadId=uid, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert err(e) == ("EntityTooSmall", 400)
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=b, Key="m", UploadId=uid, MultipartUpload={"Parts": [
            {"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    assert err(e) == ("InvalidPartOrder", 400)
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=b, Key="m", UploadId=uid, MultipartUpload={"Parts": [
            {"PartNumber": 3, "ETag": e2}]})
    assert err(e) == ("InvalidPart", 400)
    # A single small part is a valid (last) part.
    s3.complete_multipart_upload(Bucket=b, Key="m", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 2, "ETag": e2}]})
    assert s3.get_object(Bucket=b, Key="m")["Body"].read() == b"last"
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=b, Key="m", UploadId=uid, PartNumber=3, Body=b"late")
    assert err(e) == ("NoSuchUpload", 404)
    uid2 = s3.create_multipart_upload(Bucket=b, Key="gone")["UploadId"]
    s3.abort_multipart_upload(Bucket=b, Key="gone", UploadId=uid2)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=b, Key="gone", UploadId=uid2)
    assert err(e) == ("NoSuchUpload", 404)


def test_upload_part_copy(s3):
    b = make_bucket(s3)
    src = os.urandom(6 * 1024 * 1024)
    s3.put_object(Bucket=b, Key="src", Body=src)
    uid = s3.create_multipart_upload(Bucket=b, Key="dst")["UploadId"]
    p1 = s3.upload_part_copy(Bucket=b, Key="dst", UploadId=uid, PartNumber=1, CopySource={"Bucket": b, "Key": "src"},
                             CopySourceRange=f"bytes=0-{5 * 1024 * 1024 - 1}")
    p2 = s3.upload_part_copy(Bucket=b, Key="dst", UploadId=uid, PartNumber=2, CopySource={"Bucket": b, "Key": "src"},
                             CopySourceRange=f"bytes={5 * 1024 * 1024}-{len(src) - 1}")
    s3.complete_multipart_upload(Bucket=b, Key="dst", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=b, Key="dst")["Body"].read() == src


def test_versioning(s3):
    b = make_bucket(s3)
    assert "Status" not in s3.get_bucket_versioning(Bucket=b)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"two"
    assert s3.get_object(Bucket=b, Key="k", VersionId=v1)["Body"].read() == b"one"
    assert s3.head_object(Bucket=b, Key="k", VersionId=v1)["VersionId"] == v1
    d = s3.delete_object(Bucket=b, Key="k")
    assert d["DeleteMarker"] is True
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=b, Key="k")
    assert err(e) == ("NoSuchKey", 404)
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    vs = s3.list_object_versions(Bucket=b)
    assert [v["VersionId"] for v in vs["Versions"]] == [v2, v1]
    assert vs["DeleteMarkers"][0]["IsLatest"] is True
    assert s3.list_objects_v2(Bucket=b)["KeyCount"] == 0
    # Removing the marker brings back the latest version.
    s3.delete_object(Bucket=b, Key="k", VersionId=d["VersionId"])
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"two"
    s3.delete_object(Bucket=b, Key="k", VersionId=v2)
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"one"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=b, Key="k", VersionId="doesnotexist")
    assert err(e)[1] in (400, 404)


def test_tagging(s3):
    b = make_bucket(s3)
    s3.put_object(Bucket=b, Key="t", Body=b"x", Tagging="env=prod&team=data")
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=b, Key="t")["TagSet"]}
    assert tags == {"env": "prod", "team": "data"}
    assert s3.get_object(Bucket=b, Key="t")["TagCount"] == 2
    s3.put_object_tagging(Bucket=b, Key="t", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    assert s3.get_object_tagging(Bucket=b, Key="t")["TagSet"] == [{"Key": "k", "Value": "v"}]
    s3.delete_object_tagging(Bucket=b, Key="t")
    assert s3.get_object_tagging(Bucket=b, Key="t")["TagSet"] == []


def test_checksums_are_verified(s3, server):
    b = make_bucket(s3)
    for alg in ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]:
        try:
            r = s3.put_object(Bucket=b, Key=f"c-{alg}", Body=b"checked body", ChecksumAlgorithm=alg)
        except Exception as e:  # CRC32C/CRC64NVME need awscrt in botocore
            if "awscrt" in str(e) or "MissingDependency" in type(e).__name__:
                continue
            raise
        assert r[f"Checksum{alg}"]
        got = s3.get_object(Bucket=b, Key=f"c-{alg}", ChecksumMode="ENABLED")
        assert got["Body"].read() == b"checked body"
        assert got[f"Checksum{alg}"] == r[f"Checksum{alg}"]
    # A checksum that does not match the body is refused and nothing is stored.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=b, Key="bad", Body=b"some body", ChecksumSHA256="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    assert err(e) == ("BadDigest", 400)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=b, Key="bad", Body=b"some body", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")
    assert err(e) == ("BadDigest", 400)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=b, Key="bad")
    assert err(e)[1] == 404


def test_aws_chunked_trailer_upload(server, s3):
    """STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC32 trailer, as SDKs send over TLS; and a
    trailer that does not match."""
    import base64
    import zlib

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest

    from conftest import send_raw

    b = make_bucket(s3)
    payload = os.urandom(70000)
    crc = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()

    def send(trailer_value: str, key: str):
        chunks = b""
        for off in range(0, len(payload), 65536):
            piece = payload[off:off + 65536]
            chunks += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        body = chunks + b"0\r\n" + f"x-amz-checksum-crc32:{trailer_value}\r\n\r\n".encode()
        headers = {
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "content-encoding": "aws-chunked",
            "x-amz-trailer": "x-amz-checksum-crc32",
            "x-amz-decoded-content-length": str(len(payload)),
            "content-length": str(len(body)),
        }
        class TrailerAuth(S3SigV4Auth):
            def payload(self, request):
                return "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

        req = AWSRequest(method="PUT", url=f"{server.endpoint}/{b}/{key}", data=body, headers=headers)
        TrailerAuth(server.credentials(), "s3", "us-east-1").add_auth(req)
        p = req.prepare()
        return send_raw("PUT", p.url, body, dict(p.headers.items()))

    ok = send(crc, "chunked")
    assert ok.status == 200, ok.body
    assert s3.get_object(Bucket=b, Key="chunked")["Body"].read() == payload
    bad = send("AAAAAA==", "chunked-bad")
    assert bad.status == 400 and b"<Code>BadDigest</Code>" in bad.body, bad
    with pytest.raises(ClientError):
        s3.head_object(Bucket=b, Key="chunked-bad")


def test_presigned_urls_with_curl(s3):
    b = make_bucket(s3)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "pre/sig ned"}, ExpiresIn=300)
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data-binary",
                        "presigned body", put_url], capture_output=True, text=True, timeout=30)
    assert r.stdout == "200", r
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "pre/sig ned"}, ExpiresIn=300)
    r = subprocess.run(["curl", "-sS", get_url], capture_output=True, timeout=30)
    assert r.stdout == b"presigned body"
    # Tampering with the key breaks the signature.
    r = subprocess.run(["curl", "-sS", get_url.replace("sig%20ned", "other")], capture_output=True, timeout=30)
    assert b"<Code>SignatureDoesNotMatch</Code>" in r.stdout
    # An expired link is refused.
    short = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "pre/sig ned"}, ExpiresIn=1)
    time.sleep(2.2)
    r = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", short], capture_output=True, text=True, timeout=30)
    assert r.stdout.endswith("403") and "<Code>AccessDenied</Code>" in r.stdout and "expired" in r.stdout


def test_anonymous_and_wrong_key_are_refused_in_s3_words(server, s3):
    b = make_bucket(s3)
    s3.put_object(Bucket=b, Key="secret", Body=b"x")
    r = urllib.request.Request(f"{server.endpoint}/{b}/secret")
    try:
        urllib.request.urlopen(r, timeout=10)
        raise AssertionError("anonymous read succeeded")
    except urllib.error.HTTPError as e:
        body = e.read()
        assert e.code == 403 and b"<Code>AccessDenied</Code>" in body and b"<RequestId>" in body
    bad = s3_client(server, secret_key="wrong" * 8)
    with pytest.raises(ClientError) as e:
        bad.get_object(Bucket=b, Key="secret")
    assert err(e) == ("SignatureDoesNotMatch", 403)
    unknown = s3_client(server, access_key="AKIAUNKNOWNKEY000000")
    with pytest.raises(ClientError) as e:
        unknown.list_buckets()
    assert err(e) == ("InvalidAccessKeyId", 403)


def test_hostile_keys_stay_inside(server, s3):
    b = make_bucket(s3)
    hostile = ["..", "../../etc/passwd", "a/../../b", "./x", "//double//slash", "%2e%2e", "caf\u00e9", "cafe\u0301",
               "k" * 1024, "tab\tnew\nline", "\u2028sep"]
    for i, k in enumerate(hostile):
        s3.put_object(Bucket=b, Key=k, Body=f"v{i}".encode())
    for i, k in enumerate(hostile):
        assert s3.get_object(Bucket=b, Key=k)["Body"].read() == f"v{i}".encode(), k
    # Keys that differ only in normalisation are different keys.
    assert s3.get_object(Bucket=b, Key="caf\u00e9")["Body"].read() != s3.get_object(Bucket=b, Key="cafe\u0301")["Body"].read()
    listed = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=b) for o in p.get("Contents", [])]
    assert sorted(listed) == sorted(hostile)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=b, Key="k" * 1025, Body=b"x")
    assert err(e) == ("KeyTooLongError", 400)
    # Invalid UTF-8 in the path is refused.
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest

    from conftest import send_raw
    req = AWSRequest(method="PUT", url=f"{server.endpoint}/{b}/bad%FFkey", data=b"x")
    S3SigV4Auth(server.credentials(), "s3", "us-east-1").add_auth(req)
    p = req.prepare()
    r = send_raw("PUT", p.url, b"x", dict(p.headers.items()))
    assert r.status == 400 and b"InvalidURI" in r.body, r
    # Nothing was written outside the data directory's object store.
    data = server.data_dir
    assert not (data.parent / "etc").exists()
    for path in data.rglob("*"):
        assert path.resolve().is_relative_to(data.resolve())


def test_virtual_host_addressing(server, s3):
    b = make_bucket(s3)
    s3.put_object(Bucket=b, Key="vh/key.txt", Body=b"virtual")
    vs3 = s3_client(server, addressing="virtual", endpoint=f"http://s3.localhost:{server.port}")
    url = vs3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "vh/key.txt"}, ExpiresIn=60)
    assert url.startswith(f"http://{b}.s3.localhost:{server.port}/vh/key.txt")
    r = subprocess.run(["curl", "-sS", "--connect-to", f"{b}.s3.localhost:{server.port}:127.0.0.1:{server.port}", url],
                       capture_output=True, timeout=30)
    assert r.stdout == b"virtual"


def test_cross_account_bucket_policy(server, s3):
    admin = server.client("lambda")  # noqa: F841 (keeps the shared server warm)
    from conftest import send_raw  # noqa: F401
    import json

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    def admin_call(method, path, body=None):
        req = AWSRequest(method=method, url=server.endpoint + path, data=json.dumps(body).encode() if body else b"",
                         headers={"Content-Type": "application/json"})
        SigV4Auth(server.credentials(), "lambda", "us-east-1").add_auth(req)
        p = req.prepare()
        return send_raw(method, p.url, p.body, dict(p.headers.items()))

    acct = admin_call("POST", "/updraft/admin/v1/accounts", {"Name": "s3-other"})
    assert acct.status in (200, 201), acct
    k = acct.json()
    other_id = k["AccountId"]
    other = s3_client(server, access_key=k["AccessKeyId"], secret_key=k["SecretAccessKey"])
    b = make_bucket(s3)
    s3.put_object(Bucket=b, Key="shared/data.csv", Body=b"a,b")
    s3.put_object(Bucket=b, Key="private/x", Body=b"p")
    with pytest.raises(ClientError) as e:
        other.get_object(Bucket=b, Key="shared/data.csv")
    assert err(e) == ("AccessDenied", 403)
    assert b not in [x["Name"] for x in other.list_buckets()["Buckets"]]
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{other_id}:root"},
        "Action": ["s3:GetObject"], "Resource": f"arn:aws:s3:::{b}/shared/*"}]}
    s3.put_bucket_policy(Bucket=b, Policy=json.dumps(policy))
    assert json.loads(s3.get_bucket_policy(Bucket=b)["Policy"]) == policy
    assert other.get_object(Bucket=b, Key="shared/data.csv")["Body"].read() == b"a,b"
    with pytest.raises(ClientError) as e:
        other.get_object(Bucket=b, Key="private/x")
    assert err(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        other.put_object(Bucket=b, Key="shared/new", Body=b"w")
    assert err(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        other.put_bucket_policy(Bucket=b, Policy=json.dumps(policy))
    assert err(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=b, Policy="not json")
    assert err(e) == ("MalformedPolicy", 400)
    s3.delete_bucket_policy(Bucket=b)
    with pytest.raises(ClientError) as e:
        other.get_object(Bucket=b, Key="shared/data.csv")
    assert err(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=b)
    assert err(e) == ("NoSuchBucketPolicy", 404)


def test_signed_chunked_upload(server, s3):
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD: each chunk's signature is chained from the request's;
    a tampered chunk is refused and nothing is stored."""
    import hmac

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest

    from conftest import send_raw

    b = make_bucket(s3)
    payload = os.urandom(100_000)
    ak, sk = server.keys()

    class StreamingAuth(S3SigV4Auth):
        def payload(self, request):
            return "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"

    def sign(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    def send(key_name: str, tamper: bool):
        chunks = [payload[o:o + 65536] for o in range(0, len(payload), 65536)] + [b""]
        sig_len = len(";chunk-signature=") + 64 + 2
        encoded_len = sum(len(f"{len(c):x}") + sig_len + len(c) + 2 for c in chunks)
        headers = {
            "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(payload)),
            "content-length": str(encoded_len),
        }
        req = AWSRequest(method="PUT", url=f"{server.endpoint}/{b}/{key_name}", data=b"", headers=headers)
        StreamingAuth(server.credentials(), "s3", "us-east-1").add_auth(req)
        p = req.prepare()
        seed = p.headers["Authorization"].split("Signature=")[1]
        amz_date = p.headers["X-Amz-Date"]
        scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
        k = sign(sign(sign(sign(("AWS4" + sk).encode(), amz_date[:8]), "us-east-1"), "s3"), "aws4_request")
        prev, body = seed, b""
        for i, c in enumerate(chunks):
            sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev,
                             hashlib.sha256(b"").hexdigest(), hashlib.sha256(c).hexdigest()])
            sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
            prev = sig
            data = c
            if tamper and i == 1:
                data = bytes([c[0] ^ 1]) + c[1:]
            body += f"{len(c):x};chunk-signature={sig}\r\n".encode() + data + b"\r\n"
        assert len(body) == encoded_len
        return send_raw("PUT", p.url, body, dict(p.headers.items()))

    ok = send("signed", tamper=False)
    assert ok.status == 200, ok.body
    assert s3.get_object(Bucket=b, Key="signed")["Body"].read() == payload
    bad = send("tampered", tamper=True)
    assert bad.status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in bad.body, bad
    with pytest.raises(ClientError):
        s3.head_object(Bucket=b, Key="tampered")


NODE_S3 = r"""
const { S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand, ListObjectsV2Command,
        DeleteObjectCommand, HeadObjectCommand } = require("@aws-sdk/client-s3");
const { Readable } = require("stream");
const crypto = require("crypto");
(async () => {
  const [endpoint, ak, sk, bucket] = process.argv.slice(2);
  const s3 = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true,
                            credentials: { accessKeyId: ak, secretAccessKey: sk } });
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const small = Buffer.from("hello from sdk v3");
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "js/small.txt", Body: small, ContentType: "text/plain" }));
  // A stream of known length: the SDK sends it aws-chunked with a trailing checksum.
  const big = crypto.randomBytes(3 * 1024 * 1024 + 5);
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "js/big.bin", Body: Readable.from([big]),
                                       ContentLength: big.length }));
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "js/big.bin" }));
  const back = Buffer.from(await got.Body.transformToByteArray());
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "js/small.txt" }));
  const list = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "js/" }));
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: "js/small.txt" }));
  let missing = null;
  try { await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "js/small.txt" })); }
  catch (e) { missing = e.name; }
  console.log(JSON.stringify({ same: back.equals(big), type: head.ContentType,
                               keys: (list.Contents || []).map(o => o.Key), missing }));
})().catch(e => { console.error(e); process.exit(1); });
"""


def test_aws_sdk_for_javascript_v3(server, s3, tmp_path):
    """The AWS SDK for JavaScript v3 (installed by scripts/s3-js-sdk.sh) against the object store."""
    import json
    import shutil
    from pathlib import Path

    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed (scripts/ci-deps.sh installs them)")
    repo = Path(__file__).resolve().parents[2]
    sdk = subprocess.run(["bash", str(repo / "scripts" / "s3-js-sdk.sh")], capture_output=True, text=True,
                         timeout=600)
    assert sdk.returncode == 0, sdk.stderr
    script = tmp_path / "s3.js"
    script.write_text(NODE_S3)
    ak, sk = server.keys()
    b = f"js-{os.urandom(6).hex()}"
    env = dict(os.environ, NODE_PATH=str(Path(sdk.stdout.strip()) / "node_modules"))
    env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    r = subprocess.run(["node", str(script), server.endpoint, ak, sk, b], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"same": True, "type": "text/plain", "keys": ["js/big.bin", "js/small.txt"], "missing": "NoSuchKey"}
