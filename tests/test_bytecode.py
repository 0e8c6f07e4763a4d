"""An install without .pyc files (uv's default, under PYTHONDONTWRITEBYTECODE=1) makes every
actor compile trio from source.  The first spawn says so once, and
``python -m subint_spawn compile`` fixes it.

Each run points ``PYTHONPYCACHEPREFIX`` at an empty directory of its own: to Python that is an
install with no bytecode at all, and ``compile`` writes there instead of into the venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPAWN_TWICE = """
import trio, subint_spawn
from subint_spawn._cli._workloads import noop

async def main():
    for _ in range(2):
        async with subint_spawn.open_nursery() as an:
            portal = await an.run_in_actor(noop)
            await portal.wait_for_result()
    print("done")

trio.run(main)
"""


def run(prefix: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(prefix), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [sys.executable, "-W", "default", *args],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.timeout(300)
def test_first_spawn_warns_once_and_compile_makes_it_go_away(tmp_path: Path) -> None:
    prefix = tmp_path / "pycache"
    before = run(prefix, "-c", SPAWN_TWICE)
    assert before.returncode == 0 and "done" in before.stdout, before.stderr
    assert before.stderr.count("BytecodeWarning") == 1, before.stderr  # two spawns, one warning
    assert "python -m subint_spawn compile" in before.stderr
    assert "PYTHONDONTWRITEBYTECODE is set" in before.stderr

    check = run(prefix, "-m", "subint_spawn", "compile", "--check")
    assert check.returncode == 1 and "have no usable .pyc" in check.stdout, check.stdout

    compiled = run(prefix, "-m", "subint_spawn", "compile")
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    assert "compiled" in compiled.stdout and "trio" in compiled.stdout
    assert any(prefix.rglob("trio/_core/__pycache__/_run.*.pyc")) or any(prefix.rglob("_run.*.pyc"))

    check = run(prefix, "-m", "subint_spawn", "compile", "--check")
    assert check.returncode == 0, check.stdout

    after = run(prefix, "-c", SPAWN_TWICE)
    assert after.returncode == 0 and "done" in after.stdout, after.stderr
    assert "BytecodeWarning" not in after.stderr, after.stderr
