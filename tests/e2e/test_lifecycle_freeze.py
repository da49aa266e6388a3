"""Environments are frozen between invocations, as on Lambda (issue 21).

A thread a function starts keeps its state but uses no CPU once the invocation is over, and goes
on in the next invocation. Measured from the host through the environment's own cgroup.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from cgroup_helpers import EnvCgroup, wait_for
from conftest import BIN, create_function, invoke_ok, package_zip, unique_name

SPINNER = """
import threading, time
count = [0]
started = [False]

def spin():
    while True:
        count[0] += 1

def handler(event, context):
    if event.get("start") and not started[0]:
        started[0] = True
        threading.Thread(target=spin, daemon=True).start()
        time.sleep(0.05)
    before = count[0]
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {"before": before, "after": count[0], "cgroup": open("/proc/self/cgroup").read()}
"""


def deploy_spinner(lam, memory: int = 256) -> str:
    name = unique_name("freeze")
    create_function(lam, name, package_zip({"app.py": SPINNER}, executable=()), MemorySize=memory)
    return name


def idle_cpu(env: EnvCgroup, seconds: float) -> float:
    u0 = env.usage_s()
    time.sleep(seconds)
    return env.usage_s() - u0


def test_background_thread_is_frozen_between_invocations_and_resumes(lam):
    name = deploy_spinner(lam)
    first = invoke_ok(lam, name, {"start": True})
    env = EnvCgroup(first["cgroup"])
    assert wait_for(env.frozen, 5), "the idle environment was not frozen"
    # Without freezing the thread takes a whole CPU: about 1.5 s of CPU in this window.
    used = idle_cpu(env, 1.5)
    assert used < 0.02, f"an idle environment used {used:.3f} s of CPU in 1.5 s"

    second = invoke_ok(lam, name, {"sleep": 0.5})
    assert EnvCgroup(second["cgroup"]).cpu_dir() == env.cpu_dir(), "not the same environment"
    ran_during = second["after"] - second["before"]
    ran_between = second["before"] - first["after"]
    assert ran_during > 0, "the thread did not go on in the next invocation"
    # Between the invocations (about 2 s, four times the 0.5 s above) it barely ran: only
    # until the runtime asked for its next event.
    assert ran_between < ran_during / 4, (ran_between, ran_during)
    assert wait_for(env.frozen, 5)


def test_without_freezing_the_thread_runs_on(server_factory):
    srv = server_factory(extra_args=("--freeze", "false"))
    lam = srv.client()
    # A whole core's weight, so that the thread gets its share on a busy host too.
    name = deploy_spinner(lam, 1769)
    env = EnvCgroup(invoke_ok(lam, name, {"start": True})["cgroup"])
    time.sleep(0.3)
    assert not env.frozen()
    used = idle_cpu(env, 1.5)
    assert used > 0.15, f"the spinning thread used only {used:.3f} s of CPU in 1.5 s"


def test_grace_period_freezes_only_after_it(server_factory):
    srv = server_factory(extra_args=("--freeze-grace-ms", "600"))
    lam = srv.client()
    name = deploy_spinner(lam)
    env = EnvCgroup(invoke_ok(lam, name, {"start": True})["cgroup"])
    assert not env.frozen(), "frozen before its grace period was over"
    assert wait_for(env.frozen, 5)
    assert idle_cpu(env, 1.0) < 0.05


def test_grace_period_is_bounded(tmp_path):
    out = subprocess.run(
        [str(BIN), "serve", "--data-dir", str(tmp_path), "--freeze-grace-ms", "5000"],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode != 0
    assert "freeze-grace-ms" in out.stderr


def test_a_frozen_environment_is_stopped_when_its_function_goes(lam):
    name = deploy_spinner(lam)
    env = EnvCgroup(invoke_ok(lam, name, {"start": True})["cgroup"])
    assert wait_for(env.frozen, 5)
    lam.delete_function(FunctionName=name)
    # Killing a frozen cgroup needs a thaw (v1): the directory can only go once its processes did.
    assert wait_for(lambda: not env.exists(), 10), f"{env.cpu_dir()} still there"


def test_provisioned_environments_wait_frozen(lam):
    name = deploy_spinner(lam)
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=1
    )
    def ready():
        cfg = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
        return cfg["Status"] == "READY"
    assert wait_for(ready, 30, 0.2)
    out = invoke_ok(lam, f"{name}:{version}", {"start": True})
    env = EnvCgroup(out["cgroup"])
    assert wait_for(env.frozen, 5)
    assert idle_cpu(env, 1.0) < 0.05
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=version)


def test_doctor_reports_the_freezer():
    out = subprocess.run([str(BIN), "doctor", "--json"], capture_output=True, text=True, timeout=60)
    report = json.loads(out.stdout)
    checks = {c["name"]: c for c in report["isolation"]["checks"]}
    assert checks["cgroup freezer"]["ok"], checks["cgroup freezer"]
    assert checks["cgroup cpu controller"]["ok"], checks["cgroup cpu controller"]
