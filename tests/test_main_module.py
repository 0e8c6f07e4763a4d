"""Functions of the program's main module reach actors, as multiprocessing's spawn makes them:
run as a script (``python app.py``) or as a module (``python -m pkg.app``), on every backend
and config.  Real programs in subprocesses, since ``__main__`` is what is tested."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

from .helpers import BOUND

APP = """\
import sys

import trio

import subint_spawn

print(f"module-level code runs as {__name__}", flush=True)


def double(x):
    return 2 * x


async def main(backend, config):
    async with subint_spawn.open_nursery(backend=backend, config=config) as an:
        one_shot = await an.run_in_actor(double, x=21)
        worker = await an.start_actor("worker", enable_modules=[__name__])
        print("run", await worker.run(double, x=4), flush=True)
        print("result", await one_shot.wait_for_result(), flush=True)

        def nested(x):
            return x

        try:
            await an.run_in_actor(nested, x=1)
        except TypeError as exc:
            print("nested:", exc, flush=True)


if __name__ == "__main__":
    print("main block runs", flush=True)
    trio.run(main, sys.argv[1], sys.argv[2])
"""


@pytest.mark.parametrize("how", ["script", "module"])
async def test_functions_of_the_main_module_run_in_actors(
    spawn_backend: str, subint_config: str, how: str, tmp_path: Path
) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(APP)
    if how == "script":
        command = [sys.executable, str(package / "app.py")]
        name_in_actor = "__mp_main__"  # multiprocessing's name for the parent's script
    else:
        command = [sys.executable, "-m", "pkg.app"]
        name_in_actor = "pkg.app"  # its real name
    with trio.fail_after(BOUND):
        done = await trio.run_process(
            [*command, spawn_backend, subint_config],
            cwd=tmp_path,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    lines = out.splitlines()
    assert lines.count("main block runs") == 1  # never in an actor
    assert lines.count("module-level code runs as __main__") == 1
    # Each actor loaded the module under a name that is not "__main__".
    assert lines.count(f"module-level code runs as {name_in_actor}") == 2, lines
    assert "run 8" in lines and "result 42" in lines
    (nested,) = [line for line in lines if line.startswith("nested:")]
    assert "define it at module level in app.py" in nested
    assert "__main__" not in nested
