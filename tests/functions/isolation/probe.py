"""Handlers for tests/e2e/test_isolation.py: each tries what a function must not be able to do
(or must be able to do) inside its execution environment and reports what happened, as data.
Outcomes are "ok" or the errno name of the failure (e.g. "EROFS")."""

import errno
import os
import resource
import socket


def _outcome(action):
    try:
        result = action()
        return "ok" if result is None else result
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__


def _write(path):
    def action():
        with open(path, "w") as f:
            f.write("x")
        os.unlink(path)
    return action


def _connect(port):
    def action():
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return "connected"
    return action


def _cmdline(pid):
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError as e:
        return "<%s>" % errno.errorcode.get(e.errno, e.errno)


def probe(event, context):
    """Filesystem, identity, processes and network, as seen from inside."""
    report = {
        "writes": {p: _outcome(_write(p)) for p in event["write"]},
        "listdir": {p: _outcome(lambda p=p: sorted(os.listdir(p))) for p in event["listdir"]},
        "read": {p: _outcome(lambda p=p: open(p, "rb").read(64).decode("latin-1")) for p in event["read"]},
        "connect": {str(port): _outcome(_connect(port)) for port in event["connect"]},
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "root_entries": _outcome(lambda: sorted(os.listdir("/root"))),
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
    }
    pids = sorted(int(d) for d in os.listdir("/proc") if d.isdigit())
    report["pids"] = pids
    report["cmdlines"] = {str(pid): _cmdline(pid) for pid in pids}
    report["my_pid"] = os.getpid()
    return report


def fill_tmp(event, context):
    """Writes up to `mb` MiB into /tmp in 1 MiB chunks, stops at the first error, then cleans up."""
    chunk = b"\x5a" * (1 << 20)
    written = 0
    error = None
    path = "/tmp/fill"
    try:
        with open(path, "wb") as f:
            for _ in range(event["mb"]):
                f.write(chunk)
                f.flush()
                written += 1
    except OSError as e:
        error = errno.errorcode.get(e.errno, str(e.errno))
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    st = os.statvfs("/tmp")
    return {"written_mb": written, "error": error, "tmp_size_mb": st.f_blocks * st.f_frsize // (1 << 20)}
