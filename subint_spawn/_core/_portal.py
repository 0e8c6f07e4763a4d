"""The parent's door into one actor: call functions in it, get results or remote errors.

One task per actor (run by its supervisor) reads the channel and hands each answer to the call
waiting for it.  When the channel ends -- the actor stopped, crashed or was killed -- every
call still waiting fails with :class:`ChannelClosed`: an answer that can no longer come is an
error, never a hang.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from .._exceptions import ActorStartupError, ChannelClosed, ProtocolError, RemoteActorError
from . import _logs
from . import _messages as m
from ._channel import Channel
from ._errors import rebuild
from ._context import MsgStream, ParentContext, stream_from_generator
from ._funcref import ref_of

__all__ = ["Portal"]

log = logging.getLogger("subint_spawn.portal")

# How long a cancelled caller spends telling the actor to drop the call.
_CANCEL_SEND_BOUND = 0.5
# How long a context left by an exception waits for the actor's side to finish.
_SETTLE_BOUND = 0.5


class _Pending:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def resolve(self, value: Any = None, error: BaseException | None = None) -> None:
        if not self.done.is_set():
            self.value, self.error = value, error
            self.done.set()

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class Portal:
    """Talk to one actor.  Obtained from ``ActorNursery.start_actor`` or ``run_in_actor``."""

    def __init__(self, channel: Channel, actor_name: str) -> None:
        self.channel = channel
        self.actor_name = actor_name
        self._trusted = channel.codec.name == "pickle"
        self._cids = itertools.count()
        self._pending: dict[int, _Pending] = {}
        self._contexts: dict[int, ParentContext] = {}
        self._ready = _Pending()
        self._closed_error: BaseException | None = None
        self._result = _Pending()  # of the function given to run_in_actor
        self._stop_requested = trio.Event()
        self._stopped = trio.Event()
        self._channel_done = trio.Event()

    def __repr__(self) -> str:
        return f"<Portal to actor {self.actor_name!r}>"

    # -- public API --------------------------------------------------------------------------

    async def run(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """Call ``fn(**kwargs)`` in the actor and return its result.

        ``fn`` must be a module-level function importable in the actor.  Raises
        :class:`RemoteActorError` (remote traceback attached) if it raised there,
        :class:`ChannelClosed` if the actor went away first, ``TypeError`` (nothing sent) if
        the arguments cannot be encoded for this backend.  Cancelling the caller cancels the
        call in the actor.
        """
        module, qualname = ref_of(fn)
        return await self._call(module, qualname, kwargs)

    @asynccontextmanager
    async def open_context(self, fn: Callable[..., Any], **kwargs: Any) -> AsyncIterator[tuple[ParentContext, Any]]:
        """Start ``async def fn(ctx, **kwargs)`` in the actor; enter with ``(ctx, first)`` once it
        called ``ctx.started(first)``.

        Leaving the block normally waits for the function's result (its error is raised
        here).  Leaving it by an exception -- including cancellation -- cancels the actor's
        side first.  If the actor cancels the context, this side raises
        :class:`ContextCancelled`; after our own ``ctx.cancel()`` it exits cleanly.
        """
        module, qualname = ref_of(fn)
        if self._closed_error is not None:
            raise ChannelClosed(f"actor {self.actor_name!r} is gone") from self._closed_error
        cid = next(self._cids)
        frame = self.channel.encode((m.CONTEXT, cid, module, qualname, kwargs))
        ctx = ParentContext(self.channel, cid, self.actor_name, self._trusted)
        self._contexts[cid] = ctx
        try:
            try:
                await self.channel.send_frame(frame)
                await ctx._started.wait()
                if not ctx._got_started and ctx._error is not None:
                    # It failed (or was cancelled) before ctx.started().  After started, an
                    # error is raised by the stream, after the items sent before it.
                    raise ctx._error
                yield ctx, ctx._first
            except BaseException:
                await self._settle_context(ctx)
                raise
            await ctx.wait_for_result()
        finally:
            del self._contexts[cid]

    @asynccontextmanager
    async def open_stream_from(self, fn: Callable[..., Any], **kwargs: Any) -> AsyncIterator[MsgStream]:
        """Iterate what the actor's async generator ``fn(**kwargs)`` yields.

        Leaving the block before the generator is exhausted stops it in the actor.  If the
        generator raises, the stream raises that error after the items sent before it.
        """
        module, qualname = ref_of(fn)
        async with self.open_context(stream_from_generator, target=[module, qualname], kwargs=kwargs) as (ctx, _):
            async with ctx.open_stream() as stream:
                try:
                    yield stream
                finally:
                    if not ctx._inbox_done:  # closed early: the generator must stop
                        await ctx.cancel()

    async def _settle_context(self, ctx: ParentContext) -> None:
        """Cancel the actor's side of ``ctx`` and give it a moment to finish.  Bounded: a stuck
        actor is its supervisor's problem, not this caller's."""
        with trio.CancelScope(shield=True):
            if not ctx._done.is_set():
                await ctx.cancel()
                with trio.move_on_after(_SETTLE_BOUND):
                    await ctx._done.wait()

    async def wait_for_result(self) -> Any:
        """The return value of the function this actor was started with by ``run_in_actor``."""
        await self._result.done.wait()
        return self._result.unwrap()

    async def cancel_actor(self) -> None:
        """Stop the actor (gracefully, then by force) and wait until it is gone."""
        self._stop_requested.set()
        await self._stopped.wait()

    # -- machinery used by the supervisor ----------------------------------------------------

    async def _call(self, module: str, qualname: str, kwargs: dict[str, Any]) -> Any:
        if self._closed_error is not None:
            raise ChannelClosed(f"actor {self.actor_name!r} is gone") from self._closed_error
        cid = next(self._cids)
        frame = self.channel.encode((m.CALL, cid, module, qualname, kwargs))
        pending = self._pending[cid] = _Pending()
        try:
            await self.channel.send_frame(frame)
            await pending.done.wait()
        except trio.Cancelled:
            if not pending.done.is_set():
                await self._send_cancel(cid)
            raise
        finally:
            del self._pending[cid]
        return pending.unwrap()

    async def _send_cancel(self, cid: int) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(_CANCEL_SEND_BOUND):
            try:
                await self.channel.send((m.CANCEL, cid))
            except ChannelClosed:
                pass  # the actor is gone, so is the call

    async def _wait_ready(self) -> None:
        await self._ready.done.wait()
        self._ready.unwrap()

    async def _receive_loop(self) -> None:
        """Route answers to waiting calls until the channel ends; then fail whoever waits.

        Never raises: how the channel ended is recorded for the supervisor, which decides
        whether that was a crash.
        """
        error: BaseException
        async with trio.open_nursery() as writer:
            writer.start_soon(self.channel.run_writer)
            try:
                contexts, is_stream_items = self._contexts, m.is_stream_items
                while True:
                    for message in await self.channel.receive_many():
                        # Stream items are nearly all the traffic of a busy stream: they take a
                        # short path to their context.
                        if is_stream_items(message):
                            ctx = contexts.get(message[1])
                            if ctx is not None:
                                ctx._deliver_items(self.channel.decode_items(message[2]))
                            continue
                        self._route(m.parse(message, m.TO_PARENT))
            except ChannelClosed as exc:
                error = ChannelClosed(f"actor {self.actor_name!r} closed its channel")
                error.__cause__ = exc
            except ProtocolError as exc:
                log.error("actor %r sent a malformed message; its channel is closed: %s", self.actor_name, exc)
                error = exc
            finally:
                writer.cancel_scope.cancel()  # later sends (teardown's stop) flush inline
        self._close(error)

    def _route(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == m.LOG:
            _logs.reemit(message)
            return
        ctx = self._contexts.get(message[1]) if len(message) > 1 and isinstance(message[1], int) else None
        if ctx is not None and kind != m.READY:
            if kind == m.STARTED:
                ctx._on_started(message[2])
            elif kind in (m.STREAM, m.STREAM_END, m.CREDIT):
                ctx._deliver(message)
            elif kind == m.RETURN:
                ctx._on_outcome(kind, message[2])
            elif kind == m.ERROR:
                ctx._on_outcome(kind, rebuild(message[2], RemoteActorError, trusted=self._trusted))
            elif kind == m.CANCELLED:
                ctx._on_outcome(kind, message[2])
            return
        if kind == m.READY:
            self._ready.resolve()
        elif kind == m.STARTUP_ERROR:
            self._ready.resolve(error=rebuild(message[1], ActorStartupError, trusted=self._trusted))
        elif kind == m.RETURN:
            pending = self._pending.get(message[1])
            if pending is not None:  # else: the caller was cancelled and left
                pending.resolve(message[2])
        elif kind == m.ERROR:
            pending = self._pending.get(message[1])
            if pending is not None:
                pending.resolve(error=rebuild(message[2], RemoteActorError, trusted=self._trusted))

    def _close(self, error: BaseException) -> None:
        if self._closed_error is None:
            self._closed_error = error
        self._channel_done.set()
        self._ready.resolve(error=error)
        for pending in self._pending.values():
            pending.resolve(error=error)
        for ctx in self._contexts.values():
            ctx._on_channel_closed(error)

    def _set_result(self, value: Any = None, error: BaseException | None = None) -> None:
        self._result.resolve(value, error)

    @property
    def _is_closed(self) -> bool:
        return self._closed_error is not None

