"""tractor's ``subint`` spawn method run by the driver (subint_spawn.tractor).

Needs tractor (``make test`` installs the pinned commit); skipped without it.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

import subint_spawn
from subint_spawn import (
    AbandonedInterpreterWarning,
    ActorStartupError,
    TractorNotSupported,
    census,
    dump_stacks,
)
from subint_spawn.driver import drain_destroys

tractor = pytest.importorskip("tractor")

import subint_spawn.tractor as subint_tractor
from subint_spawn._core import _pool
from subint_spawn._tractor import _api, _spawn

from . import tractor_samples
from .helpers import BOUND

REPO = Path(__file__).resolve().parent.parent
TRACTOR_SRC = REPO / ".venv" / "tractor-src"


@pytest.fixture
def reg_addr() -> tuple[str, int]:
    """A free port for this test's root actor registry (tractor's default port is shared)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return ("127.0.0.1", probe.getsockname()[1])


@pytest.fixture
def installed() -> Iterator[None]:
    subint_tractor.install()
    try:
        yield
    finally:
        subint_tractor.uninstall()


def open_tractor_nursery(reg_addr: tuple[str, int]) -> Any:
    return tractor.open_nursery(start_method="subint", registry_addrs=[reg_addr])


class Ready:
    """A pipe an actor writes one byte to once it has reached the point the test waits for."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()

    async def wait(self) -> None:
        await trio.lowlevel.wait_readable(self.read_fd)
        assert os.read(self.read_fd, 1) == b"r"

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)


@asynccontextmanager
async def ready_pipe() -> AsyncIterator[Ready]:
    ready = Ready()
    try:
        yield ready
    finally:
        ready.close()


def only(error: BaseException, kind: type[BaseException]) -> BaseException:
    """The one ``kind`` exception in ``error`` (tractor wraps some in exception groups)."""
    if isinstance(error, BaseExceptionGroup):
        found, _ = error.split(kind)
        assert found is not None, error
        leaves = list(_leaves(found))
        assert len(leaves) == 1, error
        return leaves[0]
    assert isinstance(error, kind), error
    return error


def _leaves(group: BaseExceptionGroup[Any]) -> Iterator[BaseException]:
    for inner in group.exceptions:
        if isinstance(inner, BaseExceptionGroup):
            yield from _leaves(inner)
        else:
            yield inner


# -- selecting the method ---------------------------------------------------------------------


async def test_importing_the_front_door_imports_and_changes_nothing() -> None:
    code = "import sys, subint_spawn.tractor as t; assert 'tractor' not in sys.modules; assert not t.installed()"
    with trio.fail_after(BOUND):
        await trio.run_process([sys.executable, "-c", code])


def test_install_replaces_only_tractors_subint_entry_and_uninstall_puts_it_back() -> None:
    from tractor.spawn import _spawn

    before = dict(_spawn._methods)
    subint_tractor.install()
    try:
        assert subint_tractor.installed()
        assert _spawn._methods["subint"] is not before["subint"]
        assert {k: v for k, v in _spawn._methods.items() if k != "subint"} == {
            k: v for k, v in before.items() if k != "subint"
        }
    finally:
        subint_tractor.uninstall()
    assert _spawn._methods == before
    assert not subint_tractor.installed()


def test_without_tractor_install_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_api, "_loaded", None)
    monkeypatch.setitem(sys.modules, "tractor", None)  # `import tractor` now fails as if missing
    with pytest.raises(TractorNotSupported, match="tractor is not installed") as caught:
        subint_tractor.install()
    assert f"git+https://github.com/goodboy/tractor@{subint_tractor.SUPPORTED_COMMIT}" in str(
        caught.value
    )


def test_a_different_spawn_interface_is_refused_at_install_naming_the_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tractor.spawn import _spawn

    async def new_proc(name: str, actor_nursery: object, *, task_status: object = None) -> None:
        raise AssertionError("never called")

    original = _spawn._methods["subint"]
    monkeypatch.setattr(_api, "_loaded", None)
    monkeypatch.setattr(_spawn, "new_proc", new_proc)
    with pytest.raises(TractorNotSupported, match="new_proc takes") as caught:
        subint_tractor.install()
    assert subint_tractor.SUPPORTED_COMMIT in str(caught.value)
    assert _spawn._methods["subint"] is original  # refused before anything changed


def test_an_unknown_config_is_refused() -> None:
    with pytest.raises(ValueError, match="'legacy' or 'isolated'"):
        subint_tractor.install("shared")  # type: ignore[arg-type]


# -- spawn, errors, teardown ------------------------------------------------------------------


@pytest.mark.usefixtures("installed")
async def test_spawn_first_result_and_teardown_leave_nothing(reg_addr: tuple[str, int]) -> None:
    with trio.fail_after(BOUND):
        async with open_tractor_nursery(reg_addr) as an:
            portal = await an.run_in_actor(tractor_samples.double, x=21, name="doubler")
            assert await portal.wait_for_result() == 42
    assert census().interpreters == 0  # its interpreter's destroy may still be running:
    await drain_destroys()
    assert census().destroying == 0 and census().threads == 0


@pytest.mark.usefixtures("installed")
async def test_a_prewarmed_interpreter_serves_a_tractor_actor(reg_addr: tuple[str, int]) -> None:
    # tractor's child runtime imported ahead: the actor skips its ~0.8 s import.
    with trio.fail_after(BOUND):
        async with open_tractor_nursery(reg_addr) as an:
            await subint_tractor.prewarm(1)
            pool = _pool._owner(create=False).pool("legacy", _spawn.WARM_UP_MODULES)  # type: ignore[union-attr]
            (warm,) = [interp.id for interp in pool.idle]
            portal = await an.run_in_actor(tractor_samples.interpreter_id, name="warm")
            assert await portal.wait_for_result() == warm
            assert (pool.taken, pool.cold) == (1, 0)
            await subint_tractor.prewarm(0)  # the refill goes too (else: when the run ends)
    assert census().interpreters == 0


async def test_an_error_while_booting_reaches_the_caller_with_the_childs_traceback(
    reg_addr: tuple[str, int],
) -> None:
    # msgspec refuses isolated interpreters: tractor's own import fails in the child, before it
    # can connect back.  Without the race against the interpreter's exit this waits forever.
    subint_tractor.install("isolated")
    try:
        with trio.fail_after(BOUND):
            with pytest.raises(BaseException) as caught:
                async with open_tractor_nursery(reg_addr) as an:
                    await an.run_in_actor(tractor_samples.double, x=1, name="booter")
    finally:
        subint_tractor.uninstall()
    error = only(caught.value, ActorStartupError)
    assert isinstance(error, ActorStartupError)
    assert error.remote_type == "ImportError"
    assert "'booter' ended before connecting to its parent" in str(error)
    assert "msgspec" in error.remote_traceback
    assert "config='legacy'" in error.remote_traceback  # the hint travels with the traceback
    assert census().interpreters == 0


@pytest.mark.usefixtures("installed")
async def test_cancelling_the_nursery_stops_a_live_child_with_tractors_own_cancel_first(
    reg_addr: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    # The spawn task is cancelled: it must ask tractor's runtime to cancel over IPC (and wait
    # for the child to end) before the driver's kill.  trio hands a cancelled race's nursery
    # its Cancelled as a group, which an `except trio.Cancelled` misses.
    caplog.set_level(logging.INFO, logger="subint_spawn.tractor")
    with trio.fail_after(BOUND):
        # The root actor outside the cancelled scope: its runtime stays up to carry the cancel.
        async with tractor.open_root_actor(start_method="subint", registry_addrs=[reg_addr]):
            with trio.CancelScope() as scope:
                async with tractor.open_nursery() as an:
                    portal = await an.start_actor("idle", enable_modules=[tractor_samples.__name__])
                    assert await portal.run(tractor_samples.double, x=1) == 2
                    scope.cancel()
    assert not any("the driver's kill" in r.getMessage() for r in caplog.records), caplog.text
    assert census().interpreters == 0


@pytest.mark.usefixtures("installed")
async def test_a_child_stuck_in_python_is_killed_and_reclaimed(
    reg_addr: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="subint_spawn.tractor")
    with trio.fail_after(BOUND):
        async with ready_pipe() as ready:
            with trio.CancelScope() as scope:
                async with open_tractor_nursery(reg_addr) as an:
                    await an.run_in_actor(
                        tractor_samples.spin_in_python, ready_fd=ready.write_fd, name="spinner"
                    )
                    await ready.wait()
                    scope.cancel()
    assert scope.cancelled_caught
    assert any("the driver's kill: killed" in r.getMessage() for r in caplog.records), caplog.text
    assert census().interpreters == 0
    await drain_destroys()
    assert census().destroying == 0 and census().threads == 0


@pytest.mark.no_leak_check  # the abandoned thread lives on until the test releases it
@pytest.mark.usefixtures("installed")
async def test_a_child_stuck_in_c_is_abandoned_without_blocking_and_counted(
    reg_addr: tuple[str, int],
) -> None:
    release_read, release_write = os.pipe()
    try:
        with trio.fail_after(BOUND):
            async with ready_pipe() as ready:
                with (
                    pytest.warns(AbandonedInterpreterWarning, match="stuck-in-c"),
                    trio.CancelScope() as scope,
                ):
                    async with open_tractor_nursery(reg_addr) as an:
                        await an.run_in_actor(
                            tractor_samples.blocked_in_c,
                            ready_fd=ready.write_fd,
                            release_fd=release_read,
                            name="stuck-in-c",
                        )
                        await ready.wait()
                        scope.cancel()
            (record,) = census().abandoned
            assert "stuck-in-c" in record.thread_name
            # Let the C call return: the abandoned thread then destroys its interpreter.
            os.write(release_write, b"x")
            while census().abandoned or census().interpreters:
                await trio.sleep(0.01)  # polling the census: nothing signals its change
    finally:
        os.close(release_read)
        os.close(release_write)


@pytest.mark.usefixtures("installed")
async def test_tractors_hard_kill_reaches_the_child_as_the_drivers_cooperative_cancel(
    reg_addr: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    # tractor's nursery calls terminate() on a child whose runtime cancel went unanswered; the
    # driver's first step, a cancel of the child's trio loop from inside its interpreter, must
    # reach tractor's runtime there (which runs its own trio.run), so a live child ends cleanly.
    caplog.set_level(logging.INFO, logger="subint_spawn.tractor")
    with trio.fail_after(BOUND):
        async with open_tractor_nursery(reg_addr) as an:
            portal = await an.start_actor("idle", enable_modules=[tractor_samples.__name__])
            assert await portal.run(tractor_samples.double, x=2) == 4
            ((_, process, _),) = an._children.values()
            process.terminate()
            await process.wait()
            assert process.poll() == 0
    assert any("the driver's kill: cancelled" in r.getMessage() for r in caplog.records), (
        caplog.text
    )
    assert census().interpreters == 0


async def killed_by_the_driver_alone(
    reg_addr: tuple[str, int], caplog: pytest.LogCaptureFixture, name: str, function: Any
) -> None:
    """Start ``function`` in an actor, then go straight to the driver's kill (the process
    handle's ``terminate``), with no tractor cancel request sent: the kill must end it."""
    caplog.set_level(logging.INFO, logger="subint_spawn.tractor")
    with trio.fail_after(BOUND):
        async with ready_pipe() as ready, open_tractor_nursery(reg_addr) as an:
            portal = await an.start_actor(name, enable_modules=[tractor_samples.__name__])
            ((_, process, _),) = an._children.values()
            async with trio.open_nursery() as callers:
                callers.start_soon(partial(portal.run, function, ready_fd=ready.write_fd))
                await ready.wait()
                process.terminate()
                await process.wait()
                callers.cancel_scope.cancel()  # tractor leaves a call to a dead actor waiting
    assert any("the driver's kill: killed" in r.getMessage() for r in caplog.records), caplog.text
    assert census().interpreters == 0
    await drain_destroys()
    assert census().destroying == 0 and census().threads == 0


@pytest.mark.usefixtures("installed")
async def test_a_stuck_child_is_killed_even_with_no_cancel_request_queued_behind_it(
    reg_addr: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    # Once the injected exception has stopped the stuck task, only the end of the parent's
    # channel lets the child's runtime (whose parent-channel loop is shielded) finish.
    await killed_by_the_driver_alone(reg_addr, caplog, "spinner", tractor_samples.spin_in_python)


@pytest.mark.usefixtures("installed")
async def test_an_idle_child_deaf_to_cancellation_is_woken_to_take_the_injected_exception(
    reg_addr: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    # Its loop waits in epoll (C) for a 60 s deadline, where an injected exception is not
    # delivered: without a wake-up on each injection this child is abandoned.
    await killed_by_the_driver_alone(reg_addr, caplog, "deaf", tractor_samples.sleep_shielded)
    await drain_destroys()
    assert census().destroying == 0 and census().threads == 0


# -- stack dumps ------------------------------------------------------------------------------


@pytest.mark.usefixtures("installed")
async def test_stack_dumps_show_tractor_actors_by_name(reg_addr: tuple[str, int]) -> None:
    with trio.fail_after(BOUND):
        async with ready_pipe() as ready:
            with trio.CancelScope() as scope:
                async with open_tractor_nursery(reg_addr) as an:
                    await an.run_in_actor(
                        tractor_samples.sleeping_in_marker_frame,
                        ready_fd=ready.write_fd,
                        name="dumped",
                    )
                    await ready.wait()
                    text = dump_stacks(io.StringIO())
                    scope.cancel()
    (header,) = [
        line for line in text.splitlines() if line.lstrip().startswith("=== actor 'dumped' (")
    ]
    assert "subinterpreter" in header and "legacy" in header
    assert "sleeping_in_marker_frame" in text.split(header, 1)[1]


# -- tractor's own pytest runs ----------------------------------------------------------------


async def run_tractor_pytest(directory: Path, *args: str) -> Any:
    """``pytest`` in ``directory`` with tractor's plugin loaded first, as tractor's ini does."""
    return await trio.run_process(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tractor._testing.pytest",
            "-p",
            "no:cacheprovider",
            *args,
        ],
        cwd=directory,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


@pytest.mark.timeout(120)
async def test_with_tractors_plugin_spawn_backend_is_tractors_and_subint_selects_ours(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_selected.py").write_text(
        textwrap.dedent(
            """\
            import subint_spawn.tractor

            def test_selected(spawn_backend, request):
                assert spawn_backend == request.config.option.spawn_backend
                assert subint_spawn.tractor.installed() == (spawn_backend == "subint")
            """
        )
    )
    with trio.fail_after(100):
        for backend in ("subint", "trio"):
            done = await run_tractor_pytest(tmp_path, "-q", f"--spawn-backend={backend}")
            output = (done.stdout + done.stderr).decode(errors="replace")
            assert done.returncode == 0, output
            assert "1 passed" in output, output


@pytest.mark.timeout(120)
async def test_pytest_hang_dumps_include_tractor_actors(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\ntimeout = 8\ntimeout_method = thread\nsubint_hang_dir = hangs\n"
    )
    (tmp_path / "test_hangs_forever.py").write_text(
        textwrap.dedent(
            """\
            import socket
            import tractor, trio
            from tests import tractor_samples

            async def main(port):
                async with tractor.open_nursery(registry_addrs=[("127.0.0.1", port)]) as an:
                    await an.run_in_actor(tractor_samples.sleeping_in_marker_frame, name="hung-actor")
                    await trio.sleep_forever()

            def test_hangs():
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", 0))
                    port = probe.getsockname()[1]
                trio.run(main, port)
            """
        )
    )
    with trio.fail_after(100):
        done = await run_tractor_pytest(tmp_path, "-q", "--spawn-backend=subint")
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode != 0, output  # pytest-timeout ended it
    hangs = tmp_path / "hangs"
    actors_files = sorted(hangs.glob("*.actors.txt")) if hangs.is_dir() else []
    assert actors_files, output[-3000:]
    text = actors_files[0].read_text()
    assert "=== actor 'hung-actor' (" in text, text
    assert "sleeping_in_marker_frame" in text.split("=== actor 'hung-actor' (", 1)[1], text


# -- a bounded part of tractor's own suite, on this spawn method -------------------------------

# tractor's cancellation paths on this method, each with a deadline loose enough for a loaded
# machine (tractor's Ctrl-C and speed tests, with 2-4 s deadlines that include cold spawns, are
# left to run-suite): a remote error, errors from several children, cancelling one child, a
# cancelled stream, an actor's spawn and teardown, cancels relayed between peers.
TRACTOR_SUBSET = (
    "tests/test_cancellation.py::test_remote_error",
    "tests/test_cancellation.py::test_multierror",
    "tests/test_cancellation.py::test_cancel_single_subactor",
    "tests/test_cancellation.py::test_cancel_infinite_streamer",
    "tests/spawn/test_subint_cancellation.py::test_subint_happy_teardown",
    "tests/test_inter_peer_cancellation.py::test_do_not_swallow_error_before_started_by_remote_contextcancelled",
    "tests/test_inter_peer_cancellation.py::test_peer_canceller",
)


@pytest.mark.skipif(
    not TRACTOR_SRC.is_dir(), reason="tractor's source tree is not in .venv (make tractor)"
)
@pytest.mark.timeout(300)
async def test_a_bounded_subset_of_tractors_cancellation_tests_passes_on_this_method() -> None:
    # tractor skips these under --spawn-backend=subint (its own method hangs on them); the
    # plugin in tests/tractor_plugins undoes that.  PYTHONPATH must not hold this checkout:
    # its `tests` package would shadow tractor's.
    env = dict(os.environ, PYTHONPATH=str(REPO / "tests" / "tractor_plugins"))
    with trio.fail_after(280):
        done = await trio.run_process(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-p",
                "subint_unskip",
                "--spawn-backend=subint",
                "--timeout=60",
                "-q",
                "-rfEs",
                *TRACTOR_SUBSET,
            ],
            cwd=TRACTOR_SRC,
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, output[-6000:]
    summary = [line for line in output.splitlines() if " passed" in line and " in " in line]
    assert summary, output[-3000:]  # a run that parsed nothing must not pass
    assert "skipped" not in summary[-1] and "failed" not in summary[-1], summary[-1]


def test_the_error_for_a_missing_tractor_is_exported() -> None:
    assert subint_spawn.TractorNotSupported is TractorNotSupported
