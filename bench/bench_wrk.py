"""Reading wrk's `--latency` report, for bench.py (Updraft) and peers.py (its peers) alike."""

from __future__ import annotations

import re

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"unparsable wrk duration {text!r}")
    return round(float(m.group(1)) * UNIT_MS[m.group(2)], 3)


def parse_wrk(out: str) -> dict:
    """Reads p50/p90/p99, req/s, request count and errors from wrk's --latency report."""
    res: dict = {"raw": out}
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s*{pct}(?:\.000)?%\s+(\S+)\s*$", out, re.M)
        res[f"p{pct}_ms"] = to_ms(m.group(1)) if m else None
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", out, re.M)
    res["rps"] = float(m.group(1)) if m else None
    m = re.search(r"^\s*(\d+) requests in", out, re.M)
    res["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return res
