"""External extensions from a layer (issue 21): executables in `/opt/extensions/` are started
before the runtime, register with the Extensions API, get INVOKE with the invocation's request
id, delay completion (the REPORT line shows it) and get SHUTDOWN when the environment goes.

Layers are mounted read-only at `/opt` by the layers work; this file needs it.
"""

from __future__ import annotations

import re

from conftest import create_function, invoke, invoke_ok, package_zip, unique_name
from extension_helpers import EXTENSION, HANDLER, function_logs, wait_for

# The extension's executable: finds the Python of the environment and runs the extension.
LAUNCHER = """#!/bin/sh
for p in python3 python3.13 python3.12 python3.11 python3.10; do
  command -v "$p" >/dev/null 2>&1 && exec "$p" /opt/probe/ext.py
done
echo "no python for the extension" >&2
exit 1
"""


def publish_layer(lam) -> str:
    layer = package_zip({"extensions/probe": LAUNCHER, "probe/ext.py": EXTENSION}, executable=("probe",))
    out = lam.publish_layer_version(LayerName=unique_name("extlayer"), Content={"ZipFile": layer},
                                    CompatibleRuntimes=["python3.12"])
    return out["LayerVersionArn"]


def test_external_extension_from_a_layer(lam, server):
    layer = publish_layer(lam)
    name = unique_name("extl")
    create_function(lam, name, package_zip({"app.py": HANDLER}, executable=()), Layers=[layer],
                    Timeout=10, Environment={"Variables": {"EXT_DELAY_MS": "300"}})
    first = invoke_ok(lam, name, {})
    assert first["register"][0]["status"] == 200
    assert first["register"][0]["body"]["functionName"] == name
    # The extension holds the invocation open for EXT_DELAY_MS after the answer; the environment
    # takes the next event (the one this test wants in the same environment) once REPORT is out.
    assert wait_for(lambda: f"REPORT RequestId: {first['request_id']}" in function_logs(server, name), 10)
    out = invoke(lam, name, {}, LogType="Tail")
    assert out.status == 200 and out.function_error is None, out
    second = out.json()
    invokes = [e["requestId"] for e in second["events"] if e["eventType"] == "INVOKE"]
    assert invokes == [first["request_id"], second["request_id"]]
    post = re.search(r"PostRuntimeExtensionsDuration: (\d+\.\d\d) ms", out.log)
    assert post and float(post.group(1)) >= 200, out.log

    lam.delete_function(FunctionName=name)
    assert wait_for(lambda: "EXTENSION probe SHUTDOWN spindown" in function_logs(server, name), 10)
