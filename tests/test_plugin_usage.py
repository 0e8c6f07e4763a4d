"""The pytest plugin as a new user meets it: options checked up front, no clutter left in
the hang directory, and a clear word when pytest-timeout is missing.  Each test runs pytest
in a subprocess on a small test file, in a directory of its own (its own rootdir)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE = """
import pytest


def test_passes(spawn_backend):
    pass


@pytest.mark.timeout(30)
def test_fails():
    assert False


@pytest.mark.timeout(30)
def test_skipped():
    pytest.skip("on purpose")
"""


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


DEFAULTS_SAMPLE = """
import os

import subint_spawn
from mymod import own_pid


async def test_unlabelled():
    async with subint_spawn.open_nursery() as an:
        portal = await an.run_in_actor(own_pid)
        print("unlabelled", "process" if await portal.wait_for_result() != os.getpid() else "subint")


async def test_labelled(spawn_backend):
    async with subint_spawn.open_nursery() as an:
        portal = await an.run_in_actor(own_pid)
        where = "process" if await portal.wait_for_result() != os.getpid() else "subint"
        print("labelled", spawn_backend, where)
"""


def test_the_backend_option_is_what_tests_spawn_on(tmp_path: Path) -> None:
    # A test labelled [trio] runs its actors on trio, and --spawn-backend=trio makes trio the
    # default of tests that are not labelled at all (as tractor's option does).
    (tmp_path / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    (tmp_path / "mymod.py").write_text("import os\n\n\ndef own_pid():\n    return os.getpid()\n")
    (tmp_path / "test_defaults.py").write_text(DEFAULTS_SAMPLE)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-s",
            "-q",
            "--spawn-backend=trio,subint",
        ],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # pytest -q puts its progress dots in front of what a test prints: find the phrases.
    printed = sorted(re.findall(r"(?:un)?labelled [a-z ]+", done.stdout))
    assert printed == [
        "labelled subint subint",
        "labelled trio process",
        "unlabelled process",
    ], done.stdout + done.stderr
