"""Framing, codecs and message validation: bad input is a clear error, never a hang."""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

import subint_spawn
from subint_spawn import ChannelClosed, ProtocolError, RemoteActorError
from subint_spawn._core import _messages as m
from subint_spawn._core._channel import Channel
from subint_spawn._core._codec import get_codec

from . import samples


@pytest.fixture(params=["pickle", "msgpack"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Channel, socket.socket]]:
    """A channel and the raw socket at the other end of its socket pair."""
    left, right = socket.socketpair()
    channel = Channel(left, get_codec(request.param), max_frame=1024)
    yield channel, right
    await channel.aclose()
    right.close()


async def test_messages_round_trip(pair: tuple[Channel, socket.socket]) -> None:
    channel, raw = pair
    other = Channel(raw, channel.codec)
    with trio.fail_after(5):
        await channel.send(["call", 1, "mod", "fn", {"x": 1}])
        await other.send(["return", 1, [1, 2, 3]])
        assert list(await other.receive()) == ["call", 1, "mod", "fn", {"x": 1}]
        assert list(await channel.receive()) == ["return", 1, [1, 2, 3]]


async def test_frame_announcing_more_than_the_limit_is_a_protocol_error(
    pair: tuple[Channel, socket.socket],
) -> None:
    channel, raw = pair
    with trio.fail_after(5):
        raw.sendall(struct.pack(">I", 10**9))
        with pytest.raises(ProtocolError, match="limit 1024"):
            await channel.receive()
        with pytest.raises(ChannelClosed):
            await channel.receive()  # closed: no way to find the next frame


async def test_messages_before_an_oversized_frame_arrive_first(
    pair: tuple[Channel, socket.socket],
) -> None:
    """What came whole before a bad header is delivered; the next receive reports the header
    (it is already buffered: nothing more has to arrive for that)."""
    channel, raw = pair
    good = channel.codec.dumps(["return", 1, "before"])
    with trio.fail_after(5):
        raw.sendall(struct.pack(">I", len(good)) + good + struct.pack(">I", 10**9))
        assert list(await channel.receive()) == ["return", 1, "before"]
        with pytest.raises(ProtocolError, match="limit 1024"):
            await channel.receive()
        with pytest.raises(ChannelClosed):
            await channel.receive()


async def test_undecodable_frame_is_a_protocol_error(pair: tuple[Channel, socket.socket]) -> None:
    channel, raw = pair
    with trio.fail_after(5):
        raw.sendall(struct.pack(">I", 3) + b"\xc1\xff\x00")
        with pytest.raises(ProtocolError, match="undecodable"):
            await channel.receive()


async def test_unencodable_value_fails_in_the_sender_and_the_channel_lives(
    pair: tuple[Channel, socket.socket],
) -> None:
    channel, raw = pair
    other = Channel(raw, channel.codec)
    with trio.fail_after(5):
        with pytest.raises(
            TypeError, match=f"cannot send this value over a {channel.codec.name} channel"
        ):
            await channel.send(["return", 1, samples._Unsendable()])
        with pytest.raises(ValueError, match="exceeds the 1024-byte frame limit"):
            await channel.send(["return", 1, "x" * 2000])
        await channel.send(["return", 2, "ok"])
        assert list(await other.receive()) == ["return", 2, "ok"]


async def test_end_of_stream_and_truncated_frames_are_channel_closed(
    pair: tuple[Channel, socket.socket],
) -> None:
    channel, raw = pair
    with trio.fail_after(5):
        raw.sendall(struct.pack(">I", 100) + b"partial")
        raw.close()
        with pytest.raises(ChannelClosed):
            await channel.receive()


# -- write coalescing: what the writer task may delay, and what it may never do ---------------


@pytest.fixture
async def writing_pair() -> AsyncIterator[tuple[Channel, Channel, trio.Nursery]]:
    """Two pickle channels on one socket pair; the first has its writer task running."""
    left, right = socket.socketpair()
    sender, receiver = Channel(left, get_codec("pickle")), Channel(right, get_codec("pickle"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender.run_writer)
        yield sender, receiver, nursery
        nursery.cancel_scope.cancel()
    await sender.aclose()
    await receiver.aclose()


async def test_a_lone_message_is_on_the_wire_when_send_returns(
    writing_pair: tuple[Channel, Channel, trio.Nursery],
) -> None:
    """An actor that sends and then blocks its thread (``ctx.started(x)`` then CPU work)
    must not keep the message: the parent is waiting for it."""
    sender, receiver, _ = writing_pair
    with trio.fail_after(5):
        await sender.send_frame(sender.encode(("started", 1, "x")))
        # No checkpoint since: the writer task cannot have run, so the send wrote it.
        assert receiver._sock.recv(1024, socket.MSG_PEEK)
        assert list(await receiver.receive()) == ["started", 1, "x"]
        # Likewise a stream item that does not follow another within the burst window.
        sender._last_send = 0.0
        await sender.send_item(1, sender.codec.dumps("lone"))
        assert receiver._sock.recv(1024, socket.MSG_PEEK)
        message = await receiver.receive()
        assert receiver.decode_items(message[2]) == ["lone"]


async def test_a_burst_is_queued_and_arrives_whole_and_in_order(
    writing_pair: tuple[Channel, Channel, trio.Nursery],
) -> None:
    sender, receiver, nursery = writing_pair
    got: list[int] = []
    frames = 0

    async def read() -> None:
        nonlocal frames
        while len(got) < 5000:
            _, cid, payloads = await receiver.receive()
            assert cid == 1
            got.extend(receiver.decode_items(payloads))
            frames += 1

    queued = 0
    with trio.fail_after(10):
        nursery.start_soon(read)
        for i in range(5000):
            await sender.send_item(1, sender.codec.dumps(i))
            queued = max(queued, sender._unsent)
        await sender.flush()
        while len(got) < 5000:
            await trio.testing.wait_all_tasks_blocked()
    assert queued > 0  # some of the burst waited for the writer: it was coalesced
    assert frames < 5000 // 8  # ... into frames of many items each
    assert got == list(range(5000))


async def test_control_messages_keep_their_place_among_queued_items(
    writing_pair: tuple[Channel, Channel, trio.Nursery],
) -> None:
    """Items queued in a burst are sealed before a control message, so ``stream_end`` (or a
    context's result) never overtakes the items sent before it."""
    sender, receiver, _ = writing_pair
    with trio.fail_after(10):
        for i in range(10):
            await sender.send_item(1, sender.codec.dumps(i))
        await sender.send_item(2, sender.codec.dumps("other"))
        await sender.send(("stream_end", 1))
        arrived = []
        while len(arrived) < 3 or arrived[-1][0] != "stream_end":
            message = await receiver.receive()
            if message[0] == "stream":
                arrived.append(("stream", message[1], receiver.decode_items(message[2])))
            else:
                arrived.append(tuple(message))
    items_of_1 = [
        item for kind, cid, *rest in arrived if kind == "stream" and cid == 1 for item in rest[0]
    ]
    assert items_of_1 == list(range(10))
    assert [entry[:2] for entry in arrived][-2:] == [("stream", 2), ("stream_end", 1)]


@pytest.mark.parametrize("codec", ["pickle", "msgpack"])
async def test_a_sealed_batch_always_fits_the_frame_limit(codec: str) -> None:
    """Items queued in a burst are framed together; the frame must stay within the peer's
    limit however many items came and however big the last one is."""
    left, right = socket.socketpair()
    sender = Channel(left, get_codec(codec), max_frame=1024)
    receiver = Channel(right, get_codec(codec), max_frame=1024)
    small, big = "s" * 100, "b" * 900
    got: list[str] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender.run_writer)
            await trio.testing.wait_all_tasks_blocked()
            for _ in range(50):
                await sender.send_item(1, sender.codec.dumps(small))
            await sender.send_item(1, sender.codec.dumps(big))
            await sender.flush()
            while len(got) < 51:
                _, _, payloads = await receiver.receive()
                got.extend(receiver.decode_items(payloads))
            nursery.cancel_scope.cancel()
        with pytest.raises(ValueError, match="exceeds the 1024-byte frame limit"):
            await sender.send_item(1, sender.codec.dumps("x" * 1000))
    assert got == [small] * 50 + [big]
    await sender.aclose()
    await receiver.aclose()


async def test_an_undecodable_item_is_a_protocol_error(pair: tuple[Channel, socket.socket]) -> None:
    channel, _ = pair
    with pytest.raises(ProtocolError, match="undecodable .* stream item"):
        channel.decode_items([b"\xc1\xff not an encoding"])
    assert channel._closed


async def test_a_cancelled_flush_never_tears_a_frame() -> None:
    """The writer is cancelled with half a big frame written; the tail stays queued, the next
    send writes it first, and the peer reads both frames intact."""
    left, right = socket.socketpair()
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    right.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sender, receiver = Channel(left, get_codec("pickle")), Channel(right, get_codec("pickle"))
    big = "x" * 500_000
    with trio.fail_after(10):
        async with trio.open_nursery() as writer:
            writer.start_soon(sender.run_writer)
            await trio.testing.wait_all_tasks_blocked()
            await sender.send_frame(sender.encode(("return", 1, big)))  # the socket takes a part
            await trio.testing.wait_all_tasks_blocked()  # the writer waits for room
            assert 0 < sender._unsent < len(big)
            writer.cancel_scope.cancel()
        async with trio.open_nursery() as both:
            both.start_soon(sender.send, ("return", 2, "after"))  # no writer now: inline
            assert list(await receiver.receive()) == ["return", 1, big]
            assert list(await receiver.receive()) == ["return", 2, "after"]
    await sender.aclose()
    await receiver.aclose()


async def test_senders_wait_at_the_high_water_mark(
    writing_pair: tuple[Channel, Channel, trio.Nursery],
) -> None:
    """A peer that does not read slows the sender down instead of growing the queue."""
    from subint_spawn._core._channel import HIGH_WATER

    sender, receiver, nursery = writing_pair
    payload = sender.codec.dumps("y" * 10_000)
    frame = sender.encode(("stream", 1, [payload]))
    sent = 0

    async def flood() -> None:
        nonlocal sent
        while True:
            await sender.send_item(1, payload)
            sent += 1

    with trio.fail_after(10):
        nursery.start_soon(flood)
        await trio.testing.wait_all_tasks_blocked()
        assert HIGH_WATER <= sender._unsent < HIGH_WATER + len(frame)
        before = sent
        for _ in range(200):
            await receiver.receive()
        await trio.testing.wait_all_tasks_blocked()
        assert sent > before  # reading made room, and the sender went on
        assert sender._unsent < HIGH_WATER + len(frame)


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ("not a tuple", "not a message"),
        ([], "not a message"),
        (["launch_missiles"], "unexpected message kind"),
        (["return", 1], "needs 2 fields"),
        (["return", "1", None], "field 1 should be int"),
        (["return", True, None], "field 1 should be int"),
        (["error", 1, ["only", "three", "parts"]], "malformed error description"),
        (["ready", 7, "uid", 1, 0], "field 1 should be str"),
        (["ready", "name", "uid", "1", 0], "field 3 should be int"),
    ],
)
def test_malformed_messages_are_named(message: object, complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        m.parse(message, m.TO_PARENT)


def test_parent_bound_kinds_are_refused_by_the_actor() -> None:
    with pytest.raises(ProtocolError, match="unexpected message kind 'return'"):
        m.parse(("return", 1, None), m.TO_ACTOR)


async def test_garbage_sent_to_an_actor_tears_it_down_without_a_hang(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(20):
        with pytest.raises(RemoteActorError):
            async with subint_spawn.open_nursery(backend=spawn_backend, config=subint_config) as an:
                portal = await an.start_actor("victim", enable_modules=["tests.samples"])
                assert await portal.run(samples.echo, value=1) == 1
                await portal.channel.send_frame(struct.pack(">I", 3) + b"\xc1\xff\x00")
                with pytest.raises(ChannelClosed):
                    await portal.run(samples.sleep_forever)
                await trio.sleep_forever()  # the supervisor reports the dead actor
