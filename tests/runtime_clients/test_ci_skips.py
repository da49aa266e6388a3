"""The CI switch of tests/ci_skips.py: a skipped test fails the run when CI=true and stays a
skip otherwise. Runs pytest on a throwaway test file, in a subprocess with the project's
pytest.ini, so it is the same plugin loading every suite uses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

THROWAWAY = '''
import pytest

def test_runs():
    pass

def test_needs_a_tool():
    pytest.skip("gcc is not installed")

@pytest.mark.skipif(True, reason="no user namespaces")
def test_marked():
    pass

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_known_bug():
    assert False
'''


def run_pytest(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    test_file = tmp_path / "test_throwaway.py"
    test_file.write_text(THROWAWAY)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(REPO / "pytest.ini"),
         "--rootdir", str(REPO), str(test_file)],
        capture_output=True, text=True, env=env, timeout=120, cwd=REPO,
    )


def test_without_ci_a_skip_is_a_skip(tmp_path):
    proc = run_pytest(tmp_path, None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 2 skipped, 1 xfailed" in proc.stdout, proc.stdout


@pytest.mark.parametrize("value", ["true", "1"])
def test_under_ci_a_skip_fails_the_run(tmp_path, value):
    proc = run_pytest(tmp_path, value)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # The skip inside the test fails it; the skipif marker fails its setup; xfail is untouched.
    assert "1 failed, 1 passed, 1 xfailed, 1 error" in proc.stdout, proc.stdout
    assert "CI=true requires every test to run: Skipped: gcc is not installed" in proc.stdout, proc.stdout
    assert "CI=true requires every test to run: Skipped: no user namespaces" in proc.stdout, proc.stdout
