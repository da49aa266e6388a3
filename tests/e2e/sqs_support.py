"""Helpers of the SQS suites: the SDKs' MD5 checks, and a query-protocol client.

boto3 no longer checks SQS's digests itself; `md5_of_attributes` is the algorithm the AWS SDKs (Java's
`MessageMD5ChecksumHandler`, Go's `checksums.go`) use to check `MD5OfMessageAttributes`, written from the SQS
developer guide ("Calculating the MD5 message digest for message attributes").
"""

from __future__ import annotations

import base64
import hashlib
import struct
import urllib.parse
import xml.etree.ElementTree as ET

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from conftest import REGION, send_raw

NS = "{http://queue.amazonaws.com/doc/2012-11-05/}"


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5_of_attributes(attrs: dict) -> str:
    """MD5OfMessageAttributes of attributes in boto3's shape ({name: {DataType, StringValue|BinaryValue}})."""
    h = hashlib.md5()

    def field(b: bytes) -> None:
        h.update(struct.pack(">I", len(b)) + b)

    for name in sorted(attrs):
        a = attrs[name]
        field(name.encode())
        field(a["DataType"].encode())
        if "BinaryValue" in a:
            h.update(b"\x02")
            v = a["BinaryValue"]
            field(v if isinstance(v, bytes) else base64.b64decode(v))
        else:
            h.update(b"\x01")
            field(a["StringValue"].encode())
    return h.hexdigest()


class QueryClient:
    """SQS's query protocol: form posts signed with botocore's SigV4Auth, XML answers."""

    def __init__(self, server):
        self.server = server

    def call(self, action: str, params: dict | None = None, path: str = "/", method: str = "POST"):
        fields = {"Action": action, "Version": "2012-11-05", **(params or {})}
        body = urllib.parse.urlencode(fields).encode()
        url = self.server.endpoint + path
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        if method == "GET":
            url += "?" + body.decode()
            body = b""
            headers = {}
        req = AWSRequest(method=method, url=url, data=body, headers=headers)
        SigV4Auth(self.server.credentials(), "sqs", REGION).add_auth(req)
        prepared = req.prepare()
        resp = send_raw(method, prepared.url, prepared.body, dict(prepared.headers.items()))
        return resp.status, ET.fromstring(resp.body)


def q(el, path: str):
    """Text of the first element at `path` (names without the namespace, separated by '/')."""
    node = el.find("/".join(f".//{NS}{p}" if i == 0 else f"{NS}{p}" for i, p in enumerate(path.split("/"))))
    return None if node is None else node.text


def qall(el, name: str):
    return el.findall(f".//{NS}{name}")


def error_code(root) -> str | None:
    node = root.find(f".//{NS}Error/{NS}Code")
    return None if node is None else node.text
