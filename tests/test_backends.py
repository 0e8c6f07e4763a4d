"""The contract of :class:`subint_spawn._backends.ActorHandle`: one test per member, run on
every backend in the registry.  The nursery relies on nothing else, so a new backend that
passes these can be supervised like the others."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, get_args

import pytest
import trio

from subint_spawn import ChannelClosed
from subint_spawn._backends import BACKENDS, ActorHandle, StopOutcome, get
from subint_spawn._core._channel import Channel
from subint_spawn._core._identity import ActorInfo

from .helpers import BOUND, announcements, process_gone, running_actors

pytestmark = pytest.mark.parametrize("backend", BACKENDS)


@asynccontextmanager
async def spawned(backend: str, name: str = "contract") -> AsyncIterator[ActorHandle]:
    """A handle straight from the backend; stopped and reaped however the test ends."""
    handle = await get(backend).spawn(name, ["tests.samples"], "isolated")  # type: ignore
    try:
        yield handle
    finally:
        with trio.CancelScope(shield=True):
            if not handle.exited:
                await handle.hard_stop()
            await handle.reap()


async def said_ready(handle: ActorHandle) -> ActorInfo:
    """Read the actor's ``ready`` and tell the handle, as the supervisor does."""
    kind, name, uid, pid, interpreter_id = await handle.channel.receive()
    assert kind == "ready"
    handle.ready()
    return ActorInfo(name, uid, False, pid, interpreter_id)


async def call(handle: ActorHandle, fn: str, **kwargs: Any) -> None:
    await handle.channel.send(("call", 0, "tests.samples", fn, kwargs))


async def test_name_and_channel(backend: str) -> None:
    with trio.fail_after(BOUND):
        async with spawned(backend, "named") as handle:
            assert handle.name == "named"
            assert isinstance(handle.channel, Channel)
            assert (await said_ready(handle)).name == "named"  # the channel reaches that actor


async def test_where_names_the_interpreter_or_process(backend: str) -> None:
    with trio.fail_after(BOUND):
        async with spawned(backend) as handle:
            me = await said_ready(handle)
            if me.interpreter_id != 0:
                assert f"subinterpreter {me.interpreter_id}" in handle.where
            else:
                assert f"process {me.pid}" in handle.where


async def test_ready_lets_the_parent_see_the_actor_close_its_end(backend: str) -> None:
    # Until ready(), the parent may hold a copy of the actor's end (subint: the fd it shares);
    # after it, the actor closing its channel is the parent's EOF, before any reaping.
    with trio.fail_after(BOUND):
        async with spawned(backend) as handle:
            await said_ready(handle)
            await handle.channel.send(("stop",))
            with pytest.raises(ChannelClosed):
                await handle.channel.receive()


async def test_exited_is_false_until_the_actor_ends(backend: str) -> None:
    with trio.fail_after(BOUND):
        async with spawned(backend) as handle:
            assert not handle.exited
            await said_ready(handle)
            assert not handle.exited
            await handle.channel.send(("stop",))
            await handle.wait_exited()
            assert handle.exited


async def test_wait_exited_returns_once_the_actor_has_ended(backend: str) -> None:
    with trio.fail_after(BOUND):
        async with spawned(backend) as handle:
            me = await said_ready(handle)
            await handle.channel.send(("stop",))
            await handle.wait_exited()
            if me.interpreter_id == 0:
                assert process_gone(me.pid)
            assert handle.exited


async def test_hard_stop_ends_an_actor_that_ignores_its_channel(backend: str) -> None:
    with trio.fail_after(BOUND):
        async with spawned(backend) as handle, announcements() as (address, heard):
            await said_ready(handle)
            await call(handle, "spin_sync", announce=address)
            await heard()  # it spins on its trio thread: no message is read any more
            outcome = await handle.hard_stop()
            assert outcome in get_args(StopOutcome)
            assert outcome in ("cancelled", "killed")  # pure Python: never abandoned
            assert handle.exited


async def test_reap_releases_everything_and_reports_no_error_after_a_stop(backend: str) -> None:
    before = running_actors(backend)
    with trio.fail_after(BOUND):
        handle = await get(backend).spawn("reaped", ["tests.samples"], "isolated")  # type: ignore
        try:
            await said_ready(handle)
            assert running_actors(backend) != before
            await handle.channel.send(("stop",))
            await handle.wait_exited()
        finally:
            with trio.CancelScope(shield=True):
                reason = await handle.reap()
    assert reason is None  # stopped on request: not the actor's own failure
    assert running_actors(backend) == before
    with pytest.raises(ChannelClosed):
        await handle.channel.send(("stop",))
