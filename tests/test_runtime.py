"""The actor runtime's API on every backend and config: results, errors, bad input."""

from __future__ import annotations

import os

import pytest
import trio

import subint_spawn
from subint_spawn import ActorStartupError, ChannelClosed, RemoteActorError

from . import samples
from .helpers import BOUND, actor_gone, count_spawns, open_test_nursery, running_actors


async def test_run_in_actor_returns_the_result(spawn_backend: str, subint_config: str) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            sync_portal = await an.run_in_actor(samples.add, x=40, y=2)
            async_portal = await an.run_in_actor(samples.async_add, x=1, y=2)
            assert await sync_portal.wait_for_result() == 42
            assert await async_portal.wait_for_result() == 3
    assert actor_gone(sync_portal.channel.peer) and actor_gone(async_portal.channel.peer)


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


async def test_remote_error_carries_type_traceback_and_actor_name(
    spawn_backend: str, subint_config: str
) -> None:
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
    assert "in fail\n    raise ValueError(message)" in error.remote_traceback
    assert "kaputt" in str(error) and "failing" in str(error)
    if spawn_backend == "subint":  # in-process: the original rides along
        assert isinstance(error.__cause__, ValueError)
    else:  # another process: never unpickled
        assert error.__cause__ is None


async def test_remote_error_boxes_the_remote_exception_class(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("worker", enable_modules=["tests.samples"])
            with pytest.raises(RemoteActorError) as builtin:
                await portal.run(samples.fail, message="x")
            with pytest.raises(RemoteActorError) as custom:
                await portal.run(samples.raise_multi_arg, code=7, detail="bad")
            with pytest.raises(RemoteActorError) as unpicklable:
                await portal.run(samples.raise_lock_holding)
    assert builtin.value.boxed_type is ValueError
    assert custom.value.boxed_type is samples.MultiArgError
    assert custom.value.remote_message == "7: bad"
    assert unpicklable.value.boxed_type is samples.LockHoldingError
    if spawn_backend == "subint":  # in-process: the original object rides along, whole
        cause = custom.value.__cause__
        assert type(cause) is samples.MultiArgError and (cause.code, cause.detail) == (7, "bad")
        assert unpicklable.value.__cause__ is None
        (note,) = unpicklable.value.__notes__
        assert "not attached as __cause__: it cannot be pickled: TypeError" in note
    else:  # another process: never unpickled
        assert custom.value.__cause__ is None


async def test_run_in_actor_error_cancels_siblings_and_leaves_the_block_as_itself(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        with pytest.raises(RemoteActorError) as caught:
            async with open_test_nursery(spawn_backend, subint_config) as an:
                sleeper = await an.run_in_actor(samples.sleep_forever)
                failing = await an.run_in_actor(samples.async_fail, message="first")
                await failing.wait_for_result()
    # One error, not a group, though the body and the supervisor both raised it.
    assert caught.value.remote_message == "first"
    assert actor_gone(sleeper.channel.peer)  # the sibling was stopped...
    with pytest.raises(ChannelClosed, match="without a result"):
        await sleeper.wait_for_result()  # ...before it had a result


async def test_several_errors_at_once_stay_a_group(spawn_backend: str, subint_config: str) -> None:
    with trio.fail_after(BOUND):
        with pytest.RaisesGroup(RemoteActorError, KeyError):
            async with open_test_nursery(spawn_backend, subint_config) as an:
                failing = await an.run_in_actor(samples.fail, message="actor")
                try:
                    await failing.wait_for_result()
                except RemoteActorError:
                    raise KeyError("the body's own") from None


async def test_error_escapes_the_block_even_if_nobody_awaits_the_result(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        with pytest.raises(RemoteActorError, match="boom"):
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


async def test_functions_that_cannot_travel_are_refused_before_anything_starts(
    spawn_backend: str, subint_config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def nested() -> None: ...

    spawned = count_spawns(monkeypatch)
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            with pytest.raises(TypeError, match="module level in test_runtime.py") as caught:
                await an.run_in_actor(nested)
            assert "__main__" not in str(caught.value)
            with pytest.raises(TypeError, match="lambda"):
                await an.run_in_actor(lambda: None)
            portal = await an.start_actor("worker")
            with pytest.raises(TypeError, match="module level"):
                await portal.run(nested)
    assert spawned == ["worker"]


async def test_a_function_rebound_after_a_call_is_looked_up_again(
    spawn_backend: str, subint_config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ends remember the functions they looked up, and still follow a rebound name: the
    actor calls what its module binds now, the parent refuses a function its module no
    longer binds to that name (as on the first call)."""
    greet = samples.greet
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("worker", enable_modules=["tests.samples"])
            assert await portal.run(greet) == "hello"
            await portal.run(samples.rebind_greet)  # in the actor only
            assert await portal.run(greet) == "rebound"
            monkeypatch.setattr(samples, "greet", samples._other_greeting)
            with pytest.raises(TypeError, match="names a different object"):
                await portal.run(greet)


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


async def test_base_exceptions_from_user_code_reach_the_caller(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("worker", enable_modules=["tests.samples"])
            with pytest.raises(RemoteActorError) as caught:
                await portal.run(samples.raise_keyboard_interrupt)
            assert caught.value.remote_type == "KeyboardInterrupt"
            assert await portal.run(samples.add, x=2) == 2


async def test_block_exit_stops_long_lived_actors(spawn_backend: str, subint_config: str) -> None:
    before = running_actors(spawn_backend)
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portals = [await an.start_actor(name) for name in ("a", "b", "c")]
            assert len(running_actors(spawn_backend) - before) == 3
    assert running_actors(spawn_backend) == before
    assert all(actor_gone(portal.channel.peer) for portal in portals)


async def test_calls_on_a_stopped_actor_fail_instead_of_hanging(
    spawn_backend: str, subint_config: str
) -> None:
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


async def test_process_actor_outlives_the_thread_that_forked_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
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


# -- what tractor users reach for first ---------------------------------------------------------


async def test_wait_for_result_on_a_start_actor_portal_fails_at_once(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("worker")
            with trio.fail_after(1):  # at once: a wait here would be the old hang
                with pytest.raises(RuntimeError, match=r"start_actor\(\).*portal\.run\(fn"):
                    await portal.wait_for_result()
            assert await portal.run(samples.add, x=1) == 1  # the actor is unharmed


async def test_current_actor_names_the_root_and_every_actor(
    spawn_backend: str, subint_config: str
) -> None:
    root = subint_spawn.current_actor()
    assert (root.name, root.is_root, root.interpreter_id) == ("root", True, 0)
    assert root.pid == os.getpid()
    assert subint_spawn.current_actor() is root
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            one = await an.start_actor("worker")
            two = await an.start_actor("worker")
            oneshot = await an.run_in_actor(samples.whoami, name="oneshot")
            seen = [await one.run(samples.whoami), await two.run(samples.whoami)]
            seen.append(await oneshot.wait_for_result())
    for portal, (name, uid, is_root, pid, interpreter_id) in zip((one, two, oneshot), seen):
        peer = portal.channel.peer
        assert peer is not None
        assert (peer.name, peer.uid, peer.is_root, peer.pid, peer.interpreter_id) == (
            name,
            uid,
            is_root,
            pid,
            interpreter_id,
        )
        assert not is_root and name == portal.actor_name
        if spawn_backend == "subint":
            assert pid == os.getpid() and interpreter_id != 0
        else:
            assert pid != os.getpid() and interpreter_id == 0
    assert [name for name, *_ in seen] == ["worker", "worker-1", "oneshot"]
    assert len({root.uid, *(uid for _, uid, *_ in seen)}) == 4


# -- bad arguments fail before anything starts, naming the fix ---------------------------------


async def test_bad_spawn_arguments_are_refused_before_anything_starts(
    spawn_backend: str, subint_config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned = count_spawns(monkeypatch)
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            one_string = r"not the single string 'tests.samples': write enable_modules=\['tests"
            with pytest.raises(TypeError, match=one_string):
                await an.start_actor("worker", enable_modules="tests.samples")  # type: ignore
            with pytest.raises(TypeError, match=r"enable_modules\[1\] must be a module name"):
                await an.start_actor("worker", enable_modules=["tests.samples", 7])  # type: ignore
            with pytest.raises(TypeError, match="must be a str, got int 42"):
                await an.start_actor(42)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="must not be empty"):
                await an.start_actor("")
            with pytest.raises(TypeError, match="must be a str, got int 7"):
                await an.run_in_actor(samples.add, name=7, x=1)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="startup_timeout must be a positive number"):
                await an.start_actor("worker", startup_timeout=0)
            with pytest.raises(TypeError, match=r"generator function.*open_stream_from\(count"):
                await an.run_in_actor(samples.count, n=3)
            assert spawned == []  # refused, not started and torn down
            portal = await an.start_actor("worker")
            with pytest.raises(TypeError, match=r"open_stream_from\(count, \.\.\.\) as stream"):
                await portal.run(samples.count, n=3)
            assert await portal.run(samples.add, x=2) == 2
    assert spawned == ["worker"]


async def test_function_parameters_named_like_the_api_s_own_reach_the_function(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("worker")
            assert await portal.run(samples.takes_fn, fn="it") == "got it"  # fn is positional-only
            # run_in_actor's own keywords are never passed on (docs/runtime.md).
            named = await an.run_in_actor(samples.add, name="adder", x=1, y=2)
            assert named.actor_name == "adder" and await named.wait_for_result() == 3


def test_open_nursery_outside_trio_says_subint_spawn_runs_under_trio() -> None:
    import asyncio

    async def use_it() -> None:
        async with subint_spawn.open_nursery():
            pass

    with pytest.raises(RuntimeError, match="runs under trio: .* entered under asyncio"):
        asyncio.run(use_it())
    coroutine = use_it()
    with pytest.raises(RuntimeError, match="subint_spawn runs under trio: .* entered outside trio"):
        coroutine.send(None)
    coroutine.close()
