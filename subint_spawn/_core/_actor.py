"""The actor side of the runtime: what runs inside every actor, interpreter or process.

An actor imports its ``enable_modules``, says ``ready``, then serves calls until told to stop
or until its parent goes away.  Each call runs in its own task under its own cancel scope, so a
``cancel`` message for one call leaves the others alone.  A synchronous function is called
right on the actor's trio thread: it blocks this actor (only), and if it never returns, only
the backend's hard kill can stop it.

Everything the parent should know about is *sent*, never just logged: a failing call becomes
an ``error`` message, an unsendable result becomes an ``error`` naming the fix, a failed import
becomes ``startup_error``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import trio

from .._exceptions import ChannelClosed, ProtocolError
from . import _logs
from . import _messages as m
from ._channel import HEADER, Channel, channel_from_fd
from ._codec import CodecName, get_codec
from ._context import ActorContext
from ._control import KilledByWatchdog
from ._errors import ErrorInfo, describe, sendable_text
from ._funcref import is_async_function, load_module, resolve
from ._identity import become, current_actor
from ._names import BackendName, Config

__all__ = ["actor_main"]

log = logging.getLogger("subint_spawn.actor")

_CALL = m.CALL

# How long an ending actor keeps trying to hand its last queued messages to a slow parent.
_FINAL_FLUSH_BOUND = 1.0

_REFUSED_HINT = (
    " -- this extension module does not support isolated subinterpreters; "
    "spawn the actor with config='legacy' (shared GIL; some extensions, numpy among them, load "
    "in only one interpreter per process) or use the 'trio' backend (a process per actor)"
)
_ONCE_HINT = (
    " -- this extension module loads in only one interpreter per process, and this process "
    "(the parent or another actor) has loaded it already; use the 'trio' backend, where every "
    "actor is a process of its own"
)
# What CPython and the extension builders say when an extension cannot load in this
# interpreter, and what works instead (docs/c-extensions.md has the table they come from).
_EXTENSION_HINTS = (
    ("does not support loading in subinterpreters", _REFUSED_HINT),  # CPython, isolated config
    ("cannot load module more than once per process", _ONCE_HINT),  # numpy
    ("modules do not yet support subinterpreters", _ONCE_HINT),  # PyO3: pydantic-core, ...
    ("can only be loaded into one interpreter per process", _ONCE_HINT),  # Cython: lxml, ...
    # CPython runs a single-phase-init module's init function in the main interpreter first;
    # pandas's imports numpy there, which numpy refuses once an actor has it.
    ("failed to import from subinterpreter due to exception", _ONCE_HINT),
)


def _extension_hint(exc: BaseException | None) -> str | None:
    """What to use instead, when ``exc`` or an error it was raised from says an extension
    cannot load in this interpreter (pandas wraps numpy's refusal in its own ImportError)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc)
        for marker, hint in _EXTENSION_HINTS:
            if marker in text:
                return hint
        exc = exc.__cause__ or exc.__context__
    return None


async def actor_main(
    *,
    fd: int,
    name: str,
    enable_modules: list[str],
    codec: CodecName,
    dup: bool,
    backend: BackendName,
    config: Config,
    log_level: int = logging.WARNING,
) -> None:
    """Entry point of an actor: serve the parent on the socket ``fd``.

    ``dup`` is true in a subinterpreter, which shares the fd table with its parent: the actor
    works on its own duplicate and the parent closes the original once the actor is ready.
    ``backend`` and ``config`` become this actor's defaults, so an actor tree is made of one
    kind of actor unless its code asks otherwise.  Log records at ``log_level`` and above (the
    parent's root level) go to the parent's ``logging``, tagged with this actor's name.
    """
    from ._defaults import set_default_config, set_spawn_backend

    set_spawn_backend(backend)
    set_default_config(config)
    become(name)
    channel = channel_from_fd(fd, get_codec(codec), dup=dup)
    forwarding = _logs.install(channel, name, log_level)
    try:
        async with trio.open_nursery() as writer:
            writer.start_soon(channel.run_writer)
            try:
                await _Actor(name, channel).serve(enable_modules)
            finally:
                writer.cancel_scope.cancel()
                # The last answers may still be queued: they are what the parent waits for.
                with trio.CancelScope(shield=True), trio.move_on_after(_FINAL_FLUSH_BOUND):
                    try:
                        await channel.flush()
                    except ChannelClosed:
                        pass
    finally:
        logging.getLogger().removeHandler(forwarding)
        channel.close_now()


class _Actor:
    def __init__(self, name: str, channel: Channel) -> None:
        self.name = name
        self.channel = channel
        self.in_process = channel.codec.name == "pickle"
        self.calls: dict[int, trio.CancelScope] = {}
        self.contexts: dict[int, ActorContext] = {}
        self._dumps = channel.codec.dumps
        # (module, qualname) -> (function, its module, the module's name, runs inline).
        self._functions: dict[tuple[str, str], tuple[Any, Any, str, bool]] = {}

    def describe(self, exc: BaseException) -> ErrorInfo:
        info = describe(exc, self.name, with_pickle=self.in_process)
        hint = _extension_hint(exc)  # at import, in a startup or a call alike
        if hint is not None and hint not in info[1]:
            info[1] += hint
        return info

    async def serve(self, enable_modules: list[str]) -> None:
        try:
            for module in enable_modules:
                load_module(module)
        except BaseException as exc:
            # A module calling sys.exit() (or raising any BaseException) at import is a
            # startup error like any other, with its traceback; only our own stop passes.
            if isinstance(exc, trio.Cancelled) or _is_kill(exc):
                raise
            await self.channel.send((m.STARTUP_ERROR, self.describe(exc)))
            return
        me = current_actor()
        await self.channel.send((m.READY, me.name, me.uid, me.pid, me.interpreter_id))
        async with trio.open_nursery() as calls:
            try:
                await self._dispatch(calls)
            finally:
                for ctx in self.contexts.values():
                    ctx.on_actor_stopping()
                calls.cancel_scope.cancel()

    async def _dispatch(self, calls: trio.Nursery) -> None:
        channel, functions, modules = self.channel, self._functions, sys.modules
        while True:
            try:
                messages = await channel.receive_many()
            except ChannelClosed:
                return  # parent gone: nobody to answer, stop everything
            except ProtocolError as exc:
                log.error("actor %s: closing its channel: %s", self.name, exc)
                return
            for message in messages:
                # Nearly every message: a call of a sync function this actor has run before.
                # Checked here as parse() would (exact types: a subclass takes the full
                # path; msgpack delivers lists) and answered inline: a sync function blocks
                # this actor whichever task runs it and cannot be cancelled mid-run, so
                # running it right here costs nothing in semantics and saves a task and a
                # scheduler pass per call.
                if (
                    (type(message) is tuple or type(message) is list)
                    and len(message) == 5
                    and message[0] == _CALL
                ):
                    _, cid, module, qualname, kwargs = message
                    known = functions.get((module, qualname))
                    if (
                        known is not None
                        and known[3]  # runs inline
                        and type(cid) is int
                        and type(module) is str
                        and type(qualname) is str
                        and type(kwargs) is dict
                        and known[1].__dict__.get(qualname) is known[0]  # see _lookup
                        and modules.get(known[2]) is known[1]
                    ):
                        frame = self._answer_sync(cid, known[0], module, qualname, kwargs)
                        try:
                            if not channel.write_now(frame):
                                await channel.send_frame(frame)
                        except ChannelClosed:
                            pass  # the parent went away: the next receive says so
                        continue
                if not await self._handle(message, calls):
                    return

    async def _handle(self, message: Any, calls: trio.Nursery) -> bool:
        """Any message but a known sync call; False when the actor must stop."""
        try:
            message = m.parse(message, m.TO_ACTOR)
        except ProtocolError as exc:
            log.error("actor %s: closing its channel: %s", self.name, exc)
            return False
        kind = message[0]
        if kind == m.CALL:
            _, cid, module, qualname, kwargs = message
            fn, inline = self._lookup(module, qualname)
            if inline:  # (see _dispatch)
                try:
                    await self.channel.send_frame(
                        self._answer_sync(cid, fn, module, qualname, kwargs)
                    )
                except ChannelClosed:
                    pass
            else:
                calls.start_soon(self._serve_call, cid, module, qualname, kwargs)
        elif kind == m.CONTEXT:
            _, cid, module, qualname, kwargs = message
            self.contexts[cid] = ActorContext(self.channel, cid, "parent")
            calls.start_soon(self._serve_context, cid, module, qualname, kwargs)
        elif kind in (m.STREAM, m.STREAM_END, m.CREDIT):
            ctx = self.contexts.get(message[1])
            if ctx is not None:  # else: the context already ended; late items are dropped
                try:
                    ctx.on_stream_message(message)
                except ProtocolError as exc:  # an item that does not decode
                    log.error("actor %s: closing its channel: %s", self.name, exc)
                    return False
        elif kind == m.CANCEL:
            ctx = self.contexts.get(message[1])
            if ctx is not None:
                ctx.on_cancel_from_peer()
            scope = self.calls.get(message[1])
            if scope is not None:
                scope.cancel()
        elif kind == m.STOP:
            return False
        return True

    def _lookup(self, module: str, qualname: str) -> tuple[Any, bool]:
        """The function a call names, and whether it runs inline (a plain sync function).

        ``(None, False)`` if it cannot be found: the call's task reports why.  Found functions
        are remembered, and checked on every call (here, and inline in the dispatcher) that
        the name still binds that function in that module, and ``sys.modules`` still that
        module: two dict lookups where a lookup is an import and a walk.
        """
        known = self._functions.get((module, qualname))
        if (
            known is not None
            and known[1].__dict__.get(qualname) is known[0]
            and sys.modules.get(known[2]) is known[1]
        ):
            return known[0], known[3]
        try:
            home = load_module(module)
            fn = resolve((module, qualname))
        except Exception:
            return None, False
        inline = hasattr(fn, "__code__") and not is_async_function(fn)
        name = getattr(home, "__name__", None)
        if "." not in qualname and getattr(home, "__dict__", {}).get(qualname) is fn and name:
            self._functions[(module, qualname)] = (fn, home, name, inline)
        return fn, inline

    async def _send_answer(self, frame: bytes) -> None:
        try:
            await self.channel.send_frame(frame)
        except ChannelClosed:
            pass  # the parent went away; the dispatcher sees it too and stops us

    async def _serve_call(
        self, cid: int, module: str, qualname: str, kwargs: dict[str, Any]
    ) -> None:
        with trio.CancelScope() as scope:
            self.calls[cid] = scope
            try:
                await self._send_answer(await self._answer(cid, module, qualname, kwargs))
            finally:
                del self.calls[cid]

    async def _serve_context(
        self, cid: int, module: str, qualname: str, kwargs: dict[str, Any]
    ) -> None:
        """Run ``fn(ctx, **kwargs)``; answer with its result, its error, or ``cancelled``.

        The context's cancel scope is cancelled by the parent's ``cancel`` or by the function's
        own ``ctx.cancel()``; either way it is caught here and reported as ``cancelled``, and
        the parent decides whether that is an error (it is, unless the parent asked for it).
        A cancellation from outside (the whole actor stopping) passes through unreported: the
        parent stopped us and the channel is going away.
        """
        ctx = self.contexts[cid]
        frame: bytes | None = None
        try:
            with trio.CancelScope() as scope:
                ctx.scope = scope
                if ctx.cancelled_by_peer:  # the cancel overtook the start
                    scope.cancel()
                try:
                    fn = resolve((module, qualname))
                    if not is_async_function(fn):
                        raise TypeError(
                            f"{module}.{qualname} cannot run as a context: define it as "
                            "`async def fn(ctx, **kwargs)`"
                        )
                    result = await fn(ctx, **kwargs)
                except trio.Cancelled:
                    raise
                except BaseException as exc:
                    frame = self._error_frame(cid, exc)
                else:
                    frame = self._result_frame(cid, module, qualname, result)
            if scope.cancelled_caught or frame is None:
                who = "the parent" if ctx.cancelled_by_peer else f"actor {self.name!r} itself"
                info: ErrorInfo = [
                    "ContextCancelled",
                    f"context {module}.{qualname} was cancelled by {who}",
                    "",
                    self.name,
                    None,
                ]
                frame = self.channel.encode((m.CANCELLED, cid, info))
            await self._send_answer(frame)
        finally:
            ctx.on_ended(None)
            del self.contexts[cid]

    async def _answer(self, cid: int, module: str, qualname: str, kwargs: dict[str, Any]) -> bytes:
        """The framed answer to one call: its return value, or the error it raised."""
        try:
            fn = resolve((module, qualname))
            result = fn(**kwargs)
            if hasattr(result, "__await__"):
                result = await result
        except trio.Cancelled:
            raise
        except BaseException as exc:
            return self._error_frame(cid, exc)
        return self._result_frame(cid, module, qualname, result)

    def _answer_sync(
        self, cid: int, fn: Any, module: str, qualname: str, kwargs: dict[str, Any]
    ) -> bytes:
        try:
            result = fn(**kwargs)
        except BaseException as exc:
            return self._error_frame(cid, exc)
        # _result_frame's encode, inline for the round trip's sake.
        try:
            payload = self._dumps((m.RETURN, cid, result))
        except Exception:
            return self._result_frame(cid, module, qualname, result)  # says what went wrong
        if len(payload) > self.channel.max_frame:
            return self._result_frame(cid, module, qualname, result)
        return HEADER.pack(len(payload)) + payload

    def _error_frame(self, cid: int, exc: BaseException) -> bytes:
        if not isinstance(exc, Exception) and _is_kill(exc):
            raise exc
        info = self.describe(exc)
        try:
            return self.channel.encode((m.ERROR, cid, info))
        except (TypeError, ValueError) as failure:
            # Never let describing an error kill the actor: send what surely encodes.
            type_name, message, text, where, _ = info
            note = f"\n[the error could not be sent whole: {failure}]"
            return self.channel.encode(
                (m.ERROR, cid, [type_name, message, text + sendable_text(note), where, None])
            )

    def _result_frame(self, cid: int, module: str, qualname: str, result: Any) -> bytes:
        try:
            return self.channel.encode((m.RETURN, cid, result))
        except (TypeError, ValueError) as exc:
            error = type(exc)(f"the result of {module}.{qualname} cannot be sent back: {exc}")
            return self.channel.encode((m.ERROR, cid, self.describe(error)))


def _is_kill(exc: BaseException) -> bool:
    """The driver's injected exception must end the actor, not become a call's answer."""
    return isinstance(exc, KilledByWatchdog)
