"""Ctrl-C on a process that runs actors (tests/ctrl_c_app.py): it stops every actor it can,
names the ones it had to abandon, exits non-zero in bound; a second Ctrl-C exits at once.

The app runs in a session of its own and SIGINT goes to its whole process group, as a
terminal's Ctrl-C does: on the ``trio`` backend the actor processes get it too.  The exit
bound asserted here only catches hangs; the measured times are in docs/runtime.md.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from subint_spawn._core._interrupt import SAME_PRESS_WINDOW

from .ctrl_c_app import NAMES
from .helpers import BOUND

ROOT = Path(__file__).resolve().parent.parent
#: Seconds from SIGINT to exit: generous, it only turns a hang into a failure (measured: < 2 s).
EXIT_BOUND = 10.0


class App:
    """A running ctrl_c_app: its output as it arrives, and its process group."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.stdout = ""
        self.stderr = ""
        self._changed = trio.Event()
        self._ended: set[str] = set()

    async def pump(self, stream: trio.abc.ReceiveStream, which: str) -> None:
        async for chunk in stream:
            setattr(self, which, getattr(self, which) + chunk.decode(errors="replace"))
            self._wake()
        self._ended.add(which)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, text: str, which: str = "stdout") -> str:
        """Until a *whole* line containing ``text`` has arrived in that stream; returns that line.

        A child's print can arrive in pieces (``PYTHONUNBUFFERED=1``, a busy machine): the
        part of a line before its newline is never taken for the line.
        """
        while True:
            lines = getattr(self, which).split("\n")[:-1]  # the last piece has no newline yet
            for line in lines:
                if text in line:
                    return line
            if which in self._ended:
                raise AssertionError(
                    f"app ended without printing {text!r}:\n{self.stdout}\n{self.stderr}"
                )
            await self._changed.wait()

    def press_ctrl_c(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)

    async def wait_exit(self) -> float:
        """Seconds until the app exited (fails after EXIT_BOUND)."""
        started = trio.current_time()
        with trio.fail_after(EXIT_BOUND):
            await self.process.wait()
        return trio.current_time() - started


@asynccontextmanager
async def run_app(*args: str) -> AsyncIterator[App]:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tests.ctrl_c_app", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, like a job in a terminal
    )
    app = App(process)
    try:
        async with trio.open_nursery() as pumps:
            assert process.stdout is not None and process.stderr is not None
            pumps.start_soon(app.pump, process.stdout, "stdout")
            pumps.start_soon(app.pump, process.stderr, "stderr")
            yield app
            with trio.fail_after(EXIT_BOUND):
                await process.wait()
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                os.killpg(process.pid, signal.SIGKILL)  # the app and any actor processes
                await process.wait()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    await stream.aclose()


def actor_pids(ready_line: str) -> list[int]:
    """The pids of ``ready <pid> <pid> <pid>``: exactly one per actor, or the test fails."""
    words = ready_line.split()
    assert words[:1] == ["ready"] and len(words) == 1 + len(NAMES), (
        f"not a whole ready line: {ready_line!r}"
    )
    return [int(pid) for pid in words[1:]]


async def wait_gone(pids: list[int]) -> None:
    """Until none of these processes exists (no polling: a pidfd turns readable on exit)."""
    assert pids, "no pids to wait for: the check would check nothing"
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            await trio.lowlevel.wait_readable(pidfd)
        finally:
            os.close(pidfd)


async def test_ctrl_c_stops_the_actors_and_exits_non_zero(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND + EXIT_BOUND):
        async with run_app(spawn_backend, subint_config) as app:
            ready = await app.wait_for("ready ")
            app.press_ctrl_c()
            took = await app.wait_exit()
    assert took < EXIT_BOUND
    assert app.process.returncode == -signal.SIGINT, app.stderr
    assert "Ctrl-C: stopping 3 actor(s)" in app.stderr
    assert "KeyboardInterrupt" in app.stderr
    assert "finally:idler" in app.stdout  # idle in trio: stopped over IPC, its finally ran
    pids = actor_pids(ready)
    if spawn_backend == "subint":
        assert set(pids) == {app.process.pid}  # every actor is an interpreter of the app
        assert "finally:spinner" in app.stdout  # the injected exception ran it
        assert "finally:sleeper" not in app.stdout  # stuck in C: it never got to run
        assert "Ctrl-C: abandoned actor 'sleeper'" in app.stderr
        assert "abandoned actor 'spinner'" not in app.stderr
        assert "abandoned actor 'idler'" not in app.stderr
    else:
        assert "abandoned" not in app.stderr  # SIGKILL always works
        assert app.process.pid not in pids  # every actor is a process of its own
        await wait_gone(pids)


async def test_second_ctrl_c_exits_at_once(spawn_backend: str, subint_config: str) -> None:
    # The app's own cleanup hangs (shielded) after the first Ctrl-C: only a second one ends it.
    with trio.fail_after(BOUND + EXIT_BOUND):
        async with run_app(spawn_backend, subint_config, "--hang-on-cleanup") as app:
            ready = await app.wait_for("ready ")
            app.press_ctrl_c()
            await app.wait_for("cleanup-hangs")
            await app.wait_for("Ctrl-C: stopping", "stderr")
            # A real second press comes later than the same press delivered twice (see
            # test_one_press_delivered_twice_is_one_press): wait out that window, as a human does.
            await trio.sleep(SAME_PRESS_WINDOW)
            app.press_ctrl_c()
            took = await app.wait_exit()
        await wait_gone(actor_pids(ready))  # trio backend: its actors die with it
    assert took < EXIT_BOUND
    assert app.process.returncode == 130, app.stderr
    assert "second Ctrl-C: exiting now" in app.stderr


async def test_one_press_delivered_twice_is_one_press(
    spawn_backend: str, subint_config: str
) -> None:
    # GNU `timeout -s INT` signals its child and then the child's process group: one SIGINT,
    # delivered twice.  The second delivery is sent here once the first has been handled (so
    # the two cannot merge into one pending signal), well within SAME_PRESS_WINDOW: it must
    # not count as a second press, which would exit 130 at once with no cleanup.
    with trio.fail_after(BOUND + EXIT_BOUND):
        async with run_app(spawn_backend, subint_config) as app:
            ready = await app.wait_for("ready ")
            app.press_ctrl_c()
            await app.wait_for("Ctrl-C: stopping", "stderr")
            os.kill(app.process.pid, signal.SIGINT)
            await app.wait_exit()
    assert app.process.returncode == -signal.SIGINT, app.stderr  # the whole teardown ran
    assert "second Ctrl-C" not in app.stderr
    assert "KeyboardInterrupt" in app.stderr
    assert "finally:idler" in app.stdout
    assert actor_pids(ready)


async def test_exit_with_an_abandoned_actor_is_prompt_subint_only(subint_config: str) -> None:
    # An interpreter abandoned while stuck in C (its daemon thread in time.sleep) must not
    # hold up the process's exit: CPython does not wait for daemon threads, only warns.
    with trio.fail_after(BOUND + EXIT_BOUND):
        async with run_app("subint", subint_config, "--cancel-and-exit") as app:
            await app.wait_for("abandoned 1")
            took = await app.wait_exit()
    assert took < EXIT_BOUND
    assert app.process.returncode == 0, app.stderr
    assert "remaining subinterpreters" in app.stderr


async def test_trio_actor_processes_ignore_the_terminals_ctrl_c() -> None:
    # The terminal's SIGINT reaches every actor process; the parent stops them, so they must
    # not each die of KeyboardInterrupt and print a traceback.
    with trio.fail_after(BOUND + EXIT_BOUND):
        async with run_app("trio", "isolated") as app:
            ready = await app.wait_for("ready ")
            ignored = [_ignores_sigint(pid) for pid in actor_pids(ready)]
            app.press_ctrl_c()
            await app.wait_exit()
    assert ignored == [True, True, True]
    assert "_trio_child" not in app.stderr, app.stderr


def _ignores_sigint(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False
