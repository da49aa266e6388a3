"""Cold starts served by pre-warmed environments behave exactly like freshly built ones.

The server keeps one environment per runtime built ahead of time (Python and Node.js with the
interpreter and runtime client already running, provided.* with pid 1 waiting to exec the
bootstrap) and gives it to the next cold start of a matching function. Pre-warmed environments
are recognisable from inside by their hostname (the environment id, "pw-..."). Each test makes a
series of cold starts (a new environment variable value is a new revision, hence a new
environment), spaced so that the background refill has replaced the environment the previous one
took, and checks that every one of them sees exactly its own function: its code, its variables
(the same set a freshly built environment gets), its working directory, read-only code, and
nothing of the pre-warming machinery.
"""

from __future__ import annotations

import time

import pytest

from conftest import UpdraftServer, create_function, invoke_ok, package_zip, unique_name

GENERATIONS = 8
REFILL_WITHIN_S = 60

PY_PROBE = r"""
import os, re, socket

def handler(event, context):
    try:
        open("/var/task/written", "w")
        code_writable = True
    except OSError:
        code_writable = False
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.append(re.sub(r"\[\d+\]", "", os.readlink("/proc/self/fd/" + fd)))
        except OSError:
            fds.append("gone")  # the directory listing's own descriptor
    fds.sort()
    return {
        "host": socket.gethostname(),
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "task": sorted(os.listdir("/var/task")),
        "code_writable": code_writable,
        "fds": fds,
        "memory_mb": context.memory_limit_in_mb,
        "name": context.function_name,
    }
"""

NODE_PROBE = r"""
const fs = require('fs');
const os = require('os');
exports.handler = async (event, context) => {
  let codeWritable = true;
  try { fs.writeFileSync('/var/task/written', 'x'); } catch (_) { codeWritable = false; }
  const fds = fs.readdirSync('/proc/self/fd')
    .map((fd) => { try { return fs.readlinkSync('/proc/self/fd/' + fd).replace(/\[\d+\]/, ''); } catch (_) { return 'gone'; } })
    .sort();
  return {
    host: os.hostname(),
    env: { ...process.env },
    cwd: process.cwd(),
    task: fs.readdirSync('/var/task').sort(),
    code_writable: codeWritable,
    fds,
    memory_mb: context.memoryLimitInMB,
    name: context.functionName,
  };
};
"""

# A custom runtime in bash that answers every event with what it sees.
SHELL_PROBE = r"""#!/bin/bash
set -u
api="$AWS_LAMBDA_RUNTIME_API"
request() {
  local body="${3-}"
  exec 3<>"/dev/tcp/${api%:*}/${api##*:}" || return 1
  printf '%s %s HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s' "$1" "$2" "${#body}" "$body" >&3
  cat <&3
  exec 3<&-
}
keys="$(compgen -e | sort | tr '\n' ' ')"
files="$(ls -A /var/task | tr '\n' ' ')"
while true; do
  response="$(request GET /2018-06-01/runtime/invocation/next)" || { sleep 0.1; continue; }
  id="$(printf '%s' "$response" | tr -d '\r' | sed -n 's/^[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: *//p')"
  body="{\"host\": \"$HOSTNAME\", \"gen\": \"${GEN:-}\", \"cwd\": \"$PWD\", \"keys\": \"$keys\", \"task\": \"$files\"}"
  request POST "/2018-06-01/runtime/invocation/$id/response" "$body" > /dev/null
done
"""


@pytest.fixture(scope="module")
def private(tmp_path_factory):
    """A server of this module's own, so that the first cold start of each runtime is a freshly built
    environment to compare the pre-warmed ones with. Its pools stay at one environment per runtime
    (--prewarm-max 1), so "the environment a cold start took was replaced" is "as many ready as before"."""
    srv = UpdraftServer(tmp_path_factory.mktemp("updraft-prewarm"), extra_args=("--prewarm", "1", "--prewarm-max", "1"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def lam(private):
    return private.client()


@pytest.fixture(scope="module")
def deploy(lam):
    def make(package, handler: str, runtime: str, **kwargs) -> str:
        code = package_zip(package) if isinstance(package, dict) else package
        name = unique_name("pw")
        create_function(lam, name, code, Runtime=runtime, Handler=handler, **kwargs)
        return name

    return make


def prewarm_stats(srv) -> dict:
    r = srv.signed_request("GET", "/updraft/admin/v1/engine/stats")
    assert r.status == 200, r
    stats = r.json()["PrewarmedEnvironments"]
    assert stats is not None, r
    return stats


def wait_ready(srv, at_least: int) -> dict:
    """Waits until `at_least` pre-warmed environments are ready (REFILL_WITHIN_S at most)."""
    deadline = time.monotonic() + REFILL_WITHIN_S
    while True:
        stats = prewarm_stats(srv)
        if stats["Ready"] >= at_least:
            return stats
        assert time.monotonic() < deadline, f"pre-warmed environments not refilled: {stats}"
        time.sleep(0.1)


def cold_starts(srv, lam, name: str, event: dict | None = None,
                n: int = GENERATIONS) -> list[tuple[str, dict]]:
    """`n` cold starts of `name` with `event`, each with its own GEN value; returns (gen, answer) pairs."""
    seen = []
    before = prewarm_stats(srv)
    for i in range(n):
        gen = f"g{i}-{time.monotonic_ns()}"
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"GEN": gen}})
        lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        ready = prewarm_stats(srv)["Ready"]
        seen.append((gen, invoke_ok(lam, name, event or {})))
        # The background refill replaces the environment this cold start took, before the next.
        wait_ready(srv, ready)
    after = prewarm_stats(srv)
    # The server's count of cold starts served pre-warmed is the number of answers from one.
    used = sum(1 for _, a in seen if a["host"].startswith("pw-"))
    assert after["Used"] - before["Used"] == used, (before, after, [a["host"] for _, a in seen])
    return seen


def check_interpreted(seen: list[tuple[str, dict]], name: str, files: list[str]):
    prewarmed = [a for _, a in seen if a["host"].startswith("pw-")]
    built = [a for _, a in seen if not a["host"].startswith("pw-")]
    assert prewarmed, f"no cold start was served by a pre-warmed environment: {[a['host'] for _, a in seen]}"
    for gen, a in seen:
        env = a["env"]
        assert env["GEN"] == gen, a
        assert env["AWS_LAMBDA_FUNCTION_NAME"] == name and a["name"] == name, a
        assert "_UPDRAFT_ASSIGNMENT_FD" not in env, a
        assert a["cwd"] == "/var/task", a
        assert a["task"] == files, a
        assert a["code_writable"] is False, a
        assert str(a["memory_mb"]) == "256", a
    # Exactly the variables of a freshly built environment, with the same values (but for the
    # ones that name the revision or the environment).
    assert built, "the first cold start of a runtime on a fresh server builds its environment"
    reference = built[0]["env"]
    # The same kinds of open descriptors: nothing of the pre-warming (its pipe) is left open.
    fds = built[0]["fds"]
    varying = {"GEN", "AWS_LAMBDA_LOG_STREAM_NAME", "_X_AMZN_TRACE_ID"}
    for a in prewarmed:
        assert set(a["env"]) - {"_X_AMZN_TRACE_ID"} == set(reference) - {"_X_AMZN_TRACE_ID"}, a["env"]
        assert a["fds"] == fds, (a["fds"], fds)
        for k, v in reference.items():
            if k not in varying:
                assert a["env"][k] == v, (k, a["env"][k], v)


def test_python_cold_starts_from_prewarmed_environments(private, lam, deploy):
    name = deploy({"app.py": PY_PROBE}, handler="app.handler", runtime="python3.12", MemorySize=256)
    check_interpreted(cold_starts(private, lam, name), name, ["app.py"])


def test_node_cold_starts_from_prewarmed_environments(private, lam, deploy):
    name = deploy({"index.js": NODE_PROBE}, handler="index.handler", runtime="nodejs20.x", MemorySize=256)
    check_interpreted(cold_starts(private, lam, name), name, ["index.js"])


def test_custom_runtime_cold_starts_from_prewarmed_environments(private, lam, deploy):
    name = deploy(package_zip({"bootstrap": SHELL_PROBE}), handler="x", runtime="provided.al2023")
    seen = cold_starts(private, lam, name)
    hosts = [a["host"] for _, a in seen]
    assert any(h.startswith("pw-") for h in hosts), hosts
    keys = {a["keys"] for _, a in seen}
    assert len(keys) == 1, keys
    for gen, a in seen:
        assert a["gen"] == gen and a["cwd"] == "/var/task" and a["task"] == "bootstrap ", a
        assert "_UPDRAFT_ASSIGNMENT_FD" not in a["keys"], a


def test_memory_limit_is_the_functions_own(private, lam, deploy):
    """A pre-warmed environment waits with a small limit; the assignment sets MemorySize."""
    hog = """
import socket
def handler(event, context):
    block = bytearray(event["mb"] << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return {"host": socket.gethostname(), "mb": event["mb"]}
"""
    name = deploy({"app.py": hog}, handler="app.handler", runtime="python3.12", MemorySize=512, Timeout=20)
    # 300 MiB: over the limit an environment waits with, under the function's.
    seen = cold_starts(private, lam, name, {"mb": 300}, n=4)
    assert all(got["mb"] == 300 for _, got in seen), seen
    hosts = [got["host"] for _, got in seen]
    assert any(h.startswith("pw-") for h in hosts), hosts


def test_variables_read_at_interpreter_start_get_a_fresh_environment(lam, deploy):
    name = deploy({"app.py": PY_PROBE}, handler="app.handler", runtime="python3.12", MemorySize=256,
                  Environment={"Variables": {"PYTHONHASHSEED": "7"}})
    for _ in range(2):
        got = invoke_ok(lam, name, {})
        assert not got["host"].startswith("pw-"), got["host"]
        assert got["env"]["PYTHONHASHSEED"] == "7"


def test_pool_grows_with_a_burst_of_cold_starts_and_shrinks_when_idle(tmp_path):
    """The pool of a runtime holds one environment per cold start of the last ten seconds, between
    --prewarm and --prewarm-max: after a burst, the next burst of as many cold starts finds every
    environment ready; once the demand has passed, the extras are stopped."""
    srv = UpdraftServer(tmp_path, extra_args=("--prewarm", "1", "--prewarm-max", "3"))
    srv.start()
    try:
        lam = srv.client()
        name = unique_name("pwburst")
        create_function(lam, name, package_zip({"app.py": PY_PROBE}), Runtime="python3.12", Handler="app.handler")

        def burst() -> list[str]:
            hosts = []
            for i in range(3):
                lam.update_function_configuration(FunctionName=name,
                                                  Environment={"Variables": {"GEN": f"{i}-{time.monotonic_ns()}"}})
                lam.get_waiter("function_updated_v2").wait(FunctionName=name,
                                                           WaiterConfig={"Delay": 1, "MaxAttempts": 30})
                hosts.append(invoke_ok(lam, name, {})["host"])
            return hosts

        burst()
        # Three cold starts within the window: the pool grows to the maximum.
        grown = wait_ready(srv, 3)
        assert grown["Ready"] == 3, grown
        second = burst()
        assert all(h.startswith("pw-") for h in second), second
        after_burst = time.monotonic()
        # The pool refills to the recent demand, then, ten seconds after the last cold start, is
        # back at one environment.
        most = 0
        while True:
            ready = prewarm_stats(srv)["Ready"]
            most = max(most, ready)
            if ready == 1 and time.monotonic() - after_burst > 10.5:
                break
            assert time.monotonic() - after_burst < 40, (most, prewarm_stats(srv))
            time.sleep(0.2)
        assert most >= 2, f"the pool did not refill beyond one after the burst: {most}"
    finally:
        srv.stop()
