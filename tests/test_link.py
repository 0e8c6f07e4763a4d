"""The parent's link to one actor: who reads the socket, and that nobody's message is lost.

A call reads its own answer (saving the receive loop's wake-up on every round trip), so the
socket changes hands between the receive loop and the calls.  These tests play the actor by
hand on the other end of a socket pair, which makes every hand-over happen on purpose.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from subint_spawn import ChannelClosed, ProtocolError
from subint_spawn._core import _messages as m
from subint_spawn._core import _portal
from subint_spawn._core._channel import Channel
from subint_spawn._core._codec import get_codec
from subint_spawn._core._portal import ActorLink

BOUND = 5


class Link:
    """A link serving one end of a socket pair; ``actor`` is the channel at the other end."""

    def __init__(self, link: ActorLink, actor: Channel, nursery: trio.Nursery) -> None:
        self.link, self.actor, self.nursery = link, actor, nursery
        self.served = trio.Event()

    async def serve(self) -> None:
        await self.link.serve()
        self.served.set()

    async def next_call(self) -> tuple[Any, ...]:
        message = await self.actor.receive()
        assert message[0] == m.CALL, message
        return tuple(message)

    async def answer(self, cid: int, value: Any) -> None:
        await self.actor.send((m.RETURN, cid, value))


@pytest.fixture
async def link() -> AsyncIterator[Link]:
    parent_end, actor_end = socket.socketpair()
    actor = Channel(actor_end, get_codec("pickle"))
    async with trio.open_nursery() as nursery:
        fixture = Link(
            ActorLink(Channel(parent_end, get_codec("pickle")), "scripted"), actor, nursery
        )
        nursery.start_soon(fixture.serve)
        await actor.send((m.READY, "scripted", "uid", 1, 1))
        with trio.fail_after(BOUND):
            await fixture.link.wait_ready()
        yield fixture
        nursery.cancel_scope.cancel()
    fixture.link.channel.close_now()
    actor.close_now()


async def call(
    link: ActorLink, results: dict[str, Any], key: str, done: trio.Event | None = None
) -> None:
    try:
        results[key] = await link.call("mod", key, {})
    except Exception as exc:
        results[key] = exc
    if done is not None:
        done.set()


async def test_a_call_routes_what_arrives_before_its_answer(
    link: Link, caplog: pytest.LogCaptureFixture
) -> None:
    """While a call reads the socket, messages for others (a log record, the answer of a call
    that was cancelled and left) are handled as the receive loop would."""
    caplog.set_level(logging.INFO)
    results: dict[str, Any] = {}
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as calls:
            calls.start_soon(call, link.link, results, "first")
            _, cid, *_ = await link.next_call()
            await link.actor.send(
                (m.LOG, logging.WARNING, "scripted.logger", "meanwhile", "scripted", None)
            )
            await link.answer(cid + 1000, "nobody's")
            await link.answer(cid, 1)
    assert results == {"first": 1}
    assert "meanwhile" in caplog.text


async def test_concurrent_calls_get_their_answers_in_any_order(
    link: Link, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first call reads; once it is gone, the receive loop reads for the second at once
    (not on the retake timer: here, never)."""
    monkeypatch.setattr(_portal, "_RETAKE_AFTER", 1e9)
    results: dict[str, Any] = {}
    first_done = trio.Event()
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as calls:
            calls.start_soon(call, link.link, results, "first", first_done)
            _, first, *_ = await link.next_call()
            calls.start_soon(call, link.link, results, "second")
            _, second, *_ = await link.next_call()
            await link.answer(first, 1)
            await first_done.wait()  # the first call returned, and let go of the socket
            await link.answer(second, 2)
    assert results == {"first": 1, "second": 2}


async def test_a_long_call_does_not_keep_the_socket(link: Link) -> None:
    """A call that waits long (here: until the end) reads only until it has routed another
    call's answer; from then on the next call reads its own answer again (the fast path)."""
    results: dict[str, Any] = {}
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as calls:
            calls.start_soon(call, link.link, results, "long")
            _, long, *_ = await link.next_call()
            for key in ("short", "next"):
                done = trio.Event()
                calls.start_soon(call, link.link, results, key, done)
                _, cid, *_ = await link.next_call()
                await trio.testing.wait_all_tasks_blocked()
                reading = link.link._reader
                await link.answer(cid, key)
                await done.wait()
                if key == "next":
                    assert reading is not None and reading is not _portal._SERVE
                    assert getattr(reading, "value", None) == "next"  # it read its own answer
            await link.answer(long, "long")
    assert results == {"long": "long", "short": "short", "next": "next"}


async def test_the_receive_loop_takes_the_socket_back_after_the_calls(link: Link) -> None:
    """After the last call, the loop reads again: it sees the channel end by itself."""
    results: dict[str, Any] = {}
    with trio.fail_after(BOUND):
        for key in ("a", "b"):
            async with trio.open_nursery() as calls:
                calls.start_soon(call, link.link, results, key)
                _, cid, *_ = await link.next_call()
                await link.answer(cid, key)
        link.actor.close_now()
        await link.served.wait()
    assert results == {"a": "a", "b": "b"}
    assert isinstance(link.link.closed_error, ChannelClosed)


async def test_closing_the_link_ends_a_call_reading_the_socket(link: Link) -> None:
    """The supervisor closes the link (the actor was stopped): a call waiting on the socket
    itself fails then, even though the other end is still open and silent."""
    results: dict[str, Any] = {}
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as calls:
            calls.start_soon(call, link.link, results, "never answered")
            await link.next_call()
            await trio.testing.wait_all_tasks_blocked()
            link.link.close(ChannelClosed("actor 'scripted' was stopped"))
    assert isinstance(results["never answered"], ChannelClosed)
    assert "was stopped" in str(results["never answered"])


async def test_a_malformed_message_fails_the_call_reading_it_and_ends_the_link(link: Link) -> None:
    results: dict[str, Any] = {}
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as calls:
            calls.start_soon(call, link.link, results, "first")
            _, _cid, *_ = await link.next_call()
            await link.actor.send((m.RETURN, "not an int", None))
        await link.served.wait()
    assert isinstance(results["first"], ProtocolError)
    assert link.link.closed_error is results["first"]
