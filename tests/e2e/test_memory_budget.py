"""The node's memory budget counts idle environments at what they use, not at their MemorySize.

A server with a 400 MB budget runs five 128 MB Python functions one after another. At MemorySize
only three environments would fit and the first ones would be stopped to make room; counted at
their measured footprint (about 12 MiB each), all five stay warm, which shows in the log tails:
a second invoke of each has no `Init Duration` (it ran in the environment its first invoke
started). (That running environments still count at MemorySize, and what does not fit is
throttled, is covered by the engine's unit tests.)
"""

from __future__ import annotations

import pytest

from conftest import create_function, invoke, package_zip, unique_name

HELLO = "def handler(event, context):\n    return {'ok': True}\n"


@pytest.fixture
def small_node(server_factory):
    srv = server_factory(extra_args=("--memory-budget-mb", "400"))
    return srv.client()


def deploy(lam, code: str, memory: int = 128) -> str:
    name = unique_name("mb")
    create_function(lam, name, package_zip({"app.py": code}), Runtime="python3.12", Handler="app.handler",
                    MemorySize=memory, Timeout=10)
    return name


def test_idle_environments_stay_warm_beyond_memory_size(small_node):
    lam = small_node
    names = [deploy(lam, HELLO) for _ in range(5)]
    for name in names:
        first = invoke(lam, name, {}, LogType="Tail")
        assert first.status == 200 and first.function_error is None, first
        assert "Init Duration" in first.log, first.log
    for name in names:
        again = invoke(lam, name, {}, LogType="Tail")
        assert again.status == 200 and again.function_error is None, again
        assert "Init Duration" not in again.log, f"{name} lost its environment: {again.log}"

