"""Security that holds under attack: what a hostile function gets when it tries.

A provided.al2023 function runs a compiled probe program (tests/security/probes.c, built here
with gcc) through a small Runtime API loop (tests/security/runtime.py). Each probe tries
something a function must not be able to do and reports the outcome as data: "ok", an errno
name, or the signal that killed it. The tests decide:

- every denied syscall fails with EPERM, ENOSYS or SIGSYS (socket families with EAFNOSUPPORT),
  while ordinary syscalls work;
- every thread of the runtime is under the seccomp filter (`Seccomp: 2`) with no_new_privs;
- the runtime starts with descriptors 0, 1 and 2 only;
- nothing outside /tmp is writable (EROFS), /proc/self/exe included;
- a fork bomb stops at the environment's process cap while a neighbour function keeps working;
- the 1,025th descriptor fails with EMFILE;
- a memory hog is killed inside its own cgroup, nothing else is;
- the host's loopback services (PostgreSQL, the server's own port) are out of reach.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, invoke, package_zip

SECURITY = REPO / "tests" / "security"
BOOTSTRAP = "#!/bin/sh\nexec python3 /var/task/runtime.py\n"
POSTGRES_PORT = 5432


@pytest.fixture(scope="module")
def probes_package(tmp_path_factory) -> bytes:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    out = tmp_path_factory.mktemp("probes") / "probes"
    proc = subprocess.run([gcc, "-O1", "-Wall", "-pthread", "-o", str(out), str(SECURITY / "probes.c")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"gcc failed:\n{proc.stderr}"
    return package_zip({
        "bootstrap": BOOTSTRAP,
        "runtime.py": (SECURITY / "runtime.py").read_text(),
        "probes": out.read_bytes(),
    }, executable=("bootstrap", "probes"))


@pytest.fixture(scope="module")
def probe_fn(deploy, probes_package):
    return deploy(probes_package, handler="bootstrap", runtime="provided.al2023", Timeout=60, MemorySize=512)


@pytest.fixture(scope="module")
def neighbour_fn(deploy, probes_package):
    return deploy(probes_package, handler="bootstrap", runtime="provided.al2023", Timeout=30)


def run_probe(lam, name: str, mode: str, *args, timeout: int = 60) -> dict:
    res = invoke(lam, name, {"mode": mode, "args": list(args), "timeout": timeout})
    assert res.status == 200 and res.function_error is None, res
    return res.json()


def test_denied_syscalls_fail(lam, probe_fn):
    out = run_probe(lam, probe_fn, "syscalls")
    assert out["returncode"] == 0, out
    outcomes = out["output"]
    assert isinstance(outcomes, dict) and len(outcomes) >= 40, out
    wrong = {}
    for name, outcome in outcomes.items():
        if name.startswith("socket_"):
            allowed = {"EAFNOSUPPORT"}
        elif name in ("clone3", "unknown_999", "x32_getpid"):
            # As on a kernel without the syscall, so libc falls back.
            allowed = {"ENOSYS"}
        else:
            allowed = {"EPERM", "ENOSYS", "SIGSYS"}
        if outcome not in allowed:
            wrong[name] = outcome
    assert not wrong, f"not denied as expected: {wrong}\nall: {outcomes}"


def test_harmless_probe_exits_0(lam, probe_fn):
    out = run_probe(lam, probe_fn, "harmless")
    assert out["returncode"] == 0 and out["output"] == {"failures": 0}, out


def test_every_thread_is_filtered(lam, probe_fn):
    native = run_probe(lam, probe_fn, "threads")["output"]
    python = run_probe(lam, probe_fn, "threads_py")["threads"]
    assert len(native) >= 5 and len(python) >= 4, (native, python)
    for tid, fields in {**native, **python}.items():
        assert fields == {"Seccomp": "2", "NoNewPrivs": "1"}, (tid, fields)


def test_no_descriptors_leak_into_the_runtime(lam, probe_fn):
    assert run_probe(lam, probe_fn, "startup_fds") == {"fds": [0, 1, 2]}
    assert run_probe(lam, probe_fn, "fds")["output"] == [0, 1, 2]


def test_writes_outside_tmp_fail_with_erofs(lam, probe_fn):
    new_files = ["/var/task/x", "/x", "/etc/x", "/usr/bin/x", "/usr/lib/x", "/dev/x", "/opt/x"]
    # Existing files owned by root: the permission check (EACCES) may come before the
    # read-only mount's EROFS, so the mounts are checked as well.
    existing = ["/var/task/probes", "/var/task/runtime.py", "/proc/self/exe", "/etc/passwd",
                "/usr/bin/python3"]
    out = run_probe(lam, probe_fn, "write", *new_files, *existing, "/tmp/x")["output"]
    assert out.pop("/tmp/x") == "ok", out
    assert {p: out[p] for p in new_files} == {p: "EROFS" for p in new_files}, out
    for p in existing:
        assert out[p] in {"EROFS", "EACCES"}, (p, out)
    mounts = run_probe(lam, probe_fn, "rdonly", *existing, "/", "/var/task", "/usr", "/etc", "/dev",
                       "/tmp")["output"]
    assert mounts.pop("/tmp") == "writable", mounts
    assert set(mounts.values()) == {"read-only"}, mounts


def test_fork_bomb_stops_at_the_pids_cap_without_hurting_a_neighbour(lam, probe_fn, neighbour_fn):
    # Warm the neighbour first so its environment exists while the bomb runs.
    assert run_probe(lam, neighbour_fn, "harmless")["returncode"] == 0
    bomb: dict = {}

    def detonate():
        bomb["out"] = run_probe(lam, probe_fn, "forkbomb", 12000)

    t = threading.Thread(target=detonate)
    t.start()
    time.sleep(2)
    neighbour = run_probe(lam, neighbour_fn, "harmless")
    # The bomb holds its children for 12 s: the neighbour was served while they were alive,
    # not after the bomb let go (an ordering, not a stopwatch).
    bomb_still_running = t.is_alive()
    t.join(90)
    assert neighbour["returncode"] == 0, neighbour
    assert bomb_still_running, f"the neighbour was only served after the fork bomb ended: {bomb}"
    out = bomb["out"]["output"]
    # Lambda's cap is 1,024 processes and threads per environment; the runtime uses a few.
    assert 900 <= out["forked"] < 1024 and out["errno"] == "EAGAIN", bomb
    # The environment recovers once the children are gone.
    assert run_probe(lam, probe_fn, "harmless")["returncode"] == 0


def test_the_1025th_descriptor_fails_with_emfile(lam, probe_fn):
    out = run_probe(lam, probe_fn, "nofile")["output"]
    assert out == {"opened": 1021, "last_fd": 1023, "errno": "EMFILE"}, out


def test_memory_hog_is_killed_inside_its_cgroup_only(lam, deploy, probes_package, neighbour_fn, server):
    hog = deploy(probes_package, handler="bootstrap", runtime="provided.al2023", Timeout=60, MemorySize=128)
    res = invoke(lam, hog, {"mode": "memhog"})
    assert res.status == 200, res
    if res.function_error is None:
        # The OOM killer took the probe process and the runtime reported its death.
        assert res.json()["returncode"] == -9, res
    # Everything outside the hog's cgroup is untouched.
    assert run_probe(lam, neighbour_fn, "harmless")["returncode"] == 0
    assert server.proc is not None and server.proc.poll() is None
    # And the hog's function itself works again (in a fresh environment if needed).
    assert run_probe(lam, hog, "harmless")["returncode"] == 0


def test_host_loopback_services_are_out_of_reach(lam, probe_fn, server):
    with socket.socket() as s:
        s.settimeout(1)
        postgres_up = s.connect_ex(("127.0.0.1", POSTGRES_PORT)) == 0
    out = run_probe(lam, probe_fn, "connect", POSTGRES_PORT, server.port, 9001)["output"]
    # The environment's own Runtime API is the only listener in its network namespace.
    assert out["9001"] == "connected", out
    for port in (POSTGRES_PORT, server.port):
        assert out[str(port)] in {"ECONNREFUSED", "ENETUNREACH", "EHOSTUNREACH"}, (port, out, postgres_up)
