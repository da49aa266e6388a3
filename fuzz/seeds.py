#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets into corpus/<target>/.

The files are committed; run this again only to change them (the output is deterministic).
Seeds of the structured targets (sigv4_verify, runtime_api) are inputs the fuzzer itself found,
merged into a small set (see README.md), since their bytes only mean something to `arbitrary`.
"""

import base64
import io
import json
import pathlib
import stat
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
STAMP = (2024, 1, 1, 0, 0, 0)


def write(target: str, name: str, data: bytes) -> None:
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def entry(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=STAMP)
    info.create_system = 3  # unix, so the mode in external_attr is read
    info.external_attr = mode << 16
    return info


def make_zip(entries, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, mode, data in entries:
            z.writestr(entry(name, mode), data)
    return buf.getvalue()


FILE = stat.S_IFREG | 0o644
EXE = stat.S_IFREG | 0o755
DIR = stat.S_IFDIR | 0o755
LINK = stat.S_IFLNK | 0o777

HANDLER = b"def handler(event, context):\n    return {'ok': True}\n"

ZIPS = {
    "python_handler.zip": make_zip([("app.py", FILE, HANDLER)]),
    "stored.zip": make_zip([("index.mjs", FILE, b"export const handler = async () => 1;\n")],
                           zipfile.ZIP_STORED),
    "nested_dirs.zip": make_zip([
        ("pkg/", DIR, b""),
        ("pkg/__init__.py", FILE, b""),
        ("pkg/sub/mod.py", FILE, b"X = 1\n"),
        ("app.py", FILE, HANDLER),
    ]),
    "bootstrap_exec.zip": make_zip([("bootstrap", EXE, b"#!/bin/sh\nexec ./app\n")]),
    "symlink_inside.zip": make_zip([
        ("lib/real.py", FILE, b"Y = 2\n"),
        ("lib/alias.py", LINK, b"real.py"),
        ("top", LINK, b"lib"),
    ]),
    "symlink_escape.zip": make_zip([
        ("app.py", FILE, HANDLER),
        ("d/s", LINK, b".."),
        ("d/t", LINK, b"s/.."),
    ]),
    "dotdot_name.zip": make_zip([("../evil.py", FILE, b"x")]),
    "backslash_name.zip": make_zip([("a\\..\\..\\evil.py", FILE, b"x")]),
    "no_mode.zip": make_zip([("plain.txt", 0, b"hello\n")]),
}

JSON_BODIES = {
    "create_function.json": {
        "FunctionName": "hello",
        "Runtime": "python3.12",
        "Role": "arn:aws:iam::000000000000:role/lambda",
        "Handler": "app.handler",
        "Code": {"ZipFile": base64.b64encode(ZIPS["python_handler.zip"]).decode()},
        "Timeout": 3,
        "MemorySize": 128,
        "Publish": True,
        "Environment": {"Variables": {"A": "1"}},
        "EphemeralStorage": {"Size": 512},
        "LoggingConfig": {"LogFormat": "JSON", "ApplicationLogLevel": "INFO"},
        "TracingConfig": {"Mode": "PassThrough"},
        "Architectures": ["x86_64"],
        "PackageType": "Zip",
        "Tags": {"team": "a"},
    },
    "create_function_s3.json": {
        "FunctionName": "f",
        "Role": "r",
        "Code": {"S3Bucket": "b", "S3Key": "k"},
        "Layers": [],
    },
    "update_config.json": {
        "Description": "d",
        "Timeout": 900,
        "Environment": {"Variables": {}},
        "RevisionId": "0f1e2d3c",
        "Layers": ["arn:aws:lambda:us-east-1:000000000000:layer:x:1"],
    },
    "update_code.json": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==", "Publish": True, "DryRun": False},
    "alias.json": {
        "Name": "live",
        "FunctionVersion": "1",
        "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.25}},
    },
    "concurrency.json": {"ReservedConcurrentExecutions": 10},
    "tags.json": {"Tags": {"k": "v"}},
    "publish_version.json": {"CodeSha256": "abc=", "Description": "v"},
}

ANSWERS = {
    "full.json": {
        "statusCode": 201,
        "headers": {"content-type": "text/plain", "x-a": "b"},
        "multiValueHeaders": {"x-m": ["1", "2"]},
        "cookies": ["a=1", "b=2; Path=/"],
        "body": "aGVsbG8=",
        "isBase64Encoded": True,
    },
    "text.json": {"statusCode": 200, "body": "hello"},
    "bad_status.json": {"statusCode": 700},
    "plain_value.json": ["not", "a", "response"],
    "string.json": "just a string",
}

# eventbridge_input: NUL-separated (pattern or schedule or path, event, template).
EVENT = {
    "version": "0", "id": "1", "detail-type": "Order Placed", "source": "shop", "account": "111122223333",
    "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": ["arn:aws:s3:::b"],
    "detail": {"amount": 250, "state": "running", "path": "logs/a.txt", "ip": "10.0.0.7", "tags": ["a", "b"],
               "items": [{"kind": "a"}, {"kind": "b"}], "owner": None},
}
EVENTBRIDGE = {
    "pattern_all.bin": {"source": ["shop"], "detail": {
        "amount": [{"numeric": [">", 0, "<=", 1000]}], "state": [{"prefix": {"equals-ignore-case": "RUN"}}],
        "path": [{"wildcard": "logs/*.txt"}], "ip": [{"cidr": "10.0.0.0/24"}],
        "tags": [{"anything-but": {"suffix": "z"}}], "owner": [None], "missing": [{"exists": False}],
        "$or": [{"items": {"kind": ["b"]}}, {"state": [{"equals-ignore-case": "x"}]}]}},
    "rate.bin": "rate(5 minutes)",
    "cron.bin": "cron(0/15 8-17 ? * MON-FRI *)",
    "cron_special.bin": "cron(0 9 LW * ? 2027)",
    "cron_nth.bin": "cron(30 6 ? JAN,JUL 2#1 *)",
    "path.bin": "$.detail.items[1].kind",
}


def main() -> None:
    for name, first in EVENTBRIDGE.items():
        head = first if isinstance(first, str) else json.dumps(first)
        template = '{"k": <k>, "s": "<k> at <aws.events.rule-name>"}'
        write("eventbridge_input", name, "\0".join([head, json.dumps(EVENT), template]).encode())
    for name, data in ZIPS.items():
        write("zip_extract", name, data)
    for name, body in JSON_BODIES.items():
        write("lambda_json", name, json.dumps(body, indent=1).encode())
    write("lambda_json", "empty.json", b"")
    write("lambda_json", "malformed.json", b'{"FunctionName": "x", "Timeout": "3"')
    for name, answer in ANSWERS.items():
        # The leading zero byte selects interpret_answer.
        write("payload_v2", "answer_" + name, b"\0" + json.dumps(answer).encode())


if __name__ == "__main__":
    main()
