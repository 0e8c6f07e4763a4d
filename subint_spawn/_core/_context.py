"""Contexts: a long-lived dialogue between a parent task and a task in an actor, with one
bidirectional stream.

Both ends hold a :class:`Context` with the same stream machinery; what differs is who starts
it (:class:`ParentContext`, made by ``portal.open_context``) and who runs the function
(:class:`ActorContext`, passed to ``fn(ctx, **kwargs)`` in the actor).

Flow control is by credit, per direction: a sender may have at most ``WINDOW`` items the
receiver has not consumed yet; the receiver hands credit back as its consumer takes items.
So a slow receiver slows the sender and memory stays bounded, and the channel's receive
loop never blocks on a full buffer.  That matters: it serves every call and context of the
actor, and blocking it on one unread stream would hang all the others.  A peer that sends
beyond its credit ignored the protocol: :class:`StreamOverrun`, and the context ends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from .._exceptions import ChannelClosed, ContextCancelled, StreamOverrun
from . import _messages as m
from ._channel import Channel

__all__ = ["WINDOW", "ActorContext", "Context", "MsgStream", "ParentContext"]

#: Items one side may send ahead of the other side's consumption.
WINDOW = 256

_END = object()  # inbox marker: nothing more will arrive


class MsgStream:
    """The stream of a context: ``send``, ``receive`` and ``async for``.

    ``receive`` raises ``trio.EndOfChannel`` once the peer closed its side, or the error the
    context ended with (a :class:`RemoteActorError`, :class:`ContextCancelled`, ...).
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def send(self, value: Any) -> None:
        # The hot path of every stream: one coroutine down to the channel, no helpers.
        ctx = self._ctx
        if ctx._we_closed_stream:
            raise trio.ClosedResourceError("this side of the stream is closed")
        if ctx._finished:
            raise trio.BrokenResourceError("the context has ended") from ctx._ended
        try:
            payload = ctx._dumps(value)
        except Exception as exc:  # the sender's mistake: nothing sent, the stream stays usable
            codec = ctx.channel.codec
            raise TypeError(
                f"cannot send this value over a {codec.name} stream: {exc}. Send {codec.accepts}"
            ) from exc
        while ctx._credit == 0:
            await ctx._credit_arrived.wait()
            if ctx._finished:  # woken by the end, not by credit
                raise trio.BrokenResourceError("the context has ended") from ctx._ended
        ctx._credit -= 1
        await ctx.channel.send_item(ctx.cid, payload)

    async def receive(self) -> Any:
        return await self._ctx._receive_item()

    def __aiter__(self) -> MsgStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._ctx._receive_item()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    @property
    def buffered(self) -> int:
        """Items received and not consumed yet (never more than the window)."""
        return self._ctx._buffered


class Context:
    def __init__(self, channel: Channel, cid: int, peer_name: str) -> None:
        self.channel = channel
        self._dumps = channel.codec.dumps
        self.cid = cid
        self.peer_name = peer_name
        # Items delivered by the receive loop, not consumed yet (bounded by the credit
        # window), and the consumers waiting for one.
        self._inbox: deque[Any] = deque()
        self._inbox_waiters = trio.lowlevel.ParkingLot()
        self._buffered = 0
        self._unacknowledged = 0  # consumed, credit not yet returned
        self._credit = WINDOW
        self._credit_arrived = trio.Event()
        self._stream_open = False
        self._we_closed_stream = False
        self._peer_closed_stream = False
        self._ended: BaseException | None = None  # why no more items can come, if not a clean end
        self._finished = False  # the context is over: nothing more can be sent either
        self._inbox_done = False
        # The whole actor is stopping: our side ends without a word, so the parent learns of
        # the end from the channel (ContextCancelled), not from a clean-looking stream end.
        self._silent_end = False
        self.cancel_requested = False  # by this side

    # -- stream ------------------------------------------------------------------------------

    @asynccontextmanager
    async def open_stream(self) -> AsyncIterator[MsgStream]:
        """The context's bidirectional stream; leaving the block closes our sending side."""
        if self._stream_open:
            raise RuntimeError("a context has one stream, and it is already open")
        self._stream_open = True
        try:
            yield MsgStream(self)
        finally:
            await self._close_our_side()

    async def _close_our_side(self) -> None:
        if self._we_closed_stream:
            return
        self._we_closed_stream = True
        if self._silent_end:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            try:
                await self.channel.send((m.STREAM_END, self.cid))
            except ChannelClosed:
                pass  # the peer is gone; it needs no goodbye

    async def _receive_item(self) -> Any:
        if not self._inbox_done:
            await trio.lowlevel.checkpoint_if_cancelled()  # no scheduler pass while items wait
            while not self._inbox:
                await self._inbox_waiters.park()
            item = self._inbox.popleft()
            if item is _END:
                self._inbox.appendleft(_END)  # for any other consumer of this stream
                self._inbox_done = True
        if self._inbox_done:  # every receive after the end ends the same way
            if self._ended is not None:
                raise self._ended
            raise trio.EndOfChannel
        self._buffered -= 1
        self._unacknowledged += 1
        if self._unacknowledged >= WINDOW // 2:
            granted, self._unacknowledged = self._unacknowledged, 0
            try:
                await self.channel.send((m.CREDIT, self.cid, granted))
            except ChannelClosed:
                pass  # no more items will come anyway
        return item

    # -- hooks for the channel's receive loop (synchronous: it must never block) -------------
    # Called by the runtime (the parent's link, the actor's dispatcher), never by user code.

    def on_stream_message(self, message: tuple[Any, ...]) -> None:
        """A ``stream``, ``stream_end`` or ``credit`` message of this context arrived."""
        kind = message[0]
        if kind == m.STREAM:
            self.on_items(self.channel.decode_items(message[2]))
        elif kind == m.STREAM_END:
            self._peer_closed_stream = True
            self._put(_END)
        elif kind == m.CREDIT:
            self._credit += message[2]
            self._credit_arrived.set()
            self._credit_arrived = trio.Event()

    def on_items(self, items: list[Any]) -> None:
        """Stream items arrived (the receive loop's short path for the bulk of the traffic)."""
        if self._inbox_done or self._peer_closed_stream:
            return  # late items after the end: nobody can take them
        if self._buffered + len(items) > WINDOW:
            overrun = f"{self.peer_name!r} sent past its stream credit ({WINDOW} items)"
            self.on_ended(StreamOverrun(overrun))
            return
        self._buffered += len(items)
        self._inbox.extend(items)
        if self._inbox_waiters:
            self._inbox_waiters.unpark(count=len(items))

    def _put(self, item: Any) -> None:
        self._inbox.append(item)
        if self._inbox_waiters:
            self._inbox_waiters.unpark()

    def on_ended(self, error: BaseException | None) -> None:
        """No more items will come: wake the consumer (with ``error``, if the end was not clean)
        and any sender waiting for credit."""
        if error is not None and self._ended is None:
            self._ended = error
        self._finished = True
        if not self._peer_closed_stream:
            self._peer_closed_stream = True
            self._put(_END)
        self._credit_arrived.set()


class ParentContext(Context):
    """The parent's end: from ``async with portal.open_context(fn, **kw) as (ctx, first)``."""

    def __init__(self, channel: Channel, cid: int, peer_name: str, trusted: bool, fn: str) -> None:
        super().__init__(channel, cid, peer_name)
        self.fn = fn  # "module.qualname" of the actor's function, for messages
        self._trusted = trusted
        self._started = trio.Event()
        self._got_started = False  # ctx.started() arrived (vs. the context ending before it)
        self._first: Any = None
        self._done = trio.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        # The opener's block, the task running it, and whether another task cancelled it
        # (perhaps before it began): see cancel().
        self._block: trio.CancelScope | None = None
        self._opener: trio.lowlevel.Task | None = None
        self._block_cancelled = False

    async def cancel(self) -> None:
        """Cancel the actor's side.  We asked, so this side then exits cleanly.

        From a task other than the one in the ``open_context`` block, this also cancels that
        block, which then exits quietly: a task that owns the context may be waiting on
        anything (not only the stream), and a cancel that left it waiting would not end the
        dialogue.  From inside the block the block goes on, so it can still read what the
        actor sent and ``wait_for_result()``.
        """
        if trio.lowlevel.current_task() is not self._opener:
            self._block_cancelled = True
            if self._block is not None:
                self._block.cancel()
        if self._done.is_set() or self.cancel_requested:
            return
        self.cancel_requested = True
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            try:
                await self.channel.send((m.CANCEL, self.cid))
            except ChannelClosed:
                pass

    async def wait_for_result(self) -> Any:
        """The actor function's return value; its error, or :class:`ContextCancelled` if the
        context was cancelled by someone other than this side.  ``None`` if this side
        cancelled it."""
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result

    # -- hooks for portal.open_context --------------------------------------------------------

    def on_opened(self, block: trio.CancelScope) -> None:
        """The opener's block starts, under ``block``, in the current task."""
        self._block = block
        self._opener = trio.lowlevel.current_task()
        if self._block_cancelled:
            block.cancel()

    async def wait_started(self) -> Any:
        """The value the actor passed to ``ctx.started()``; the context's error if it ended
        before that (after ``started``, an error is raised by the stream, after the items
        sent before it)."""
        await self._started.wait()
        if not self._got_started and self._error is not None:
            raise self._error
        return self._first

    @property
    def is_done(self) -> bool:
        """The actor's side has finished (result, error or cancellation), or its channel ended."""
        return self._done.is_set()

    async def wait_done(self) -> None:
        await self._done.wait()

    @property
    def drained(self) -> bool:
        """Our consumer has received the end of the actor's stream."""
        return self._inbox_done

    # -- hooks for the receive loop ------------------------------------------------------------

    def on_started(self, value: Any) -> None:
        self._first = value
        self._got_started = True
        self._started.set()

    def on_outcome(self, kind: str, payload: Any) -> None:
        """The actor's side finished: ``return``, ``error`` (rebuilt) or ``cancelled``."""
        if self._done.is_set():
            return
        if kind == m.RETURN:
            self._result = payload
        elif kind == m.CANCELLED:
            if not self.cancel_requested:  # the actor cancelled it: we did not ask
                self._error = _cancelled_error(payload, self._trusted)
        else:
            self._error = payload
        self._done.set()
        self._started.set()
        self.on_ended(self._error)

    def on_channel_closed(self, error: BaseException) -> None:
        """The channel ended under the context; ``error`` is what this side sees."""
        if not self._done.is_set():
            self._error = error
            self._done.set()
            self._started.set()
        self.on_ended(error)


def _cancelled_error(info: m.ErrorInfo, trusted: bool) -> ContextCancelled:
    del trusted  # a cancellation carries no exception object worth rebuilding
    type_name, message, text, where, _ = info
    return ContextCancelled(type_name, message, text, where=where)


class ActorContext(Context):
    """The actor's end, passed to the context function: ``async def fn(ctx, **kwargs)``."""

    def __init__(self, channel: Channel, cid: int, peer_name: str) -> None:
        super().__init__(channel, cid, peer_name)
        self.scope: trio.CancelScope | None = None
        self.cancelled_by_peer = False
        self._started_sent = False

    async def started(self, value: Any = None) -> None:
        """Hand ``value`` to the parent, whose ``open_context`` block starts with it."""
        if self._started_sent:
            raise RuntimeError("ctx.started() was already called")
        self._started_sent = True
        await self.channel.send((m.STARTED, self.cid, value))

    async def cancel(self) -> None:
        """End this context from the actor's side: the function is cancelled and returns
        cleanly here; the parent gets :class:`ContextCancelled`."""
        self.cancel_requested = True
        if self.scope is not None:
            self.scope.cancel()

    def on_actor_stopping(self) -> None:
        """Hook for the actor's dispatcher: the actor is stopping (its parent said ``stop``, or
        went away), so this context is cancelled with everything else."""
        self._silent_end = True

    def on_cancel_from_peer(self) -> None:
        """Hook for the actor's dispatcher: the parent sent ``cancel`` for this context."""
        # Only the scope: it interrupts every wait in the function (receive, credit) with
        # trio.Cancelled.  Ending the stream here as well would make a send that has not hit
        # its checkpoint yet fail with BrokenResourceError, turning a cancel into an error.
        self.cancelled_by_peer = True
        if self.scope is not None:
            self.scope.cancel()


async def stream_from_generator(
    ctx: ActorContext, target: list[str], kwargs: dict[str, Any]
) -> None:
    """The actor side of ``portal.open_stream_from``: send what the generator yields."""
    from ._funcref import resolve

    module, qualname = target
    agen = resolve((module, qualname))(**kwargs)
    if not hasattr(agen, "__anext__"):
        raise TypeError(
            f"{module}.{qualname} is not an async generator function (async def ... yield)"
        )
    await ctx.started()
    async with ctx.open_stream() as stream:
        try:
            async for value in agen:
                await stream.send(value)
        finally:
            with trio.CancelScope(shield=True):
                await agen.aclose()
