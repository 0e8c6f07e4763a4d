"""The pytest plugin as a new user meets it: options checked up front, no clutter left in
the hang directory, and a clear word when pytest-timeout is missing.  Each test runs pytest
in a subprocess on a small test file, in a directory of its own (its own rootdir)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE = '''
import pytest


def test_passes(spawn_backend):
    pass


@pytest.mark.timeout(30)
def test_fails():
    assert False


@pytest.mark.timeout(30)
def test_skipped():
    pytest.skip("on purpose")
'''


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (directory / "pytest.ini").write_text("[pytest]\n")
    (directory / "test_sample.py").write_text(SAMPLE)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args],
        cwd=directory,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_unknown_backend_is_a_usage_error(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "--spawn-backend=subint,bogus")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "ERROR: --spawn-backend: 'bogus' is not one of subint, trio" in done.stderr
    assert "collected" not in done.stdout  # refused before collection


def test_failed_and_skipped_tests_leave_no_hang_files(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "-o", "timeout=30")
    assert "1 failed, 1 passed, 1 skipped" in done.stdout, done.stdout + done.stderr
    hangs = tmp_path / ".pytest-hangs"
    assert hangs.is_dir()  # the dumps were armed ...
    assert list(hangs.iterdir()) == []  # ... and nothing hung, so nothing is left


def test_without_pytest_timeout_the_marker_is_known_and_explained(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "-p", "no:timeout")
    output = done.stdout + done.stderr
    assert "1 failed, 1 passed, 1 skipped" in done.stdout, output
    assert "PytestUnknownMarkWarning" not in output
    assert "2 test(s) use @pytest.mark.timeout, but pytest-timeout is not installed" in output
    assert "pip install pytest-timeout" in output
