"""The parent's door into one actor: call functions in it, get results or remote errors.

Two objects per actor, with one owner each:

* :class:`ActorLink` is the channel as the parent uses it: it sends calls and contexts, and
  its receive loop (:meth:`ActorLink.serve`, run by the actor's supervisor) hands each answer
  to whoever waits for it.  When the channel ends -- the actor stopped, crashed or was killed
  -- every call still waiting fails with :class:`ChannelClosed`: an answer that can no longer
  come is an error, never a hang.
* :class:`Portal` is what the user holds.  It calls through the link, and asks the actor's
  supervisor (a :class:`Supervision`, owned by the nursery) for what only the supervisor
  knows: the ``run_in_actor`` result, and stopping the actor.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import trio

from .._exceptions import (
    ActorStartupError,
    ChannelClosed,
    ContextCancelled,
    ProtocolError,
    RemoteActorError,
)
from . import _logs
from . import _messages as m
from ._channel import Channel
from ._context import MsgStream, ParentContext, stream_from_generator
from ._errors import rebuild
from ._funcref import is_async_generator_function, ref_of
from ._identity import ActorInfo

__all__ = ["ActorLink", "Portal", "Supervision"]

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


#: The actor side of open_stream_from: a context that iterates the generator.
_STREAM_FROM = ref_of(stream_from_generator)


class Supervision(Protocol):
    """What a portal asks of its actor's supervisor (the nursery's record of that actor)."""

    async def result(self) -> Any:
        """The ``run_in_actor`` function's return value (or its error)."""
        ...

    async def stop(self) -> None:
        """Stop the actor, gracefully then by force; return once it is gone."""


class Portal:
    """Talk to one actor.  Obtained from ``ActorNursery.start_actor`` or ``run_in_actor``.

    ``channel`` is its IPC channel; ``channel.peer`` says which actor is on the other end
    (an :class:`ActorInfo`: name, unique id, pid, interpreter).
    """

    def __init__(self, link: ActorLink, supervision: Supervision) -> None:
        self._link = link
        self._supervision = supervision
        self.channel = link.channel
        self.actor_name = link.actor_name

    def __repr__(self) -> str:
        return f"<Portal to actor {self.actor_name!r}>"

    async def run(self, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        """Call ``fn(**kwargs)`` in the actor and return its result.

        ``fn`` must be a module-level function importable in the actor.  Raises
        :class:`RemoteActorError` (remote traceback attached) if it raised there,
        :class:`ChannelClosed` if the actor went away first, ``TypeError`` (nothing sent) if
        the arguments cannot be encoded for this backend.  Cancelling the caller cancels the
        call in the actor.
        """
        if is_async_generator_function(fn):
            raise TypeError(
                f"{fn.__qualname__} is an async generator function: portal.run() would only "
                "create the generator; iterate what it yields with "
                f"`async with portal.open_stream_from({fn.__qualname__}, ...) as stream`"
            )
        module, qualname = ref_of(fn)
        return await self._link.call(module, qualname, kwargs)

    @asynccontextmanager
    async def open_context(
        self, fn: Callable[..., Any], /, **kwargs: Any
    ) -> AsyncIterator[tuple[ParentContext, Any]]:
        """Start ``async def fn(ctx, **kwargs)`` in the actor; enter with ``(ctx, first)`` once it
        called ``ctx.started(first)``.

        Leaving the block normally waits for the function's result (its error is raised
        here).  Leaving it by an exception -- including cancellation -- cancels the actor's
        side first.  If the actor cancels the context, or the actor is stopped under it, this
        side raises :class:`ContextCancelled`; after our own ``ctx.cancel()`` it exits cleanly
        (from another task, that also ends the block).
        """
        module, qualname = ref_of(fn)
        async with self._link.open_context(module, qualname, kwargs) as opened:
            yield opened

    @asynccontextmanager
    async def open_stream_from(
        self, fn: Callable[..., Any], /, **kwargs: Any
    ) -> AsyncIterator[MsgStream]:
        """Iterate what the actor's async generator ``fn(**kwargs)`` yields.

        Leaving the block before the generator is exhausted stops it in the actor.  If the
        generator raises, the stream raises that error after the items sent before it.
        """
        module, qualname = ref_of(fn)
        arguments = {"target": [module, qualname], "kwargs": kwargs}
        async with self._link.open_context(*_STREAM_FROM, arguments) as (ctx, _):
            async with ctx.open_stream() as stream:
                try:
                    yield stream
                finally:
                    if not ctx.drained:  # closed early: the generator must stop
                        await ctx.cancel()

    async def wait_for_result(self) -> Any:
        """The return value of the function this actor was started with by ``run_in_actor``.

        A ``start_actor`` actor runs no function of its own: ``RuntimeError`` at once.
        """
        return await self._supervision.result()

    async def cancel_actor(self) -> None:
        """Stop the actor (gracefully, then by force) and wait until it is gone.  Contexts
        still open on it end with :class:`ContextCancelled`."""
        await self._supervision.stop()


class ActorLink:
    """One actor's channel as its parent uses it: calls, contexts, and the receive loop that
    routes their answers.  Owned by the actor's supervisor; the portal calls through it."""

    def __init__(self, channel: Channel, actor_name: str) -> None:
        self.channel = channel
        self.actor_name = actor_name
        self._trusted = channel.codec.name == "pickle"
        self._cids = itertools.count()
        self._pending: dict[int, _Pending] = {}
        self._contexts: dict[int, ParentContext] = {}
        self._ready = _Pending()
        self._closed_error: BaseException | None = None
        self._stopping: str | None = None

    @property
    def closed_error(self) -> BaseException | None:
        """Why the channel ended (``None`` while it is open)."""
        return self._closed_error

    async def wait_ready(self) -> ActorInfo:
        """Until the actor says ``ready``: who it is.  Its startup error if it could not start."""
        await self._ready.done.wait()
        info: ActorInfo = self._ready.unwrap()
        return info

    async def call(self, module: str, qualname: str, kwargs: dict[str, Any]) -> Any:
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

    @asynccontextmanager
    async def open_context(
        self, module: str, qualname: str, kwargs: dict[str, Any]
    ) -> AsyncIterator[tuple[ParentContext, Any]]:
        """``Portal.open_context`` (see there), by name."""
        if self._closed_error is not None:
            raise ChannelClosed(f"actor {self.actor_name!r} is gone") from self._closed_error
        cid = next(self._cids)
        frame = self.channel.encode((m.CONTEXT, cid, module, qualname, kwargs))
        fn = f"{module}.{qualname}"
        ctx = ParentContext(self.channel, cid, self.actor_name, self._trusted, fn)
        self._contexts[cid] = ctx
        try:
            try:
                await self.channel.send_frame(frame)
                first = await ctx.wait_started()
                with trio.CancelScope() as block:
                    ctx.on_opened(block)
                    yield ctx, first
            except BaseException:
                await self._settle_context(ctx)
                raise
            if block.cancelled_caught:  # ctx.cancel() from another task ended the block
                await self._settle_context(ctx)
                return
            await ctx.wait_for_result()
        finally:
            del self._contexts[cid]

    async def _settle_context(self, ctx: ParentContext) -> None:
        """Cancel the actor's side of ``ctx`` and give it a moment to finish.  Bounded: a stuck
        actor is its supervisor's problem, not this caller's."""
        with trio.CancelScope(shield=True):
            if not ctx.is_done:
                await ctx.cancel()
                with trio.move_on_after(_SETTLE_BOUND):
                    await ctx.wait_done()

    def stopping(self, why: str) -> None:
        """The parent is stopping the actor (``why``): contexts still open on it will end with
        :class:`ContextCancelled` rather than :class:`ChannelClosed`, since nobody lost the
        actor -- its parent cancelled it."""
        if self._stopping is None:
            self._stopping = why

    async def send_stop(self) -> None:
        """Ask the actor to stop (it cancels its calls and exits); nothing if it is gone."""
        if self._closed_error is None:
            try:
                await self.channel.send((m.STOP,))
            except ChannelClosed:
                pass

    async def _send_cancel(self, cid: int) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(_CANCEL_SEND_BOUND):
            try:
                await self.channel.send((m.CANCEL, cid))
            except ChannelClosed:
                pass  # the actor is gone, so is the call

    async def serve(self) -> None:
        """Route answers to waiting calls until the channel ends; then fail whoever waits.

        Never raises: how the channel ended is recorded (:attr:`closed_error`) for the
        supervisor, which decides whether that was a crash.
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
                                ctx.on_items(self.channel.decode_items(message[2]))
                            continue
                        self._route(m.parse(message, m.TO_PARENT))
            except ChannelClosed as exc:
                error = ChannelClosed(f"actor {self.actor_name!r} closed its channel")
                error.__cause__ = exc
            except ProtocolError as exc:
                log.error(
                    "actor %r sent a malformed message; its channel is closed: %s",
                    self.actor_name,
                    exc,
                )
                error = exc
            finally:
                writer.cancel_scope.cancel()  # later sends (teardown's stop) flush inline
        self.close(error)

    def _route(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == m.LOG:
            _logs.reemit(message)
            return
        ctx = self._contexts.get(message[1]) if len(message) > 1 and isinstance(message[1], int) else None
        if ctx is not None and kind != m.READY:
            if kind == m.STARTED:
                ctx.on_started(message[2])
            elif kind in (m.STREAM, m.STREAM_END, m.CREDIT):
                ctx.on_stream_message(message)
            elif kind == m.RETURN:
                ctx.on_outcome(kind, message[2])
            elif kind == m.ERROR:
                ctx.on_outcome(kind, rebuild(message[2], RemoteActorError, trusted=self._trusted))
            elif kind == m.CANCELLED:
                ctx.on_outcome(kind, message[2])
            return
        if kind == m.READY:
            info = ActorInfo(message[1], message[2], False, message[3], message[4])
            self.channel.peer = info
            self._ready.resolve(info)
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

    def close(self, error: BaseException) -> None:
        """The channel is over: fail every call and context still waiting on it."""
        if self._closed_error is None:
            self._closed_error = error
        self._ready.resolve(error=error)
        for pending in self._pending.values():
            pending.resolve(error=error)
        for ctx in self._contexts.values():
            ctx.on_channel_closed(self._context_error(ctx, error))

    def _context_error(self, ctx: ParentContext, error: BaseException) -> BaseException:
        if self._stopping is None:
            return error
        cancelled = ContextCancelled(
            "ContextCancelled",
            f"context {ctx.fn} was cancelled: actor {self.actor_name!r} was stopped by its "
            f"parent ({self._stopping})",
            "",
            where=self.actor_name,
        )
        cancelled.__cause__ = error
        return cancelled
