"""Memory readings shared by Updraft's benchmark drivers (standard library only).

- process trees from `ps` (pid, parent pid, RSS), so that a system's memory includes every process it started;
- PSS and RSS of a process from /proc/<pid>/smaps_rollup: PSS splits shared pages (the interpreter's code, the
  page cache of a shared library) between the processes that map them, so PSS values add up without counting
  shared pages twice, while RSS sums overstate a group of similar processes;
- a sampler thread that records the peak of the summed RSS of a process tree while a measurement runs.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path


def ps_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, RSS in KiB) for every process, as `ps` sees them."""
    out = subprocess.run(
        ["ps", "-e", "-o", "pid=,ppid=,rss="], capture_output=True, text=True, timeout=10
    ).stdout
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            table[int(parts[0])] = (int(parts[1]), int(parts[2]))
    return table


def descendants(roots: list[int], table: dict[int, tuple[int, int]] | None = None) -> set[int]:
    """The given processes (those still alive) and all their descendants."""
    table = ps_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    stack = [r for r in roots if r in table]
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        stack.extend(children.get(pid, []))
    return seen


def tree_rss_kib(roots: list[int]) -> tuple[int, int]:
    """(summed RSS in KiB, number of processes) of the trees under `roots`."""
    table = ps_table()
    pids = descendants(roots, table)
    return sum(table[p][1] for p in pids), len(pids)


def smaps_rollup(pid: int) -> dict[str, int]:
    """The kB fields of /proc/<pid>/smaps_rollup (Rss, Pss, Pss_Anon, ...); empty if the process is gone."""
    fields = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "kB" and parts[0].endswith(":"):
            fields[parts[0][:-1]] = int(parts[1])
    return fields


def pss_sum_kib(pids: set[int] | list[int]) -> dict[str, int]:
    """Summed Pss, Pss_Anon and Rss (KiB) over `pids`, and how many were read; vanished processes are skipped.

    Pss_Anon is the part that is the processes' own (heap, stacks); the rest of Pss is their share of file pages
    (interpreter and library code), which shrinks as more processes anywhere on the machine map the same files.
    """
    res = {"pss_kib": 0, "pss_anon_kib": 0, "rss_kib": 0, "processes": 0}
    for pid in pids:
        f = smaps_rollup(pid)
        if f:
            res["pss_kib"] += f.get("Pss", 0)
            res["pss_anon_kib"] += f.get("Pss_Anon", 0)
            res["rss_kib"] += f.get("Rss", 0)
            res["processes"] += 1
    return res


class PeakRss:
    """Samples the summed RSS of the trees under `roots` every `interval` seconds until stopped."""

    def __init__(self, roots: list[int], interval: float = 1.0):
        self.roots = list(roots)
        self.interval = interval
        self.peak_kib = 0
        self.peak_procs = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> None:
        try:
            kib, n = tree_rss_kib(self.roots)
        except (OSError, subprocess.SubprocessError):
            return
        self.samples += 1
        if kib > self.peak_kib:
            self.peak_kib, self.peak_procs = kib, n

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self.sample()


def environment_inits(pids: set[int] | list[int]) -> list[int]:
    """The processes among `pids` that are pid 1 of their own pid namespace: one per execution environment."""
    inits = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:"):
                ids = line.split()[1:]
                if len(ids) > 1 and ids[-1] == "1":
                    inits.append(pid)
                break
    return inits


def cgroup_memory_kib(pid: int) -> int | None:
    """What the memory cgroup of `pid` is charged (its processes and the page cache they brought in), in KiB: the
    footprint by which Updraft counts an idle environment when its memory budget runs short."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            f = Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.current"
        elif "memory" in controllers.split(","):
            f = Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.usage_in_bytes"
        else:
            continue
        try:
            return int(f.read_text()) // 1024
        except (OSError, ValueError):
            return None
    return None


def _pipes_above_stdio(pid: int) -> set[str]:
    """Pipe inodes open on descriptors 3 and up of `pid`."""
    pipes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return pipes
    for fd in fds:
        if fd.isdigit() and int(fd) >= 3:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("pipe:"):
                pipes.add(target)
    return pipes


def is_waiting_prewarmed(init: int, table: dict[int, tuple[int, int]]) -> bool:
    """Whether the environment whose pid 1 is `init` is a pre-warmed one still waiting for its function: its pid 1
    still runs Updraft's jail helper image (a provided.* environment before it execs the bootstrap), or it shares
    the assignment pipe with its jail helper (a runtime client blocked reading it). Once assigned, the helper has
    closed its end and pid 1 runs the runtime."""
    try:
        exe = os.path.basename(os.readlink(f"/proc/{init}/exe"))
    except OSError:
        return False
    if exe.startswith("updraft"):
        return True
    helper = table.get(init, (0, 0))[0]
    return bool(helper and _pipes_above_stdio(init) & _pipes_above_stdio(helper))


def environments(server_pid: int) -> dict[int, tuple[set[int], bool]]:
    """Every execution environment under the server: pid 1 -> (its processes with its jail helper, waiting
    pre-warmed or not)."""
    table = ps_table()
    pids = descendants([server_pid], table)
    out = {}
    for init in environment_inits(pids):
        group = descendants([init], table)
        helper = table.get(init, (0, 0))[0]
        if helper in pids:
            group.add(helper)
        out[init] = (group, is_waiting_prewarmed(init, table))
    return out
