"""The parent's door into one actor: call functions in it, get results or remote errors.

One task per actor (run by its supervisor) reads the channel and hands each answer to the call
waiting for it.  When the channel ends -- the actor stopped, crashed or was killed -- every
call still waiting fails with :class:`ChannelClosed`: an answer that can no longer come is an
error, never a hang.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

import trio

from .._exceptions import ChannelClosed, ProtocolError
from . import _messages as m
from ._channel import Channel
from ._funcref import ref_of

__all__ = ["Portal"]

log = logging.getLogger("subint_spawn.portal")

# How long a cancelled caller spends telling the actor to drop the call.
_CANCEL_SEND_BOUND = 0.5


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
        try:
            while True:
                message = m.parse(await self.channel.receive(), m.TO_PARENT)
                self._route(message)
        except ChannelClosed as exc:
            error = ChannelClosed(f"actor {self.actor_name!r} closed its channel")
            error.__cause__ = exc
        except ProtocolError as exc:
            log.error("actor %r sent a malformed message; its channel is closed: %s", self.actor_name, exc)
            error = exc
        self._close(error)

    def _route(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == m.READY:
            self._ready.resolve()
        elif kind == m.STARTUP_ERROR:
            self._ready.resolve(error=m.remote_error(message[1], trusted=self._trusted, startup=True))
        elif kind == m.RETURN:
            pending = self._pending.get(message[1])
            if pending is not None:  # else: the caller was cancelled and left
                pending.resolve(message[2])
        elif kind == m.ERROR:
            pending = self._pending.get(message[1])
            if pending is not None:
                pending.resolve(error=m.remote_error(message[2], trusted=self._trusted))

    def _close(self, error: BaseException) -> None:
        if self._closed_error is None:
            self._closed_error = error
        self._channel_done.set()
        self._ready.resolve(error=error)
        for pending in self._pending.values():
            pending.resolve(error=error)

    def _set_result(self, value: Any = None, error: BaseException | None = None) -> None:
        self._result.resolve(value, error)

    @property
    def _is_closed(self) -> bool:
        return self._closed_error is not None

