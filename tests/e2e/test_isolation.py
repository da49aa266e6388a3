"""What a function can and cannot do inside its execution environment.

A probe function (tests/functions/isolation/probe.py) tries things from inside and reports the
outcome of each as data ("ok" or an errno name); the tests decide. Lambda's contract: code at
/var/task is read-only, /tmp is the only writable place and is capped at EphemeralStorage, the
runtime is not root, and nothing of the host (its files, its processes, its network) is visible.
"""

from __future__ import annotations


import pytest

from conftest import FUNCTIONS, REPO, invoke, invoke_ok

PROBE = FUNCTIONS / "isolation"
DENIED = {"ENOENT", "EACCES", "EPERM"}
READ_ONLY = {"EROFS", "EACCES", "EPERM"}
REFUSED = {"ECONNREFUSED", "ENETUNREACH", "EHOSTUNREACH", "timeout", "TimeoutError"}


@pytest.fixture(scope="module")
def probe_report(lam, deploy, server):
    name = deploy(PROBE, handler="probe.probe")
    event = {
        "write": ["/var/task/x", "/var/task/probe.py", "/tmp/x", "/x", "/etc/x", "/usr/x", "/var/runtime/x",
                  "/opt/x"],
        "listdir": [str(server.data_dir), str(server.data_dir.parent), str(REPO), "/work", "/var/task"],
        "read": [str(server.data_dir / "credentials"), str(REPO / "Cargo.toml"), "/etc/shadow"],
        "connect": [server.port, 9001],
    }
    return invoke_ok(lam, name, event)


def test_code_is_read_only(probe_report):
    writes = probe_report["writes"]
    assert writes["/var/task/x"] in READ_ONLY, writes
    assert writes["/var/task/probe.py"] in READ_ONLY, writes
    assert "probe.py" in probe_report["listdir"]["/var/task"], probe_report["listdir"]


def test_only_tmp_is_writable(probe_report):
    writes = probe_report["writes"]
    assert writes["/tmp/x"] == "ok", writes
    for path in ("/x", "/etc/x", "/usr/x", "/var/runtime/x", "/opt/x"):
        assert writes[path] in READ_ONLY | {"ENOENT"}, (path, writes)


def test_runs_unprivileged(probe_report):
    assert probe_report["uid"] != 0, probe_report["uid"]
    assert probe_report["euid"] != 0, probe_report["euid"]
    assert probe_report["gid"] != 0, probe_report["gid"]
    # Lambda's per-environment file descriptor limit.
    assert probe_report["nofile"][0] == 1024, probe_report["nofile"]


def test_host_files_are_invisible(probe_report, server):
    listdir = probe_report["listdir"]
    for path in (str(server.data_dir), str(server.data_dir.parent), str(REPO), "/work"):
        assert listdir[path] in DENIED, (path, listdir[path])
    for path, outcome in probe_report["read"].items():
        assert outcome in DENIED, (path, outcome)
    root = probe_report["root_entries"]
    if isinstance(root, list):
        assert not [e for e in root if e.startswith(".updraft")], root
    else:
        assert root in DENIED, root


def test_only_own_processes_are_visible(probe_report):
    pids = probe_report["pids"]
    cmdlines = probe_report["cmdlines"]
    assert probe_report["my_pid"] in pids
    assert len(pids) <= 10, cmdlines
    for pid, cmd in cmdlines.items():
        for host_marker in ("updraft serve", "pytest", "systemd", "/sbin/init", "cargo", "rustc"):
            assert host_marker not in cmd, (pid, cmd)


def test_network_is_separate(probe_report, server):
    connect = probe_report["connect"]
    # The environment's own Runtime API answers on its loopback...
    assert connect["9001"] == "connected", connect
    # ...but the server's front door on the host's loopback is out of reach.
    assert connect[str(server.port)] in REFUSED, connect


@pytest.fixture(scope="module")
def fill_fn(deploy):
    # Enough memory that only the /tmp cap can stop the writer.
    return deploy(PROBE, handler="probe.fill_tmp", MemorySize=1024, Timeout=30)


def test_tmp_is_capped_at_ephemeral_storage(lam, fill_fn):
    out = invoke_ok(lam, fill_fn, {"mb": 600})
    assert out["error"] == "ENOSPC", out
    assert 500 <= out["written_mb"] <= 512, out
    assert 500 <= out["tmp_size_mb"] <= 512, out
    # The space is given back: the same environment can fill it again.
    again = invoke_ok(lam, fill_fn, {"mb": 100})
    assert again == {"written_mb": 100, "error": None, "tmp_size_mb": out["tmp_size_mb"]}, again


def test_tmp_size_follows_ephemeral_storage(lam, deploy):
    name = deploy(PROBE, handler="probe.fill_tmp", MemorySize=1024, Timeout=30,
                  EphemeralStorage={"Size": 700})
    out = invoke_ok(lam, name, {"mb": 650})
    assert out["error"] is None and out["written_mb"] == 650, out
    assert 690 <= out["tmp_size_mb"] <= 700, out


def test_tmp_does_not_count_as_function_memory(lam, deploy):
    """On Lambda, /tmp is storage: a 128 MB function can fill its 512 MB /tmp without being killed."""
    name = deploy(PROBE, handler="probe.fill_tmp", MemorySize=128, Timeout=30)
    res = invoke(lam, name, {"mb": 400})
    assert res.status == 200 and res.function_error is None, res
    assert res.json()["written_mb"] == 400, res.json()


def test_environment_is_not_shared_with_other_functions(lam, deploy):
    """Two functions never see each other's /tmp."""
    writer = deploy({"app.py": (
        "def handler(event, context):\n"
        "    open('/tmp/secret-of-writer', 'w').write('s3cret')\n"
        "    return 'written'\n")})
    reader = deploy({"app.py": (
        "import os\n"
        "def handler(event, context):\n"
        "    return os.path.exists('/tmp/secret-of-writer')\n")})
    assert invoke_ok(lam, writer, {}) == "written"
    assert invoke_ok(lam, reader, {}) is False
