"""Objects survive `kill -9` and a restart; a write cut off mid-body leaves nothing visible;
bodies nothing refers to are swept on start."""

from __future__ import annotations

import hashlib
import os
import socket
import time

from s3_helpers import make_bucket, s3_client


def test_objects_survive_kill_9(server_factory):
    srv = server_factory()
    s3 = s3_client(srv)
    b = make_bucket(s3)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    bodies = {f"k/{i}": os.urandom(1000 + i * 7919) for i in range(20)}
    for k, v in bodies.items():
        s3.put_object(Bucket=b, Key=k, Body=v)
    v1 = s3.put_object(Bucket=b, Key="versioned", Body=b"first")["VersionId"]
    s3.put_object(Bucket=b, Key="versioned", Body=b"second")
    big = os.urandom(12 * 1024 * 1024)
    uid = s3.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    e1 = s3.upload_part(Bucket=b, Key="mp", UploadId=uid, PartNumber=1, Body=big[:6 * 1024 * 1024])["ETag"]
    e2 = s3.upload_part(Bucket=b, Key="mp", UploadId=uid, PartNumber=2, Body=big[6 * 1024 * 1024:])["ETag"]
    s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    pending = s3.create_multipart_upload(Bucket=b, Key="pending")["UploadId"]
    s3.upload_part(Bucket=b, Key="pending", UploadId=pending, PartNumber=1, Body=b"part one")

    srv.proc.kill()  # SIGKILL: no shutdown path runs
    srv.proc.wait()
    srv.proc = None
    srv.start()

    s3 = s3_client(srv)
    for k, v in bodies.items():
        assert s3.get_object(Bucket=b, Key=k)["Body"].read() == v, k
    assert s3.get_object(Bucket=b, Key="versioned")["Body"].read() == b"second"
    assert s3.get_object(Bucket=b, Key="versioned", VersionId=v1)["Body"].read() == b"first"
    got = s3.get_object(Bucket=b, Key="mp")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(big).digest()
    parts = s3.list_parts(Bucket=b, Key="pending", UploadId=pending)["Parts"]
    assert [p["Size"] for p in parts] == [8]


def test_an_upload_cut_off_leaves_nothing(server_factory):
    srv = server_factory()
    s3 = s3_client(srv)
    b = make_bucket(s3)
    # A PUT that announces 5 MB and sends 1 MB before the connection drops.
    url = s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "cut"}, ExpiresIn=60)
    path = url[len(srv.endpoint):]
    with socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nContent-Length: 5242880\r\n\r\n".encode())
        sock.sendall(os.urandom(1024 * 1024))
    tmp = srv.data_dir / "objects" / "tmp"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(tmp.iterdir()):
        time.sleep(0.1)
    assert not any(tmp.iterdir()), "a half-written body was left behind"
    assert s3.list_objects_v2(Bucket=b)["KeyCount"] == 0
    blobs = srv.data_dir / "objects" / "blobs"
    assert not [p for p in blobs.rglob("*") if p.is_file()]


def test_unreferenced_bodies_are_swept_on_start(server_factory):
    srv = server_factory()
    s3 = s3_client(srv)
    b = make_bucket(s3)
    s3.put_object(Bucket=b, Key="kept", Body=b"kept body")
    # A body renamed into place whose index commit never happened (a stop in between).
    stray_sha = hashlib.sha256(b"stray").hexdigest()
    stray = srv.data_dir / "objects" / "blobs" / stray_sha[:2] / stray_sha
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"stray")
    srv.restart()
    assert not stray.exists()
    s3 = s3_client(srv)
    assert s3.get_object(Bucket=b, Key="kept")["Body"].read() == b"kept body"
    # Copies share one body; deleting one copy keeps it, deleting both frees it.
    s3.copy_object(Bucket=b, Key="copy", CopySource={"Bucket": b, "Key": "kept"})
    files = [p for p in (srv.data_dir / "objects" / "blobs").rglob("*") if p.is_file()]
    assert len(files) == 1
    s3.delete_object(Bucket=b, Key="kept")
    assert s3.get_object(Bucket=b, Key="copy")["Body"].read() == b"kept body"
    s3.delete_object(Bucket=b, Key="copy")
    assert not [p for p in (srv.data_dir / "objects" / "blobs").rglob("*") if p.is_file()]
