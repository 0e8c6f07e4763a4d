"""The actor runtime's API on every backend and config: results, errors, bad input."""

from __future__ import annotations

import os

import pytest
import trio

import subint_spawn
from subint_spawn import ActorStartupError, ChannelClosed, RemoteActorError, census

from . import samples
from .helpers import BOUND, open_test_nursery




async def test_run_in_actor_returns_the_result(spawn_backend: str, subint_config: str) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            sync_portal = await an.run_in_actor(samples.add, x=40, y=2)
            async_portal = await an.run_in_actor(samples.async_add, x=1, y=2)
            assert await sync_portal.wait_for_result() == 42
            assert await async_portal.wait_for_result() == 3
    assert census().interpreters == 0


async def test_start_actor_serves_many_calls(spawn_backend: str, subint_config: str) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("worker", enable_modules=["tests.samples"])
            results = [await portal.run(samples.add, x=i, y=1) for i in range(20)]
            assert results == list(range(1, 21))
            answers: dict[int, int] = {}

            async def call(i: int) -> None:
                answers[i] = await portal.run(samples.async_add, x=i, y=100)

            async with trio.open_nursery() as calls:  # concurrent calls share one channel
                for i in range(10):
                    calls.start_soon(call, i)
            assert answers == {i: i + 100 for i in range(10)}
            assert await portal.run(samples.echo, value={"a": [1, 2]}) == {"a": [1, 2]}


async def test_remote_error_carries_type_traceback_and_actor_name(spawn_backend: str, subint_config: str) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("failing", enable_modules=["tests.samples"])
            with pytest.raises(RemoteActorError) as caught:
                await portal.run(samples.fail, message="kaputt")
            # The actor survives a failing call.
            assert await portal.run(samples.add, x=1, y=1) == 2
    error = caught.value
    assert error.remote_type == "ValueError"
    assert error.remote_message == "kaputt"
    assert error.actor_name == "failing"
    assert 'in fail\n    raise ValueError(message)' in error.remote_traceback
    assert "kaputt" in str(error) and "failing" in str(error)
    if spawn_backend == "subint":  # in-process: the original rides along
        assert isinstance(error.__cause__, ValueError)
    else:  # another process: never unpickled
        assert error.__cause__ is None


async def test_run_in_actor_error_cancels_siblings_and_is_reported_once(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        with pytest.raises(BaseExceptionGroup) as caught:
            async with open_test_nursery(spawn_backend, subint_config) as an:
                sleeper = await an.run_in_actor(samples.sleep_forever)
                failing = await an.run_in_actor(samples.async_fail, message="first")
                await failing.wait_for_result()
        assert sleeper is not None
    errors = caught.value.exceptions
    assert len(errors) == 1, errors
    assert isinstance(errors[0], RemoteActorError) and errors[0].remote_message == "first"
    assert census().interpreters == 0


async def test_error_escapes_the_block_even_if_nobody_awaits_the_result(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        with pytest.RaisesGroup(RemoteActorError):
            async with open_test_nursery(spawn_backend, subint_config) as an:
                await an.run_in_actor(samples.fail)


async def test_unknown_module_is_a_startup_error(spawn_backend: str, subint_config: str) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            with pytest.raises(ActorStartupError) as caught:
                await an.start_actor("lost", enable_modules=["tests.no_such_module_here"])
            with pytest.raises(ActorStartupError, match="fails to import on purpose") as broken:
                await an.start_actor("broken", enable_modules=["tests.broken_import"])
    assert caught.value.remote_type == "ModuleNotFoundError"
    assert "broken_import.py" in broken.value.remote_traceback


async def test_isolated_interpreter_refusing_an_extension_points_to_legacy() -> None:
    with trio.fail_after(BOUND):
        async with subint_spawn.open_nursery(backend="subint", config="isolated") as an:
            with pytest.raises(ActorStartupError, match="config='legacy'"):
                await an.start_actor("fast", enable_modules=["msgspec"])
        async with subint_spawn.open_nursery(backend="subint", config="legacy") as an:
            portal = await an.start_actor("fast", enable_modules=["msgspec"])
            assert await portal.run(samples.import_msgspec)


async def test_functions_that_cannot_travel_are_refused_before_anything_starts() -> None:
    def nested() -> None: ...

    with trio.fail_after(BOUND):
        async with subint_spawn.open_nursery() as an:
            with pytest.raises(TypeError, match="module level"):
                await an.run_in_actor(nested)
            with pytest.raises(TypeError, match="lambda"):
                await an.run_in_actor(lambda: None)
    assert census().interpreters == 0


async def test_unsendable_arguments_fail_in_the_caller_and_the_actor_lives_on(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("worker", enable_modules=["tests.samples"])
            with pytest.raises(TypeError, match="cannot send this value"):
                await portal.run(samples.echo, value=samples._Unsendable())
            assert await portal.run(samples.echo, value=5) == 5


async def test_unsendable_result_is_a_remote_error_naming_the_function(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("worker", enable_modules=["tests.samples"])
            with pytest.raises(RemoteActorError, match="return_unsendable cannot be sent back"):
                await portal.run(samples.return_unsendable)
            assert await portal.run(samples.echo, value="still here") == "still here"


async def test_base_exceptions_from_user_code_reach_the_caller(spawn_backend: str, subint_config: str) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("worker", enable_modules=["tests.samples"])
            with pytest.raises(RemoteActorError) as caught:
                await portal.run(samples.raise_keyboard_interrupt)
            assert caught.value.remote_type == "KeyboardInterrupt"
            assert await portal.run(samples.add, x=2) == 2


async def test_block_exit_stops_long_lived_actors(spawn_backend: str, subint_config: str) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            for name in ("a", "b", "c"):
                await an.start_actor(name, enable_modules=["tests.samples"])
    assert census().interpreters == 0


async def test_calls_on_a_stopped_actor_fail_instead_of_hanging(spawn_backend: str, subint_config: str) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("worker", enable_modules=["tests.samples"])
            await portal.cancel_actor()
            with pytest.raises(ChannelClosed):
                await portal.run(samples.add, x=1)


def test_backend_and_config_are_checked() -> None:
    assert subint_spawn.current_spawn_backend() == "subint"
    with pytest.raises(ValueError, match="unknown spawn backend"):
        subint_spawn.set_spawn_backend("threads")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown interpreter config"):
        subint_spawn.set_default_config("shared")  # type: ignore[arg-type]


async def test_set_spawn_backend_changes_the_default() -> None:
    subint_spawn.set_spawn_backend("trio")
    try:
        with trio.fail_after(BOUND):
            async with subint_spawn.open_nursery() as an:
                portal = await an.run_in_actor(samples.own_pid)
                assert await portal.wait_for_result() != os.getpid()  # it really was a process
    finally:
        subint_spawn.set_spawn_backend("subint")


async def test_process_actor_outlives_the_thread_that_forked_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # trio forks from a worker thread, which exits once idle; an actor tied to that thread's
    # life (PR_SET_PDEATHSIG) was SIGKILLed ~10 s after spawn.  End the worker now instead.
    import threading

    from trio._core import _thread_cache

    from subint_spawn._core._trio_private import stop_idle_workers

    monkeypatch.setattr(_thread_cache, "IDLE_TIMEOUT", _thread_cache.IDLE_TIMEOUT)  # restored after

    with trio.fail_after(BOUND):
        async with subint_spawn.open_nursery(backend="trio") as an:
            portal = await an.start_actor("long-lived", enable_modules=["tests.samples"])
            forkers = [t for t in threading.enumerate() if t.name.startswith("Trio thread")]
            stop_idle_workers()
            for thread in forkers:
                await trio.to_thread.run_sync(thread.join)
            assert await portal.run(samples.add, x=1) == 1
