"""Cancellation on every backend and config: the parent always regains control, in bound,
and nothing leaks (the plugin's leak check runs around every test)."""

from __future__ import annotations

import os

import pytest
import trio

import subint_spawn
from subint_spawn import AbandonedInterpreterWarning, ChannelClosed, RemoteActorError, census

from . import samples
from .helpers import (
    BOUND,
    actor_gone,
    announcements,
    open_test_nursery,
    running_actors,
    started_call,
)

# A pure-Python loop must be reclaimed within this (the spec's default bound).
RECLAIM_BOUND = 1.0


async def test_an_cancel_on_an_idle_actor_is_quick(spawn_backend: str, subint_config: str) -> None:
    before = running_actors(spawn_backend)
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("idle", enable_modules=["tests.samples"])
            assert running_actors(spawn_backend) != before
            asked = trio.current_time()
            await an.cancel()
            assert trio.current_time() - asked < RECLAIM_BOUND
            assert actor_gone(portal.channel.peer)
            assert running_actors(spawn_backend) == before


async def test_an_cancel_reclaims_an_actor_stuck_in_a_pure_python_loop(
    spawn_backend: str, subint_config: str
) -> None:
    abandoned_before = census().abandoned_total
    with trio.fail_after(BOUND):
        async with (
            open_test_nursery(spawn_backend, subint_config) as an,
            trio.open_nursery() as callers,
        ):
            portal = await an.start_actor("stuck", enable_modules=["tests.samples"])
            await started_call(portal, callers, samples.spin_sync)
            # The call runs; the actor's trio thread is now blocked for good.
            asked = trio.current_time()
            await an.cancel()
            assert trio.current_time() - asked < RECLAIM_BOUND
            assert actor_gone(portal.channel.peer)
    if spawn_backend == "subint":  # the injected exception ended the loop: nothing abandoned
        assert census().abandoned_total == abandoned_before


async def test_cancelling_the_enclosing_scope_stops_stuck_and_idle_actors(
    spawn_backend: str, subint_config: str
) -> None:
    before = running_actors(spawn_backend)
    with trio.fail_after(BOUND):
        with trio.CancelScope() as scope:
            async with (
                open_test_nursery(spawn_backend, subint_config) as an,
                trio.open_nursery() as callers,
            ):
                stuck = await an.start_actor("stuck", enable_modules=["tests.samples"])
                idle = await an.start_actor("idle", enable_modules=["tests.samples"])
                await started_call(stuck, callers, samples.spin_forever)
                await started_call(idle, callers, samples.sleep_forever)
                asked = trio.current_time()
                scope.cancel()
        assert scope.cancelled_caught
        assert trio.current_time() - asked < RECLAIM_BOUND
    assert actor_gone(stuck.channel.peer) and actor_gone(idle.channel.peer)
    assert running_actors(spawn_backend) == before


async def test_nursery_cancel_scope_cancels_block_and_actors(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.run_in_actor(samples.sleep_forever)
            an.cancel_scope.cancel()
            await trio.sleep_forever()  # cancelled right here
    assert actor_gone(portal.channel.peer)
    with pytest.raises(ChannelClosed, match="ended without a result"):
        await portal.wait_for_result()


async def test_portal_cancel_actor_on_a_stuck_actor_returns(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with (
            open_test_nursery(spawn_backend, subint_config) as an,
            trio.open_nursery() as callers,
        ):
            portal = await an.start_actor("stuck", enable_modules=["tests.samples"])
            other = await an.start_actor("other", enable_modules=["tests.samples"])
            await started_call(portal, callers, samples.spin_sync)
            asked = trio.current_time()
            await portal.cancel_actor()
            assert trio.current_time() - asked < RECLAIM_BOUND
            assert actor_gone(portal.channel.peer)
            # Only that actor was stopped.
            assert not actor_gone(other.channel.peer)
            assert await other.run(samples.add, x=1) == 1


async def test_cancelling_a_call_cancels_it_in_the_actor(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("worker", enable_modules=["tests.samples"])
            async with announcements() as (address, heard):
                with trio.CancelScope() as scope:
                    async with trio.open_nursery() as canceller:

                        async def cancel_once_it_runs() -> None:
                            await heard()
                            scope.cancel()

                        canceller.start_soon(cancel_once_it_runs)
                        await portal.run(samples.sleep_until_cancelled, announce=address)
            assert scope.cancelled_caught
            # The actor's task saw the cancellation, and the actor serves the next call.
            assert await portal.run(samples.wait_for_cancelled_call) is True
            assert await portal.run(samples.add, x=3) == 3


@pytest.mark.parametrize("delay", [0.0, 0.001, 0.01, 0.05, 0.15])
async def test_cancel_during_spawn_leaves_nothing(
    spawn_backend: str, subint_config: str, delay: float
) -> None:
    # Sweeps the cancellation point across creating the interpreter/process, starting the
    # runtime and waiting for "ready"; whichever it hits, everything must be reaped.
    before = running_actors(spawn_backend)
    with trio.fail_after(BOUND):
        with trio.move_on_after(delay):
            async with open_test_nursery(spawn_backend, subint_config) as an:
                await an.start_actor("young", enable_modules=["tests.samples"])
                await trio.sleep_forever()
    assert running_actors(spawn_backend) == before


async def test_one_failing_actor_cancels_a_stuck_sibling(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        with pytest.raises(RemoteActorError, match="sibling failed"):
            async with (
                open_test_nursery(spawn_backend, subint_config) as an,
                trio.open_nursery() as callers,
            ):
                stuck = await an.start_actor("stuck", enable_modules=["tests.samples"])
                await started_call(stuck, callers, samples.spin_sync)
                await an.run_in_actor(samples.fail, message="sibling failed")
    assert actor_gone(stuck.channel.peer)


async def test_stuck_in_c_is_abandoned_and_the_caller_returns() -> None:
    # Only a subinterpreter can be stuck for good: a process is SIGKILLed.
    release_read, release_write = os.pipe()
    try:
        with trio.fail_after(BOUND):
            with pytest.warns(AbandonedInterpreterWarning):
                async with subint_spawn.open_nursery() as an, trio.open_nursery() as callers:
                    portal = await an.start_actor("in-c", enable_modules=["tests.samples"])
                    await started_call(portal, callers, samples.read_fd, fd=release_read)
                    asked = trio.current_time()
                    await an.cancel()
                    assert trio.current_time() - asked < 2.0
            assert len(census().abandoned) == 1
            # Let the C call return: the abandoned thread then destroys its interpreter.
            os.write(release_write, b"x")
            while census().abandoned:
                await trio.sleep(0.01)
        assert census().interpreters == 0
    finally:
        os.close(release_read)
        os.close(release_write)


async def test_actor_dying_under_run_in_actor_is_one_error_in_both_places(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        with pytest.raises(RemoteActorError) as caught:
            async with open_test_nursery(spawn_backend, subint_config) as an:
                async with announcements() as (address, heard):
                    portal = await an.run_in_actor(samples.sleep_forever, announce=address)
                    await heard()
                async with trio.open_nursery() as waiters:
                    waiters.start_soon(portal.wait_for_result)
                    await trio.testing.wait_all_tasks_blocked()  # it waits for the result
                    portal.channel.close_now()  # the actor is lost mid-call
    # The waiter's error (inside its own nursery) and the supervisor's are the same object.
    assert caught.value.remote_type == "ActorExited"
    with pytest.raises(RemoteActorError) as again:
        await portal.wait_for_result()
    assert again.value is caught.value
