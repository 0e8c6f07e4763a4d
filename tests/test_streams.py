"""Streams and contexts on every backend and config: happy paths, early close, cancellation
from each side, errors, flow control."""

from __future__ import annotations

import pytest
import trio

import subint_spawn
from subint_spawn import ContextCancelled, RemoteActorError

from . import stream_samples as ss
from .helpers import BOUND, actor_gone, open_test_nursery


async def worker(an: subint_spawn.ActorNursery) -> subint_spawn.Portal:
    return await an.start_actor("streamer", enable_modules=["tests.stream_samples"])


async def test_stream_from_async_generator(spawn_backend: str, subint_config: str) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            async with portal.open_stream_from(ss.count, n=50) as stream:
                assert [v async for v in stream] == list(range(50))


async def test_stream_closed_early_stops_the_generator(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            async with portal.open_stream_from(ss.count_forever) as stream:
                async for value in stream:
                    if value == 10:
                        break
            # The actor is free again: the generator was stopped, not left running.
            async with portal.open_stream_from(ss.count, n=3) as stream:
                assert [v async for v in stream] == [0, 1, 2]


@pytest.mark.parametrize(
    ("generator", "n", "complaint", "remote_type"),
    [
        # the generator raises after its items
        (ss.count_then_fail, 5, "generator failed after 5", "ValueError"),
        # it yields a value that cannot be encoded, deep into a batched burst
        (ss.count_then_unsendable, 300, "cannot send this value", "TypeError"),
    ],
    ids=["raises", "yields-unsendable"],
)
async def test_generator_error_arrives_after_the_items_sent_before_it(
    spawn_backend: str,
    subint_config: str,
    generator: object,
    n: int,
    complaint: str,
    remote_type: str,
) -> None:
    received: list[int] = []
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            with pytest.raises(RemoteActorError, match=complaint) as caught:
                async with portal.open_stream_from(generator, n=n) as stream:  # type: ignore[arg-type]
                    async for value in stream:
                        received.append(value)
    assert received == list(range(n))
    assert caught.value.remote_type == remote_type


async def test_an_unsendable_item_fails_its_own_send_and_the_stream_lives(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            async with portal.open_context(ss.echo_context) as (ctx, _):
                async with ctx.open_stream() as stream:
                    await stream.send(1)
                    with pytest.raises(TypeError, match="cannot send this value over a .* stream"):
                        await stream.send(ss._NoWire())
                    await stream.send(2)
                    assert [await stream.receive(), await stream.receive()] == [1, 2]
            assert await ctx.wait_for_result() == 2


async def test_parent_cancelling_a_stream_ends_both_sides(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            with trio.CancelScope() as scope:
                async with portal.open_stream_from(ss.count_forever) as stream:
                    async for value in stream:
                        if value == 5:
                            scope.cancel()
            assert scope.cancelled_caught
            assert await portal.run(ss.not_a_generator) == 1  # the actor serves on


async def test_not_a_generator_is_a_clear_error(spawn_backend: str, subint_config: str) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            with pytest.raises(RemoteActorError, match="not an async generator function"):
                async with portal.open_stream_from(ss.not_a_generator) as stream:
                    async for _ in stream:
                        pass


async def test_context_started_value_and_result(spawn_backend: str, subint_config: str) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            async with portal.open_context(ss.result_context, value=21) as (ctx, first):
                assert first == 21
                assert await ctx.wait_for_result() == 42


@pytest.mark.parametrize("before_started", [True, False])
async def test_context_error_reaches_the_parent(
    spawn_backend: str, subint_config: str, before_started: bool
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            with pytest.raises(RemoteActorError, match="failed (before|after) started") as caught:
                async with portal.open_context(
                    ss.failing_context, before_started=before_started
                ) as (ctx, _):
                    await ctx.wait_for_result()
            assert not isinstance(caught.value, ContextCancelled)
            assert await portal.run(ss.not_a_generator) == 1


async def test_actor_cancelling_the_context_raises_context_cancelled_in_the_parent(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            with pytest.raises(ContextCancelled, match="cancelled by actor 'streamer' itself"):
                async with portal.open_context(ss.self_cancelling_context) as (ctx, _):
                    await ctx.wait_for_result()


async def test_parent_cancelling_the_context_exits_cleanly(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            async with portal.open_context(ss.sleeping_context) as (ctx, first):
                assert first == "sleeping"
                await ctx.cancel()
                assert await ctx.wait_for_result() is None  # we asked: no error


async def test_ctx_cancel_from_another_task_ends_the_openers_block(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            async with trio.open_nursery() as tasks:
                async with portal.open_context(ss.sleeping_context) as (ctx, first):
                    assert first == "sleeping"
                    tasks.start_soon(ctx.cancel)
                    await trio.sleep_forever()  # ended by that cancel, quietly
            assert ctx.cancel_requested
            assert await ctx.wait_for_result() is None  # we asked: no error
            assert await portal.run(ss.not_a_generator) == 1


@pytest.mark.parametrize("waiting_in", ["block", "receive"])
async def test_cancel_actor_under_an_open_context_raises_context_cancelled(
    spawn_backend: str, subint_config: str, waiting_in: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            async with trio.open_nursery() as tasks:
                with pytest.raises(ContextCancelled) as caught:
                    async with portal.open_context(ss.echo_context) as (ctx, _):
                        if waiting_in == "block":
                            await portal.cancel_actor()  # then the block ends normally
                        else:
                            async with ctx.open_stream() as stream:
                                tasks.start_soon(portal.cancel_actor)
                                await stream.receive()
            assert actor_gone(portal.channel.peer)
    assert caught.value.actor_name == "streamer"
    message = "echo_context was cancelled: actor 'streamer' was stopped by its parent"
    assert message in str(caught.value)
    assert "portal.cancel_actor()" in caught.value.remote_message


async def test_parent_scope_cancel_mid_context_cancels_the_actor_side(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            with trio.move_on_after(0.1) as scope:
                async with portal.open_context(ss.sleeping_context):
                    await trio.sleep_forever()
            assert scope.cancelled_caught
            assert await portal.run(ss.not_a_generator) == 1


@pytest.mark.timeout(120)
async def test_bidirectional_echo_of_10000_messages(spawn_backend: str, subint_config: str) -> None:
    n = 10_000
    with trio.fail_after(100):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            async with portal.open_context(ss.echo_context) as (ctx, first):
                assert first == "hello"
                async with ctx.open_stream() as stream, trio.open_nursery() as both:

                    async def send_all() -> None:
                        for i in range(n):
                            await stream.send(i)

                    both.start_soon(send_all)
                    for i in range(n):
                        assert await stream.receive() == i
            assert await ctx.wait_for_result() == n


async def test_slow_receiver_bounds_the_buffer(spawn_backend: str, subint_config: str) -> None:
    from subint_spawn._core._context import WINDOW

    most_buffered = 0
    with trio.fail_after(60):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            async with portal.open_context(ss.flood_context, n=3 * WINDOW) as (ctx, _):
                async with ctx.open_stream() as stream:
                    received = 0
                    async for _ in stream:
                        received += 1
                        most_buffered = max(most_buffered, stream.buffered)
                        if received % 50 == 0:
                            # Let the sender run as far ahead as it can before reading on.
                            await trio.testing.wait_all_tasks_blocked()
                            await trio.sleep(0.01)
            assert received == 3 * WINDOW
            assert await ctx.wait_for_result() == 3 * WINDOW
    assert most_buffered <= WINDOW


async def test_an_unread_stream_does_not_block_other_calls(
    spawn_backend: str, subint_config: str
) -> None:
    from subint_spawn._core._context import WINDOW

    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            async with portal.open_context(ss.flood_context, n=10 * WINDOW) as (ctx, _):
                async with ctx.open_stream():
                    # Nobody reads the stream; calls on the same actor must still be answered.
                    for _ in range(5):
                        assert await portal.run(ss.not_a_generator) == 1
                    await ctx.cancel()


async def test_sender_waiting_for_credit_fails_when_the_peer_returns(
    spawn_backend: str, subint_config: str
) -> None:
    from subint_spawn._core._context import WINDOW

    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await worker(an)
            async with portal.open_context(ss.return_without_reading) as (ctx, _):
                async with ctx.open_stream() as stream:
                    with pytest.raises(trio.BrokenResourceError):
                        for i in range(WINDOW + 10):  # more than the peer will ever credit
                            await stream.send(i)
            assert await ctx.wait_for_result() == "done"
