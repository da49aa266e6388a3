"""Helpers shared by the object-store suites: S3 clients of a server and unique bucket names."""

from __future__ import annotations

import uuid

import boto3
from botocore.config import Config

REGION = "us-east-1"


def s3_client(server, access_key: str | None = None, secret_key: str | None = None,
              addressing: str = "path", endpoint: str | None = None, **config):
    ak, sk = server.keys()
    return boto3.client(
        "s3",
        endpoint_url=endpoint or server.endpoint,
        region_name=REGION,
        aws_access_key_id=access_key or ak,
        aws_secret_access_key=secret_key or sk,
        config=Config(
            s3={"addressing_style": addressing},
            signature_version="s3v4",
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=120,
            **config,
        ),
    )


def bucket_name(prefix: str = "bk") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def make_bucket(s3, prefix: str = "bk") -> str:
    name = bucket_name(prefix)
    s3.create_bucket(Bucket=name)
    return name
