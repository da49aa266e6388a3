"""A minimal Lambda runtime for the security probes (tests/e2e/test_security.py).

The package's `bootstrap` execs this file; it speaks the Runtime API (2018-06-01) with the
standard library only. Each event names a mode of the compiled `probes` program and its
arguments; the answer is the probe's JSON output, its exit status and stderr. Two modes are
answered here instead: "startup_fds" (descriptors this process had before it opened anything)
and "threads" (the Seccomp and NoNewPrivs lines of every thread of this interpreter).
"""

import json
import os
import subprocess
import threading
import urllib.request


def _open_fds():
    """Open descriptors, found without opening one (listing /proc/self/fd would add its own)."""
    found = []
    for fd in range(4096):
        try:
            os.fstat(fd)
            found.append(fd)
        except OSError:
            pass
    return found


STARTUP_FDS = _open_fds()
API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
PROBES = os.path.join(os.environ.get("LAMBDA_TASK_ROOT", "/var/task"), "probes")


def _thread_status():
    stop = threading.Event()
    workers = [threading.Thread(target=stop.wait) for _ in range(3)]
    for w in workers:
        w.start()
    out = {}
    for tid in os.listdir("/proc/self/task"):
        fields = {}
        with open("/proc/self/task/%s/status" % tid) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("Seccomp", "NoNewPrivs"):
                    fields[key] = value.strip()
        out[tid] = fields
    stop.set()
    for w in workers:
        w.join()
    return out


def handle(event):
    mode = event["mode"]
    if mode == "startup_fds":
        return {"fds": STARTUP_FDS}
    if mode == "threads_py":
        return {"threads": _thread_status()}
    proc = subprocess.run([PROBES, mode, *[str(a) for a in event.get("args", [])]],
                          capture_output=True, timeout=event.get("timeout", 60))
    result = {"returncode": proc.returncode, "stderr": proc.stderr.decode("utf-8", "replace")[-2000:]}
    text = proc.stdout.decode("utf-8", "replace").strip()
    try:
        result["output"] = json.loads(text) if text else None
    except ValueError:
        result["output"] = text
    return result


def main():
    while True:
        with urllib.request.urlopen(API + "next") as resp:
            request_id = resp.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(resp.read() or b"{}")
        try:
            body, path = handle(event), "/response"
        except Exception as e:  # reported as a function error, the runtime keeps going
            body, path = {"errorMessage": repr(e), "errorType": type(e).__name__}, "/error"
        req = urllib.request.Request(API + request_id + path, data=json.dumps(body).encode(), method="POST")
        urllib.request.urlopen(req).close()


if __name__ == "__main__":
    main()
