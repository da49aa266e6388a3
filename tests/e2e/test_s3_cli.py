"""The object store through the aws CLI: `aws s3 cp` (a 20 MB multipart upload and download
checked byte for byte), `aws s3 ls`, `aws s3 sync`, `aws s3 rm`, and `aws s3api` calls."""

from __future__ import annotations

import hashlib
import json
import os

from s3_helpers import bucket_name


def test_cp_multipart_round_trip(aws_cli, tmp_path):
    b = bucket_name("cli")
    aws_cli("s3", "mb", f"s3://{b}")
    src = tmp_path / "big.bin"
    data = os.urandom(20 * 1024 * 1024 + 333)
    src.write_bytes(data)
    aws_cli("s3", "cp", str(src), f"s3://{b}/dir/big.bin")
    head = json.loads(aws_cli("s3api", "head-object", "--bucket", b, "--key", "dir/big.bin").stdout)
    assert head["ContentLength"] == len(data)
    # The CLI uploads above 8 MB in parts: S3's multipart ETag.
    assert head["ETag"].strip('"').endswith("-3")
    dst = tmp_path / "back.bin"
    aws_cli("s3", "cp", f"s3://{b}/dir/big.bin", str(dst))
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(data).digest()
    ls = aws_cli("s3", "ls", f"s3://{b}/dir/").stdout
    assert "big.bin" in ls and str(len(data)) in ls
    assert b in aws_cli("s3", "ls").stdout


def test_sync_ls_and_rm(aws_cli, tmp_path):
    b = bucket_name("sync")
    aws_cli("s3", "mb", f"s3://{b}")
    tree = tmp_path / "tree"
    files = {"a.txt": b"alpha", "sub/b.txt": b"beta", "sub/deeper/c d.txt": b"gamma", "odd+name.csv": b"1,2"}
    for rel, content in files.items():
        p = tree / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    out = aws_cli("s3", "sync", str(tree), f"s3://{b}/t").stdout
    assert out.count("upload:") == len(files)
    # A second sync has nothing to do.
    assert "upload:" not in aws_cli("s3", "sync", str(tree), f"s3://{b}/t").stdout
    (tree / "a.txt").write_bytes(b"alpha changed")
    assert aws_cli("s3", "sync", str(tree), f"s3://{b}/t").stdout.count("upload:") == 1
    top = aws_cli("s3", "ls", f"s3://{b}/t/").stdout
    assert "PRE sub/" in top and "a.txt" in top and "odd+name.csv" in top
    rec = aws_cli("s3", "ls", "--recursive", f"s3://{b}/").stdout
    assert "t/sub/deeper/c d.txt" in rec
    back = tmp_path / "back"
    aws_cli("s3", "sync", f"s3://{b}/t", str(back))
    for rel, content in files.items():
        expect = b"alpha changed" if rel == "a.txt" else content
        assert (back / rel).read_bytes() == expect, rel
    aws_cli("s3", "rm", "--recursive", f"s3://{b}/t/sub")
    rec = aws_cli("s3", "ls", "--recursive", f"s3://{b}/").stdout
    assert "sub/" not in rec and "a.txt" in rec
    aws_cli("s3", "rb", "--force", f"s3://{b}")
    assert b not in aws_cli("s3", "ls").stdout


def test_s3api_calls_and_errors(aws_cli, tmp_path):
    b = bucket_name("api")
    aws_cli("s3api", "create-bucket", "--bucket", b)
    body = tmp_path / "o.txt"
    body.write_bytes(b"s3api body")
    put = json.loads(aws_cli("s3api", "put-object", "--bucket", b, "--key", "k/o.txt", "--body", str(body),
                             "--content-type", "text/plain", "--metadata", "a=1").stdout)
    assert put["ETag"] == f'"{hashlib.md5(b"s3api body").hexdigest()}"'
    listed = json.loads(aws_cli("s3api", "list-objects-v2", "--bucket", b, "--prefix", "k/").stdout)
    assert [o["Key"] for o in listed["Contents"]] == ["k/o.txt"]
    out = tmp_path / "out.txt"
    got = json.loads(aws_cli("s3api", "get-object", "--bucket", b, "--key", "k/o.txt", "--range", "bytes=0-4",
                             str(out)).stdout)
    assert out.read_bytes() == b"s3api" and got["ContentRange"] == "bytes 0-4/10"
    assert got["Metadata"] == {"a": "1"}
    missing = aws_cli("s3api", "get-object", "--bucket", b, "--key", "nope", str(out), check=False)
    assert missing.returncode != 0 and "NoSuchKey" in missing.stderr
    nob = aws_cli("s3api", "head-bucket", "--bucket", b + "-none", check=False)
    assert nob.returncode != 0 and "404" in nob.stderr
    aws_cli("s3api", "put-bucket-versioning", "--bucket", b, "--versioning-configuration", "Status=Enabled")
    v = json.loads(aws_cli("s3api", "get-bucket-versioning", "--bucket", b).stdout)
    assert v["Status"] == "Enabled"
    url = aws_cli("s3", "presign", f"s3://{b}/k/o.txt", "--expires-in", "60").stdout.strip()
    assert "X-Amz-Signature=" in url or "Signature=" in url
