"""The ``subint`` backend: each actor is ``trio.run`` inside its own subinterpreter."""

from __future__ import annotations

import logging
import socket

import trio

from .._core import _driver, _pool
from .._core._actor import actor_main
from .._core._bytecode import warn_once_if_uncompiled
from .._core._channel import Channel
from .._core._codec import PickleCodec
from .._exceptions import InterpreterKilled

__all__ = ["SubintActor", "spawn"]

# An actor's trio loop answers the IPC "stop" in milliseconds; by the time the driver is asked
# to kill, that has already failed, so its own cooperative step gets only a short window.
# kill_bound leaves room for a killed actor to reap its own children (ORPHAN_KILL_POLICY).
ACTOR_KILL_POLICY = _driver.KillPolicy(grace=0.05, kill_bound=1.0)


class SubintActor:
    def __init__(self, name: str, interp: _driver.Subinterpreter, channel: Channel, child_end: socket.socket) -> None:
        self.name = name
        self.interp = interp
        self.channel = channel
        self._child_end = child_end

    def ready(self) -> None:
        # The actor works on its own dup of this fd by now; closing ours means the parent
        # sees EOF as soon as the actor closes its dup, not only when the interpreter dies.
        self._child_end.close()

    @property
    def where(self) -> str:
        """Where the actor runs, for messages about it (Ctrl-C's abandon report)."""
        return f"subinterpreter {self.interp.id} ({self.interp.config}), thread {self.interp.thread_name!r}"

    @property
    def exited(self) -> bool:
        return self.interp.exited

    async def wait_exited(self) -> None:
        await self.interp.wait_exited()

    async def hard_stop(self) -> str:
        return await self.interp.kill()

    async def reap(self) -> BaseException | None:
        self._child_end.close()
        self.channel.close_now()
        try:
            await self.interp.wait()
        except InterpreterKilled:
            return None  # we stopped it: not the actor's own failure
        except Exception as exc:
            return exc
        finally:
            await self.interp.aclose()
        return None


async def spawn(name: str, enable_modules: list[str], config: _driver.Config) -> SubintActor:
    warn_once_if_uncompiled()
    parent_end, child_end = socket.socketpair()
    try:
        # A warm interpreter from this run's pool if one is idle (runtime already imported:
        # ready in milliseconds), else one booted now under the pool's per-config bound on
        # concurrent boots.  Either way the interpreter is this actor's alone from here on,
        # and its teardown destroys it.  If booting that way failed, the plain way below
        # reports the failure like any actor that cannot start.
        interp = _pool.take(config, name=name, policy=ACTOR_KILL_POLICY)
        if interp is None:
            interp = await _pool.boot(config, name=name, policy=ACTOR_KILL_POLICY)
        if interp is None:
            interp = await _driver.create(config, name=name, policy=ACTOR_KILL_POLICY)
    except BaseException:
        parent_end.close()
        child_end.close()
        raise
    try:
        log_level = logging.getLogger().getEffectiveLevel()  # the actor logs what we would show
        interp.start(
            actor_main, child_end.fileno(), name, enable_modules, "pickle", True, "subint", config, log_level
        )
    except BaseException:
        parent_end.close()
        child_end.close()
        with trio.CancelScope(shield=True):
            await interp.aclose()
        raise
    channel = Channel(parent_end, PickleCodec())
    return SubintActor(name, interp, channel, child_end)
