"""The subinterpreter driver on its own: run, fail loudly, kill, abandon, never leak."""

from __future__ import annotations

import _interpreters
import os
from collections.abc import Iterator

import pytest
import trio

from subint_spawn import BootstrapError, InterpreterKilled, RemoteError, census
from subint_spawn._exceptions import AbandonedInterpreterWarning
from subint_spawn.driver import KillPolicy, open_subinterpreter

from . import library_probe, runs_trio_samples, samples


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    os.close(read_fd)
    os.close(write_fd)


async def wait_ready(read_fd: int) -> None:
    await trio.lowlevel.wait_readable(read_fd)
    assert os.read(read_fd, 1) == b"r"


async def test_sync_function_runs_and_returns(subint_config: str) -> None:
    with trio.fail_after(10):
        async with open_subinterpreter(subint_config) as interp:
            interp.start(samples.add, 40, y=2)
            assert await interp.wait() == 42


async def test_async_function_runs_under_trio(subint_config: str) -> None:
    with trio.fail_after(10):
        async with open_subinterpreter(subint_config) as interp:
            interp.start(samples.async_add, 1, y=2)
            assert await interp.wait() == 3


async def test_import_error_surfaces_with_remote_traceback(subint_config: str) -> None:
    # The bound only turns a hang into a failure (it took ~0.1 s; on a loaded machine > 1 s).
    with trio.fail_after(10):
        async with open_subinterpreter(subint_config) as interp:
            interp.start(samples.import_missing)
            with pytest.raises(RemoteError) as caught:
                await interp.wait()
    error = caught.value
    assert error.remote_type == "ModuleNotFoundError"
    assert "subint_spawn_no_such_module" in error.remote_message
    assert "in import_missing" in error.remote_traceback
    assert "Traceback (most recent call last)" in str(error)
    # The in-process boundary lets the original exception ride along as the cause.
    assert isinstance(error.__cause__, ModuleNotFoundError)


async def test_unimportable_bootstrap_is_a_bootstrap_error(subint_config: str) -> None:
    import sys

    with trio.fail_after(10):
        async with open_subinterpreter(subint_config) as interp:
            # An import path on which nothing of ours can be found, as in a broken environment.
            saved = sys.path[:]
            sys.path[:] = ["/nonexistent"]
            try:
                interp.start(samples.add, 1)
            finally:
                sys.path[:] = saved
            with pytest.raises(BootstrapError) as caught:
                await interp.wait()
    # The guest's entry point cannot be shared with an interpreter that cannot import it.
    assert caught.value.remote_type == "NotShareableError"
    assert "could not run anything in the interpreter" in caught.value.remote_message


def test_functions_that_cannot_travel_are_refused_with_the_fix() -> None:
    from subint_spawn._core._funcref import ref_of

    def nested() -> None: ...

    with pytest.raises(TypeError, match="module level"):
        ref_of(nested)
    with pytest.raises(TypeError, match="lambda"):
        ref_of(lambda: None)
    assert ref_of(samples.add) == ("tests.samples", "add")


async def test_unpicklable_arguments_fail_in_the_caller() -> None:
    with trio.fail_after(10):
        async with open_subinterpreter() as interp:
            with pytest.raises(TypeError, match="picklable"):
                interp.start(samples.add, lambda: 1)


async def test_unpicklable_result_is_a_clear_remote_error(subint_config: str) -> None:
    with trio.fail_after(10):
        async with open_subinterpreter(subint_config) as interp:
            interp.start(samples.return_unpicklable)
            with pytest.raises(RemoteError, match="cannot cross the interpreter boundary"):
                await interp.wait()


async def test_idle_trio_loop_is_cancelled_cooperatively(
    subint_config: str, pipe: tuple[int, int]
) -> None:
    with trio.fail_after(10):
        async with open_subinterpreter(subint_config) as interp:
            interp.start(samples.sleep_forever, pipe[1])
            await wait_ready(pipe[0])
            assert await interp.kill() == "cancelled"
            with pytest.raises(InterpreterKilled) as caught:
                await interp.wait()
            assert caught.value.how == "cancelled"


async def test_a_plain_function_marked_runs_trio_is_cancelled_cooperatively(
    subint_config: str, pipe: tuple[int, int]
) -> None:
    # An idle trio loop waits in C (epoll), where no injected exception lands: without the
    # mark this actor could only be abandoned.
    with trio.fail_after(10):
        async with open_subinterpreter(subint_config) as interp:
            interp.start(runs_trio_samples.sync_entry_running_trio, pipe[1])
            await wait_ready(pipe[0])
            assert await interp.kill() == "cancelled"
            with pytest.raises(InterpreterKilled) as caught:
                await interp.wait()
            assert caught.value.how == "cancelled"


async def test_an_idle_loop_deaf_to_cancel_is_woken_for_the_kill(
    subint_config: str, pipe: tuple[int, int]
) -> None:
    # The injected exception lands only when the runner runs bytecode; an idle trio loop sits
    # in epoll with no deadline.  Each KILL also wakes the loop, so it is killed, not abandoned.
    with trio.fail_after(10):
        async with open_subinterpreter(subint_config) as interp:
            interp.start(samples.sleep_shielded, pipe[1])
            await wait_ready(pipe[0])
            assert await interp.kill() == "killed"


async def test_pure_python_loop_is_killed_and_destroyed_within_1s(
    subint_config: str, pipe: tuple[int, int]
) -> None:
    interpreters_before = set(_interpreters.list_all())
    with trio.fail_after(10):
        async with open_subinterpreter(subint_config) as interp:
            interp.start(samples.spin_forever, pipe[1])
            await wait_ready(pipe[0])
            asked = trio.current_time()
            assert await interp.kill() == "killed"
        assert trio.current_time() - asked < 1.0
    assert set(_interpreters.list_all()) == interpreters_before
    assert census().interpreters == 0 and census().threads == 0


async def test_loop_that_swallows_injections_is_still_killed(
    subint_config: str, pipe: tuple[int, int]
) -> None:
    with trio.fail_after(10):
        async with open_subinterpreter(subint_config) as interp:
            interp.start(samples.spin_and_swallow, pipe[1])
            await wait_ready(pipe[0])
            assert await interp.kill() == "killed"


async def test_thread_stuck_in_c_is_abandoned_within_the_bound_then_reclaimed(
    subint_config: str,
) -> None:
    ready_read, ready_write = os.pipe()
    release_read, release_write = os.pipe()
    policy = KillPolicy(grace=0.1, kill_bound=0.3)
    try:
        with trio.fail_after(10):
            async with open_subinterpreter(subint_config, policy=policy) as interp:
                interp.start(samples.block_in_c, ready_write, release_read)
                await wait_ready(ready_read)
                asked = trio.current_time()
                with pytest.warns(AbandonedInterpreterWarning, match=f"subinterpreter {interp.id}"):
                    assert await interp.kill() == "abandoned"
                assert trio.current_time() - asked < 1.0
            # The caller got control back with the interpreter still stuck in C.
            assert [record.interpreter_id for record in census().abandoned] == [interp.id]
            with pytest.raises(InterpreterKilled, match="abandoned"):
                await interp.wait()
            # Once the C call returns, the stuck thread destroys its interpreter itself.
            os.write(release_write, b"x")
            assert interp._runner is not None
            await trio.to_thread.run_sync(interp._runner.thread.join)
            assert census().abandoned == () and census().interpreters == 0
    finally:
        for fd in (ready_read, ready_write, release_read, release_write):
            os.close(fd)


async def test_trio_worker_threads_inside_the_interpreter_do_not_outlive_it(
    subint_config: str,
) -> None:
    # trio's idle workers would otherwise idle on for 10 s and then be stranded in the
    # destroyed interpreter for good; the leak check counts OS threads.
    with trio.fail_after(10):
        async with open_subinterpreter(subint_config) as interp:
            interp.start(samples.use_worker_thread)
            assert await interp.wait() == "from a worker"


async def test_cancel_while_waiting_still_reaps_everything(
    subint_config: str, pipe: tuple[int, int]
) -> None:
    with trio.fail_after(10):
        with trio.CancelScope() as scope:
            async with open_subinterpreter(subint_config) as interp:
                interp.start(samples.spin_forever, pipe[1])
                await wait_ready(pipe[0])
                scope.cancel()
                await interp.wait()
        assert scope.cancelled_caught
    assert census().interpreters == 0


@pytest.mark.timeout(600)  # ~40 s quiet; ~100 s on a loaded 2-core machine
async def test_200_cycles_leave_nothing_behind(subint_config: str) -> None:
    import operator  # a function whose module costs nothing to import: this measures the driver

    for i in range(200):
        with trio.fail_after(10):  # per cycle: a hang bound, not a speed target
            async with open_subinterpreter(subint_config) as interp:
                interp.start(operator.add, i, 1)
                assert await interp.wait() == i + 1
    assert census().interpreters == 0 and census().threads == 0


async def test_watchdog_works_with_fds_beyond_fd_setsize(
    subint_config: str, pipe: tuple[int, int]
) -> None:
    # select() cannot watch fds >= 1024; a process with ~100 actors gets there.
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip(f"RLIMIT_NOFILE {soft} is too low to reach fd 1024")
    fillers = [os.dup(pipe[0]) for _ in range(1100)]
    try:
        with trio.fail_after(10):
            async with open_subinterpreter(subint_config) as interp:
                interp.start(samples.sleep_forever, pipe[1])
                assert interp._guest_control.fileno() >= 1024
                await wait_ready(pipe[0])
                assert await interp.kill() == "cancelled"
    finally:
        for fd in fillers:
            os.close(fd)


@pytest.mark.timeout(60)
def test_disarm_never_lets_an_injection_escape_or_hang() -> None:
    # The runner and the watchdog race: KILLs keep arriving while the runner decides to
    # disarm at a random moment. After disarm() returns nothing may land, and it must return.
    import random
    import socket
    import threading
    import time

    from subint_spawn._core import _guest

    outcome: dict[str, int] = {"clean": 0, "escaped": 0, "caught": 0}

    def one_round() -> None:
        control, guest_end = socket.socketpair()
        guard = _guest._Guard(guest_end.fileno())
        guard.runner_ident = threading.get_ident()
        stop = threading.Event()

        def parent() -> None:
            while not stop.is_set():
                control.send(_guest.KILL)
                time.sleep(random.uniform(0, 0.0005))

        sender = threading.Thread(target=parent)
        sender.start()
        deadline = time.monotonic() + random.uniform(0.001, 0.01)
        while True:
            try:
                if guard.watchdog.ident is None:
                    guard.watchdog.start()
                while time.monotonic() < deadline:
                    pass
                guard.disarm()
                break
            except _guest.KilledByWatchdog:
                outcome["caught"] += 1
        try:
            end = time.monotonic() + 0.003
            while time.monotonic() < end:
                pass
            outcome["clean"] += 1
        except _guest.KilledByWatchdog:
            outcome["escaped"] += 1
        stop.set()
        sender.join()
        guard.close()
        control.close()
        guest_end.close()

    def runner() -> None:
        for _ in range(150):
            one_round()

    thread = threading.Thread(target=runner, daemon=True)
    thread.start()
    thread.join(45)
    assert not thread.is_alive(), f"disarm hung: {outcome}"
    assert outcome["escaped"] == 0, outcome
    assert outcome["clean"] == 150 and outcome["caught"] > 0, outcome


async def test_interpreter_left_with_a_non_daemon_thread_is_destroyed_once_it_ends(
    subint_config: str, pipe: tuple[int, int]
) -> None:
    """Destroying waits for such threads, so the caller must not; but the interpreter must
    not stay forever either (it did: the warning promised a destroy nobody did)."""
    read_fd, write_fd = pipe
    with trio.fail_after(20):
        with pytest.warns(AbandonedInterpreterWarning, match="destroys it once those threads end"):
            async with open_subinterpreter(subint_config) as interp:
                interp.start(samples.leave_non_daemon_thread_blocked, read_fd)
                assert await interp.wait() == "returned"
        assert census().interpreters == 1  # abandoned, not destroyed yet: its thread runs
        os.write(write_fd, b"x")  # the stray thread ends...
        while census().interpreters:  # ...and the late destroyer gets it
            await trio.sleep(0.01)
    assert [entry[0] for entry in _interpreters.list_all()] == [0]


async def test_a_boot_that_imports_trio_asks_the_parent_not_ldconfig(
    subint_config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``import trio`` looks up libpthread, which runs ``ldconfig -p`` in a subprocess: the
    boot answers from the parent's one lookup during the imports, then puts the real
    ``find_library`` back.  A sentinel answer in the parent proves where the answer came from."""
    from subint_spawn._core import _driver

    monkeypatch.setattr(_driver, "_known_libraries", {"pthread": "libpthread-from-parent.so"})
    with trio.fail_after(20):
        interp = await _driver.boot(subint_config, modules=("trio", "tests.library_probe"))
        try:
            interp.start(library_probe.find_library_now)
            at_import, now, module = await interp.wait()
        finally:
            await interp.aclose()
    assert at_import == "libpthread-from-parent.so"
    assert now != "libpthread-from-parent.so" and module == "ctypes.util"


async def test_an_abandoned_boot_leaves_the_census_once_its_thread_is_done(
    monkeypatch: pytest.MonkeyPatch, pipe: tuple[int, int]
) -> None:
    """A boot past ``BOOT_BOUND`` is abandoned and listed in ``census()``; when its thread
    finishes, it destroys what it created and the record goes (it used to stay forever)."""
    from subint_spawn._core import _driver

    monkeypatch.setattr(_driver, "BOOT_BOUND", 0.3)
    monkeypatch.setenv("SUBINT_SPAWN_TEST_RELEASE_FD", str(pipe[0]))
    before = census()
    with trio.fail_after(20):
        with (
            pytest.warns(AbandonedInterpreterWarning, match="booting took longer"),
            pytest.raises(BootstrapError, match="booting took longer"),
        ):
            await _driver.boot("isolated", modules=("tests.slow_import",))
        assert [record.interpreter_id for record in census().abandoned] == [-1]
        os.write(pipe[1], b"x")  # the import finishes; the thread destroys the interpreter
        while census().abandoned or census().threads:  # a condition, checked until it holds
            await trio.sleep(0.01)
    assert census().reclaimed_late == before.reclaimed_late + 1
    assert census().interpreters == 0
