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
import sys
import time
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
from ._once import Once

__all__ = ["ActorLink", "Portal", "Supervision"]

log = logging.getLogger("subint_spawn.portal")

# How long a cancelled caller spends telling the actor to drop the call.
_CANCEL_SEND_BOUND = 0.5
# How long a context left by an exception waits for the actor's side to finish.
_SETTLE_BOUND = 0.5
#: ActorLink._reader while the receive loop reads.
_SERVE = object()
# Looked up once: every call uses them.
_CALL, _RETURN = m.CALL, m.RETURN
_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
# How soon the receive loop reads the socket again once calls stopped reading it, when nobody
# waits for a message now (see ActorLink).  Long enough that its timer costs nothing while
# calls run (a 5 ms one cost ~5% of a bare round trip), short enough for a log record.
_RETAKE_AFTER = 0.05


class _Call:
    """One call's answer, and the one task waiting for it (if it is not reading it itself).

    Lighter than an Event: a call has exactly one waiter, which parks on its own task.
    """

    __slots__ = ("done", "error", "task", "value")

    def __init__(self) -> None:
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.task: trio.lowlevel.Task | None = None

    def resolve(self, value: Any = None, error: BaseException | None = None) -> None:
        if not self.done:
            self.done = True
            self.value, self.error = value, error
            task = self.task
            if task is not None:
                self.task = None
                trio.lowlevel.reschedule(task)

    async def wait(self) -> None:
        """Until resolved (by the task reading the channel); a checkpoint either way."""
        if self.done:
            await trio.lowlevel.checkpoint()
            return
        self.task = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort)

    def _abort(self, _: Any) -> trio.lowlevel.Abort:
        self.task = None
        return trio.lowlevel.Abort.SUCCEEDED


#: The actor side of open_stream_from: a context that iterates the generator.
_STREAM_FROM = ref_of(stream_from_generator)


#: Functions ``portal.run`` has checked: fn -> (module as the actor finds it, qualname, the
#: module whose attribute it is, that module's name).  A hit is re-checked against that
#: binding and ``sys.modules`` (two dict lookups) instead of ``ref_of``'s import and walk; a
#: rebound name or a replaced module falls back to the full check.
_refs: dict[Any, tuple[str, str, Any, str]] = {}
_REFS_MAX = 4096


def _ref_for_run(fn: Callable[..., Any]) -> tuple[str, str, Any, str]:
    if is_async_generator_function(fn):
        raise TypeError(
            f"{fn.__qualname__} is an async generator function: portal.run() would only "
            "create the generator; iterate what it yields with "
            f"`async with portal.open_stream_from({fn.__qualname__}, ...) as stream`"
        )
    module, qualname = ref_of(fn)
    home = sys.modules.get(fn.__module__)
    known = (module, qualname, home, fn.__module__)
    if (
        "." not in qualname
        and home is not None
        and getattr(home, "__dict__", {}).get(qualname) is fn
    ):
        if len(_refs) >= _REFS_MAX:
            _refs.clear()
        _refs[fn] = known
    return known


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
        self._call = link.call
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
        try:
            known = _refs.get(fn)
        except TypeError:  # unhashable: ref_of says what is wrong with it
            known = None
        if (
            known is None
            or known[2].__dict__.get(known[1]) is not fn
            or sys.modules.get(known[3]) is not known[2]
        ):
            known = _ref_for_run(fn)
        return await self._call(known[0], known[1], kwargs)

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
    routes their answers.  Owned by the actor's supervisor; the portal calls through it.

    **Who reads the socket.**  One task at a time.  Usually the receive loop
    (:meth:`serve`), which routes each message to whoever waits for it.  But a call reads
    its own answer: waking the loop, which then wakes the caller, costs a scheduler pass on
    every round trip (one more epoll and task step: about as much as the whole bare-socket
    round trip).  So a call that finds the socket free, or held by the loop -- it cancels
    the loop's wait, and the loop checks before it reads that the socket is still its own --
    waits on it itself and routes everything that comes meanwhile (answers of other calls,
    context traffic, logs) exactly as the loop would.  A call that finds another call
    reading waits to be handed its answer.  And a reading call woken by others' messages
    while other calls wait gives the socket back and waits like them: a long call (or many
    at once) does not keep it, and the next call reads for itself again.

    When a call is done reading, the loop must read again -- at once if someone waits for a
    message now: an open context, the end of the channel, or a call that began waiting less
    than ``_RETAKE_AFTER`` ago (concurrent calls).  It is woken by a reschedule (no
    exception), and parks again if a call took the socket in the meantime.  Otherwise it
    takes the socket back within ``_RETAKE_AFTER``, on a timer the first call done arms:
    waking it after every call cost a whole scheduler pass per call (16k instructions, the
    parent's side grew 20%), where a caller running calls in a loop takes the socket again
    in the same step anyway.  A long call (``run`` of a server loop, say) therefore waits up
    to ``_RETAKE_AFTER`` longer for its answer if it comes right after the last short call
    ended; and a log record sent while no call runs arrives that much later.
    """

    def __init__(self, channel: Channel, actor_name: str) -> None:
        self.channel = channel
        self.actor_name = actor_name
        self._trusted = channel.codec.name == "pickle"
        self._cids = itertools.count()
        self._pending: dict[int, _Call] = {}
        self._contexts: dict[int, ParentContext] = {}
        self._ready = Once()
        self._closed_error: BaseException | None = None
        self._stopping: str | None = None
        # The reader: None, _SERVE (the receive loop) or the _Call of the call reading.
        self._reader: object = None
        self._serve_wait: trio.CancelScope | None = None  # the loop's wait on the socket
        self._serve_task: trio.lowlevel.Task | None = None  # the loop, parked while a call reads
        self._retake: trio.CancelScope | None = None  # around the parked loop: its timer
        self._retake_armed = False
        self._newest_wait = 0.0  # when a call last began to wait for another to read for it
        self._ended: BaseException | None = None  # why the channel ended, seen by a reader

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
        channel = self.channel
        frame = channel.encode((_CALL, cid, module, qualname, kwargs))
        pending = self._pending[cid] = _Call()
        try:
            # send_frame, unrolled: a cancelled caller sends nothing.
            await _checkpoint_if_cancelled()
            if not channel.write_now(frame):
                await channel.send_frame(frame)
            reader = self._reader
            if reader is not None and reader is not _SERVE:
                self._newest_wait = time.perf_counter()
                await pending.wait()  # another call reads, and hands us our answer
            else:
                # Read the answer ourselves (see the class docstring), taking the socket over.
                if reader is _SERVE and self._serve_wait is not None:
                    self._serve_wait.cancel()  # the loop sees, once it runs, that it lost it
                self._reader = pending
                try:
                    while True:
                        messages = await channel.receive_many()
                        if len(messages) == 1:  # most often: just our answer
                            message = messages[0]
                            if (
                                (type(message) is tuple or type(message) is list)
                                and len(message) == 3
                                and message[0] == _RETURN
                                and message[1] == cid
                                and type(message[1]) is int
                            ):
                                pending.done, pending.value = True, message[2]
                                break
                        self._route_all(messages)
                        if pending.done or len(self._pending) > 1:
                            # Other calls wait too (a long one, or many at once): from here the
                            # loop reads for all, and this call waits like the others.
                            break
                except (ChannelClosed, ProtocolError) as exc:
                    self._end(exc)  # resolves ``pending`` with the error, like every waiter
                finally:
                    self._reader = None
                    if self._serve_task is not None:  # the loop is parked: hand back
                        if (
                            self._contexts
                            or self._ended is not None
                            or (
                                len(self._pending) > 1
                                and time.perf_counter() - self._newest_wait < _RETAKE_AFTER
                            )
                        ):
                            self._wake_serve()  # others wait for messages now
                        elif not self._retake_armed and self._retake is not None:
                            self._retake_armed = True
                            self._retake.deadline = trio.current_time() + _RETAKE_AFTER
                if not pending.done:
                    await pending.wait()
        except trio.Cancelled:
            if not pending.done:
                await self._send_cancel(cid)
            raise
        finally:
            del self._pending[cid]
        if pending.error is not None:
            raise pending.error
        return pending.value

    def _route_all(self, messages: list[Any]) -> None:
        """Hand every message to whoever waits for it (call answers take a short path)."""
        pending, contexts = self._pending, self._contexts
        for message in messages:
            if (type(message) is tuple or type(message) is list) and len(message) == 3:
                kind, cid = message[0], message[1]
                if kind == m.RETURN and type(cid) is int:
                    call = pending.get(cid)
                    if call is not None:
                        call.resolve(message[2])
                        continue
                elif kind == m.STREAM and type(cid) is int and type(message[2]) is list:
                    # Nearly all the traffic of a busy stream: a short path to its context.
                    ctx = contexts.get(cid)
                    if ctx is not None:
                        ctx.on_items(self.channel.decode_items(message[2]))
                    continue
            self._route(m.parse(message, m.TO_PARENT))

    def _wake_serve(self) -> None:
        """Let the parked receive loop run and look who reads now."""
        task = self._serve_task
        if task is not None:
            self._serve_task = None
            trio.lowlevel.reschedule(task)

    def _unpark(self, _: Any) -> trio.lowlevel.Abort:
        self._serve_task = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _end(self, exc: BaseException) -> None:
        """A reader saw the channel end (``exc``): close the link, wake the loop to exit."""
        error: BaseException
        if isinstance(exc, ProtocolError):
            log.error(
                "actor %r sent a malformed message; its channel is closed: %s", self.actor_name, exc
            )
            error = exc
        else:
            error = ChannelClosed(f"actor {self.actor_name!r} closed its channel")
            error.__cause__ = exc
        if self._ended is None:
            self._ended = error
        if self._reader is not _SERVE:
            self._reader = None  # the reading call ends with it: close() need not wake it
        self.close(error)

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
        if self._reader is None:
            self._wake_serve()  # a context's messages come through the loop
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
        async with trio.open_nursery() as writer:
            writer.start_soon(self.channel.run_writer)
            try:
                await self._receive_loop()
            finally:
                writer.cancel_scope.cancel()  # later sends (teardown's stop) flush inline
        assert self._ended is not None
        self.close(self._ended)

    async def _receive_loop(self) -> None:
        channel = self.channel
        while self._ended is None:
            if self._reader is not None and self._reader is not _SERVE:
                # A call reads the socket: park until it lets go and someone needs the loop,
                # or the retake timer a call armed fires (see the class docstring).  Woken
                # by a reschedule, not an exception: a cheap way round, once per call if
                # need be; the scope is left only when the timer fires or the loop reads.
                with trio.CancelScope() as self._retake:
                    self._retake_armed = False
                    while (
                        self._reader is not None
                        and self._reader is not _SERVE
                        and self._ended is None
                    ):
                        self._serve_task = trio.lowlevel.current_task()
                        await trio.lowlevel.wait_task_rescheduled(self._unpark)
                self._retake = None
                continue
            self._reader = _SERVE
            with trio.CancelScope() as wait:
                self._serve_wait = wait
                try:
                    await channel.wait_readable()
                except ChannelClosed as exc:
                    self._end(exc)
                finally:
                    self._serve_wait = None
            if self._reader is not _SERVE:
                continue  # a call took the socket over: reading now would steal its answer
            try:
                self._route_all(channel.read_ready())
            except (ChannelClosed, ProtocolError) as exc:
                self._end(exc)

    def _route(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == m.LOG:
            _logs.reemit(message)
            return
        ctx = (
            self._contexts.get(message[1])
            if len(message) > 1 and isinstance(message[1], int)
            else None
        )
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
            self._ready.set(info)
        elif kind == m.STARTUP_ERROR:
            self._ready.set(error=rebuild(message[1], ActorStartupError, trusted=self._trusted))
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
        self._ready.set(error=error)
        for pending in self._pending.values():
            pending.resolve(error=error)
        for ctx in self._contexts.values():
            ctx.on_channel_closed(self._context_error(ctx, error))
        if self._reader is not None and self._reader is not _SERVE:
            # A call waits on the socket itself, and nothing else ends that wait.  (In practice
            # the channel is closed already: the actor was reaped.)
            self.channel.close_now()
        self._wake_serve()  # the loop reads to the end of the channel, and returns

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
