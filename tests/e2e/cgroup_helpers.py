"""Reading an environment's cgroup from the host, for tests of freezing and CPU shares.

A function reports its own `/proc/self/cgroup`; the test maps those paths onto the host's mounted
hierarchies and reads CPU usage, freezer state and CPU limits there, as an operator would.
"""

from __future__ import annotations

import time
from pathlib import Path


def _mounts() -> list[tuple[str, Path, set[str]]]:
    """(version, mount point, controllers) of every cgroup hierarchy of this host."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(" "), right.split(" ")
        if len(fields) < 5 or len(rest) < 3:
            continue
        mount = Path(fields[4].replace("\\040", " "))
        if rest[0] == "cgroup2":
            out.append(("v2", mount, set()))
        elif rest[0] == "cgroup":
            out.append(("v1", mount, {o for o in rest[2].split(",") if o not in ("rw", "ro") and "=" not in o}))
    return out


class EnvCgroup:
    """One environment's cgroup directories, from the text of its `/proc/self/cgroup`."""

    def __init__(self, proc_self_cgroup: str):
        self.v1: dict[str, Path] = {}
        self.v2: Path | None = None
        mounts = _mounts()
        for line in proc_self_cgroup.strip().splitlines():
            _, controllers, path = line.split(":", 2)
            rel = path.lstrip("/")
            if not controllers:
                v2 = next((m for v, m, _ in mounts if v == "v2"), None)
                if v2 is not None and "updraft/" in path:
                    self.v2 = v2 / rel
                continue
            for c in controllers.split(","):
                mount = next((m for v, m, cs in mounts if v == "v1" and c in cs), None)
                if mount is not None:
                    self.v1[c] = mount / rel
        assert self.cpu_dir() is not None, f"no cpu cgroup for the environment in:\n{proc_self_cgroup}"

    def cpu_dir(self) -> Path | None:
        return self.v1.get("cpu") or self.v2

    def usage_s(self) -> float:
        """CPU seconds used by every process of the environment so far."""
        if "cpuacct" in self.v1:
            return int((self.v1["cpuacct"] / "cpuacct.usage").read_text()) / 1e9
        assert self.v2 is not None
        for line in (self.v2 / "cpu.stat").read_text().splitlines():
            key, value = line.split()
            if key == "usage_usec":
                return int(value) / 1e6
        raise AssertionError("no usage_usec in cpu.stat")

    def frozen(self) -> bool:
        if "freezer" in self.v1:
            return (self.v1["freezer"] / "freezer.state").read_text().strip() == "FROZEN"
        assert self.v2 is not None
        return "frozen 1" in (self.v2 / "cgroup.events").read_text()

    def exists(self) -> bool:
        return self.cpu_dir().exists()

    def cpu_file(self, v1: str, v2: str) -> str:
        if "cpu" in self.v1:
            return (self.v1["cpu"] / v1).read_text().strip()
        assert self.v2 is not None
        return (self.v2 / v2).read_text().strip()


def wait_for(check, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()
