"""Pytest plugin (loaded by pytest.ini for every suite): under CI a skip is a failure.

A developer's machine may lack gcc, curl or Node.js, and a test that needs one says so with
`pytest.skip`. In CI (`CI=true`, as `.ci/run` is started) the project's scripts install all of
them, so a skip there means a test did not run while the run would still report green: it is
turned into a failure that carries the skip's reason.
"""

from __future__ import annotations

import os

import pytest


def ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail(report) -> None:
    report.outcome = "failed"
    report.longrepr = f"skipped, and CI=true requires every test to run: {_reason(report)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    # An expected failure (xfail) is reported as skipped too; it is not a missing tool.
    if ci() and report.skipped and not hasattr(report, "wasxfail"):
        _fail(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    # A whole module skipped at import (`pytest.skip(..., allow_module_level=True)`).
    if ci() and report.skipped:
        _fail(report)
